"""The grid engine: loss and accuracy at ``theta + a d1 (+ b d2)`` on a 1D or 2D grid.

Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets", ``plot_surface.py``)
set the weights, evaluate the data, and move to the next point. :func:`evaluate_grid`
computes the same numbers but

* batches grid points: several points share one pass over each data batch through
  :func:`torch.func.functional_call` under :func:`torch.func.vmap`, the chunk size
  chosen from free GPU memory; where that does not pay (the CPU, where vmap over
  points measured 6.5x slower than the loop) or the model cannot be vmapped, it
  evaluates one point at a time, with the same numbers;
* is incremental and resumable: with ``out_dir`` the surface is written atomically
  (``surface.npz`` + ``meta.json``) after every chunk, and calling it again with the
  same settings computes only the missing points;
* never crashes on a diverging point: NaN/Inf losses are stored as they are.

Parameters are addressed by NAME; BatchNorm running statistics are buffers and stay
the centre model's unless a direction names them (interpolation does) or
``recompute_bn=True`` re-estimates them at each point.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from .._func import preserved, probe_mode
from ..distributed import current
from ..errors import SharpscopeError
from ..utils import atomic_savez, atomic_write_json, check_writable, folder_lock, progress

__all__ = [
    "Surface",
    "SurfaceFileError",
    "evaluate_grid",
    "evaluate_point",
    "grid_axis",
    "locks_output",
    "SURFACE_FORMAT",
]

SURFACE_FORMAT = "sharpscope-surface"
Batch = tuple[torch.Tensor, torch.Tensor]
Params = dict[str, torch.Tensor]
_BN = nn.modules.batchnorm._BatchNorm
F = TypeVar("F", bound=Callable[..., Any])


def grid_axis(start: float, stop: float, num: int) -> np.ndarray:
    """``num`` evenly spaced coordinates from ``start`` to ``stop`` inclusive (float64)."""
    return np.linspace(float(start), float(stop), int(num))


# ----------------------------------------------------------------------------- Surface
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


def _notice(message: str) -> None:
    print(f"notice: {' '.join(message.split())}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- helpers
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


def _is_classification(out: torch.Tensor, y: torch.Tensor) -> bool:
    return out.ndim == 2 and y.ndim == 1 and not y.is_floating_point() and len(y) == out.shape[0]


def _tensors_of(model: nn.Module) -> dict[str, torch.Tensor]:
    named = dict(model.named_parameters())
    for n, b in model.named_buffers():
        if b.is_floating_point():
            named[n] = b
    return named


def _point_params(center: Params, dirs: Sequence[Params], coef: Sequence[float]) -> Params:
    out = dict(center)
    for n in {k for d in dirs for k in d}:
        v = center[n]
        for c, d in zip(coef, dirs, strict=True):
            if n in d and c != 0.0:
                v = v + c * d[n]
        out[n] = v
    return out


def evaluate_point(
    model: nn.Module, loss_fn: Callable, batches: Sequence[Batch], params: Params | None = None
) -> tuple[float, float]:
    """Sample-weighted mean loss and accuracy of ``model`` (with ``params`` swapped in) over ``batches``.

    Runs under the model's current mode and no grad; accuracy is NaN for
    non-classification outputs.
    """
    total = correct = None
    n = 0
    cls = True
    with torch.no_grad():
        for x, y in batches:
            out = model(x) if params is None else functional_call(model, params, (x,), strict=False)
            loss = loss_fn(out, y).double() * len(y)
            total = loss if total is None else total + loss
            if cls and _is_classification(out, y):
                c = (out.argmax(-1) == y).sum()
                correct = c if correct is None else correct + c
            else:
                cls = False
            n += len(y)
    acc = float(correct) / n if (cls and correct is not None) else math.nan
    return float(total) / n, acc


def _auto_chunk(
    model: nn.Module,
    loss_fn: Callable,
    batches: Sequence[Batch],
    center: Params,
    device: torch.device,
) -> int:
    """Points per vmap pass: from free memory on CUDA, a conservative 8 elsewhere."""
    if device.type != "cuda":
        return 8
    torch.cuda.synchronize(device)
    free, _ = torch.cuda.mem_get_info(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    x, y = max(batches, key=lambda b: len(b[1]))
    with torch.no_grad():
        loss_fn(functional_call(model, center, (x,), strict=False), y)
    torch.cuda.synchronize(device)
    act = max(torch.cuda.max_memory_allocated(device) - base, 1)
    param_bytes = sum(t.numel() * t.element_size() for t in center.values())
    per_point = 2 * act + param_bytes
    return int(max(1, min(256, (0.5 * free) // per_point)))


# ----------------------------------------------------------------------------- engine
@locks_output("grid", key="out_dir")
def evaluate_grid(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch],
    directions: Sequence[dict[str, torch.Tensor]],
    axes: Sequence[np.ndarray],
    *,
    center: dict[str, torch.Tensor] | None = None,
    mode: str = "eval",
    method: str = "auto",
    out_dir: str | Path | None = None,
    quiet: bool = False,
    metadata: dict | None = None,
    chunk_size: int | None = None,
    recompute_bn: bool = False,
    force: bool = False,
    on_chunk: Callable[[Surface], None] | None = None,
) -> Surface:
    """Loss and accuracy on the grid ``center + sum_i axes[i][k_i] * directions[i]``.

    The loss of a point is the sample-weighted mean of ``loss_fn`` over all
    ``batches`` (the same number as evaluating the whole data at once); accuracy is
    the fraction of argmax hits (NaN for non-classification outputs). This is the
    computation of Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"
    (``plot_surface.crunch``), batched over points.

    Args:
        model: any ``nn.Module``; left exactly as it was (mode, weights, buffers, grads).
        loss_fn: ``loss_fn(output, y) -> mean loss``.
        batches: iterable of ``(x, y)`` on the model's device (iterated once per point/chunk).
        directions: one dict per axis, ``{name: tensor}`` over parameters (or floating
            buffers) of ``model``; names a direction lacks do not move along it.
        axes: the coordinates along each direction (1 or 2 axes).
        center: the origin ``{name: tensor}`` (default: the model's current parameters;
            names it lacks come from the model).
        mode: ``eval`` (default) or ``train`` (batch statistics, running stats frozen).
        method: ``vmap`` (several points per pass), ``loop`` (one point at a time) or
            ``auto``: vmap on CUDA, the loop on the CPU (measured faster there); a model
            that cannot be vmapped falls back to the loop. Both give the same numbers.
        out_dir: folder for ``surface.npz`` + ``meta.json``, written atomically after
            each chunk; existing results with the same settings are resumed.

    Distributed (``torchrun``, see :mod:`sharpscope.distributed`): every rank passes the
    same arguments; the missing points are dealt to the ranks chunk by chunk, gathered
    after every round, and every rank returns the whole surface. Rank 0 alone reads
    and writes ``out_dir``.
        quiet: no progress bar.
        metadata: extra plain data stored in ``meta.json`` (not compared on resume).
        chunk_size: points per chunk (default: from free memory for vmap; about 5% of
            the grid for the loop).
        recompute_bn: re-estimate BatchNorm running statistics at every point with one
            extra train-mode pass over ``batches`` (cumulative average); doubles the
            cost and forces the loop. Only with ``mode="eval"``.
        force: discard existing results in ``out_dir`` whose settings differ.
        on_chunk: called with the surface after each saved chunk (progress hooks; an
            exception raised there stops the run with the finished chunks kept).

    Returns:
        the :class:`Surface`.

    Raises:
        SharpscopeError: bad axes, directions that do not fit the model, settings that
            differ from an existing ``out_dir`` (unless ``force``).
    """
    if method not in ("auto", "vmap", "loop"):
        raise SharpscopeError(f"unknown method {method!r}: choose auto, vmap or loop")
    if mode not in ("eval", "train"):
        raise SharpscopeError(f"mode must be 'eval' or 'train', got {mode!r}")
    if recompute_bn and mode != "eval":
        raise SharpscopeError(
            "recompute_bn re-estimates running statistics for eval mode; use mode='eval'"
        )
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise SharpscopeError(f"chunk size must be at least 1, got {chunk_size}")
    batches = list(batches)
    if not batches:
        raise SharpscopeError("no data: the batch iterable is empty")
    axes = [np.asarray(a, dtype=np.float64).reshape(-1) for a in axes]
    if len(axes) not in (1, 2):
        raise SharpscopeError(f"a grid has 1 or 2 axes, got {len(axes)}")
    if len(directions) != len(axes):
        raise SharpscopeError(
            f"{len(directions)} direction(s) for {len(axes)} axis/axes: give one per axis"
        )
    for i, a in enumerate(axes):
        if a.size == 0 or not np.isfinite(a).all():
            raise SharpscopeError(f"axis {i} must hold at least one finite coordinate")
    _check_size(axes)
    own = _tensors_of(model)
    for i, d in enumerate(directions):
        for n, t in d.items():
            if n not in own:
                raise SharpscopeError(
                    f"direction {i} names {n!r}, which is not a parameter or buffer of the model"
                )
            if tuple(t.shape) != tuple(own[n].shape):
                raise SharpscopeError(
                    f"direction {i}: {n!r} has shape {list(t.shape)} but the model's is "
                    f"{list(own[n].shape)}"
                )
    for n, t in (center or {}).items():
        if n not in own or tuple(t.shape) != tuple(own[n].shape):
            raise SharpscopeError(f"center entry {n!r} does not match the model")
    ref = next(iter(own.values()))
    device, dtype = ref.device, ref.dtype

    with preserved(model):
        names = list(dict.fromkeys([n for d in directions for n in d] + list(center or {})))
        # a copy, never a view: recompute_bn writes each point into the model's own
        # tensors, and a centre sharing their storage would drift with every point
        base = {
            n: (center[n] if center and n in center else own[n])
            .detach()
            .to(device, own[n].dtype, copy=True)
            for n in names
        }
        dirs = [{n: t.detach().to(device, own[n].dtype) for n, t in d.items()} for d in directions]
        signature = {
            "axes": [a.tolist() for a in axes],
            "directions": _fingerprint([t for d in dirs for n in sorted(d) for t in (d[n],)]),
            "direction_names": [sorted(d) for d in dirs],
            "center": _fingerprint([base[n] for n in sorted(base)]),
            "data": _fingerprint([t for b in batches for t in b]),
            "samples": int(sum(len(b[1]) for b in batches)),
            "mode": mode,
            "recompute_bn": bool(recompute_bn),
            "loss_fn": getattr(loss_fn, "__name__", type(loss_fn).__name__),
        }
        out = Path(out_dir) if out_dir is not None else None

        def resumed() -> Surface:
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
                    f"{dropped} point(s) in {out / 'surface.npz'} failed their checksum; "
                    "recomputing them"
                )
            elapsed = old.meta.get("elapsed_s")
            ok = isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool)
            old.meta = {"elapsed_s": float(elapsed)} if ok and math.isfinite(elapsed) else {}
            return old

        # distributed: rank 0 owns the files and decides what is done; points are dealt out
        ctx = current()
        surface = ctx.run_on_main(resumed) if ctx is not None else resumed()
        surface.meta.setdefault("elapsed_s", 0.0)
        surface.meta.update(
            {
                "signature": signature,
                "metadata": dict(metadata or {}),
                "device": str(device),
                "dtype": str(dtype),
            }
        )

        todo = np.flatnonzero(~surface.done.reshape(-1))
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
        chosen = method
        if method == "auto":
            chosen = "vmap" if device.type == "cuda" and not recompute_bn else "loop"
        if recompute_bn and chosen == "vmap":
            raise SharpscopeError(
                "recompute_bn needs method='loop' (running statistics are re-estimated per point)"
            )
        with probe_mode(model, mode), torch.no_grad():
            if len(todo) >= _ESTIMATE_FROM and not _quiet_estimate(ctx):
                _warn_if_long(model, loss_fn, batches, base, len(todo), device, recompute_bn)
        started = time.perf_counter()
        with probe_mode(model, mode), torch.no_grad():
            if chunk_size is None:
                if chosen == "vmap" and len(todo):
                    chunk_size = _auto_chunk(model, loss_fn, batches, base, device)
                else:
                    chunk_size = max(1, min(64, math.ceil(surface.done.size / 20)))
            if chunk_size < 1:
                raise SharpscopeError(f"chunk size must be at least 1, got {chunk_size}")
            if ctx is not None:  # free memory differs between GPUs: rank 0's chunk for all
                chunk_size = int(ctx.broadcast_object(chunk_size))
            surface.meta.update({"method": chosen, "chunk_size": int(chunk_size)})
            chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
            flat_loss, flat_acc = surface.loss.reshape(-1), surface.accuracy.reshape(-1)
            flat_done = surface.done.reshape(-1)
            world = ctx.world_size if ctx is not None else 1
            rounds = [chunks[i : i + world] for i in range(0, len(chunks), world)]
            for group in progress(rounds, desc="loss surface", quiet=quiet, unit="chunk"):
                rank = ctx.rank if ctx is not None else 0
                chunk = group[rank] if rank < len(group) else todo[:0]
                coefs = grid[chunk]
                losses, accs = [], []
                if chosen == "vmap" and len(chunk):
                    try:
                        losses, accs = _eval_chunk_vmap(model, loss_fn, batches, base, dirs, coefs)
                    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
                        chosen = "loop"
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                        surface.meta.update({"method": "loop", "vmap_fallback": first[:200]})
                if chosen == "loop":
                    losses, accs = [], []
                    for c in coefs:
                        p = _point_params(base, dirs, [float(v) for v in c])
                        if recompute_bn:
                            lo, ac = _eval_recompute_bn(model, loss_fn, batches, p)
                        else:
                            lo, ac = evaluate_point(model, loss_fn, batches, p)
                        losses.append(lo)
                        accs.append(ac)
                losses = np.asarray(losses, dtype=np.float64)
                accs = np.asarray(accs, dtype=np.float64)
                accs[~np.isfinite(losses)] = np.nan
                parts = [(chunk, losses, accs)]
                if ctx is not None:  # every rank gets every rank's points
                    parts = ctx.all_gather_object((chunk, losses, accs))
                flat_chunk = surface.chunk.reshape(-1)  # type: ignore[union-attr]
                for idx, lo, ac in parts:
                    if len(idx):
                        flat_chunk[idx] = int(flat_chunk.max()) + 1
                    flat_loss[idx], flat_acc[idx], flat_done[idx] = lo, ac, True
                surface.meta["elapsed_s"] = (
                    float(surface.meta.get("elapsed_s", 0.0)) + time.perf_counter() - started
                )
                started = time.perf_counter()
                if out is not None:
                    surface.save(out)
                if on_chunk is not None:
                    on_chunk(surface)
        if out is not None:
            surface.save(out)
    return surface


# result arrays per point: loss, accuracy (float64), done (bool), chunk id (int64), plus
# the float64 coordinates of the flattened grid
_BYTES_PER_POINT = 8 + 8 + 1 + 8
_ESTIMATE_FROM = 64  # points to compute before a time estimate is worth one extra evaluation
WARN_AFTER_S = 3600.0


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_size(axes: Sequence[np.ndarray]) -> None:
    """Refuse, before allocating anything, a grid whose result arrays cannot fit in memory."""
    points = math.prod(len(a) for a in axes)
    need = points * (_BYTES_PER_POINT + 8 * len(axes))
    total = _memory_bytes()
    if total is not None and need > total // 2:
        raise SharpscopeError(
            f"a grid of {points:,} points needs about {need / 2**30:.1f} GiB for its result "
            f"arrays, more than half of this machine's {total / 2**30:.1f} GiB; use fewer points"
        )


def _quiet_estimate(ctx: Any) -> bool:
    return ctx is not None and not ctx.is_main


def _warn_if_long(
    model: nn.Module,
    loss_fn: Callable,
    batches: Sequence[Batch],
    base: Params,
    todo: int,
    device: torch.device,
    recompute_bn: bool,
) -> None:
    """One stderr line when the measured time of one point times the points left is hours."""
    t0 = time.perf_counter()
    evaluate_point(model, loss_fn, batches, base)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_point = (time.perf_counter() - t0) * (2.0 if recompute_bn else 1.0)
    total = per_point * todo
    if total > WARN_AFTER_S:
        _notice(
            f"{todo:,} grid points at about {per_point:.3g} s each (measured on {device}) will "
            f"take about {total / 3600:.1f} h; fewer points or --samples make it shorter"
        )


def _eval_chunk_vmap(
    model: nn.Module,
    loss_fn: Callable,
    batches: Sequence[Batch],
    base: Params,
    dirs: Sequence[Params],
    coefs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    ref = next(iter(base.values()))
    c = torch.as_tensor(coefs, device=ref.device)
    moving = sorted({n for d in dirs for n in d})
    const = {n: t for n, t in base.items() if n not in moving}
    stacked = {}
    for n in moving:
        v = base[n].unsqueeze(0).expand(len(c), *base[n].shape)
        for i, d in enumerate(dirs):
            if n in d:
                v = v + c[:, i].to(d[n].dtype).reshape(-1, *([1] * d[n].dim())) * d[n].unsqueeze(0)
        stacked[n] = v

    def one(p: Params, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = functional_call(model, {**const, **p}, (x,), strict=False)
        loss = loss_fn(out, y)
        if _is_classification(out, y):
            correct = (out.argmax(-1) == y).sum()
        else:
            correct = torch.full((), -1, dtype=torch.long, device=out.device)
        return loss, correct

    fn = vmap(one, in_dims=(0, None, None))
    with warnings.catch_warnings():  # "no batching rule for ...": a fallback, same numbers
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        return _run_vmapped(fn, stacked, batches, len(c), ref.device)


def _run_vmapped(
    fn: Callable, stacked: Params, batches: Sequence[Batch], points: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    total = torch.zeros(points, dtype=torch.float64, device=device)
    correct = torch.zeros(points, dtype=torch.long, device=device)
    n = 0
    cls = True
    for x, y in batches:
        lo, co = fn(stacked, x, y)
        total += lo.double() * len(y)
        if (co < 0).any():
            cls = False
        correct += co
        n += len(y)
    acc = (correct.double() / n).cpu().numpy() if cls else np.full(points, np.nan)
    return (total / n).cpu().numpy(), acc


def _eval_recompute_bn(
    model: nn.Module, loss_fn: Callable, batches: Sequence[Batch], params: Params
) -> tuple[float, float]:
    """Load ``params`` into the model, re-estimate BatchNorm statistics on ``batches``, evaluate."""
    own = _tensors_of(model)
    for n, v in params.items():
        own[n].copy_(v)
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.running_mean is not None]
    saved = [(m.momentum, m.track_running_stats, m.training) for m in bns]
    try:
        for m in bns:
            m.track_running_stats = True
            m.reset_running_stats()
            m.momentum = None
            m.train(True)
        for x, _ in batches:
            model(x)
        for m in bns:
            m.train(False)
        return evaluate_point(model, loss_fn, batches)
    finally:
        for m, (mom, track, training) in zip(bns, saved, strict=True):
            m.momentum, m.track_running_stats, m.training = mom, track, training
