"""Sharpness of a minimum, measured the same way for every checkpoint.

Four measures behind one function, :func:`sharpness`, so that checkpoints trained
with SGD, SAM or XSAM are compared on the same data, model mode and radius:

* ``worst``: worst-case sharpness ``max_{||delta|| <= rho} L(theta + delta) - L(theta)``
  (Keskar et al. 2017, "On Large-Batch Training for Deep Learning: Generalization Gap
  and Sharp Minima"), in an l2 or l-infinity ball, plain or adaptive (Kwon et al. 2021,
  ASAM; Andriushchenko et al. 2023, "A Modern Look at the Relationship between
  Sharpness and Generalization"), solved by projected gradient ascent;
* ``average``: average-case sharpness ``E[L(theta + delta)] - L(theta)`` under random
  noise, by Monte Carlo with a standard error;
* ``lambda_max`` and ``trace``: the top Hessian eigenvalue and the Hessian trace
  (from :mod:`sharpscope.hessian`), with their second-order predictions of the two
  measures above (``rho^2 lambda_max / 2`` and ``rho^2 tr(H) / 2``).

The loss over several batches is the sample-weighted mean of the batch losses, as
in every sharpscope probe; the caller's model is left exactly as it was.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._func import functional_loss, params_dict, preserved, probe_mode, select_parameters
from .errors import DataError, NonFiniteLossError, SharpscopeError
from .optim.geometry import global_norm
from .utils import progress

__all__ = [
    "SHARPNESS_MEASURES",
    "NORMS",
    "SharpnessResult",
    "sharpness",
    "worst_case_sharpness",
    "average_case_sharpness",
    "hessian_sharpness",
    "probe_sharpness",
]

Batch = tuple[torch.Tensor, torch.Tensor]
NORMS = ("l2", "linf")


# ----------------------------------------------------------------------------- result
@dataclass
class SharpnessResult:
    """One sharpness number and how it was obtained.

    Attributes:
        measure: ``worst``, ``average``, ``lambda_max`` or ``trace``.
        value: the sharpness (a loss increase for ``worst``/``average``; the
            eigenvalue or trace for the Hessian measures).
        loss_at_theta: the loss at the unperturbed parameters.
        settings: every setting that defines the number (rho, norm, adaptive, mode,
            data size, steps...), so two results can be checked for comparability.
        iterations: loss-gradient evaluations (``worst``), loss evaluations
            (``average``) or Hessian-vector products (Hessian measures) used.
        stderr: Monte Carlo standard error (``average`` only).
        perturbed_loss: ``L(theta + delta*)`` (``worst``) or the mean perturbed loss (``average``).
        delta: the maximising perturbation by parameter name (``worst`` only).
        history: best loss increase after each ascent step (``worst``) or running
            mean (``average``).
        extra: measure-specific numbers (e.g. the second-order predictions).
    """

    measure: str
    value: float
    loss_at_theta: float
    settings: dict[str, Any]
    iterations: int = 0
    stderr: float | None = None
    perturbed_loss: float | None = None
    delta: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    history: list[float] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready numbers: ``sharpness``, ``loss``, ``stderr``, ``settings``..."""
        out: dict[str, Any] = {
            "measure": self.measure,
            "sharpness": self.value,
            "loss": self.loss_at_theta,
            "perturbed_loss": self.perturbed_loss,
            "stderr": self.stderr,
            "iterations": self.iterations,
            "settings": dict(self.settings),
        }
        out.update(self.extra)
        return out


# ----------------------------------------------------------------------------- objective
def _as_batches(batches: Iterable[Batch] | Batch) -> list[Batch]:
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        return [batches]
    data = list(batches)
    if not data:
        raise DataError("no data: the batch iterable is empty")
    return data


