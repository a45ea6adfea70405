"""Reading JSON caches that may be damaged: a damaged cache is a miss, never a crash.

sharpscope keeps resumable results in small JSON files (``RUN/probes/eigen.json``,
``meta.json`` of a landscape grid, ...). Such a file can be truncated by a full disk,
overwritten by hand or replaced by something else entirely. :func:`read_cache_json`
returns the cache's top-level object when it is a JSON object whose fields have the
types the caller needs, and ``None`` otherwise; a file that exists but cannot be used
gets one line on stderr::

    notice: ignoring damaged cache RUN/probes/eigen.json (not UTF-8 text); recomputing

Every way a file can be damaged becomes a reason, not an exception: bytes that are not
UTF-8, invalid JSON, nesting too deep for the parser (``RecursionError``), integers with
more digits than Python converts (``ValueError``), ``NaN``/``Infinity`` tokens, a top level
that is not an object, and whatever the caller's ``schema_check`` rejects.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "load_cache_json",
    "read_cache_json",
    "cache_notice",
    "is_number",
    "is_int",
    "MAX_CACHE_BYTES",
]

#: Caches larger than this are not parsed (a cache of per-epoch numbers is kilobytes).
MAX_CACHE_BYTES = 256 << 20

SchemaCheck = Callable[[dict[str, Any]], "str | None"]


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` that is not a ``bool`` (JSON numbers as Python reads them)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard number {token}")


def _short(text: Any, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_cache_json(
    path: str | os.PathLike, schema_check: SchemaCheck | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """``(cache, None)`` for a usable cache, ``(None, None)`` when there is no file and
    ``(None, reason)`` when the file exists but cannot be used.

    ``schema_check(obj)`` validates the types of the fields the caller will use: it returns
    ``None`` when they are fine and a short reason otherwise (raising ``TypeError``,
    ``ValueError``, ``KeyError``, ``AttributeError`` or ``IndexError`` counts as a reason too).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CACHE_BYTES + 1)
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, "a folder, not a file"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    if len(raw) > MAX_CACHE_BYTES:
        return None, f"larger than {MAX_CACHE_BYTES >> 20} MiB"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text: byte {raw[exc.start]:#04x} at offset {exc.start}"
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno}"
    except RecursionError:
        return None, "nested too deeply to read"
    except ValueError as exc:  # over-long integers, NaN/Infinity tokens
        return None, _short(exc)
    if not isinstance(obj, dict):
        return None, f"a JSON {type(obj).__name__}, not an object"
    if schema_check is not None:
        try:
            reason = schema_check(obj)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            reason = _short(f"{type(exc).__name__}: {exc}")
        except RecursionError:
            reason = "nested too deeply to check"
        if reason:
            return None, _short(reason)
    return obj, None


def cache_notice(path: str | os.PathLike, reason: str) -> None:
    """Print the one-line notice for a damaged cache (rank 0 of a distributed run only)."""
    from .distributed import is_main

    if is_main():
        print(f"notice: ignoring damaged cache {path} ({reason}); recomputing", file=sys.stderr)


def read_cache_json(
    path: str | os.PathLike, schema_check: SchemaCheck | None = None
) -> dict[str, Any] | None:
    """The cache at ``path`` as a dict, or ``None`` (missing or damaged: a cache miss).

    A damaged file gets the one-line notice on stderr (see :func:`cache_notice`); it is
    left in place for the caller's next atomic write to replace.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.json"
        >>> _ = p.write_text('{"epochs": {"1": {"trace": 2.5}}}')
        >>> read_cache_json(p, lambda d: None if isinstance(d.get("epochs"), dict) else "no epochs")
        {'epochs': {'1': {'trace': 2.5}}}
        >>> read_cache_json(p.with_name("missing.json")) is None
        True
    """
    obj, reason = load_cache_json(path, schema_check)
    if reason is not None:
        cache_notice(path, reason)
    return obj
