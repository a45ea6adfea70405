"""Parsing ``START:STOP:NUM`` ranges of grid axes."""

from __future__ import annotations

import math

from ..errors import SharpscopeError

__all__ = ["parse_range"]


def parse_range(text: str, *, name: str = "range") -> tuple[float, float, int]:
    """Parse ``"START:STOP:NUM"`` into ``(start, stop, num)``.

    ``num`` points from ``start`` to ``stop`` inclusive, ``start < stop`` and
    ``num >= 2`` (``num == 1`` is allowed only when ``start == stop``).

    Example:
        >>> parse_range("-1:1:51")
        (-1.0, 1.0, 51)
    """
    parts = str(text).split(":")
    if len(parts) != 3:
        raise SharpscopeError(f"invalid {name} {text!r}: expected START:STOP:NUM, e.g. -1:1:51")
    try:
        start, stop = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise SharpscopeError(f"invalid {name} {text!r}: START and STOP must be numbers") from exc
    try:
        num = int(parts[2])
    except ValueError as exc:
        raise SharpscopeError(f"invalid {name} {text!r}: NUM must be a whole number") from exc
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise SharpscopeError(f"invalid {name} {text!r}: START and STOP must be finite")
    if num < 1:
        raise SharpscopeError(f"invalid {name} {text!r}: NUM must be at least 1, got {num}")
    if num == 1 and start != stop:
        raise SharpscopeError(f"invalid {name} {text!r}: one point needs START == STOP")
    if num > 1 and not start < stop:
        raise SharpscopeError(f"invalid {name} {text!r}: START must be below STOP")
    return start, stop, num
