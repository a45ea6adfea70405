"""The grid engine: loss and accuracy at ``theta + a d1 (+ b d2)`` on a 1D or 2D grid.

Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets", ``plot_surface.py``)
set the weights, evaluate the data, and move to the next point. :func:`evaluate_grid`
computes the same numbers but

* batches grid points: several points share one pass over each data batch through
  :func:`torch.func.functional_call` under :func:`torch.func.vmap`, the chunk size
  chosen from free GPU memory; where that does not pay (the CPU, where vmap over
  points measured 6.5x slower than the loop) or the model cannot be vmapped, it
  evaluates one point at a time, with the same numbers (:mod:`.points`; in eval mode
  on the CPU, conv models run channels-last with BatchNorm folded, :mod:`.fast`);
* is incremental and resumable: with ``out_dir`` the surface is written atomically
  (``surface.npz`` + ``meta.json``, :mod:`.surface`) after every chunk, and calling it
  again with the same settings computes only the missing points (:mod:`.resume`);
* never crashes on a diverging point: NaN/Inf losses are stored as they are.

Parameters are addressed by NAME; BatchNorm running statistics are buffers and stay
the centre model's unless a direction names them (interpolation does) or
``recompute_bn=True`` re-estimates them at each point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SharpscopeError
from ..runtime.batches import signature_view
from ..runtime.distributed import current
from ..runtime.functional import preserved, probe_mode
from ..runtime.progress import progress
from .fast import FastLoop
from .points import (
    Batch,
    Params,
    _point_params,
    _tensors_of,
    auto_chunk,
    eval_chunk_loop,
    eval_chunk_vmap,
    evaluate_point,
)
from .resume import _notice, grid_signature, locks_output, resume_surface
from .settings import GridSettings
from .surface import SURFACE_FORMAT, Surface, SurfaceFileError, grid_axis

__all__ = [
    "Surface",
    "SurfaceFileError",
    "GridSettings",
    "evaluate_grid",
    "evaluate_point",
    "grid_axis",
    "locks_output",
    "SURFACE_FORMAT",
]

_ESTIMATE_FROM = 64  # points to compute before a time estimate is worth one extra evaluation
WARN_AFTER_S = 3600.0
_VMAP_ERRORS = (RuntimeError, NotImplementedError, TypeError, ValueError)


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
    progress_label: str = "loss surface",
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
        batches: iterable of batches on the model's device, ``(x, y)``, ``(mapping, y)`` or
            mappings (iterated once per point/chunk; see :mod:`sharpscope.runtime.batches`).
        directions: one dict per axis, ``{name: tensor}`` over parameters (or floating
            buffers) of ``model``; names a direction lacks do not move along it.
        axes: the coordinates along each direction (1 or 2 axes).
        center: the origin ``{name: tensor}`` (default: the model's current parameters;
            names it lacks come from the model).
        out_dir: folder for ``surface.npz`` + ``meta.json``, written atomically after
            each chunk; existing results with the same settings are resumed.
        metadata: extra plain data stored in ``meta.json`` (not compared on resume).
        on_chunk: called with the surface after each saved chunk (progress hooks; an
            exception raised there stops the run with the finished chunks kept).
        progress_label: the progress bar's label (e.g. ``direction 3/20``).
        mode, method, quiet, chunk_size, recompute_bn, force: see :class:`GridSettings`
            (``method="auto"`` is vmap on CUDA and the loop on the CPU, measured faster
            there; a model that cannot be vmapped falls back to the loop; ``chunk_size``
            defaults to free memory for vmap and about 5% of the grid for the loop).

    Distributed (``torchrun``, see :mod:`sharpscope.distributed`): every rank passes the
    same arguments; the missing points are dealt to the ranks chunk by chunk, gathered
    after every round, and every rank returns the whole surface. Rank 0 alone reads
    and writes ``out_dir``.

    Raises:
        SharpscopeError: bad axes, directions that do not fit the model, settings that
            differ from an existing ``out_dir`` (unless ``force``).
    """
    settings = GridSettings(
        axes=tuple(axes),
        mode=mode,
        method=method,
        chunk_size=chunk_size,
        recompute_bn=recompute_bn,
        force=force,
        quiet=quiet,
    )
    batches = list(batches)
    if not batches:
        raise SharpscopeError("no data: the batch iterable is empty")
    own = _checked_tensors(model, directions, center, settings.dims)
    with preserved(model):
        base, dirs = _origin_and_directions(own, directions, center)
        device = next(iter(own.values())).device
        run = _Run(
            model, loss_fn, batches, base, dirs, settings, current(), out_dir, on_chunk, device,
            progress_label,
        )  # fmt: skip
        seen = [signature_view(b) for b in batches]  # (x, y) pairs as they are
        signature = grid_signature(settings, dirs=dirs, base=base, batches=seen, loss_fn=loss_fn)
        surface = _start_surface(run, signature, metadata, own)
        _compute(run, surface)
    return surface


