"""Reading caches that may be damaged: a damaged cache is a miss, never a crash.

sharpscope keeps resumable results and report caches in small files
(``RUN/probes/eigen.json``, ``report/cache/*.json``, a grid's ``surface.npz`` +
``meta.json``). Such a file can be truncated by a full disk, overwritten by hand or
replaced by something else entirely; a cache is only an optimisation, so every way a
file can be damaged becomes a reason, not an exception: bytes that are not UTF-8,
invalid JSON, nesting too deep for the parser (``RecursionError``), integers with more
digits than Python converts (``ValueError``), ``NaN``/``Infinity`` tokens, a top level
that is not an object, and whatever the caller's schema rejects. A file that exists but
cannot be used gets one line on stderr (rank 0 only)::

    notice: ignoring damaged cache RUN/probes/eigen.json (not UTF-8 text); recomputing

Two interfaces share this module:

* :func:`read_cache_json` / :func:`load_cache_json` with a ``schema_check(obj) -> reason``
  callable (the Hessian probes' caches), and :func:`cache_notice`;
* :func:`read_json_checked` raising :class:`Damaged`, :func:`check_schema` with
  declarative specs (``NUM``, ``nums(3)``, ``{key: spec}``), :func:`surface_problem` for
  grid files, and :func:`notice` (the comparison's and the report's caches).

Nothing read here is ever imported or called; values are plain JSON data or numeric
arrays checked against a schema.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .distributed import is_main

__all__ = [
    "load_cache_json",
    "read_cache_json",
    "cache_notice",
    "is_number",
    "is_int",
    "MAX_CACHE_BYTES",
    "Damaged",
    "read_json_checked",
    "check_schema",
    "surface_problem",
    "notice",
    "NUM",
    "NUM_REQUIRED",
    "nums",
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


# ----------------------------------------------------------- declarative schemas (compare, report)
MAX_DEPTH = 32  # the deepest cache sharpscope writes is 5 levels
MAX_BYTES = 512 << 20

NUM = "num"  # a finite number or None (non-finite values are written as None)
NUM_REQUIRED = "num!"  # a finite number


class Damaged(Exception):  # noqa: N818 - a reason, not an error shown to users
    """A cache that cannot be used; ``str(exc)`` is the one-line reason."""


def _reject_nonfinite(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _one_line(text: Any, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:limit]


def read_json_checked(path: Path) -> Any:
    """Parse ``path`` as strict JSON (no NaN), at most :data:`MAX_DEPTH` levels deep.

    Raises:
        FileNotFoundError: no such file (not damage: simply not computed yet).
        Damaged: anything else that makes the file unusable, with the reason.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise Damaged(f"larger than {MAX_BYTES >> 20} MiB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError as exc:
        raise Damaged("a folder, not a file") from exc
    except OSError as exc:
        raise Damaged(f"unreadable: {_one_line(exc.strerror or exc)}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Damaged("not UTF-8 text") from exc
    try:
        obj = json.loads(text, parse_constant=_reject_nonfinite)
    except RecursionError as exc:
        raise Damaged("JSON nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise Damaged(f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except ValueError as exc:  # e.g. integers longer than Python's digit limit, NaN
        raise Damaged(f"not valid JSON: {_one_line(exc, 80)}") from exc
    _check_depth(obj)
    return obj


def _check_depth(obj: Any) -> None:
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Damaged(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def nums(length: int | None = None, *, required: bool = False) -> tuple:
    """Schema: a list of numbers (``length`` of them when given)."""
    return ("list", NUM_REQUIRED if required else NUM, length)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_schema(value: Any, spec: Any, where: str = "result") -> None:
    """Check ``value`` against ``spec``; raise :class:`Damaged` naming the first bad field.

    Specs: ``"num"`` (finite number or None), ``"num!"`` (finite number), ``"int"``,
    ``"str"``, ``"bool"``, ``"dict"``, ``("opt", spec)`` (None or spec),
    ``("list", item_spec, length_or_None)``, and ``{key: spec}`` (a dict holding at least
    these keys; other keys are kept but not used).
    """
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise Damaged(f"{where} is {type(value).__name__}, not an object")
        for key, sub in spec.items():
            if key not in value:
                raise Damaged(f"{where}.{key} is missing")
            check_schema(value[key], sub, f"{where}.{key}")
        return
    if isinstance(spec, tuple):
        kind = spec[0]
        if kind == "opt":
            if value is not None:
                check_schema(value, spec[1], where)
            return
        if kind == "list":
            if not isinstance(value, list):
                raise Damaged(f"{where} is {type(value).__name__}, not a list")
            if spec[2] is not None and len(value) != spec[2]:
                raise Damaged(f"{where} has {len(value)} entries, expected {spec[2]}")
            for i, item in enumerate(value):
                check_schema(item, spec[1], f"{where}[{i}]")
            return
        raise AssertionError(f"unknown schema {spec!r}")
    ok = {
        NUM: lambda v: v is None or _is_number(v),
        NUM_REQUIRED: _is_number,
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict),
    }[spec](value)
    if not ok:
        shown = _one_line(repr(value), 40)
        raise Damaged(f"{where} is {shown}, expected {spec.rstrip('!')}")


def surface_problem(folder: Path) -> str | None:
    """Why the grid files in ``folder`` (``surface.npz``, ``meta.json``) cannot be used, or None.

    Absent files are not a problem (the grid starts afresh). Checks that the arrays a
    resume or a figure reads are there, numeric, and of consistent shapes.
    """
    folder = Path(folder)
    meta_path, npz = folder / "meta.json", folder / "surface.npz"
    if meta_path.exists():
        try:
            meta = read_json_checked(meta_path)
        except FileNotFoundError:
            meta = {}
        except Damaged as exc:
            return f"{meta_path.name}: {exc}"
        if not isinstance(meta, dict):
            return f"{meta_path.name} is {type(meta).__name__}, not an object"
        for key in ("signature", "metadata"):
            if key in meta and not isinstance(meta[key], dict):
                return f"{meta_path.name}: {key} is not an object"
    if not npz.exists():
        return None
    try:
        with np.load(npz, allow_pickle=False) as z:
            names = set(z.files)
            missing = [k for k in ("x", "loss", "accuracy", "done") if k not in names]
            if missing:
                return f"{npz.name} lacks {', '.join(missing)}"
            arrays = {
                k: np.asarray(z[k]) for k in ("x", "y", "loss", "accuracy", "done") if k in names
            }
    except Exception as exc:  # noqa: BLE001 - zip, zlib, header and size errors all mean damage
        return f"{npz.name} is not a readable array file ({type(exc).__name__})"
    for key, arr in arrays.items():
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            return f"{npz.name}: {key} is not numeric"
    axes = [arrays["x"]] + ([arrays["y"]] if "y" in arrays else [])
    if any(a.ndim != 1 or a.size == 0 for a in axes):
        return f"{npz.name}: an axis is not a non-empty list of numbers"
    shape = tuple(a.size for a in axes)
    for key in ("loss", "accuracy", "done"):
        if arrays[key].shape != shape:
            return f"{npz.name}: {key} has shape {arrays[key].shape}, expected {shape}"
    return None


def notice(path: Path, reason: str) -> None:
    """One line on stderr: a damaged cache is ignored and recomputed (rank 0 only)."""
    if is_main():
        print(
            f"notice: ignoring damaged cache {path} ({_one_line(reason, 160)}); recomputing",
            file=sys.stderr,
            flush=True,
        )
