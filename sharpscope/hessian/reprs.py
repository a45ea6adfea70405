"""Short text and HTML views of the Hessian results (notebooks print these), and the mode note.

A result printed in a notebook should show its number with its uncertainty, the method
and the cost, never every probe value: :func:`short_repr` gives one line under 200
characters and :func:`html_table` a small two-column table for ``_repr_html_``.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["MODE_NOTE", "mode_note", "num", "short_repr", "html_table"]

MODE_NOTE = (
    "eval mode uses BatchNorm's running statistics (a fixed function of the weights); "
    "train mode normalises each batch by its own statistics, which couples the samples "
    "and changes the function being differentiated. On a BatchNorm model the two Hessians "
    "can differ many times over (25x is not unusual); this is expected, not a bug. "
    "Compare models in the same mode."
)
"""Why ``eigen``/``trace``/``esd`` in eval and train mode differ on a BatchNorm model."""


def mode_note(mode: str) -> str:
    """``"eval mode: ..."``: what the mode means for a BatchNorm model (see :data:`MODE_NOTE`)."""
    return f"{mode} mode: {MODE_NOTE}"


def num(value: Any, stderr: Any = None) -> str:
    """``12.35`` or ``12.35 ± 0.41`` (4 significant digits, ``n/a`` when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = f"{float(value):.4g}"
    if isinstance(stderr, (int, float)) and math.isfinite(stderr):
        text += f" ± {float(stderr):.2g}"
    return text


def short_repr(name: str, items: list[tuple[str, str]]) -> str:
    """``Name(key=value, ...)`` in one line, cut to fewer than 200 characters."""
    text = f"{name}(" + ", ".join(f"{k}={v}" for k, v in items) + ")"
    return text if len(text) < 200 else text[:195] + "...)"


def html_table(title: str, rows: list[tuple[str, str]]) -> str:
    """A small ``<table>`` with a caption and one ``name | value`` row per item."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table><caption>{html.escape(title)}</caption><tbody>{body}</tbody></table>"
