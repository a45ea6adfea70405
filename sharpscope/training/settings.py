"""The validated settings of a training run (:class:`TrainSettings`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ..errors import SharpscopeError
from ..optim.base import check_number
from ..optim.factory import optimizer_hparams
from ..problem.data import DataSpec
from ..problem.models import ModelSpec
from .schedule import SCHEDULES

__all__ = ["PERTURBATIONS", "TrainSettings"]

PERTURBATIONS = ("per-rank", "global")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a run's weights, validated on construction.

    Args:
        optimizer: ``sgd`` (the base optimizer alone), ``sam`` (Foret et al. 2021),
            ``asam`` (Kwon et al. 2021) or ``xsam`` (Chen & Zhou 2026).
        lr, momentum, weight_decay, nesterov, base: the base optimizer (``base``: sgd or adamw).
        rho, eta, steps, alpha, rho_max, alpha_max, alpha_step, search_every, bn_policy:
            see :func:`sharpscope.optim.factory.optimizer_hparams`.
        loss: a registered loss name, or an import path ``"pkg.mod:fn"`` the caller gives
            (``fn(output, batch) -> mean loss``; recorded by name, and a probe imports it
            only when given ``--loss`` again).
        epochs, batch_size, eval_batch_size: the run's length and batch sizes.
        schedule: ``constant``, ``cosine`` or ``step`` (per optimizer step), after
            ``warmup_epochs`` of linear warm-up; ``step`` multiplies by ``gamma`` at the
            epochs in ``milestones`` (default: half and three quarters of ``epochs``).
        seed: seeds the initial weights, the shuffling and every RNG.
        bf16: bfloat16 autocast for the passes.
        save_every: write ``epoch_XXX.pt`` every this many epochs (0: only ``epoch_000.pt``).
        perturbation: distributed runs only: ``per-rank`` or ``global`` ascent.
        samples: a seeded subset of the training samples (``None`` or 0: all).
        model, data, world_size: filled in by :func:`~sharpscope.training.train` once the
            model spec and the data are known (``world_size`` only for distributed runs).

    ``hparams`` (derived) holds the optimizer's normalised hyper-parameters and
    :meth:`to_dict` the settings recorded in ``last.pt``, which a resume must match.
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    base: str = "sgd"
    rho: float = 0.05
    eta: float = 0.01
    steps: int = 1
    alpha: float | None = None
    rho_max: float | None = None
    alpha_max: float = 2.0
    alpha_step: float = 0.1
    search_every: int | None = None
    bn_policy: str = "clean"
    loss: str = "cross_entropy"
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1024
    schedule: str = "cosine"
    warmup_epochs: int = 0
    milestones: tuple[int, ...] | list[int] | None = None
    gamma: float = 0.1
    seed: int = 0
    bf16: bool = False
    save_every: int = 1
    perturbation: str = "per-rank"
    samples: int | None = None
    model: ModelSpec | None = None
    data: DataSpec | None = None
    world_size: int | None = None
    hparams: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = str(self.optimizer).lower()
        hp = optimizer_hparams(
            name,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            base=self.base,
            rho=self.rho,
            eta=self.eta,
            steps=self.steps,
            alpha=self.alpha,
            rho_max=self.rho_max,
            alpha_max=self.alpha_max,
            alpha_step=self.alpha_step,
            search_every=self.search_every,
            bn_policy=self.bn_policy,
        )
        check_number("epochs", self.epochs, low=1, integer=True)
        check_number("batch size", self.batch_size, low=1, integer=True)
        check_number("eval batch size", self.eval_batch_size, low=1, integer=True)
        check_number("save_every", self.save_every, low=0, integer=True)
        check_number("warmup_epochs", self.warmup_epochs, low=0, integer=True)
        check_number("seed", self.seed, integer=True)
        check_number("gamma", self.gamma, low=0.0, strict=True)
        if self.schedule not in SCHEDULES:
            raise SharpscopeError(f"unknown schedule {self.schedule!r}: use {', '.join(SCHEDULES)}")
        if self.warmup_epochs >= self.epochs:
            raise SharpscopeError(
                f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs})"
            )
        milestones = self.milestones
        if milestones is None:
            e = self.epochs
            milestones = [e // 2, (3 * e) // 4] if self.schedule == "step" else []
        milestones = [int(check_number("milestone", m, low=1, integer=True)) for m in milestones]
        if self.perturbation not in PERTURBATIONS:
            raise SharpscopeError(
                f"unknown perturbation {self.perturbation!r}: use per-rank (each rank ascends "
                "on its own shard) or global (all-reduced gradient)"
            )
        samples = self.samples
        if samples is not None:
            check_number("samples", samples, low=0, integer=True)
            samples = samples or None  # 0: all samples, as in the probes
        object.__setattr__(self, "optimizer", name)
        object.__setattr__(self, "hparams", hp)
        object.__setattr__(self, "milestones", tuple(milestones))
        object.__setattr__(self, "samples", samples)

    def to_dict(self) -> dict[str, Any]:
        """The settings recorded in ``last.pt`` (``resume`` state) since 0.1: a resume compares
        them with the saved ones, so the keys and values must not change."""
        if self.model is None or self.data is None:
            raise SharpscopeError("TrainSettings.to_dict needs the model spec and the data spec")
        d: dict[str, Any] = {
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "loss": self.loss,
            "optimizer": self.optimizer,
            "hparams": copy.deepcopy(self.hparams),
            "batch_size": self.batch_size,
            "schedule": self.schedule,
            "warmup_epochs": self.warmup_epochs,
            "milestones": list(self.milestones or ()),
            "gamma": self.gamma,
            "seed": self.seed,
            "bf16": self.bf16,
        }
        if self.world_size is not None:  # the sharding depends on the world size
            d.update(world_size=self.world_size, perturbation=self.perturbation)
        return d

    def train_record(self) -> dict[str, Any]:
        """The ``train`` entry of every checkpoint's ``extra``: the settings without the model,
        data and optimizer hyper-parameters (recorded elsewhere), plus epochs and save_every."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("model", "data", "hparams")}
        return d | {"epochs": self.epochs, "save_every": self.save_every}
