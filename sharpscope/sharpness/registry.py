"""The measures by name (:data:`SHARPNESS_MEASURES`) behind one function, :func:`sharpness`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import nn

from ..errors import SharpscopeError
from .average import average_case_sharpness
from .hessian_based import hessian_sharpness
from .objective import Batch, _check_settings
from .result import SharpnessResult
from .worst import worst_case_sharpness

__all__ = ["SHARPNESS_MEASURES", "sharpness"]


def _measure(fn: Callable[..., SharpnessResult], **fixed: Any) -> Callable[..., SharpnessResult]:
    """Adapt ``fn`` to the registry's common signature: pass on the settings it accepts."""
    accepted = set(inspect.signature(fn).parameters)

    def run(model, loss_fn, data, **settings: Any) -> SharpnessResult:
        if fixed.get("measure") in ("lambda_max", "trace") and (
            settings.get("norm", "l2") != "l2" or settings.get("adaptive")
        ):
            raise SharpscopeError(
                f"measure {fixed['measure']!r} is defined for the plain l2 geometry only "
                f"(got norm={settings.get('norm')!r}, adaptive={settings.get('adaptive')})"
            )
        kept = {k: v for k, v in settings.items() if k in accepted}
        return fn(model, loss_fn, data, **fixed, **kept)

    run.__name__ = f"_{fixed.get('measure', fn.__name__)}"
    return run


SHARPNESS_MEASURES: dict[str, Callable[..., SharpnessResult]] = {
    "worst": _measure(worst_case_sharpness),
    "average": _measure(average_case_sharpness),
    "lambda_max": _measure(hessian_sharpness, measure="lambda_max"),
    "trace": _measure(hessian_sharpness, measure="trace"),
}
"""Measure name -> function ``(model, loss_fn, batches, *, rho, norm, adaptive, mode, steps,
restarts, samples, seed, params, quiet) -> SharpnessResult``."""


def sharpness(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch] | Batch,
    *,
    measure: str = "worst",
    rho: float,
    norm: str = "l2",
    adaptive: bool = False,
    mode: str = "eval",
    steps: int = 20,
    restarts: int = 2,
    samples: int = 64,
    seed: int = 0,
    params: str | Sequence[str] | None = None,
    quiet: bool = True,
) -> SharpnessResult:
    """One sharpness measure of ``model`` at its current parameters (see the module doc).

    Args:
        model: any module; left unchanged (modes, parameters, buffers, ``.grad``).
        loss_fn: mean loss ``loss_fn(output, target)``.
        batches: an iterable of ``(x, y)`` batches, or one batch.
        measure: a key of :data:`SHARPNESS_MEASURES`: ``worst``, ``average``,
            ``lambda_max`` or ``trace``.
        rho: the radius (``worst``), noise scale (``average``) or the radius of the
            second-order predictions (Hessian measures).
        norm: ``"l2"`` or ``"linf"`` (Hessian measures: ``l2`` only).
        adaptive: perturb ``|theta| * u`` instead of ``u`` (not for Hessian measures).
        mode: ``"eval"`` or ``"train"``.
        steps: ascent steps per start (``worst``).
        restarts: random starts besides the gradient start (``worst``).
        samples: noise draws (``average``) or Hutchinson probes (``trace``).
        seed: seeds every random choice.
        params: which parameters to perturb (regex or names); all by default.
        quiet: no progress bar.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Linear(4, 1).double()
        >>> batch = (torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64))
        >>> worst = sharpness(net, nn.functional.mse_loss, batch, measure="worst", rho=0.05)
        >>> avg = sharpness(net, nn.functional.mse_loss, batch, measure="average", rho=0.05)
        >>> worst.value >= avg.value
        True
    """
    if measure not in SHARPNESS_MEASURES:
        raise SharpscopeError(
            f"unknown measure {measure!r}: choose one of {', '.join(SHARPNESS_MEASURES)}"
        )
    _check_settings(rho=rho, norm=norm, steps=steps, restarts=restarts, samples=samples)
    return SHARPNESS_MEASURES[measure](
        model,
        loss_fn,
        batches,
        rho=rho,
        norm=norm,
        adaptive=adaptive,
        mode=mode,
        steps=steps,
        restarts=restarts,
        samples=samples,
        seed=seed,
        params=params,
        quiet=quiet,
    )
