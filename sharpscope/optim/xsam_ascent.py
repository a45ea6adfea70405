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
from typing import Any

import torch
from torch import Tensor

from ..errors import NonFiniteLossError, SharpscopeError
from .base import check_number, sam_ascent_
from .geometry import slerp_coefficients

__all__ = ["AscentResult", "xsam_ascent", "alpha_search", "alpha_grid"]

_EPS = 1e-12


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

    ``v0`` and ``v1`` are computed on first access from the displacement and the gradient
    (same operations, same values as computing them at once): an XSAM step with a fixed
    alpha needs at most ``v0``, and only the alpha search and the plane probe need ``v1``.
    The gradient must then not have been changed in place meanwhile.
    """

    def __init__(
        self,
        v0: list[Tensor] | None = None,
        v1: list[Tensor] | None = None,
        grad: list[Tensor] | None = None,
        grad_norm: float = 0.0,
        cos_psi: float = 1.0,
        psi: float = 0.0,
        path: list[list[Tensor]] | None = None,
        *,
        disp: list[Tensor] | None = None,
        disp_norm: Tensor | None = None,
        grad_norm_t: Tensor | None = None,
    ) -> None:
        if grad is None:
            raise TypeError("AscentResult needs grad")
        if v0 is None and (disp is None or disp_norm is None):
            raise TypeError("AscentResult needs v0, or disp and disp_norm to compute it")
        if v1 is None and grad_norm_t is None:
            raise TypeError("AscentResult needs v1, or grad_norm_t to compute it")
        self._v0, self._v1 = v0, v1
        self._disp, self._disp_norm, self._grad_norm_t = disp, disp_norm, grad_norm_t
        self.grad, self.grad_norm, self.cos_psi, self.psi, self.path = (
            grad,
            grad_norm,
            cos_psi,
            psi,
            path,
        )

    @property
    def v0(self) -> list[Tensor]:
        if self._v0 is None:
            with torch.no_grad():
                self._v0 = torch._foreach_div(self._disp, self._disp_norm.clamp_min(_EPS))
            self._disp = self._disp_norm = None
        return self._v0

    @property
    def v1(self) -> list[Tensor]:
        if self._v1 is None:
            with torch.no_grad():
                self._v1 = torch._foreach_div(self.grad, self._grad_norm_t.clamp_min(_EPS))
            self._grad_norm_t = None
        return self._v1

    def __repr__(self) -> str:
        return (
            f"AscentResult(grad_norm={self.grad_norm!r}, cos_psi={self.cos_psi!r}, "
            f"psi={self.psi!r}, tensors={len(self.grad)})"
        )


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
    prods = torch._foreach_mul(_as_dtype(a, dt), _as_dtype(b, dt))
    return torch.cat([t.reshape(-1) for t in prods]).sum()


def _as_dtype(ts: Sequence[Tensor], dt: torch.dtype) -> Sequence[Tensor]:
    return ts if all(t.dtype == dt for t in ts) else [t.to(dt) for t in ts]


@torch.no_grad()
def _ascent_result(
    params: list[Tensor], theta0: Sequence[Tensor], grad: list[Tensor]
) -> AscentResult:
    """The angle and ||g|| for params at theta_k with gradient ``grad`` there (one host sync);
    v0 and v1 are left to compute on first use. Both norms come from one foreach norm."""
    disp = torch._foreach_sub([p.detach() for p in params], list(theta0))
    n = len(disp)
    dt = torch.float64 if any(t.dtype == torch.float64 for t in (*disp, *grad)) else torch.float32
    # the same per-tensor norms and the same reduction as geometry.global_norm, for both lists
    norms = torch.stack(torch._foreach_norm([*_as_dtype(disp, dt), *_as_dtype(grad, dt)]))
    dn, gn = torch.linalg.vector_norm(norms[:n]), torch.linalg.vector_norm(norms[n:])
    cos_t = _dot(disp, grad) / (dn * gn).clamp_min(_EPS)
    cos_f, gn_f = torch.stack([cos_t.double(), gn.double()]).tolist()
    cos_f = min(1.0, max(-1.0, cos_f))
    return AscentResult(
        grad=grad,
        grad_norm=gn_f,
        cos_psi=cos_f,
        psi=math.acos(cos_f),
        disp=disp,
        disp_norm=dn,
        grad_norm_t=gn,
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
