"""Vector geometry on lists of tensors (one entry per parameter), shared by the
optimizers (SAM, ASAM, XSAM) and the probes (XSAM plane, sharpness).

Everything uses ``torch._foreach_*`` kernels, never a Python loop of arithmetic per
parameter, and accumulates norms, dot products and angles in float32 (float64
inputs stay float64) so bf16 parameters or gradients do not spoil the geometry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "global_norm",
    "global_dot",
    "angle",
    "slerp_coefficients",
    "slerp",
    "SIN_EPS",
]

SIN_EPS = 1e-6
"""Below this ``sin(psi)`` the slerp falls back to a normalised linear mix (no division by ~0)."""

Tensors = Sequence[torch.Tensor]


def _acc_dtype(ts: Tensors) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in ts) else torch.float32


def global_norm(ts: Tensors) -> torch.Tensor:
    """The l2 norm of the concatenation of ``ts``, as a 0-d float32 (or float64) tensor."""
    if not ts:
        raise ValueError("global_norm of an empty list of tensors")
    dt = _acc_dtype(ts)
    norms = torch._foreach_norm([t.to(dt) if t.dtype != dt else t for t in ts])
    return torch.linalg.vector_norm(torch.stack(norms))


def global_dot(a: Tensors, b: Tensors) -> torch.Tensor:
    """``<a, b>`` over all entries, as a 0-d float32 (or float64) tensor."""
    if len(a) != len(b):
        raise ValueError(f"global_dot of lists of different lengths ({len(a)} and {len(b)})")
    dt = _acc_dtype(list(a) + list(b))
    prods = torch._foreach_mul([t.to(dt) for t in a], [t.to(dt) for t in b])
    return torch.stack([p.sum() for p in prods]).sum()


def angle(a: Tensors, b: Tensors, *, eps: float = 1e-12) -> tuple[float, float]:
    """``(cos psi, psi)`` between ``a`` and ``b``; the cosine is clamped to [-1, 1] so psi is never NaN."""
    na, nb = global_norm(a), global_norm(b)
    c = float(global_dot(a, b) / (na * nb).clamp_min(eps))
    c = min(1.0, max(-1.0, c))
    return c, math.acos(c)


def slerp_coefficients(psi: float, alpha: float) -> tuple[float, float]:
    """``(c0, c1)`` with ``slerp(v0, v1; alpha) = c0 v0 + c1 v1`` for unit ``v0, v1`` at angle ``psi``.

    .. math::
        \\mathrm{slerp}(v_0, v_1; \\alpha) = \\frac{\\sin((1-\\alpha)\\psi)}{\\sin\\psi} v_0
        + \\frac{\\sin(\\alpha\\psi)}{\\sin\\psi} v_1

    ``alpha`` may lie outside [0, 1] (XSAM searches up to ``alpha_max = 2``): the arc
    continues past ``v1``. When ``sin psi < SIN_EPS`` (``v0`` and ``v1`` parallel or
    anti-parallel) the coefficients of the normalised mean ``(1-alpha) v0 + alpha v1``
    are returned instead (Chen & Zhou 2026, XSAM), so nothing divides by zero.
    """
    s = math.sin(psi)
    if abs(s) >= SIN_EPS:
        return math.sin((1.0 - alpha) * psi) / s, math.sin(alpha * psi) / s
    c0, c1 = 1.0 - alpha, alpha
    # |c0 v0 + c1 v1| for unit vectors at angle psi (cos psi = +-1 here)
    norm = math.sqrt(max(c0 * c0 + c1 * c1 + 2.0 * c0 * c1 * math.cos(psi), 0.0))
    if norm < SIN_EPS:
        return 0.0, 1.0  # the mean vanishes (anti-parallel, alpha = 1/2): fall back to v1
    return c0 / norm, c1 / norm


def slerp(v0: Tensors, v1: Tensors, alpha: float, psi: float | None = None) -> list[torch.Tensor]:
    """The unit vector ``slerp(v0, v1; alpha)`` for unit ``v0, v1`` (see :func:`slerp_coefficients`)."""
    if psi is None:
        _, psi = angle(v0, v1)
    c0, c1 = slerp_coefficients(psi, alpha)
    out = torch._foreach_mul(list(v0), c0)
    torch._foreach_add_(out, list(v1), alpha=c1)
    return out
