"""Worst-case sharpness ``max_{||delta|| <= rho} L(theta + delta) - L(theta)``.

The measure of Keskar et al. (2017), "On Large-Batch Training for Deep Learning:
Generalization Gap and Sharp Minima", whose inner maximisation is SAM's ascent step
(Foret et al. 2021, "Sharpness-Aware Minimization for Efficiently Improving
Generalization"), solved by projected gradient ascent (PGA) as in Andriushchenko et
al. (2023), "A Modern Look at the Relationship between Sharpness and Generalization".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..optim.geometry import global_norm
from ..runtime.functional import preserved, probe_mode
from ..runtime.progress import progress
from .ball import _ascent_direction, _project, _surface_point
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

__all__ = ["worst_case_sharpness"]

_RISING = 1e-3  # a last step that adds more than this share of the rise: still climbing


@dataclass
class _Ascent:
    delta: list[torch.Tensor]
    loss: float
    iterations: int
    history: list[float]
    start_losses: list[float]
    still_rising: list[bool]
    radius: float  # the ball's norm of the best u (== rho: on the boundary)


def _start_points(
    theta: Sequence[torch.Tensor],
    grad_u0: list[torch.Tensor],
    *,
    rho: float,
    norm: str,
    scale: list[torch.Tensor] | None,
    restarts: int,
    gen: torch.Generator,
    starts: Sequence[Sequence[torch.Tensor]],
) -> list[list[torch.Tensor]]:
    """The given starts (as ``u``, projected), the gradient's boundary point, random points."""
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
    g_dir = _ascent_direction(grad_u0, norm)
    if g_dir is not None:
        inits.append(_surface_point(g_dir, rho, norm))
    n_random = restarts + (1 if g_dir is None else 0)  # a vanishing gradient: one more random start
    for _ in range(n_random):
        if norm == "l2":
            inits.append(_surface_point(_random_like(theta, gen, "normal"), rho, norm))
        else:
            inits.append(torch._foreach_mul(_random_like(theta, gen, "uniform"), rho))
    return inits


class _Search:
    """The best point over all starts, the history of the best rise, the evaluation count."""

    def __init__(self, obj: _Objective, loss0: float, scale: list[torch.Tensor] | None) -> None:
        self.obj, self.loss0, self.scale = obj, loss0, scale
        self.best_loss, self.best_u = loss0, [torch.zeros_like(t) for t in obj.theta]
        self.history: list[float] = []
        self.start_losses: list[float] = []
        self.still_rising: list[bool] = []
        self.iterations = 0

    def to_delta(self, u: list[torch.Tensor]) -> list[torch.Tensor]:
        return u if self.scale is None else torch._foreach_mul(u, self.scale)

    def grad_u(self, g: list[torch.Tensor]) -> list[torch.Tensor]:
        return g if self.scale is None else torch._foreach_mul(g, self.scale)

    def seen(self, loss: float, u: list[torch.Tensor]) -> None:
        if loss > self.best_loss:
            self.best_loss, self.best_u = loss, [t.clone() for t in u]

    def climb(
        self, u: list[torch.Tensor], *, rho: float, norm: str, steps: int, step_size: float, tick
    ) -> None:
        """One start: at most ``steps`` ascent steps; the step halves when the loss fails to rise."""
        step, prev, start_best, done, stopped = step_size, -math.inf, -math.inf, 0, False
        for _ in range(steps):
            loss, g = self.obj.loss_grad(self.to_delta(u))
            self.iterations += 1
            done += 1
            tick()
            self.seen(loss, u)
            start_best = max(start_best, loss)
            self.history.append(self.best_loss - self.loss0)
            if loss <= prev:
                step *= 0.5
            prev = loss
            if step < step_size * 1e-3:
                stopped = True
                break
            d = _ascent_direction(self.grad_u(g), norm)
            if d is None:
                stopped = True
                break
            torch._foreach_add_(u, d, alpha=step * rho)
            _project(u, rho, norm)
        loss = self.obj.loss(self.to_delta(u))  # the last iterate
        self.iterations += 1
        self.seen(loss, u)
        self.start_losses.append(max(start_best, loss))
        # the step limit cut the start short: its last step still raised the loss noticeably
        gain = loss - prev
        self.still_rising.append(
            not stopped and gain > _RISING * max(abs(max(start_best, loss) - self.loss0), 1e-12)
        )
        for _ in range(steps - done):
            tick()


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
    search = _Search(obj, loss0, scale)
    inits = _start_points(
        obj.theta,
        search.grad_u(grad0),
        rho=rho,
        norm=norm,
        scale=scale,
        restarts=restarts,
        gen=gen,
        starts=starts,
    )
    bar = progress(range(len(inits) * steps), desc=desc, quiet=quiet)
    ticks = iter(bar)
    for u in inits:
        search.climb(
            u,
            rho=rho,
            norm=norm,
            steps=steps,
            step_size=step_size,
            tick=lambda: next(ticks, None),
        )
    if hasattr(bar, "close"):
        bar.close()
    return _Ascent(
        delta=[t.detach() for t in search.to_delta(search.best_u)],
        loss=search.best_loss,
        iterations=search.iterations,
        history=search.history,
        start_losses=search.start_losses,
        still_rising=search.still_rising,
        radius=_ball_norm(search.best_u, norm),
    )


def _ball_norm(u: list[torch.Tensor], norm: str) -> float:
    if norm == "l2":
        return float(global_norm(u))
    return max((float(t.abs().max()) for t in u if t.numel()), default=0.0)


def _step_limit_note(asc: _Ascent, steps: int) -> str | None:
    """A one-line note when every start was still climbing when the step limit stopped it."""
    n = len(asc.still_rising)
    if n and all(asc.still_rising):
        return (
            f"all {n} ascent starts were still raising the loss when they stopped at the "
            f"step limit ({steps} steps): the worst case is likely higher; raise steps"
        )
    return None


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

    The maximisation of Keskar et al. (2017) (SAM's inner problem, Foret et al. 2021;
    see the module doc), solved by projected gradient ascent (:func:`_pga`):
    normalised-gradient steps (l2) or sign steps (l-infinity), projection onto the
    ball, a step that halves when it fails to raise the loss, one start along the
    gradient and ``restarts`` seeded random starts. The best loss found is a lower
    bound of the true maximum.

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
        A :class:`SharpnessResult`: ``value``, ``delta`` (the maximiser), ``iterations``.

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
    return _worst_result(asc, loss0=loss0, names=names, settings=settings)


def _worst_result(
    asc: _Ascent, *, loss0: float, names: list[str], settings: dict
) -> SharpnessResult:
    rho, steps = settings["rho"], settings["steps"]
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
            "on_boundary": asc.radius >= rho * (1 - 1e-6),
            "starts_still_rising": sum(asc.still_rising),
        },
        boundary_note=_step_limit_note(asc, steps),
    )
