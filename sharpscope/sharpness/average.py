"""Average-case sharpness ``E[L(theta + delta)] - L(theta)`` under random noise, by Monte Carlo."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from ..runtime.functional import preserved, probe_mode
from ..runtime.progress import progress
from .objective import (
    Batch,
    _as_batches,
    _base_settings,
    _check_settings,
    _names,
    _Objective,
    _random_like,
)
from .result import SharpnessResult

__all__ = ["average_case_sharpness"]


def average_case_sharpness(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch] | Batch,
    *,
    rho: float,
    norm: str = "l2",
    adaptive: bool = False,
    mode: str = "eval",
    samples: int = 64,
    antithetic: bool = True,
    seed: int = 0,
    params: str | Sequence[str] | None = None,
    quiet: bool = True,
) -> SharpnessResult:
    """Average-case sharpness ``E[L(theta + delta)] - L(theta)`` by Monte Carlo.

    ``delta ~ N(0, rho^2 I)`` for ``norm="l2"`` (the average-case sharpness of
    Andriushchenko et al. 2023, "A Modern Look at the Relationship between Sharpness
    and Generalization"), uniform on the cube ``[-rho, rho]^n`` for ``norm="linf"``;
    ``adaptive`` multiplies the noise element-wise by ``|theta|``. ``rho`` is a per-weight
    scale, so the noise norm is about ``rho sqrt(n)`` for ``n`` weights (reported as
    ``noise_norm``): compare average-case values across checkpoints at the same ``rho``,
    not with the worst case at the same ``rho``. For a quadratic
    loss the expectation is exactly ``rho^2 tr(H) / 2`` (Gaussian) or
    ``rho^2 tr(H) / 6`` (uniform); in general that is its second-order approximation.

    With ``antithetic`` each draw evaluates ``L(theta + delta)`` and ``L(theta - delta)``
    and averages them, which cancels the first-order term exactly (two loss
    evaluations per draw). The standard error is that of the mean over draws.

    Args:
        samples: number of noise draws (>= 1; the standard error needs 2).
        antithetic: pair each draw with its negative.
        (the other arguments as in :func:`worst_case_sharpness`)

    Returns:
        A :class:`SharpnessResult` with ``value`` and ``stderr``.
    """
    _check_settings(rho=rho, norm=norm, samples=samples)
    data = _as_batches(batches)
    names = _names(model, params)
    gen = torch.Generator().manual_seed(int(seed))
    values: list[float] = []
    history: list[float] = []
    with preserved(model), probe_mode(model, mode):
        obj = _Objective(model, loss_fn, data, names)
        loss0 = obj.loss(None)
        scale = [t.abs() for t in obj.theta] if adaptive else None
        for _ in progress(range(samples), desc="average-case sharpness", quiet=quiet):
            if norm == "l2":
                d = torch._foreach_mul(_random_like(obj.theta, gen, "normal"), rho)
            else:
                d = torch._foreach_mul(_random_like(obj.theta, gen, "uniform"), rho)
            if scale is not None:
                torch._foreach_mul_(d, scale)
            lp = obj.loss(d)
            if antithetic:
                lp = 0.5 * (lp + obj.loss(torch._foreach_neg(d)))
            values.append(lp - loss0)
            history.append(sum(values) / len(values))
    mean = sum(values) / len(values)
    stderr = None
    if len(values) > 1:
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        stderr = math.sqrt(var / len(values))
    settings = _base_settings(
        data, names, measure="average", rho=rho, norm=norm, adaptive=adaptive, mode=mode, seed=seed
    )
    settings.update(
        samples=samples, antithetic=antithetic, noise="gaussian" if norm == "l2" else "uniform"
    )
    dim = sum(t.numel() for t in obj.theta)
    # the noise is per coordinate: its expected l2 norm is about rho sqrt(n) (Gaussian) or rho sqrt(n/3)
    noise_norm = rho * math.sqrt(dim if norm == "l2" else dim / 3)
    return SharpnessResult(
        measure="average",
        value=mean,
        loss_at_theta=loss0,
        settings=settings,
        iterations=obj.evals,
        stderr=stderr,
        perturbed_loss=loss0 + mean,
        history=history,
        extra={"noise_norm": noise_norm if not adaptive else None},
    )
