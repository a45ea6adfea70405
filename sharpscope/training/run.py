"""The state of a training run in progress (:class:`Run`): the model, its optimizer and
schedule, the RNG, the metrics so far, and how one checkpoint of it is written."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..optim.xsam import XSAM
from ..problem.checkpoint import save_checkpoint
from ..problem.data import BatchSplits, DataSplits
from ..problem.models import ModelSpec
from ..runtime.batches import call_model, loss_of_output, output_tensor
from .evaluate import autocast
from .resume import rng_state, to_cpu
from .schedule import lr_factor
from .settings import TrainSettings

__all__ = ["Run"]


@dataclass
class Run:
    """One run: what :func:`~sharpscope.training.train` built, plus the loop's state."""

    out: Path
    settings: TrainSettings
    splits: DataSplits | BatchSplits
    spec: ModelSpec
    net: nn.Module
    opt: torch.optim.Optimizer
    loss_fn: Callable
    dev: torch.device
    ctx: Any = None
    quiet: bool = False
    callback: Callable[[int, dict[str, Any]], None] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    shard_weight: float = 1.0  # turns the mean of the ranks' shard means into the global mean

    def __post_init__(self) -> None:
        self.ddp: nn.Module = self.net
        if self.ctx is not None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dev.index] if self.dev.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.net, device_ids=ids)
        s = self.settings
        self.train_batches: list[Any] | None = None
        if isinstance(self.splits, BatchSplits):
            # a factory's batches, re-cut into batch_size rows where their shapes allow
            # (else as given); each epoch visits them in a seeded order (epoch.py)
            self.train_batches = self.splits.batches("train", s.batch_size, device=self.dev)
            self.steps_per_epoch = len(self.train_batches)
        else:
            self.x_train = self.splits.x_train.to(self.dev)
            self.y_train = self.splits.y_train.to(self.dev)
            self.steps_per_epoch = math.ceil(len(self.y_train) / s.batch_size)
        total_steps = self.steps_per_epoch * s.epochs

        def factor(step: int) -> float:
            return lr_factor(
                step,
                total_steps=total_steps,
                steps_per_epoch=self.steps_per_epoch,
                schedule=s.schedule,
                warmup_steps=s.warmup_epochs * self.steps_per_epoch,
                milestones=list(s.milestones),
                gamma=s.gamma,
            )

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)
        self.shuffle = torch.Generator().manual_seed(s.seed)

    # ------------------------------------------------------------------------- what it is
    @property
    def name(self) -> str:
        return self.settings.optimizer

    @property
    def is_xsam(self) -> bool:
        return isinstance(self.opt, XSAM)

    @property
    def is_sa(self) -> bool:
        """Sharpness-aware (SAM, ASAM, XSAM): steps take a closure."""
        return self.name != "sgd"

    @property
    def local_first(self) -> bool:
        """Distributed per-rank ascent: the first pass is not all-reduced."""
        return self.ctx is not None and self.is_sa and self.settings.perturbation == "per-rank"

    @property
    def local_all(self) -> bool:
        """Per-rank XSAM: each rank computes its whole direction; the directions are averaged."""
        return self.local_first and self.is_xsam

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    # ------------------------------------------------------------------------- passes
    def forward_loss(self, batch: Any, module: nn.Module | None = None) -> tuple[torch.Tensor, Any]:
        """The mean loss on ``batch`` (any batch structure) and the model's output tensor
        (None when the output has none, e.g. a user loss reading a custom output)."""
        with autocast(self.dev, self.settings.bf16):
            output = call_model(self.ddp if module is None else module, batch)
            loss = loss_of_output(self.loss_fn, output, batch)
        if isinstance(output, torch.Tensor):
            return loss, output
        try:
            return loss, output_tensor(output)
        except Exception:  # noqa: BLE001 - no class scores: no accuracy
            return loss, None

    def test_batches(self) -> list[Any]:
        """The test batches of factory data (``eval_batch_size`` rows where they re-cut)."""
        if not self.splits.test:
            return []
        return self.splits.batches("test", self.settings.eval_batch_size, device=self.dev)

    def passes(self, sync: bool) -> Any:
        """Passes that DDP all-reduces (``sync``) or keeps local (``no_sync``)."""
        return self.ddp.no_sync() if self.ctx is not None and not sync else nullcontext()

    def all_finite(self, value: float) -> bool:
        """``value`` is finite on every rank."""
        ok = math.isfinite(value)
        if self.ctx is None:
            return ok
        flag = torch.tensor([0.0 if ok else 1.0], device=self.dev)
        return float(self.ctx.all_reduce(flag, op="max")[0]) == 0.0

    def average_directions(self, params: list[torch.Tensor]) -> None:
        """XSAM's ``grad_hook`` for per-rank runs: the mean of the ranks' directions."""
        ctx = self.ctx
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        flat = flat * (self.shard_weight / ctx.world_size)
        ctx.all_reduce(flat)
        for p, g in zip(params, torch.split(flat, [p.numel() for p in params]), strict=True):
            p.grad.copy_(g.view_as(p))

    # ------------------------------------------------------------------------- files
    def epoch_file(self, epoch: int) -> Path | None:
        """``epoch_XXX.pt`` when ``epoch`` is one that ``save_every`` keeps, else None."""
        every = self.settings.save_every
        if epoch == 0 or (every and epoch % every == 0):
            return self.out / f"epoch_{epoch:03d}.pt"
        return None

    def save(self, path: Path, *, with_resume: bool) -> None:
        """Write a checkpoint of the current weights (``with_resume``: and the resume state)."""
        extra: dict[str, Any] = {"train": self.settings.train_record()}
        if self.is_xsam:
            extra["alpha_history"] = [dict(h) for h in self.opt.alpha_history]
        res = None
        if with_resume:
            res = {
                "epoch": len(self.metrics),
                "model": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
                "optimizer": to_cpu(self.opt.state_dict()),
                "scheduler": self.sched.state_dict(),
                "rng": rng_state(self.shuffle),
                "settings": self.settings.to_dict(),
            }
        save_checkpoint(
            path,
            model=self.net,
            model_spec=self.spec,
            input_shape=self.splits.input_shape,
            num_classes=self.splits.num_classes,
            data_spec=self.splits.spec,
            loss=self.settings.loss,
            optimizer={"name": self.name, "hparams": self.settings.hparams},
            seed=self.settings.seed,
            metrics=self.metrics,
            extra=extra,
            resume=res,
        )

    def kept(self, epoch: int) -> str:
        """What ``last.pt`` keeps when epoch ``epoch`` fails."""
        initial = " (the initial weights)" if epoch == 1 else ""
        return f"{self.last_path} keeps epoch {epoch - 1}{initial}"