class _Objective:
    """``L(theta + delta)`` and its gradient over fixed batches, through ``functional_call``.

    The model's own parameters are never written; call inside ``probe_mode``.
    """

    def __init__(
        self, model: nn.Module, loss_fn: Callable, data: list[Batch], names: Sequence[str]
    ) -> None:
        self.model, self.loss_fn, self.data = model, loss_fn, data
        self.names = list(names)
        base = params_dict(model, self.names)
        self.theta = [base[n] for n in self.names]
        self.total = sum(len(y) for _, y in data)
        self.evals = 0

    def _params(self, delta: Sequence[torch.Tensor] | None) -> dict[str, torch.Tensor]:
        if delta is None:
            return dict(zip(self.names, self.theta, strict=True))
        return {n: t + d for n, t, d in zip(self.names, self.theta, delta, strict=True)}

    def _check(self, value: float, delta: Sequence[torch.Tensor] | None) -> float:
        if not math.isfinite(value):
            where = (
                "at theta"
                if delta is None
                else f"at a perturbation of norm {float(global_norm(delta)):.4g}"
            )
            raise NonFiniteLossError(
                f"the loss is {value} {where}; lower rho or check the checkpoint"
            )
        return value

    def loss(self, delta: Sequence[torch.Tensor] | None = None) -> float:
        """The mean loss at ``theta + delta`` (no gradient)."""
        self.evals += 1
        params = self._params(delta)
        with torch.no_grad():
            total = sum(
                float(functional_loss(self.model, self.loss_fn, params, x, y)) * len(y)
                for x, y in self.data
            )
        return self._check(total / self.total, delta)

    def loss_grad(
        self, delta: Sequence[torch.Tensor] | None = None
    ) -> tuple[float, list[torch.Tensor]]:
        """The mean loss at ``theta + delta`` and its gradient (with respect to ``delta``)."""
        self.evals += 1
        shift = [torch.zeros_like(t) for t in self.theta] if delta is None else list(delta)
        leaves = [d.detach().requires_grad_(True) for d in shift]
        grad = [torch.zeros_like(t) for t in self.theta]
        total = 0.0
        for x, y in self.data:
            with torch.enable_grad():
                params = {n: t + d for n, t, d in zip(self.names, self.theta, leaves, strict=True)}
                loss = functional_loss(self.model, self.loss_fn, params, x, y) * (
                    len(y) / self.total
                )
                g = torch.autograd.grad(loss, leaves, allow_unused=True)
            torch._foreach_add_(
                grad,
                [
                    gi if gi is not None else torch.zeros_like(t)
                    for gi, t in zip(g, self.theta, strict=True)
                ],
            )
            total += float(loss.detach())
        return self._check(total, delta), [gi.detach() for gi in grad]


