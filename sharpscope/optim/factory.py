"""``make_optimizer``: one entry point for SGD, SAM, ASAM and XSAM (used by ``sharpscope train``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import SharpscopeError
from .base import check_bn_policy, check_number, check_rho
from .sam import ASAM, ASAM_SCALED, SAM
from .xsam import XSAM

__all__ = ["OPTIMIZERS", "BASES", "make_optimizer", "optimizer_hparams"]

OPTIMIZERS = ("sgd", "sam", "asam", "xsam")
BASES = ("sgd", "adamw")


def optimizer_hparams(
    name: str,
    *,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
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
    betas: tuple[float, float] = (0.9, 0.999),
    scaled: str = "weights",
) -> dict[str, Any]:
    """Validate and normalise the hyper-parameters of ``name``; only those that apply are kept.

    ``name="sgd"`` means "no sharpness-aware wrapper": the base optimizer alone (SGD,
    or AdamW with ``base="adamw"``). The result is plain data, recorded in checkpoints.
    """
    name = str(name).lower()
    if name not in OPTIMIZERS:
        raise SharpscopeError(f"unknown optimizer {name!r}: use {', '.join(OPTIMIZERS)}")
    if base not in BASES:
        raise SharpscopeError(f"unknown base optimizer {base!r}: use {', '.join(BASES)}")
    hp: dict[str, Any] = {
        "base": base,
        "lr": float(check_number("lr", lr, low=0.0, strict=True)),
        "weight_decay": float(check_number("weight_decay", weight_decay, low=0.0)),
    }
    if base == "sgd":
        hp["momentum"] = float(check_number("momentum", momentum, low=0.0))
        hp["nesterov"] = bool(nesterov)
        if nesterov and hp["momentum"] == 0:
            raise SharpscopeError("nesterov needs momentum > 0, got momentum=0")
    else:
        b1, b2 = (float(check_number("betas", b, low=0.0)) for b in betas)
        hp["betas"] = [b1, b2]
    if name == "sgd":
        return hp
    hp["bn_policy"] = check_bn_policy(bn_policy)
    hp["rho"] = check_rho(name, rho)
    if name == "asam":
        hp["eta"] = float(check_number("eta", eta, low=0.0))
        if scaled not in ASAM_SCALED:
            raise SharpscopeError(f"unknown ASAM scaled={scaled!r}: use 'weights' or 'all'")
        hp["scaled"] = scaled
    if name == "xsam":
        hp["steps"] = int(check_number("steps", steps, low=1, integer=True))
        hp["alpha"] = None if alpha is None else float(check_number("alpha", alpha))
        hp["rho_max"] = float(
            2.0 * hp["rho"]
            if rho_max is None
            else check_number("rho_max", rho_max, low=0.0, strict=True)
        )
        hp["alpha_max"] = float(check_number("alpha_max", alpha_max, low=0.0))
        hp["alpha_step"] = float(check_number("alpha_step", alpha_step, low=0.0, strict=True))
        if search_every is not None:
            check_number("search_every", search_every, low=1, integer=True)
        hp["search_every"] = search_every
    return hp


def _base_kwargs(hp: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {"lr": hp["lr"], "weight_decay": hp["weight_decay"]}
    if hp["base"] == "sgd":
        kw.update(momentum=hp["momentum"], nesterov=hp["nesterov"])
    else:
        kw["betas"] = tuple(hp["betas"])
    return kw


def make_optimizer(
    name: str, params_or_model: nn.Module | Iterable[Any], **hparams: Any
) -> torch.optim.Optimizer:
    """Build ``"sgd" | "sam" | "asam" | "xsam"`` (see :func:`optimizer_hparams` for the keywords).

    Pass the model itself so the sharpness-aware optimizers can apply ``bn_policy`` to
    its BatchNorm layers.

    Example:
        >>> model = torch.nn.Linear(4, 2)
        >>> make_optimizer("xsam", model, lr=0.1, rho=0.1, steps=2)
        XSAM(base=sgd, rho=0.1, bn_policy=clean, lr=0.1, weight_decay=0.0, momentum=0.9, nesterov=False, steps=2, alpha=None, rho_max=0.2, alpha_max=2.0, alpha_step=0.1, search_every=None)
    """
    hp = optimizer_hparams(name, **hparams)
    name = name.lower()
    kw = _base_kwargs(hp)
    if name == "sgd":
        params = (
            params_or_model.parameters()
            if isinstance(params_or_model, nn.Module)
            else params_or_model
        )
        cls = torch.optim.SGD if hp["base"] == "sgd" else torch.optim.AdamW
        return cls(params, **kw)
    common = {"rho": hp["rho"], "bn_policy": hp["bn_policy"], **kw}
    if name == "sam":
        return SAM(params_or_model, hp["base"], **common)
    if name == "asam":
        return ASAM(params_or_model, hp["base"], eta=hp["eta"], scaled=hp["scaled"], **common)
    return XSAM(
        params_or_model,
        hp["base"],
        steps=hp["steps"],
        alpha=hp["alpha"],
        rho_max=hp["rho_max"],
        alpha_max=hp["alpha_max"],
        alpha_step=hp["alpha_step"],
        search_every=hp["search_every"],
        **common,
    )
