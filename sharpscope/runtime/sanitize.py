"""Text read from a file, made safe to print on a terminal.

A checkpoint's metadata is a stranger's text: a model name or a metric key can
hold terminal escape sequences (clear the screen, retitle the window, fake a
line with a carriage return) or bidirectional-override characters that make a
line read differently from what it holds. :func:`printable` removes them and
keeps every ordinary character, accented letters and CJK included.

Example:
    >>> printable("mlp\\x1b[2J\\rresnet\\u202e")
    'mlp resnet'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["printable"]

# ESC sequences: CSI (ESC [ ... final byte), OSC/DCS/SOS/PM/APC strings (ESC ] ... BEL or ST),
# and the two-character escapes (ESC followed by one byte in @-_ or a charset designator).
_ESC_SEQUENCE = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]?              # CSI ... final byte
    | \x9b[0-?]*[ -/]*[@-~]?              # 8-bit CSI
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])  # OSC, DCS, SOS, PM, APC (7- or 8-bit)
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?     # ... up to BEL or ST
    | \x1b[ -/]*[0-~]?                    # other ESC sequences (ESC ( B, ESC c, ...)
    """,
    re.VERBOSE,
)
_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
# C0 and C1 control characters, DEL, and the bidirectional formatting characters
# (embeddings, overrides, isolates and marks).
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: Any, *, limit: int | None = None) -> str:
    """``text`` (``str()`` of it) without terminal control sequences, on one line.

    Escape sequences and control characters are removed, tabs and line breaks
    (carriage return included) become one space, bidirectional overrides are
    dropped; all other characters are kept. With ``limit``, a longer result is
    cut to ``limit`` characters ending in ``...``.
    """
    out = _ESC_SEQUENCE.sub("", str(text))
    out = _LINE_BREAKS.sub(" ", out)
    out = _INVISIBLE.sub("", out)
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)] + "..."
    return out