@dataclass
class _Run:
    """Everything one grid evaluation works with, once validated."""

    model: nn.Module
    loss_fn: Callable
    batches: list[Batch]
    base: Params
    dirs: list[Params]
    settings: GridSettings
    ctx: Any  # the distributed context, or None
    out_dir: str | Path | None
    on_chunk: Callable[[Surface], None] | None
    device: torch.device
    progress_label: str = "loss surface"
    fast: FastLoop | None = None  # the faster per-point loop, made on first use

    @property
    def out(self) -> Path | None:
        return Path(self.out_dir) if self.out_dir is not None else None


def _checked_tensors(
    model: nn.Module,
    directions: Sequence[dict[str, torch.Tensor]],
    center: dict[str, torch.Tensor] | None,
    dims: int,
) -> dict[str, torch.Tensor]:
    """The model's parameters and floating buffers, after checking directions and centre fit."""
    if len(directions) != dims:
        raise SharpscopeError(
            f"{len(directions)} direction(s) for {dims} axis/axes: give one per axis"
        )
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
    return own


def _origin_and_directions(
    own: dict[str, torch.Tensor],
    directions: Sequence[dict[str, torch.Tensor]],
    center: dict[str, torch.Tensor] | None,
) -> tuple[Params, list[Params]]:
    """The centre of every moving tensor and the directions, on the model's device and dtypes."""
    device = next(iter(own.values())).device
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
    return base, dirs


def _start_surface(
    run: _Run, signature: dict[str, Any], metadata: dict | None, own: dict[str, torch.Tensor]
) -> Surface:
    """The resumed (or empty) surface with this run's meta; rank 0 reads the folder."""
    axes = [np.array(a) for a in run.settings.axes]

    def resumed() -> Surface:
        return resume_surface(run.out, axes, signature, force=run.settings.force)

    surface = run.ctx.run_on_main(resumed) if run.ctx is not None else resumed()
    ref = next(iter(own.values()))
    surface.meta.setdefault("elapsed_s", 0.0)
    surface.meta.update(
        {
            "signature": signature,
            "metadata": dict(metadata or {}),
            "device": str(ref.device),
            "dtype": str(ref.dtype),
        }
    )
    return surface


def _compute(run: _Run, surface: Surface) -> None:
    """Evaluate the missing points chunk by chunk, saving after every chunk."""
    s = run.settings
    todo = np.flatnonzero(~surface.done.reshape(-1))
    grid = np.stack(np.meshgrid(*s.axes, indexing="ij"), axis=-1).reshape(-1, s.dims)
    chosen = s.method_for(run.device.type)
    with probe_mode(run.model, s.mode), torch.no_grad():
        if len(todo) >= _ESTIMATE_FROM and not _quiet_estimate(run.ctx):
            _warn_if_long(run, len(todo))
    started = time.perf_counter()
    with probe_mode(run.model, s.mode), torch.no_grad():
        size = _chunk_size(run, chosen, surface, todo)
        surface.meta.update({"method": chosen, "chunk_size": int(size)})
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        world = run.ctx.world_size if run.ctx is not None else 1
        rounds = [chunks[i : i + world] for i in range(0, len(chunks), world)]
        for group in progress(rounds, desc=run.progress_label, quiet=s.quiet, unit="chunk"):
            chosen = _run_round(run, surface, group, grid, chosen)
            now = time.perf_counter()
            surface.meta["elapsed_s"] = float(surface.meta.get("elapsed_s", 0.0)) + now - started
            started = now
            if run.out is not None:
                surface.save(run.out)
            if run.on_chunk is not None:
                run.on_chunk(surface)
    if run.out is not None:
        surface.save(run.out)


