"""XSAM's building blocks: the k-step ascent and the alpha line search over the slerp arc.

Chen & Zhou, "Revisiting Sharpness-Aware Minimization: A More Faithful and Effective
Implementation", ICLR 2026.

SAM's update uses the gradient at the ascent point ``theta_k``; XSAM notes that the
direction that really increases the loss lies between ``v0`` (from ``theta_0`` to
``theta_k``) and ``v1`` (the gradient at ``theta_k``), and moves along
``||g(theta_k)|| * slerp(v0, v1; alpha)``. ``alpha = 1`` is SAM; ``alpha`` is found by
a line search over the arc, once per epoch.

The two building blocks, :func:`xsam_ascent` and :func:`alpha_search`, are public: the
optimizer (:class:`sharpscope.optim.xsam.XSAM`) and the XSAM plane probe both use them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import NonFiniteLossError, SharpscopeError
from .base import check_number, sam_ascent_
from .geometry import global_norm, slerp_coefficients

__all__ = ["AscentResult", "xsam_ascent", "alpha_search", "alpha_grid"]

_EPS = 1e-12


@dataclass
class AscentResult:
    """What :func:`xsam_ascent` found.

    Attributes:
        v0: unit vector ``(theta_k - theta_0) / ||.||``, aligned with the parameters.
        v1: unit vector ``g(theta_k) / ||g(theta_k)||``.
        grad: ``g(theta_k)`` itself.
        grad_norm: ``||g(theta_k)||``.
        cos_psi: cosine of the angle between ``v0`` and ``v1`` (clamped to [-1, 1]).
        psi: that angle in radians.
        path: displacements ``theta_i - theta_0`` for ``i = 1..k`` when ``record_path``.
    """

    v0: list[Tensor]
    v1: list[Tensor]
    grad: list[Tensor]
    grad_norm: float
    cos_psi: float
    psi: float
    path: list[list[Tensor]] | None = None


def _call_grad_fn(
    grad_fn: Callable[[], Sequence[Tensor | None]], params: list[Tensor]
) -> list[Tensor]:
    with torch.enable_grad():
        grads = list(grad_fn())
    if len(grads) != len(params):
        raise SharpscopeError(
            f"grad_fn returned {len(grads)} gradients for {len(params)} parameters"
        )
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def xsam_ascent(
    params: list[Tensor],
    grad_fn: Callable[[], Sequence[Tensor | None]],
    *,
    rho: float,
    steps: int = 1,
    first_grad: Sequence[Tensor] | None = None,
    record_path: bool = False,
    theta0: Sequence[Tensor] | None = None,
) -> AscentResult:
    """``k`` normalised-gradient ascent steps of length ``rho / k`` from ``theta_0``.

    Chen & Zhou (ICLR 2026), XSAM: ``theta_i = theta_{i-1} + (rho/k) g_{i-1} / ||g_{i-1}||``
    for ``i = 1..k``; then

    .. math::
        v_0 = \\frac{\\theta_k - \\theta_0}{\\|\\theta_k - \\theta_0\\|}, \\quad
        v_1 = \\frac{g(\\theta_k)}{\\|g(\\theta_k)\\|}, \\quad
        \\psi = \\arccos(\\mathrm{clamp}(v_0 \\cdot v_1, -1, 1)).

    Modifies ``params`` in place: they hold ``theta_k`` on return; the caller restores
    ``theta_0``. ``grad_fn()`` returns the gradient of the loss at the CURRENT values of
    ``params`` (``None`` entries count as zeros). It is called ``steps + 1`` times, or
    ``steps`` times when ``first_grad`` (the gradient at ``theta_0``) is given.
    ``theta0`` may pass a copy of the current values that the caller already holds
    (it is read, never written, and must not change during the call).
    Norms and the angle are computed in float32 (float64 inputs stay float64).

    Example:
        >>> w = torch.tensor([1.0, 0.0], requires_grad=True)
        >>> def grad_fn():
        ...     w.grad = None
        ...     (0.5 * (w ** 2).sum()).backward()
        ...     return [w.grad]
        >>> res = xsam_ascent([w], grad_fn, rho=0.5, steps=2)
        >>> [round(x, 4) for x in w.tolist()], round(res.psi, 6)
        ([1.5, 0.0], 0.0)
    """
    check_number("rho", rho, low=0.0)
    check_number("steps", steps, low=1, integer=True)
    params = list(params)
    if not params:
        raise SharpscopeError("xsam_ascent needs at least one parameter")
    with torch.no_grad():
        start = list(theta0) if theta0 is not None else [p.detach().clone() for p in params]
    grad = list(first_grad) if first_grad is not None else _call_grad_fn(grad_fn, params)
    if len(grad) != len(params):
        raise SharpscopeError(f"first_grad has {len(grad)} tensors for {len(params)} parameters")
    path: list[list[Tensor]] | None = [] if record_path else None
    radius = rho / steps
    for _ in range(steps):
        sam_ascent_(params, grad, radius)
        if path is not None:
            with torch.no_grad():
                path.append(torch._foreach_sub([p.detach() for p in params], start))
        grad = _call_grad_fn(grad_fn, params)
    res = _ascent_result(params, start, grad)
    res.path = path
    return res


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """``<a, b>`` in float32 (float64 inputs stay float64) with a constant number of kernels:
    one foreach product, one concatenation, one sum (``geometry.global_dot`` sums per tensor)."""
    dt = torch.float64 if any(t.dtype == torch.float64 for t in (*a, *b)) else torch.float32
    prods = torch._foreach_mul([t.to(dt) for t in a], [t.to(dt) for t in b])
    return torch.cat([t.reshape(-1) for t in prods]).sum()


@torch.no_grad()
def _ascent_result(
    params: list[Tensor], theta0: Sequence[Tensor], grad: list[Tensor]
) -> AscentResult:
    """v0, v1, the angle and ||g|| for params at theta_k with gradient ``grad`` there (one host sync)."""
    disp = torch._foreach_sub([p.detach() for p in params], list(theta0))
    dn, gn = global_norm(disp), global_norm(grad)
    cos_t = _dot(disp, grad) / (dn * gn).clamp_min(_EPS)
    v0 = torch._foreach_div(disp, dn.clamp_min(_EPS))
    v1 = torch._foreach_div(grad, gn.clamp_min(_EPS))
    cos_f, gn_f = torch.stack([cos_t.double(), gn.double()]).tolist()
    cos_f = min(1.0, max(-1.0, cos_f))
    return AscentResult(
        v0=v0, v1=v1, grad=grad, grad_norm=gn_f, cos_psi=cos_f, psi=math.acos(cos_f)
    )


def alpha_grid(alpha_max: float = 2.0, step: float = 0.1) -> list[float]:
    """``[0, step, 2 step, ..., alpha_max]`` (``alpha_max`` included when it is a multiple of ``step``)."""
    check_number("alpha_max", alpha_max, low=0.0)
    check_number("alpha_step", step, low=0.0, strict=True)
    n = int(math.floor(alpha_max / step + 1e-9))
    return [round(i * step, 12) for i in range(n + 1)]


def alpha_search(
    params: list[Tensor],
    theta0: Sequence[Tensor],
    v0: Sequence[Tensor],
    v1: Sequence[Tensor],
    psi: float,
    loss_fn: Callable[[], Any],
    *,
    rho_max: float,
    alpha_max: float = 2.0,
    step: float = 0.1,
) -> tuple[float, list[float], list[float]]:
    """XSAM's dynamic choice of ``alpha`` (Chen & Zhou, ICLR 2026).

    Sets ``params`` to ``theta0 + rho_max * slerp(v0, v1; alpha)`` for each alpha in
    ``0, step, ..., alpha_max``, calls ``loss_fn()`` (under ``torch.no_grad``), restores
    ``params`` to ``theta0`` (also on error) and returns ``(argmax alpha, alphas,
    losses)``. NaN and infinite losses never win; ties go to the smallest alpha.

    Raises:
        NonFiniteLossError: when the loss is not finite at any alpha.
    """
    check_number("rho_max", rho_max, low=0.0, strict=True)
    alphas = alpha_grid(alpha_max, step)
    params = list(params)
    losses: list[float] = []
    try:
        for a in alphas:
            c0, c1 = slerp_coefficients(psi, a)
            with torch.no_grad():
                torch._foreach_copy_(params, list(theta0))
                if c0 != 0.0:
                    torch._foreach_add_(params, list(v0), alpha=rho_max * c0)
                if c1 != 0.0:
                    torch._foreach_add_(params, list(v1), alpha=rho_max * c1)
                value = loss_fn()
            losses.append(float(value))
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, list(theta0))
    best = None
    for i, value in enumerate(losses):
        if math.isfinite(value) and (best is None or value > losses[best]):
            best = i
    if best is None:
        raise NonFiniteLossError(
            f"XSAM alpha search: the loss is not finite at any alpha in [0, {alpha_max:g}]"
        )
    return alphas[best], alphas, losses
