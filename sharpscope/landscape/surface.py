"""The result of a grid: :class:`Surface`, its file (``surface.npz`` + ``meta.json``) and checksums.

Points computed together form a chunk; each chunk's sha256 over its indices, losses
and accuracies is stored beside the arrays, so a resumed run trusts exactly the
points whose chunk still matches (:meth:`Surface.verify`) and recomputes the rest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SharpscopeError
from ..runtime.files import atomic_savez, atomic_write_json

__all__ = ["SURFACE_FORMAT", "Surface", "SurfaceFileError", "grid_axis"]

SURFACE_FORMAT = "sharpscope-surface"


def grid_axis(start: float, stop: float, num: int) -> np.ndarray:
    """``num`` evenly spaced coordinates from ``start`` to ``stop`` inclusive (float64)."""
    return np.linspace(float(start), float(stop), int(num))


@dataclass
class Surface:
    """A 1D or 2D loss surface.

    Attributes:
        axes: the coordinates along each direction (``len(axes)`` is the dimension).
        loss, accuracy: arrays of shape ``tuple(len(a) for a in axes)``; entry
            ``[i, j]`` is the point ``center + axes[0][i] d1 + axes[1][j] d2``. NaN where
            not computed yet; a diverged point keeps its NaN/Inf loss.
        done: boolean mask of the computed points.
        meta: settings, signature, method, timings.
    """

    axes: list[np.ndarray]
    loss: np.ndarray
    accuracy: np.ndarray
    done: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    chunk: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.chunk is None:  # points computed together share a chunk id (-1: not done)
            self.chunk = np.where(self.done, 0, -1).astype(np.int64)

    @classmethod
    def empty(cls, axes: Sequence[np.ndarray], meta: dict[str, Any] | None = None) -> Surface:
        axes = [np.asarray(a, dtype=np.float64).reshape(-1) for a in axes]
        shape = tuple(len(a) for a in axes)
        return cls(
            axes,
            np.full(shape, np.nan),
            np.full(shape, np.nan),
            np.zeros(shape, dtype=bool),
            dict(meta or {}),
        )

    def _digest(self, idx: np.ndarray) -> bytes:
        """sha256 of one chunk: its flat indices, losses and accuracies."""
        h = hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.loss.reshape(-1)[idx], dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.accuracy.reshape(-1)[idx], dtype=np.float64).tobytes())
        return h.digest()

    def _digests(self) -> np.ndarray:
        flat = self.chunk.reshape(-1)  # type: ignore[union-attr]
        n = int(flat.max()) + 1 if flat.size else 0
        out = np.zeros((n, 32), dtype=np.uint8)
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(n + 1))
        for k in range(n):
            idx = np.sort(order[bounds[k] : bounds[k + 1]])
            if len(idx):
                out[k] = np.frombuffer(self._digest(idx), dtype=np.uint8)
        return out

    def verify(self, digests: np.ndarray) -> int:
        """Keep only the points whose chunk checksum matches; returns how many were dropped.

        A point marked done without a chunk, in a chunk whose sha256 does not match the
        stored one, or with a NaN loss is not finished: it is recomputed.
        """
        flat_chunk = self.chunk.reshape(-1)  # type: ignore[union-attr]
        flat_done = self.done.reshape(-1)
        claimed = flat_done | (flat_chunk >= 0)
        ok = np.zeros(flat_chunk.shape, dtype=bool)
        for k in np.unique(flat_chunk[flat_chunk >= 0]):
            idx = np.flatnonzero(flat_chunk == k)
            if k < len(digests) and self._digest(idx) == bytes(digests[k]):
                ok[idx] = True
        ok &= flat_done
        dropped = int((claimed & ~ok).sum())
        ok &= ~np.isnan(self.loss.reshape(-1))
        self.done = ok.reshape(self.done.shape)
        self.chunk = np.where(self.done, self.chunk, -1).astype(np.int64)
        self.loss = np.where(self.done, self.loss, np.nan)
        self.accuracy = np.where(self.done, self.accuracy, np.nan)
        return dropped

    @property
    def dims(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def center_index(self) -> tuple[int, ...] | None:
        """Index of the grid point at the origin (every coordinate 0), if the grid has one."""
        idx = []
        for a in self.axes:
            hits = np.flatnonzero(np.abs(a) <= 1e-12 * max(1.0, float(np.abs(a).max())))
            if len(hits) == 0:
                return None
            idx.append(int(hits[0]))
        return tuple(idx)

    def value_at_center(self, which: str = "loss") -> float | None:
        idx = self.center_index()
        if idx is None or not self.done[idx]:
            return None
        return float(getattr(self, which)[idx])

    def summary(self) -> dict[str, Any]:
        """Headline numbers: centre loss/accuracy, minimum, points done, non-finite count."""
        finite = np.isfinite(self.loss) & self.done
        out: dict[str, Any] = {
            "dims": self.dims,
            "shape": list(self.shape),
            "points_done": int(self.done.sum()),
            "points_total": int(self.done.size),
            "nonfinite_points": int((self.done & ~np.isfinite(self.loss)).sum()),
            "center_loss": self.value_at_center("loss"),
            "center_accuracy": self.value_at_center("accuracy"),
            "min_loss": float(self.loss[finite].min()) if finite.any() else None,
            "max_loss": float(self.loss[finite].max()) if finite.any() else None,
        }
        if finite.any():
            i = np.unravel_index(np.argmin(np.where(finite, self.loss, np.inf)), self.shape)
            out["argmin"] = [float(a[k]) for a, k in zip(self.axes, i, strict=True)]
        return out

    def save(self, out_dir: str | Path) -> Path:
        """Write ``surface.npz`` (``x``, ``y`` for 2D, ``loss``, ``accuracy``, ``done``) and ``meta.json``."""
        out = Path(out_dir)
        arrays = {
            "x": self.axes[0],
            "loss": self.loss,
            "accuracy": self.accuracy,
            "done": self.done,
            "chunk": self.chunk,
            "digests": self._digests(),
        }
        if self.dims > 1:
            arrays["y"] = self.axes[1]
        atomic_savez(out / "surface.npz", **arrays)
        meta = {
            **self.meta,
            "format": SURFACE_FORMAT,
            "version": 2,
            "dims": self.dims,
            "shape": list(self.shape),
            "points_done": int(self.done.sum()),
            "points_total": int(self.done.size),
            "complete": self.complete,
        }
        atomic_write_json(out / "meta.json", meta)
        return out

    @classmethod
    def load(cls, out_dir: str | Path, *, with_digests: bool = False) -> Any:
        """Read a surface written by :meth:`save`, checking every array.

        Raises :class:`SurfaceFileError` (a :class:`SharpscopeError`) for a missing,
        truncated, non-zip, pickled or inconsistent ``surface.npz`` or a damaged
        ``meta.json``. With ``with_digests`` returns ``(surface, digests)``; the caller
        checks them with :meth:`verify`.
        """
        out = Path(out_dir)
        npz = out / "surface.npz"
        if not npz.is_file():
            raise SurfaceFileError(f"no surface.npz in {out}")
        meta = _read_meta(out / "meta.json") if (out / "meta.json").exists() else {}
        try:
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001 - any damage is the same cache miss
            raise SurfaceFileError(
                f"{npz} is not a readable surface file ({type(exc).__name__})"
            ) from None
        missing = [k for k in ("x", "loss", "accuracy", "done") if k not in arrays]
        if missing:
            raise SurfaceFileError(f"{npz} lacks {', '.join(missing)}")
        axes = [arrays["x"]] + ([arrays["y"]] if "y" in arrays else [])
        for a in axes:
            if a.ndim != 1 or a.size == 0 or a.dtype.kind != "f" or not np.isfinite(a).all():
                raise SurfaceFileError(f"{npz} has a damaged axis")
        shape = tuple(len(a) for a in axes)
        for k, kind in (("loss", "f"), ("accuracy", "f"), ("done", "b")):
            if arrays[k].shape != shape or arrays[k].dtype.kind != kind:
                raise SurfaceFileError(
                    f"{npz}: {k} has shape {list(arrays[k].shape)} and dtype "
                    f"{arrays[k].dtype.str} where the axes make {list(shape)}"
                )
        chunk = arrays.get("chunk")
        digests = arrays.get("digests")
        if chunk is None or digests is None:  # written without checksums: nothing is trusted
            chunk, digests = np.full(shape, -1, dtype=np.int64), np.zeros((0, 32), np.uint8)
        if chunk.shape != shape or chunk.dtype.kind not in "iu":
            raise SurfaceFileError(f"{npz}: the chunk array does not fit the grid")
        if digests.ndim != 2 or digests.shape[1] != 32 or digests.dtype != np.uint8:
            raise SurfaceFileError(f"{npz}: the checksums are damaged")
        surface = cls(
            [np.asarray(a, dtype=np.float64) for a in axes],
            arrays["loss"].astype(np.float64),
            arrays["accuracy"].astype(np.float64),
            arrays["done"].astype(bool),
            meta,
            chunk.astype(np.int64),
        )
        return (surface, digests) if with_digests else surface


class SurfaceFileError(SharpscopeError):
    """A ``surface.npz`` or ``meta.json`` that cannot be trusted (damaged or forged)."""


_META_LIMIT = 64 * 2**20


def _read_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` as a dict; anything else (binary, not an object, too deep) is damage."""
    try:
        if path.stat().st_size > _META_LIMIT:
            raise SurfaceFileError(f"{path} is too large to be a surface's meta.json")
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except SurfaceFileError:
        raise
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON/UTF-8/huge ints
        raise SurfaceFileError(f"{path} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(meta, dict):
        raise SurfaceFileError(f"{path} does not hold a JSON object")
    return meta