def _chunk_size(run: _Run, chosen: str, surface: Surface, todo: np.ndarray) -> int:
    """Points per chunk: given, from free memory (vmap), or about 5% of the grid (loop)."""
    size = run.settings.chunk_size
    if size is None:
        if chosen == "vmap" and len(todo):
            size = auto_chunk(run.model, run.loss_fn, run.batches, run.base, run.device)
        else:
            size = max(1, min(64, math.ceil(surface.done.size / 20)))
    if run.ctx is not None:  # free memory differs between GPUs: rank 0's chunk for all
        size = int(run.ctx.broadcast_object(size))
    return int(size)


def _run_round(
    run: _Run, surface: Surface, group: list[np.ndarray], grid: np.ndarray, chosen: str
) -> str:
    """Each rank evaluates its chunk of the round; everyone stores every rank's points."""
    rank = run.ctx.rank if run.ctx is not None else 0
    chunk = group[rank] if rank < len(group) else group[0][:0]
    losses, accs, chosen = _eval_chunk(run, grid[chunk], chosen, surface.meta)
    parts = [(chunk, losses, accs)]
    if run.ctx is not None:  # every rank gets every rank's points
        parts = run.ctx.all_gather_object((chunk, losses, accs))
    flat_loss, flat_acc = surface.loss.reshape(-1), surface.accuracy.reshape(-1)
    flat_done = surface.done.reshape(-1)
    flat_chunk = surface.chunk.reshape(-1)  # type: ignore[union-attr]
    for idx, lo, ac in parts:
        if len(idx):
            flat_chunk[idx] = int(flat_chunk.max()) + 1
        flat_loss[idx], flat_acc[idx], flat_done[idx] = lo, ac, True
    return chosen


def _eval_chunk(
    run: _Run, coefs: np.ndarray, chosen: str, meta: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, str]:
    """Losses and accuracies of one chunk; vmap falls back to the loop (noted in ``meta``)."""
    losses: Any = []
    accs: Any = []
    if chosen == "vmap" and len(coefs):
        try:
            losses, accs = eval_chunk_vmap(
                run.model, run.loss_fn, run.batches, run.base, run.dirs, coefs
            )
        except _VMAP_ERRORS as exc:
            chosen = "loop"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            meta.update({"method": "loop", "vmap_fallback": first[:200]})
    if chosen == "loop" and _fast_applies(run):
        if run.fast is None:
            run.fast = FastLoop(run.model, run.loss_fn, run.batches, run.base, run.dirs)

        def plain(coef: list[float]) -> tuple[float, float]:
            p = _point_params(run.base, run.dirs, coef)
            return evaluate_point(run.model, run.loss_fn, run.batches, p)

        losses, accs = run.fast.chunk(coefs, plain)
    elif chosen == "loop":
        losses, accs = eval_chunk_loop(
            run.model,
            run.loss_fn,
            run.batches,
            run.base,
            run.dirs,
            coefs,
            recompute_bn=run.settings.recompute_bn,
        )
    losses = np.asarray(losses, dtype=np.float64)
    accs = np.asarray(accs, dtype=np.float64)
    accs[~np.isfinite(losses)] = np.nan
    return losses, accs, chosen


def _fast_applies(run: _Run) -> bool:
    """The faster loop (:mod:`.fast`): eval mode, running statistics as they are, CPU convs."""
    s = run.settings
    if s.mode != "eval" or s.recompute_bn:
        return False
    return FastLoop.pays(run.model, run.device, run.batches)


def _quiet_estimate(ctx: Any) -> bool:
    return ctx is not None and not ctx.is_main


def _warn_if_long(run: _Run, todo: int) -> None:
    """One stderr line when the measured time of one point times the points left is hours."""
    device = run.device
    t0 = time.perf_counter()
    evaluate_point(run.model, run.loss_fn, run.batches, run.base)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    per_point = (time.perf_counter() - t0) * (2.0 if run.settings.recompute_bn else 1.0)
    total = per_point * todo
    if total > WARN_AFTER_S:
        _notice(
            f"{todo:,} grid points at about {per_point:.3g} s each (measured on {device}) will "
            f"take about {total / 3600:.1f} h; fewer points or --samples make it shorter"
        )
