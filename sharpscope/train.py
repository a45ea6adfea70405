"""Training with SGD, SAM, ASAM or XSAM, writing checkpoints that the probes read.

:func:`train` writes into ``out``:

* ``epoch_000.pt`` (initial weights) and ``epoch_XXX.pt`` every ``save_every`` epochs
  (three-digit epoch number): the trajectory that "over training" probes read;
* ``last.pt`` after every epoch (atomically), with the ``resume`` state: model,
  optimizer and scheduler state dicts, the RNG states and the epoch;
* ``final.pt`` at the end, and ``metrics.jsonl`` (one JSON object per epoch: epoch, lr,
  train_loss, train_acc, test_loss, test_acc, seconds, and alpha for XSAM).

A run interrupted at any point continues with ``resume=True`` and ends with the same
weights, bit for bit on CPU, as a run that was never interrupted.

Under ``torchrun`` (see :mod:`sharpscope.distributed`) the model is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`; each global batch of
``batch_size`` samples (the same shuffled order on every rank, from ``seed``) is split
into one contiguous shard per rank, so a run takes the same optimizer steps as a
single process. ``perturbation`` says how the sharpness-aware ascent is distributed:

* ``per-rank`` (default): each rank ascends with the gradient of its own shard, as
  Foret et al. (2021) describe (the first pass runs under ``no_sync``); the gradients
  at the perturbed points are then averaged (weighted by shard sizes). XSAM computes
  each rank's whole direction locally and averages the directions.
* ``global``: every pass is all-reduced, so the ascent uses the gradient of the whole
  global batch and a step equals the single-process step on that batch.

XSAM's alpha search averages the losses of all ranks, so every rank picks the same
alpha. Rank 0 writes the files (the same format as a single process); every rank can
resume from them.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .data import DataSplits, check_finite_inputs, iterate_batches, load_data
from .errors import NonFiniteLossError, SharpscopeError
from .losses import get_loss
from .models import ModelSpec, build_model
from .optim.base import check_number
from .optim.factory import make_optimizer, optimizer_hparams
from .optim.xsam import XSAM
from .utils import (
    atomic_write_text,
    check_writable,
    folder_lock,
    progress,
    resolve_device,
    seed_everything,
    to_jsonable,
)

__all__ = ["SCHEDULES", "PERTURBATIONS", "TrainResult", "train", "lr_factor"]

SCHEDULES = ("constant", "cosine", "step")
PERTURBATIONS = ("per-rank", "global")
_RUN_FILES = ("last.pt", "final.pt", "metrics.jsonl")
_RUN_DIRS = ("probes",)  # derived from the run's checkpoints: replaced with them
NO_TEST_DATA = "no test data"


@dataclass
class TrainResult:
    """What :func:`train` did: where, how long, and the per-epoch metrics."""

    out: Path
    optimizer: str
    hparams: dict[str, Any]
    epochs: int
    metrics: list[dict[str, Any]]
    seconds: float
    resumed_from: int | None = None
    alpha_history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return dict(self.metrics[-1]) if self.metrics else {}

    @property
    def final_path(self) -> Path:
        return self.out / "final.pt"

    def summary(self) -> dict[str, Any]:
        """Plain-data summary (what ``sharpscope train --json`` writes)."""
        best = max(
            (m["test_acc"] for m in self.metrics if m.get("test_acc") is not None), default=None
        )
        summary = {
            "out": str(self.out),
            "optimizer": self.optimizer,
            "hparams": self.hparams,
            "epochs": self.epochs,
            "resumed_from": self.resumed_from,
            "seconds": self.seconds,
            "final": self.final,
            "best_test_acc": best,
            "final_checkpoint": str(self.final_path),
            "alpha": self.final.get("alpha"),
        }
        if self.metrics and self.final.get("test_loss") is None:
            summary["note"] = NO_TEST_DATA
        return summary


def lr_factor(
    step: int,
    *,
    total_steps: int,
    steps_per_epoch: int,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    milestones: list[int] | None = None,
    gamma: float = 0.1,
) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    ``warmup_steps`` of linear warm-up, then ``constant``, ``cosine`` (to 0 at
    ``total_steps``) or ``step`` (times ``gamma`` at each epoch in ``milestones``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
    epoch = step // max(1, steps_per_epoch)
    return gamma ** sum(1 for m in (milestones or []) if epoch >= m)


# ----------------------------------------------------------------------------- RNG state as plain data
def _rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- helpers
def _settings_diff(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict) and k in ("hparams", "model", "data"):
                out.update(flat(v, "" if k == "hparams" else f"{k}."))
            else:
                out[prefix + k] = list(v) if isinstance(v, tuple) else v
        return out

    a, b = flat(saved), flat(now)
    return [
        f"{k} {a.get(k)!r} (saved) vs {b.get(k)!r} (now)"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def _autocast(device: torch.device, bf16: bool) -> Any:
    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _check_bf16(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SharpscopeError(
            f"--bf16: this GPU ({torch.cuda.get_device_name(device)}) does not support bfloat16"
        )
    if not torch.amp.is_autocast_available(device.type):
        raise SharpscopeError(
            f"--bf16: bfloat16 autocast is not available on device {device.type!r}"
        )
    try:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
    except RuntimeError as exc:
        raise SharpscopeError(f"--bf16: bfloat16 autocast fails on {device.type}: {exc}") from exc


@torch.no_grad()
def _evaluate(
    net: nn.Module,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    device: torch.device,
    bf16: bool,
    ctx: Any = None,
) -> tuple[float | None, float | None]:
    """Mean loss and accuracy on ``(x, y)``; ``(None, None)`` for an empty split (no test data)."""
    n = len(y)
    if n == 0:
        return None, None
    if ctx is not None:  # each rank evaluates a contiguous part; the sums are all-reduced
        part = torch.tensor_split(torch.arange(n), ctx.world_size)[ctx.rank]
        x, y = x[part], y[part]
    was = net.training
    net.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for xb, yb in iterate_batches(x, y, batch_size, device=device):
        with _autocast(device, bf16):
            out = net(xb)
            loss = loss_fn(out, yb)
        total += loss.double() * len(yb)
        correct += (out.argmax(-1) == yb).sum()
    net.train(was)
    if ctx is not None:
        sums = ctx.all_reduce(torch.stack([total, correct.double()]))
        total, correct = sums[0], sums[1]
    return float(total) / n, float(correct) / n


def _rank_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator, ctx: Any
) -> Any:
    """This rank's part of every global batch: the same ``randperm`` as :func:`iterate_batches`,
    each batch split into ``world_size`` contiguous parts. Yields ``(x, y, global batch size)``."""
    order = torch.randperm(len(y), generator=generator)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        part = torch.tensor_split(idx, ctx.world_size)[ctx.rank].to(x.device)
        yield x[part], y[part], len(idx)


def _check_world(ctx: Any, n: int, batch_size: int) -> None:
    world = ctx.world_size
    if batch_size < world:
        raise SharpscopeError(
            f"{world} processes but batches of {batch_size} samples: every process needs at "
            f"least one sample per step; use --batch-size {world} or more"
        )
    last = n % batch_size
    if n < world or 0 < last < world:
        raise SharpscopeError(
            f"{world} processes but the last batch of an epoch holds {last or n} samples "
            f"({n} training samples, batch size {batch_size}): every process needs at least "
            "one sample per step; change --batch-size or --samples"
        )


def _run_entries(out: Path) -> list[Path]:
    """The files and folders of a run in ``out`` (what ``force`` replaces)."""
    names = [*_RUN_FILES, *_RUN_DIRS]
    found = [out / n for n in names if (out / n).exists()]
    return found + sorted(out.glob("epoch_*.pt"))


def _move_run_aside(out: Path) -> Path | None:
    """Move the old run's files into a hidden folder of ``out`` (same disk: renames only)."""
    entries = _run_entries(out)
    if not entries:
        return None
    aside = out / f".sharpscope-old-run.{os.getpid()}"
    aside.mkdir()
    moved: list[Path] = []
    try:
        for p in entries:
            os.replace(p, aside / p.name)
            moved.append(p)
    except OSError as exc:
        for p in moved:
            os.replace(aside / p.name, p)
        aside.rmdir()
        raise SharpscopeError(f"cannot replace the run in {out}: {exc.strerror or exc}") from exc
    return aside


