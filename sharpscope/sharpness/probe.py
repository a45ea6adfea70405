"""Sharpness of a checkpoint on a seeded subset of its own data: :func:`probe_sharpness`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SharpscopeError
from .objective import _check_settings
from .registry import SHARPNESS_MEASURES, sharpness

__all__ = ["probe_sharpness"]


def probe_sharpness(
    path: str | Path,
    *,
    measure: str = "worst",
    rho: float,
    norm: str = "l2",
    adaptive: bool = False,
    mode: str = "eval",
    steps: int = 20,
    restarts: int = 2,
    draws: int = 64,
    samples: int | None = 2048,
    batch_size: int = 512,
    split: str = "train",
    params: str | None = None,
    seed: int = 0,
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: str | None = None,
    samples_notice: bool = False,
    device: str = "auto",
    quiet: bool = True,
) -> dict[str, Any]:
    """:func:`sharpness` of a checkpoint on a seeded subset of its own data, as plain JSON data.

    ``samples`` (``None`` or 0: the whole split) and ``split`` choose the data;
    ``draws`` is the number of noise draws (``average``) or Hutchinson probes
    (``trace``). The result holds the value under ``sharpness``, the loss at theta
    under ``loss``, the settings, and (``average``, ``trace``) the ``stderr``.
    """
    from ..problem import load_problem

    if measure not in SHARPNESS_MEASURES:
        raise SharpscopeError(
            f"unknown measure {measure!r}: choose one of {', '.join(SHARPNESS_MEASURES)}"
        )
    _check_settings(rho=rho, norm=norm, steps=steps, restarts=restarts, samples=draws)
    if samples is not None and samples < 0:
        raise SharpscopeError(f"samples must be 0 (all) or more, got {samples}")
    if batch_size < 1:
        raise SharpscopeError(f"batch size must be at least 1, got {batch_size}")
    problem = load_problem(
        path, model=model, model_kwargs=model_kwargs, data=data, loss=loss,
        normalize=normalize, samples_notice=samples_notice, device=device,
    )  # fmt: skip
    batches = problem.batches(split, batch_size, samples=samples or None, seed=seed)
    res = sharpness(
        problem.model,
        problem.loss_fn,
        batches,
        measure=measure,
        rho=rho,
        norm=norm,
        adaptive=adaptive,
        mode=mode,
        steps=steps,
        restarts=restarts,
        samples=draws,
        seed=seed,
        params=params,
        quiet=quiet,
    )
    out = res.to_dict()
    out["settings"].update(split=split, batch_size=batch_size, params=params)
    out["checkpoint"] = str(path)
    out["problem"] = problem.describe()
    return out