def _check_settings(
    *,
    rho: float,
    norm: str,
    steps: int | None = None,
    restarts: int | None = None,
    samples: int | None = None,
    step_size: float | None = None,
) -> None:
    if not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho <= 0:
        raise SharpscopeError(f"rho must be a positive number, got {rho!r}")
    if norm not in NORMS:
        raise SharpscopeError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")
    if steps is not None and steps < 1:
        raise SharpscopeError(f"steps must be at least 1, got {steps}")
    if restarts is not None and restarts < 0:
        raise SharpscopeError(f"restarts must be 0 or more, got {restarts}")
    if samples is not None and samples < 1:
        raise SharpscopeError(f"samples must be at least 1, got {samples}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise SharpscopeError(f"step_size must be a positive number, got {step_size!r}")


def _names(model: nn.Module, params: str | Sequence[str] | None) -> list[str]:
    return (
        select_parameters(model, params)
        if (params is None or isinstance(params, str))
        else list(params)
    )


def _random_like(
    theta: Sequence[torch.Tensor], gen: torch.Generator, kind: str
) -> list[torch.Tensor]:
    """Seeded noise drawn on the CPU (same numbers on every device), moved to each tensor's device."""
    out = []
    for t in theta:
        if kind == "normal":
            r = torch.randn(t.shape, generator=gen, dtype=torch.float64)
        else:  # uniform on [-1, 1]
            r = torch.rand(t.shape, generator=gen, dtype=torch.float64) * 2 - 1
        out.append(r.to(device=t.device, dtype=t.dtype))
    return out


# ----------------------------------------------------------------------------- ball geometry
def _project(u: list[torch.Tensor], rho: float, norm: str) -> list[torch.Tensor]:
    """Project ``u`` onto the ``norm`` ball of radius ``rho`` (in place)."""
    if norm == "l2":
        n = float(global_norm(u))
        if n > rho:
            torch._foreach_mul_(u, rho / n)
    else:
        torch._foreach_clamp_min_(u, -rho)
        torch._foreach_clamp_max_(u, rho)
    return u


def _ascent_direction(g: list[torch.Tensor], norm: str) -> list[torch.Tensor] | None:
    """The steepest-ascent unit step for the ball's norm (``None`` when ``g`` vanishes)."""
    n = float(global_norm(g))
    if not math.isfinite(n) or n < 1e-30:
        return None
    if norm == "l2":
        return torch._foreach_div(g, n)
    return [gi.sign() for gi in g]


def _surface_point(direction: list[torch.Tensor], rho: float, norm: str) -> list[torch.Tensor]:
    """The point of the ball's boundary that ``direction`` points to."""
    if norm == "l2":
        n = float(global_norm(direction))
        return torch._foreach_mul(direction, rho / max(n, 1e-300))
    return [rho * d.sign() for d in direction]


@dataclass
class _Ascent:
    delta: list[torch.Tensor]
    loss: float
    iterations: int
    history: list[float]
    start_losses: list[float]


def _pga(
    obj: _Objective,
    *,
    loss0: float,
    grad0: list[torch.Tensor],
    rho: float,
    norm: str,
    scale: list[torch.Tensor] | None,
    steps: int,
    restarts: int,
    step_size: float,
    seed: int,
    starts: Sequence[Sequence[torch.Tensor]] = (),
    quiet: bool = True,
    desc: str = "worst-case sharpness",
) -> _Ascent:
    """Projected gradient ascent of ``L(theta + scale * u)`` over ``||u|| <= rho``.

    Starts: ``starts`` (given perturbations ``delta``, mapped to ``u`` and projected),
    one along the gradient at theta (a steepest-ascent step to the boundary), then
    ``restarts`` seeded random points. Each step moves ``u`` by ``step * rho`` along the
    normalised gradient (l2) or its sign (l-infinity) and projects back onto the
    ball; the step halves whenever it fails to raise the loss, and a start ends after
    ``steps`` steps or when its step falls below ``step_size / 1000``. The best point
    seen over all starts is returned.
    """
    gen = torch.Generator().manual_seed(int(seed))
    theta = obj.theta

    def to_delta(u: list[torch.Tensor]) -> list[torch.Tensor]:
        return u if scale is None else torch._foreach_mul(u, scale)

    def grad_u(g: list[torch.Tensor]) -> list[torch.Tensor]:
        return g if scale is None else torch._foreach_mul(g, scale)

    inits: list[list[torch.Tensor]] = []
    for d in starts:
        if scale is None:
            u = [t.detach().clone() for t in d]
        else:  # u = delta / scale where the scale is non-zero
            u = [
                torch.where(s > 0, di / s.clamp_min(1e-30), torch.zeros_like(di))
                for di, s in zip(d, scale, strict=True)
            ]
        inits.append(_project(u, rho, norm))
    g_dir = _ascent_direction(grad_u(grad0), norm)
    if g_dir is not None:
        inits.append(_surface_point(g_dir, rho, norm))
    n_random = restarts + (1 if g_dir is None else 0)  # a vanishing gradient: one more random start
    for _ in range(n_random):
        if norm == "l2":
            inits.append(_surface_point(_random_like(theta, gen, "normal"), rho, norm))
        else:
            inits.append(torch._foreach_mul(_random_like(theta, gen, "uniform"), rho))

    best_loss, best_u = loss0, [torch.zeros_like(t) for t in theta]
    history: list[float] = []
    start_losses: list[float] = []
    iterations = 0
    bar = progress(range(len(inits) * steps), desc=desc, quiet=quiet)
    ticks = iter(bar)
    for u in inits:
        step = step_size
        prev = -math.inf
        start_best = -math.inf
        done = 0
        for _ in range(steps):
            loss, g = obj.loss_grad(to_delta(u))
            iterations += 1
            done += 1
            next(ticks, None)
            if loss > best_loss:
                best_loss, best_u = loss, [t.clone() for t in u]
            start_best = max(start_best, loss)
            history.append(best_loss - loss0)
            if loss <= prev:
                step *= 0.5
            prev = loss
            if step < step_size * 1e-3:
                break
            d = _ascent_direction(grad_u(g), norm)
            if d is None:
                break
            torch._foreach_add_(u, d, alpha=step * rho)
            _project(u, rho, norm)
        loss = obj.loss(to_delta(u))  # the last iterate
        iterations += 1
        if loss > best_loss:
            best_loss, best_u = loss, [t.clone() for t in u]
        start_losses.append(max(start_best, loss))
        for _ in range(steps - done):
            next(ticks, None)
    if hasattr(bar, "close"):
        bar.close()
    return _Ascent(
        delta=[t.detach() for t in to_delta(best_u)],
        loss=best_loss,
        iterations=iterations,
        history=history,
        start_losses=start_losses,
    )


# ----------------------------------------------------------------------------- measures
def _base_settings(
    data: list[Batch],
    names: Sequence[str],
    *,
    measure: str,
    rho: float,
    norm: str,
    adaptive: bool,
    mode: str,
    seed: int,
) -> dict[str, Any]:
    return {
        "measure": measure,
        "rho": float(rho),
        "norm": norm,
        "adaptive": bool(adaptive),
        "mode": mode,
        "seed": int(seed),
        "data_samples": sum(len(y) for _, y in data),
        "batches": len(data),
        "parameters": len(names),
    }


def worst_case_sharpness(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch] | Batch,
    *,
    rho: float,
    norm: str = "l2",
    adaptive: bool = False,
    mode: str = "eval",
    steps: int = 20,
    restarts: int = 2,
    step_size: float = 1.0,
    seed: int = 0,
    params: str | Sequence[str] | None = None,
    starts: Sequence[Sequence[torch.Tensor]] = (),
    quiet: bool = True,
) -> SharpnessResult:
    """Worst-case sharpness ``max_{||delta|| <= rho} L(theta + delta) - L(theta)``.

    The maximisation of Keskar et al. (2017), "On Large-Batch Training for Deep
    Learning: Generalization Gap and Sharp Minima", solved by projected gradient
    ascent as in Andriushchenko et al. (2023), "A Modern Look at the Relationship
    between Sharpness and Generalization": normalised-gradient steps (l2) or sign
    steps (l-infinity), projection onto the ball, a step that halves when it fails
    to raise the loss, one start along the gradient and ``restarts`` seeded random
    starts. The best loss found is a lower bound of the true maximum.

    .. math::
        S_\\rho = \\max_{\\|\\delta\\|_p \\le \\rho} L(\\theta + \\delta) - L(\\theta),
        \\qquad \\text{adaptive: } \\delta = |\\theta| \\odot u,\\ \\|u\\|_p \\le \\rho

    The adaptive ball (Kwon et al. 2021, ASAM) scales the perturbation element-wise
    by ``|theta|``, which makes the measure invariant to layer-wise rescalings.

    Args:
        model: any module; left unchanged.
        loss_fn: mean loss ``loss_fn(output, target)``.
        batches: an iterable of ``(x, y)`` (iterated once per evaluation) or one batch.
        rho: radius of the ball (> 0).
        norm: ``"l2"`` or ``"linf"``.
        adaptive: scale the perturbation by ``|theta|``.
        mode: ``"eval"`` or ``"train"`` (see :func:`sharpscope._func.probe_mode`).
        steps: ascent steps per start.
        restarts: random starts besides the gradient start.
        step_size: initial step as a fraction of ``rho``.
        seed: seeds the random starts.
        params: parameter-name pattern (or list of names) to perturb; all by default.
        starts: extra starting perturbations (lists of tensors in parameter order).
        quiet: no progress bar.

    Returns:
        A :class:`SharpnessResult` with ``value``, ``delta`` (the maximiser) and
        ``iterations`` (gradient evaluations used).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Linear(3, 1).double()
        >>> x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
        >>> r = worst_case_sharpness(net, nn.functional.mse_loss, (x, y), rho=0.1)
        >>> r.value > 0
        True
    """
    _check_settings(rho=rho, norm=norm, steps=steps, restarts=restarts, step_size=step_size)
    data = _as_batches(batches)
    names = _names(model, params)
    with preserved(model), probe_mode(model, mode):
        obj = _Objective(model, loss_fn, data, names)
        loss0, grad0 = obj.loss_grad(None)
        scale = [t.abs() for t in obj.theta] if adaptive else None
        asc = _pga(
            obj,
            loss0=loss0,
            grad0=grad0,
            rho=rho,
            norm=norm,
            scale=scale,
            steps=steps,
            restarts=restarts,
            step_size=step_size,
            seed=seed,
            starts=starts,
            quiet=quiet,
        )
    settings = _base_settings(
        data, names, measure="worst", rho=rho, norm=norm, adaptive=adaptive, mode=mode, seed=seed
    )
    settings.update(steps=steps, restarts=restarts, step_size=step_size)
    return SharpnessResult(
        measure="worst",
        value=asc.loss - loss0,
        loss_at_theta=loss0,
        settings=settings,
        iterations=asc.iterations + 1,
        perturbed_loss=asc.loss,
        delta=dict(zip(names, asc.delta, strict=True)),
        history=asc.history,
        extra={
            "delta_norm": float(global_norm(asc.delta)),
            "start_values": [v - loss0 for v in asc.start_losses],
        },
    )


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


