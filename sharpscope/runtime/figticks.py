"""Round numbers for figures: tick values (1, 2, 5 x 10^k) and compact number labels."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from ..errors import SharpscopeError

__all__ = ["format_number", "nice_ticks"]


def format_number(value: float, *, markup: str | None = None) -> str:
    """A short label for a round number, without SI prefixes.

    ``0.2 -> "0.2"``, ``1000 -> "1000"``, ``1e-5 -> "1e-5"``; with ``markup="mathtext"``
    small and large powers become ``$10^{-5}$`` / ``$2\\times10^{-5}$`` and with
    ``markup="html"`` ``10<sup>-5</sup>`` (plotly).
    """
    v = float(value)
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    a = abs(v)
    if 1e-3 <= a < 1e5:
        return np.format_float_positional(float(f"{v:.4g}"), trim="-")
    # always the exponent form: ".3g" writes 1e-4 <= |v| < 1e-3 positionally (no "e")
    mant, exp = f"{v:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    e = int(exp)
    if markup == "mathtext":
        base = f"10^{{{e}}}"
        if mant in ("1", "-1"):
            return f"${mant[:-1]}{base}$"
        return f"${mant}\\times{base}$"
    if markup == "html":
        base = f"10<sup>{e}</sup>"
        if mant in ("1", "-1"):
            return f"{mant[:-1]}{base}"
        return f"{mant}×{base}"
    return f"{mant}e{e}"


def _nice_step_candidates(span: float, n: int) -> Iterator[float]:
    k0 = math.floor(math.log10(span / max(n, 1))) - 1
    for k in range(k0, k0 + 4):
        for m in (1, 2, 5):
            yield m * 10.0**k


def _round_to_step(values: np.ndarray, step: float) -> np.ndarray:
    decimals = max(0, -math.floor(math.log10(step)))
    return np.round(values, decimals + 1)


def nice_ticks(lo: float, hi: float, *, log: bool = False, n: int = 5) -> np.ndarray:
    """At most about ``n`` round tick values (1, 2, 5 x 10^k) inside ``[lo, hi]``.

    Linear: equally spaced multiples of the smallest step from {1, 2, 5} x 10^k that
    gives at most ``n`` ticks (``(0.003, 1.009)`` -> ``0.2, 0.4, 0.6, 0.8, 1.0``).
    ``log=True``: powers of ten (every m-th decade when there are more than ``n``);
    when fewer than two decades fall inside, 1/2/5 x 10^k values; when still fewer
    than two, the linear ticks.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SharpscopeError(f"tick range must be finite, got ({lo}, {hi})")
    if n < 1:
        raise SharpscopeError(f"tick count must be at least 1, got {n}")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return np.array([lo])
    if log:
        if lo <= 0:
            raise SharpscopeError(f"log ticks need a positive range, got ({lo:g}, {hi:g})")
        eps = 1e-9
        k_lo = math.ceil(math.log10(lo) - eps)
        k_hi = math.floor(math.log10(hi) + eps)
        decades = list(range(k_lo, k_hi + 1))
        if len(decades) >= 2:
            m = math.ceil(len(decades) / n)
            return np.array([10.0**k for k in decades[::m]])
        cand = [
            m * 10.0**k
            for k in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
            for m in (1, 2, 5)
        ]
        inside = [c for c in cand if lo * (1 - eps) <= c <= hi * (1 + eps)]
        if len(inside) >= 2:
            return np.array(inside[:: math.ceil(len(inside) / n)])
    span = hi - lo
    for step in _nice_step_candidates(span, n):
        i_lo = math.ceil(lo / step - 1e-9)
        i_hi = math.floor(hi / step + 1e-9)
        if i_hi - i_lo + 1 <= n:
            return _round_to_step(np.arange(i_lo, i_hi + 1) * step, step)
    return np.array([lo, hi])  # pragma: no cover - the candidates always reach the span
