"""The product backend that ``backend="auto"`` chooses, and where the choice is kept.

``auto`` times a few products of each backend (:func:`time_backends`) and keeps the
faster. The choice is cached in the process and in a small JSON file
(``~/.cache/sharpscope/backend.json``, or ``$SHARPSCOPE_CACHE_DIR``), keyed by device,
model class, mode, dtype, parameter shapes and batch shape. The file is read as
untrusted data: anything malformed is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import SharpscopeError
from ..runtime.batches import batch_head, split_batch
from ..runtime.functional import probe_mode

__all__ = ["backend_cache_path", "clear_backend_cache", "choose_backend", "time_backends"]

_BACKEND_CACHE: dict[tuple, tuple[str, int]] = {}
_CACHE_VERSION = 1
_CACHE_MAX_ENTRIES = 256
_MAX_BLOCK = 1 << 16


def backend_cache_path() -> Path:
    """The JSON file where ``auto`` keeps its backend choices across processes."""
    root = os.environ.get("SHARPSCOPE_CACHE_DIR")
    if root:
        return Path(root) / "backend.json"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sharpscope" / "backend.json"


def _read_disk_cache() -> dict[str, dict[str, Any]]:
    """The valid entries of the cache file; an absent, unreadable or malformed file gives ``{}``."""
    try:
        raw = backend_cache_path().read_text(encoding="utf-8")
        data = json.loads(raw)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and _valid_entry(v)}


def _valid_entry(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and v.get("backend") in ("forward", "double")
        and type(v.get("block_size")) is int
        and 1 <= v["block_size"] <= _MAX_BLOCK
    )


def _write_disk_cache(key: str, backend: str, block: int) -> None:
    """Record one choice (best effort: a read-only or full cache folder is not an error)."""
    from ..runtime.files import atomic_write_json

    entries = _read_disk_cache()
    entries.pop(key, None)
    entries[key] = {"backend": backend, "block_size": int(block)}
    while len(entries) > _CACHE_MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    path = backend_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"version": _CACHE_VERSION, "entries": entries})
    except (OSError, SharpscopeError):
        pass


def clear_backend_cache(*, disk: bool = True) -> None:
    """Forget the backends ``auto`` chose: in this process and (``disk=True``) in the cache file."""
    _BACKEND_CACHE.clear()
    if disk:
        try:
            backend_cache_path().unlink()
        except OSError:
            pass


def choose_backend(op: Any) -> str:
    """The backend ``auto`` picks for ``op``: cached (process, then file) or timed now."""
    key = op._backend_key()
    disk_key = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    if key not in _BACKEND_CACHE:
        entry = _read_disk_cache().get(disk_key)
        if entry is not None:
            _BACKEND_CACHE[key] = (entry["backend"], entry["block_size"])
    if key in _BACKEND_CACHE:
        backend, op.block_size = _BACKEND_CACHE[key]
        return backend
    before = op.hvp_count
    op.timings = time_backends(op)
    op.setup_products += op.hvp_count - before
    choice = min(op.timings, key=op.timings.get)
    if choice == "forward":
        op.block_size = 1
    _BACKEND_CACHE[key] = (choice.split("-")[0], op.block_size)
    _write_disk_cache(disk_key, *_BACKEND_CACHE[key])
    return _BACKEND_CACHE[key][0]


def time_backends(op: Any, *, max_seconds: float = 0.2) -> dict[str, float]:
    """Seconds per product of each backend, timed on (part of) the first batch.

    Every timed product (on up to 64/256 samples) is added to ``op.hvp_count``.
    Keys: ``double``, ``forward`` (one ``jvp`` per vector) and, on GPUs,
    ``forward-block`` (a ``vmap`` block of ``op.block_size`` vectors, per vector).
    On CPUs vmapped blocks cost more per vector than single products (ANCHORS.md), so
    they are not timed there. Each candidate runs once to warm up, then until
    ``max_seconds`` or three repeats.
    """
    cuda = op.device.type == "cuda"
    x, y = split_batch(batch_head(next(iter(op.batches())), 256 if cuda else 64))
    rows1 = torch.randn(1, op.dim, device=op.device, dtype=op.dtype)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def clock(fn, products: int = 1) -> float:
        fn()  # warm-up
        op.hvp_count += products
        sync()
        times = []
        while len(times) < 3 and sum(times) < max_seconds:
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
            op.hvp_count += products
        return min(times)

    with probe_mode(op.model, op.mode):
        if op._caches_graph():  # one fixed batch: products reuse one retained gradient graph
            graph = op._gradient_graph(x, y)
            t_double = clock(lambda: op._double_products(graph, rows1, retain=True))
            del graph
        else:
            t_double = clock(
                lambda: op._double_products(op._gradient_graph(x, y), rows1, retain=False)
            )
        try:
            t_forward = clock(lambda: op._forward_products(x, y, rows1))
        except Exception:  # noqa: BLE001 - a model torch.func cannot trace: use double backward
            return {"double": t_double}
        out = {"double": t_double, "forward": t_forward}
        vb = op.vmap_block if cuda else 1
        if vb > 1 and t_forward < 2.0 * t_double:
            rows = torch.randn(vb, op.dim, device=op.device, dtype=op.dtype)
            out["forward-block"] = clock(lambda: op._forward_products(x, y, rows), vb) / vb
    return out