def hessian_sharpness(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch] | Batch,
    *,
    measure: str = "lambda_max",
    rho: float = 1.0,
    mode: str = "eval",
    samples: int = 64,
    tol: float = 1e-4,
    seed: int = 0,
    params: str | Sequence[str] | None = None,
    quiet: bool = True,
) -> SharpnessResult:
    """The top Hessian eigenvalue or the Hessian trace, as a sharpness measure.

    Computed by :mod:`sharpscope.hessian`: Lanczos (:func:`~sharpscope.hessian.lanczos.hessian_eigenvalues`)
    for ``lambda_max``, Hutchinson (:func:`~sharpscope.hessian.trace.hessian_trace`) for
    ``trace``, on the same data and model mode as the other measures. ``extra`` holds
    the second-order predictions of the worst-case and average-case sharpness in the l2
    ball of radius ``rho``: ``rho^2 lambda_max / 2`` (exact at the minimum of a
    quadratic) and ``rho^2 tr(H) / 2`` (exact for any quadratic).

    Args:
        measure: ``"lambda_max"`` or ``"trace"``.
        samples: Hutchinson probe vectors (``trace``; at least 2).
        tol: Lanczos relative residual tolerance (``lambda_max``).
        (the other arguments as in :func:`worst_case_sharpness`)
    """
    from .hessian.lanczos import hessian_eigenvalues
    from .hessian.trace import hessian_trace

    if measure not in ("lambda_max", "trace"):
        raise SharpscopeError(f"unknown Hessian measure {measure!r}: choose lambda_max or trace")
    _check_settings(rho=rho, norm="l2", samples=samples)
    if measure == "trace" and samples < 2:
        raise SharpscopeError(f"the trace needs at least 2 samples (probe vectors), got {samples}")
    data = _as_batches(batches)
    names = _names(model, params)
    with preserved(model), probe_mode(model, mode):
        loss0 = _Objective(model, loss_fn, data, names).loss(None)
    settings = _base_settings(
        data, names, measure=measure, rho=rho, norm="l2", adaptive=False, mode=mode, seed=seed
    )
    if measure == "lambda_max":
        eig = hessian_eigenvalues(
            model,
            loss_fn,
            data,
            k=1,
            which="largest",
            params=names,
            mode=mode,
            tol=tol,
            seed=seed,
            quiet=quiet,
        )
        value = float(eig.eigenvalues[0])
        settings.update(tol=tol)
        return SharpnessResult(
            measure=measure,
            value=value,
            loss_at_theta=loss0,
            settings=settings,
            iterations=eig.hvp_count,
            extra={
                "second_order_worst": rho**2 * value / 2,
                "converged": bool(eig.converged),
                "residual": float(eig.residuals[0]),
                "backend": eig.backend,
            },
        )
    tr = hessian_trace(
        model, loss_fn, data, probes=samples, params=names, mode=mode, seed=seed, quiet=quiet
    )
    settings.update(samples=samples, estimator="hutchinson")
    return SharpnessResult(
        measure=measure,
        value=float(tr.trace),
        loss_at_theta=loss0,
        settings=settings,
        iterations=tr.hvp_count,
        stderr=float(tr.stderr),
        extra={"second_order_average": rho**2 * float(tr.trace) / 2, "backend": tr.backend},
    )


# ----------------------------------------------------------------------------- registry
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


# ----------------------------------------------------------------------------- checkpoints
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
    device: str = "auto",
    quiet: bool = True,
) -> dict[str, Any]:
    """:func:`sharpness` of a checkpoint on a seeded subset of its own data, as plain JSON data.

    ``samples`` (``None`` or 0: the whole split) and ``split`` choose the data;
    ``draws`` is the number of noise draws (``average``) or Hutchinson probes
    (``trace``). The result holds the value under ``sharpness``, the loss at theta
    under ``loss``, the settings, and (``average``, ``trace``) the ``stderr``.
    """
    from .problem import load_problem

    if measure not in SHARPNESS_MEASURES:
        raise SharpscopeError(
            f"unknown measure {measure!r}: choose one of {', '.join(SHARPNESS_MEASURES)}"
        )
    _check_settings(rho=rho, norm=norm, steps=steps, restarts=restarts, samples=draws)
    if samples is not None and samples < 0:
        raise SharpscopeError(f"samples must be 0 (all) or more, got {samples}")
    if batch_size < 1:
        raise SharpscopeError(f"batch size must be at least 1, got {batch_size}")
    problem = load_problem(path, model=model, model_kwargs=model_kwargs, data=data, device=device)
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