def _restore_run(out: Path, aside: Path) -> None:
    """Undo :func:`_move_run_aside`: drop what the new run wrote, put the old files back."""
    for p in _run_entries(out):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for p in aside.iterdir():
        os.replace(p, out / p.name)
    aside.rmdir()


def _write_metrics(out: Path, metrics: list[dict[str, Any]]) -> None:
    """``metrics.jsonl``: one strict JSON object per line (NaN/Inf written as null)."""
    atomic_write_text(
        out / "metrics.jsonl",
        "".join(json.dumps(to_jsonable(m), allow_nan=False) + "\n" for m in metrics),
    )


def _check_labels(net: nn.Module, splits: DataSplits, device: torch.device) -> None:
    """Every class label must index one of the model's outputs (else the loss fails mid-run)."""
    was = net.training
    net.eval()
    with torch.no_grad():
        width = net(splits.x_train[:1].to(device)).shape
    net.train(was)
    if len(width) != 2:
        return
    width = int(width[-1])
    for split, y in (("training", splits.y_train), ("test", splits.y_test)):
        bad = ((y < 0) | (y >= width)).nonzero()
        if len(bad):
            i = int(bad[0, 0])
            raise SharpscopeError(
                f"{split} label {int(y[i])} at index {i} is outside 0..{width - 1} "
                f"for a model with {width} outputs"
            )


