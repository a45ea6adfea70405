"""Resuming a grid: the settings signature, reading back a folder, and its lock.

A folder holds one grid's ``surface.npz`` + ``meta.json``. A new run with the same
signature (axes, direction and centre fingerprints, data, mode, loss) picks up the
points whose chunk checksums still match; other settings are refused unless
``force``; damage is announced in one ``notice:`` line and the surface recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import SharpscopeError
from ..runtime.files import check_writable, folder_lock
from .settings import GridSettings
from .surface import SURFACE_FORMAT, Surface, SurfaceFileError

__all__ = ["locks_output", "grid_signature", "resume_surface"]

F = TypeVar("F", bound=Callable[..., Any])
Params = dict[str, torch.Tensor]


def _notice(message: str) -> None:
    print(f"notice: {' '.join(message.split())}", file=sys.stderr, flush=True)


def locks_output(command: str, key: str = "out") -> Callable[[F], F]:
    """Run a keyword-only library function under the exclusive lock of its output folder.

    The folder is the keyword argument ``key`` (nothing is locked when it is ``None``);
    a second writer gets :class:`~sharpscope.errors.FolderLockedError` naming the first
    before any work starts. Nested calls in one process re-enter the same lock.
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            folder = kwargs.get(key)
            if folder is None:
                return fn(*args, **kwargs)
            check_writable(Path(folder) / "meta.json", what="output")
            with folder_lock(folder, command=command):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def _fingerprint(tensors: Iterable[torch.Tensor | np.ndarray]) -> str:
    h = hashlib.sha1()
    for t in tensors:
        if isinstance(t, torch.Tensor):
            t = t.detach().to("cpu").contiguous()
            h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
            h.update(
                t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes()
            )
        else:
            a = np.ascontiguousarray(t)
            h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def grid_signature(
    settings: GridSettings,
    *,
    dirs: Sequence[Params],
    base: Params,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable,
) -> dict[str, Any]:
    """What a folder's result must have been computed with to be resumed (``meta["signature"]``)."""
    settings_part = settings.to_dict()
    return {
        "axes": settings_part["axes"],
        "directions": _fingerprint([t for d in dirs for n in sorted(d) for t in (d[n],)]),
        "direction_names": [sorted(d) for d in dirs],
        "center": _fingerprint([base[n] for n in sorted(base)]),
        "data": _fingerprint([t for b in batches for t in b]),
        "samples": int(sum(len(b[1]) for b in batches)),
        "mode": settings_part["mode"],
        "recompute_bn": settings_part["recompute_bn"],
        "loss_fn": getattr(loss_fn, "__name__", type(loss_fn).__name__),
    }


def resume_surface(
    out: Path | None, axes: Sequence[np.ndarray], signature: dict[str, Any], *, force: bool
) -> Surface:
    """The finished points in ``out`` computed with ``signature``; an empty surface otherwise.

    Raises :class:`~sharpscope.errors.SharpscopeError` when ``out`` holds a result of
    other settings and ``force`` is false.
    """
    surface = Surface.empty(axes)
    if out is None or not ((out / "surface.npz").exists() or (out / "meta.json").exists()):
        return surface
    try:
        old, digests = Surface.load(out, with_digests=True)
        if not (out / "meta.json").is_file():
            raise SurfaceFileError(f"{out / 'meta.json'} is missing")
    except SurfaceFileError as exc:
        _notice(f"{exc}; recomputing the surface in {out}")
        return surface
    kind, saved = old.meta.get("format"), old.meta.get("signature")
    if kind == "sharpscope-slices":  # another command's result, not damage
        diff = ["format"]
    elif kind != SURFACE_FORMAT or not isinstance(saved, dict):
        _notice(f"{out / 'meta.json'} is damaged; recomputing the surface in {out}")
        return surface
    else:
        diff = [k for k in signature if saved.get(k) != signature[k]]
    if diff:
        if not force:
            raise SharpscopeError(
                f"{out} holds a result computed with other settings ({', '.join(diff)} "
                "differ); use another output folder or --force to overwrite"
            )
        return surface
    if old.shape != surface.shape or not all(
        np.array_equal(a, b) for a, b in zip(old.axes, axes, strict=True)
    ):
        _notice(f"{out / 'surface.npz'} has damaged axes; recomputing the surface")
        return surface
    dropped = old.verify(digests)
    if dropped:
        _notice(
            f"{dropped} point(s) in {out / 'surface.npz'} failed their checksum; recomputing them"
        )
    elapsed = old.meta.get("elapsed_s")
    ok = isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool)
    old.meta = {"elapsed_s": float(elapsed)} if ok and math.isfinite(elapsed) else {}
    return old
