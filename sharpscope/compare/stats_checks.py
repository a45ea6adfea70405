"""Checking and formatting helpers shared by :mod:`.stats` and :mod:`.verdict`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from ..errors import SharpscopeError


def _fmt(x: float | None) -> str:
    return "None" if x is None else f"{x:.4g}"


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "None" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _values(values: Any, what: str) -> np.ndarray:
    """``values`` as a finite, non-empty 1-D float64 array, or a one-line error."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SharpscopeError(f"{what} must be numbers, got {values!r}") from exc
    if arr.ndim != 1:
        raise SharpscopeError(f"{what} must be a flat list of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise SharpscopeError(f"{what} is empty: a group needs at least one run")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise SharpscopeError(
            f"{what} has a non-finite value {float(arr[i])} at member {i} "
            f"({bad.size} of {arr.size} non-finite): {arr.tolist()}"
        )
    return arr


def _std_errors(se: Any, n: int, what: str) -> np.ndarray | None:
    if se is None:
        return None
    arr = _values(se, what)
    if arr.size != n:
        raise SharpscopeError(f"{what} has {arr.size} entries but the group has {n} members")
    neg = np.flatnonzero(arr < 0)
    if neg.size:
        raise SharpscopeError(
            f"{what} must be >= 0, got {float(arr[neg[0]])} at member {int(neg[0])}: {arr.tolist()}"
        )
    return arr


def _level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise SharpscopeError(f"level must be strictly between 0 and 1, got {level!r}")
    return float(level)


def _count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SharpscopeError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _group_variance(x: np.ndarray, se: np.ndarray | None) -> tuple[float, float]:
    """(s^2, mean(se^2)) of a group with at least two members."""
    s2 = float(np.var(x, ddof=1))
    m2 = 0.0 if se is None else float(np.mean(se**2))
    return s2, m2


def _to_dict(obj: Any) -> dict[str, Any]:
    out = asdict(obj)
    for k, v in out.items():
        if isinstance(v, tuple):
            out[k] = list(v)
    return out