def _non_finite_weights(net: nn.Module) -> str | None:
    """The name of the first parameter or buffer holding NaN/Inf, else None."""
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


# ----------------------------------------------------------------------------- train
def train(
    *,
    model: str | ModelSpec = "mlp",
    data: str | DataSplits = "digits",
    optimizer: str = "sgd",
    out: str | Path,
    model_kwargs: dict[str, Any] | None = None,
    samples: int | None = None,
    loss: str = "cross_entropy",
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    base: str = "sgd",
    rho: float = 0.05,
    eta: float = 0.01,
    steps: int = 1,
    alpha: float | None = None,
    rho_max: float | None = None,
    alpha_max: float = 2.0,
    alpha_step: float = 0.1,
    search_every: int | None = None,
    bn_policy: str = "clean",
    schedule: str = "cosine",
    warmup_epochs: int = 0,
    milestones: list[int] | None = None,
    gamma: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "auto",
    bf16: bool = False,
    save_every: int = 1,
    eval_batch_size: int = 1024,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    perturbation: str = "per-rank",
) -> TrainResult:
    """Train ``model`` on ``data`` with ``optimizer`` (``sgd``, ``sam``, ``asam`` or ``xsam``).

    Args:
        model: a model name (``mlp``, ``cnn``, ``resnet20``, ...), ``"pkg.mod:fn"`` or a ModelSpec.
        data: a data spec (``digits``, ``cifar10:DIR``, ...) or loaded :class:`DataSplits`.
        optimizer: ``sgd`` (the base optimizer alone), ``sam`` (Foret et al. 2021),
            ``asam`` (Kwon et al. 2021) or ``xsam`` (Chen & Zhou 2026).
        out: the run folder.
        lr, momentum, weight_decay, nesterov, base: the base optimizer (``base``: sgd or adamw).
        rho, eta, steps, alpha, rho_max, alpha_max, alpha_step, search_every, bn_policy:
            see :func:`sharpscope.optim.factory.optimizer_hparams`.
        schedule: ``constant``, ``cosine`` or ``step`` (per optimizer step), after
            ``warmup_epochs`` of linear warm-up; ``step`` multiplies by ``gamma`` at the
            epochs in ``milestones`` (default: half and three quarters of ``epochs``).
        seed: seeds the initial weights, the shuffling and every RNG.
        device: ``auto``, ``cpu``, ``cuda``; ``bf16``: bfloat16 autocast for the passes.
        save_every: write ``epoch_XXX.pt`` every this many epochs (0: only ``epoch_000.pt``).
        resume: continue the run in ``out`` from ``last.pt`` (the settings must match;
            ``epochs`` may grow). ``force``: overwrite a finished or unfinished run.
        callback: ``callback(epoch, record)`` after each epoch's checkpoint is written.
        perturbation: distributed runs only: ``per-rank`` (default) or ``global`` ascent
            (see the module documentation).

    Raises:
        SharpscopeError: invalid settings, an existing run, nothing to resume.
        NonFiniteLossError: the loss became NaN/Inf (``last.pt`` keeps the last good epoch).
        KeyboardInterrupt: passed on; ``last.pt`` holds the last finished epoch.
    """
    t_start = time.perf_counter()
    name = str(optimizer).lower()
    hp = optimizer_hparams(
        name,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
        base=base,
        rho=rho,
        eta=eta,
        steps=steps,
        alpha=alpha,
        rho_max=rho_max,
        alpha_max=alpha_max,
        alpha_step=alpha_step,
        search_every=search_every,
        bn_policy=bn_policy,
    )
    check_number("epochs", epochs, low=1, integer=True)
    check_number("batch size", batch_size, low=1, integer=True)
    check_number("eval batch size", eval_batch_size, low=1, integer=True)
    check_number("save_every", save_every, low=0, integer=True)
    check_number("warmup_epochs", warmup_epochs, low=0, integer=True)
    check_number("seed", seed, integer=True)
    check_number("gamma", gamma, low=0.0, strict=True)
    if schedule not in SCHEDULES:
        raise SharpscopeError(f"unknown schedule {schedule!r}: use {', '.join(SCHEDULES)}")
    if warmup_epochs >= epochs:
        raise SharpscopeError(
            f"warmup_epochs ({warmup_epochs}) must be smaller than epochs ({epochs})"
        )
    if milestones is None:
        milestones = [epochs // 2, (3 * epochs) // 4] if schedule == "step" else []
    milestones = [int(check_number("milestone", m, low=1, integer=True)) for m in milestones]
    if perturbation not in PERTURBATIONS:
        raise SharpscopeError(
            f"unknown perturbation {perturbation!r}: use per-rank (each rank ascends on its "
            "own shard) or global (all-reduced gradient)"
        )
    from .distributed import current

    ctx = current()
    loss_fn = get_loss(loss)
    dev = resolve_device(device)
    if ctx is not None:
        if dev.type == "cuda":
            dev = ctx.device  # one GPU per local rank
        elif ctx.backend == "nccl":
            raise SharpscopeError(
                f"the process group uses NCCL (GPUs) but training runs on {dev}: "
                "launch with --device cuda or auto"
            )
    if bf16:
        _check_bf16(dev)

    out = Path(out).expanduser()
    last_path, final_path = out / "last.pt", out / "final.pt"
    main = ctx is None or ctx.is_main
    if samples is not None:
        check_number("samples", samples, low=0, integer=True)
        samples = samples or None  # 0: all samples, as in the probes

    # Validate everything (data, model, optimizer, output folder) before touching a run.
    if isinstance(data, DataSplits):
        if samples is not None:
            raise SharpscopeError(
                "samples= applies to a data spec; subsample DataSplits before passing them"
            )
        check_finite_inputs(data)
        splits = data
    else:
        splits = load_data(data, samples=samples)
    if isinstance(model, ModelSpec):
        spec = ModelSpec(model.name, {**model.kwargs, **(model_kwargs or {})})
    else:
        spec = ModelSpec(str(model), dict(model_kwargs or {}))
    settings = {
        "model": spec.to_dict(),
        "data": splits.spec.to_dict(),
        "loss": loss,
        "optimizer": name,
        "hparams": hp,
        "batch_size": batch_size,
        "schedule": schedule,
        "warmup_epochs": warmup_epochs,
        "milestones": milestones,
        "gamma": gamma,
        "seed": seed,
        "bf16": bf16,
    }
    if ctx is not None:  # the sharding depends on the world size
        settings.update(world_size=ctx.world_size, perturbation=perturbation)
        _check_world(ctx, len(splits.y_train), batch_size)

    seed_everything(seed)
    net = build_model(spec, input_shape=splits.input_shape, num_classes=splits.num_classes).to(dev)
    opt = make_optimizer(
        name,
        net,
        **{k: v for k, v in hp.items() if k != "betas"},
        **({"betas": tuple(hp["betas"])} if "betas" in hp else {}),
    )
    _check_labels(net, splits, dev)
    if main:
        check_writable(last_path, what="run folder file")

    def inspect_out() -> dict[str, Any] | None:
        """Refuse to clobber a run, load the resume state (rank 0 only when distributed)."""
        ck = None
        if resume:
            if not last_path.exists():
                raise SharpscopeError(
                    f"nothing to resume in {out}: no last.pt (start without --resume)"
                )
            ck = load_checkpoint(last_path)
            if not ck.resume:
                raise SharpscopeError(
                    f"{last_path} holds no resume state; start again with --force"
                )
            done = int(ck.resume["epoch"])
            if final_path.exists() and done >= epochs:
                raise SharpscopeError(
                    f"the run in {out} is already finished ({done} epochs): nothing to resume; "
                    "raise --epochs to continue it or use --force to start over"
                )
        elif final_path.exists() and not force:
            raise SharpscopeError(
                f"{out} holds a finished run (final.pt): use --force to overwrite it "
                "or --out to choose another folder"
            )
        elif last_path.exists() and not force:
            raise SharpscopeError(
                f"{out} holds an unfinished run (last.pt): use --resume to continue it "
                "or --force to start over"
            )
        return None if ck is None else {"resume": ck.resume, "metrics": ck.metrics}

    # The exclusive lock on ``out`` for the whole run: a second train (or a probe that
    # writes there) gets one error naming this one.
    with folder_lock(out, command="train"):
        state = ctx.run_on_main(inspect_out) if ctx is not None else inspect_out()
        ck = None if state is None else SimpleNamespace(**state)
        if ck is not None:
            diff = _settings_diff(ck.resume.get("settings", {}), settings)
            if diff:
                raise SharpscopeError(f"cannot resume {out}: settings differ: {'; '.join(diff)}")
        return _train_in(
            out=out,
            ck=ck,
            force=force and not resume,
            main=main,
            ctx=ctx,
            splits=splits,
            spec=spec,
            net=net,
            opt=opt,
            settings=settings,
            name=name,
            hp=hp,
            loss=loss,
            loss_fn=loss_fn,
            dev=dev,
            bf16=bf16,
            epochs=epochs,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            milestones=milestones,
            gamma=gamma,
            seed=seed,
            save_every=save_every,
            quiet=quiet,
            callback=callback,
            perturbation=perturbation,
            t_start=t_start,
        )


def _train_in(
    *,
    out: Path,
    ck: Any,
    force: bool,
    main: bool,
    ctx: Any,
    splits: DataSplits,
    spec: ModelSpec,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    settings: dict[str, Any],
    name: str,
    hp: dict[str, Any],
    loss: str,
    loss_fn: Callable,
    dev: torch.device,
    bf16: bool,
    epochs: int,
    batch_size: int,
    eval_batch_size: int,
    schedule: str,
    warmup_epochs: int,
    milestones: list[int],
    gamma: float,
    seed: int,
    save_every: int,
    quiet: bool,
    callback: Callable[[int, dict[str, Any]], None] | None,
    perturbation: str,
    t_start: float,
) -> TrainResult:
    """The training loop of :func:`train`, with ``out`` locked and everything validated."""
    last_path, final_path = out / "last.pt", out / "final.pt"
    x_train, y_train = splits.x_train.to(dev), splits.y_train.to(dev)
    ddp: nn.Module = net
    if ctx is not None:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    steps_per_epoch = math.ceil(len(y_train) / batch_size)
    total_steps = steps_per_epoch * epochs

    def factor(step: int) -> float:
        return lr_factor(
            step,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            schedule=schedule,
            warmup_steps=warmup_epochs * steps_per_epoch,
            milestones=milestones,
            gamma=gamma,
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    shuffle = torch.Generator().manual_seed(seed)
    is_xsam, is_sa = isinstance(opt, XSAM), name != "sgd"
    opt_record = {"name": name, "hparams": hp}
    metrics: list[dict[str, Any]] = []
    start_epoch = 0

    def save(path: Path, *, with_resume: bool) -> None:
        extra = {
            "train": {k: v for k, v in settings.items() if k not in ("model", "data", "hparams")}
            | {"epochs": epochs, "save_every": save_every}
        }
        if is_xsam:
            extra["alpha_history"] = [dict(h) for h in opt.alpha_history]
        res = None
        if with_resume:
            res = {
                "epoch": len(metrics),
                "model": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                "optimizer": _to_cpu(opt.state_dict()),
                "scheduler": sched.state_dict(),
                "rng": _rng_state(shuffle),
                "settings": settings,
            }
        save_checkpoint(
            path,
            model=net,
            model_spec=spec,
            input_shape=splits.input_shape,
            num_classes=splits.num_classes,
            data_spec=splits.spec,
            loss=loss,
            optimizer=opt_record,
            seed=seed,
            metrics=metrics,
            extra=extra,
            resume=res,
        )

    def epoch_file(epoch: int) -> Path | None:
        if epoch == 0 or (save_every and epoch % save_every == 0):
            return out / f"epoch_{epoch:03d}.pt"
        return None

    if ck is not None:
        # The initial weights come from the seed alone: a run killed before epoch_000.pt
        # was written gets it back here, before the resume state replaces them.
        if not (out / "epoch_000.pt").exists():
            save(out / "epoch_000.pt", with_resume=False)
        state = ck.resume
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], shuffle)
        metrics = [dict(m) for m in ck.metrics][: int(state["epoch"])]
        start_epoch = int(state["epoch"])
        # epoch files are written before last.pt; one that is missing anyway (an older
        # run, a deleted file) is the state last.pt holds
        path = epoch_file(start_epoch)
        if path is not None and not path.exists():
            save(path, with_resume=False)
        _write_metrics(out, metrics)
    else:
        aside = _move_run_aside(out) if force and main else None
        try:
            save(out / "epoch_000.pt", with_resume=False)
            save(last_path, with_resume=True)
        except BaseException:
            if aside is not None:
                _restore_run(out, aside)
            raise
        if aside is not None:  # the new run has its first checkpoint: the old one goes
            shutil.rmtree(aside, ignore_errors=True)
        _write_metrics(out, metrics)

    def forward_loss(
        x: torch.Tensor, y: torch.Tensor, module: nn.Module = ddp
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with _autocast(dev, bf16):
            logits = module(x)
            return loss_fn(logits, y), logits

    # distributed: which passes are all-reduced by DDP, and the weight that turns the
    # average of the ranks' shard means into the mean over the global batch
    local_first = ctx is not None and is_sa and perturbation == "per-rank"
    local_all = local_first and is_xsam  # per-rank XSAM: whole direction per rank
    shard_weight = 1.0

    def passes(sync: bool) -> Any:
        return ddp.no_sync() if ctx is not None and not sync else nullcontext()

    if local_all:

        def average_directions(params: list[torch.Tensor]) -> None:
            flat = torch.cat([p.grad.reshape(-1) for p in params]) * (shard_weight / ctx.world_size)
            ctx.all_reduce(flat)
            for p, g in zip(params, torch.split(flat, [p.numel() for p in params]), strict=True):
                p.grad.copy_(g.view_as(p))

        opt.grad_hook = average_directions

    def all_finite(value: float) -> bool:
        ok = math.isfinite(value)
        if ctx is None:
            return ok
        flag = torch.tensor([0.0 if ok else 1.0], device=dev)
        return float(ctx.all_reduce(flag, op="max")[0]) == 0.0

    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        net.train()
        if is_xsam:
            opt.new_epoch()
        lr_now = float(opt.param_groups[0]["lr"])
        tot_loss = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen = 0
        if ctx is None:
            batches = (
                (xb, yb, len(yb))
                for xb, yb in iterate_batches(
                    x_train, y_train, batch_size, shuffle=True, generator=shuffle
                )
            )
        else:
            batches = _rank_batches(x_train, y_train, batch_size, shuffle, ctx)
        bar = progress(
            batches,
            desc=f"{name} epoch {epoch}/{epochs}",
            total=steps_per_epoch,
            quiet=quiet,
            leave=True,
            unit="batch",
        )
        for step, (xb, yb, n_global) in enumerate(bar, start=1):
            opt.zero_grad(set_to_none=True)
            if ctx is not None:
                shard_weight = len(yb) * ctx.world_size / n_global
            with passes(not local_first):
                loss_t, logits = forward_loss(xb, yb)
                value = float(loss_t.detach())
                if not all_finite(value):
                    kept = _kept(last_path, epoch)
                    where = f" on rank {ctx.rank}" if ctx is not None else ""
                    raise NonFiniteLossError(
                        f"the training loss became {value}{where} at epoch {epoch}, step {step} "
                        f"({name}, lr {opt.param_groups[0]['lr']:.3g}): stopped; {kept}"
                    )
                (loss_t if local_first else loss_t * shard_weight).backward()
            if is_sa:

                def closure(
                    xb: torch.Tensor = xb, yb: torch.Tensor = yb, w: float = shard_weight
                ) -> torch.Tensor:
                    with passes(not local_all):
                        lo, _ = forward_loss(xb, yb)
                        (lo if local_all else lo * w).backward()
                    return lo

                if is_xsam:

                    def eval_loss(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> float:
                        lo = forward_loss(xb, yb, net)[0].detach()
                        if ctx is None:
                            return float(lo)
                        return float(ctx.weighted_mean(lo.double().reshape(1), len(yb))[0][0])

                    opt.step(closure, loss_fn=eval_loss)
                else:
                    opt.step(closure)
            else:
                opt.step()
            sched.step()
            n = len(yb)
            seen += n
            tot_loss += loss_t.detach().double() * n
            correct += (logits.detach().argmax(-1) == yb).sum()
            if (
                not quiet
                and hasattr(bar, "set_postfix")
                and (step % 10 == 0 or step == steps_per_epoch)
            ):
                bar.set_postfix(
                    loss=f"{float(tot_loss) / seen:.4f}", acc=f"{float(correct) / seen:.3f}"
                )
        if ctx is not None:  # whole-epoch numbers; rank 0's BatchNorm statistics everywhere
            sums = ctx.all_reduce(
                torch.stack(
                    [tot_loss, correct.double(), torch.tensor(float(seen), device=dev).double()]
                )
            )
            tot_loss, correct, seen = sums[0], sums[1], int(sums[2])
            for buf in net.buffers():
                ctx.broadcast_(buf)
        train_loss, train_acc = float(tot_loss) / max(1, seen), float(correct) / max(1, seen)
        test_loss, test_acc = _evaluate(
            net,
            loss_fn,
            splits.x_test,
            splits.y_test,
            batch_size=eval_batch_size,
            device=dev,
            bf16=bf16,
            ctx=ctx,
        )
        # the step losses are checked before each step, so the last step of an epoch can
        # still diverge: the weights and the epoch's evaluation must be finite before a
        # checkpoint keeps this epoch
        bad = _non_finite_weights(net)
        what = (
            f"the weights became non-finite ({bad})"
            if bad is not None
            else next(
                (
                    f"the {label} loss became {value}"
                    for label, value in (("train", train_loss), ("test", test_loss))
                    if value is not None and not math.isfinite(value)
                ),
                None,
            )
        )
        if what is not None:
            raise NonFiniteLossError(
                f"{what} at the end of epoch {epoch} ({name}, lr {lr_now:.3g}): the training "
                f"diverged; stopped; {_kept(last_path, epoch)}; lower --lr"
            )
        record: dict[str, Any] = {
            "epoch": epoch,
            "lr": lr_now,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "seconds": time.perf_counter() - t0,
        }
        if is_xsam:
            record["alpha"] = opt.alpha
        metrics.append(record)
        if not quiet and hasattr(bar, "set_postfix"):
            bar.set_postfix(
                loss=f"{train_loss:.4f}",
                acc=f"{train_acc:.3f}",
                test_acc=NO_TEST_DATA if test_acc is None else f"{test_acc:.3f}",
            )
            bar.close()
        # the epoch file first, then last.pt: an interruption between the two repeats the
        # epoch on resume (and rewrites the epoch file) instead of losing the epoch file
        path = epoch_file(epoch)
        if path is not None:
            save(path, with_resume=False)
        save(last_path, with_resume=True)
        _write_metrics(out, metrics)
        if callback is not None:
            callback(epoch, dict(record))

    save(final_path, with_resume=False)
    return TrainResult(
        out=out,
        optimizer=name,
        hparams=hp,
        epochs=epochs,
        metrics=metrics,
        seconds=time.perf_counter() - t_start,
        resumed_from=start_epoch if ck is not None else None,
        alpha_history=[dict(h) for h in opt.alpha_history] if is_xsam else [],
    )


def _kept(last_path: Path, epoch: int) -> str:
    return f"{last_path} keeps epoch {epoch - 1}" + (" (the initial weights)" if epoch == 1 else "")


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
