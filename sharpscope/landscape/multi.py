"""Many 1D slices at once: median curve, 10-90% band and curvature along each direction.

One random direction can be lucky. Cutting ``N`` independent directions and
reporting the median with its spread (and the curvature at the centre along each)
keeps one draw from deciding whether a minimum is "flat".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SharpscopeError
from ..runtime.files import atomic_savez, atomic_write_json
from .grid import evaluate_grid
from .points import Batch
from .resume import locks_output
from .surface import Surface

__all__ = ["SliceSet", "center_curvature", "evaluate_slices_1d"]


def center_curvature(x: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """Second derivative of a 1D slice at the origin, two ways.

    Returns:
        ``(finite_difference, fitted)``: the second finite difference over the grid
        points next to ``x == 0`` (non-uniform spacing allowed; NaN if 0 is not a grid
        point or a neighbour is missing or not finite), and ``2 c2`` of the
        least-squares quadratic ``c0 + c1 x + c2 x^2`` over the finite points with
        ``|x| <= max|x| / 2`` (all finite points if fewer than 3 lie there).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    fd = float("nan")
    zero = np.flatnonzero(np.abs(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))
    if len(zero) and 0 < zero[0] < len(x) - 1:
        i = int(zero[0])
        hm, hp = x[i] - x[i - 1], x[i + 1] - x[i]
        ym, y0, yp = y[i - 1], y[i], y[i + 1]
        if np.isfinite([ym, y0, yp]).all():
            fd = float(2.0 * (hm * yp - (hm + hp) * y0 + hp * ym) / (hm * hp * (hm + hp)))
    ok = np.isfinite(y)
    near = ok & (np.abs(x) <= np.abs(x).max() / 2)
    sel = near if near.sum() >= 3 else ok
    fit = float("nan")
    if sel.sum() >= 3:
        c2 = np.polyfit(x[sel], y[sel], 2)[0]
        fit = float(2.0 * c2)
    return fd, fit


@dataclass
class SliceSet:
    """1D slices along ``count`` directions through the same centre."""

    x: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    curvature_fd: np.ndarray
    curvature_fit: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.loss.shape[0])

    def _q(self, a: np.ndarray, q: float) -> np.ndarray:
        b = np.where(np.isfinite(a), a, np.nan)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanquantile(b, q, axis=0)

    @property
    def median(self) -> np.ndarray:
        return self._q(self.loss, 0.5)

    @property
    def q10(self) -> np.ndarray:
        return self._q(self.loss, 0.1)

    @property
    def q90(self) -> np.ndarray:
        return self._q(self.loss, 0.9)

    @property
    def median_accuracy(self) -> np.ndarray:
        return self._q(self.accuracy, 0.5)

    def summary(self) -> dict[str, Any]:
        fd, fit = self.curvature_fd, self.curvature_fit
        med = self.median
        zero = np.flatnonzero(np.abs(self.x) <= 1e-12 * max(1.0, float(np.abs(self.x).max())))
        return {
            "direction_count": self.count,
            "points": int(self.loss.size),
            "center_loss": float(med[zero[0]]) if len(zero) else None,
            "curvature_fd": fd.tolist(),
            "curvature_fit": fit.tolist(),
            "curvature_fd_median": float(np.nanmedian(fd)) if np.isfinite(fd).any() else None,
            "curvature_fit_median": float(np.nanmedian(fit)) if np.isfinite(fit).any() else None,
            "curvature_fit_q10_q90": (
                [float(np.nanquantile(fit, 0.1)), float(np.nanquantile(fit, 0.9))]
                if np.isfinite(fit).any()
                else None
            ),
            "nonfinite_points": int((~np.isfinite(self.loss)).sum()),
        }

    def save(self, out_dir: str | Path) -> Path:
        """``surface.npz`` (x, loss and accuracy of shape directions x points, median, band,
        curvatures) and ``meta.json``."""
        out = Path(out_dir)
        atomic_savez(
            out / "surface.npz",
            x=self.x,
            loss=self.loss,
            accuracy=self.accuracy,
            median=self.median,
            q10=self.q10,
            q90=self.q90,
            curvature_fd=self.curvature_fd,
            curvature_fit=self.curvature_fit,
        )
        atomic_write_json(
            out / "meta.json",
            {**self.meta, "format": "sharpscope-slices", "version": 1, "summary": self.summary()},
        )
        return out


@locks_output("slice", key="out_dir")
def evaluate_slices_1d(
    model: nn.Module,
    loss_fn: Callable,
    batches: Iterable[Batch],
    directions: Sequence[dict[str, torch.Tensor]],
    axis: np.ndarray,
    *,
    out_dir: str | Path | None = None,
    quiet: bool = False,
    metadata: dict | None = None,
    **grid_kwargs: Any,
) -> SliceSet:
    """1D slices along each of ``directions`` with :func:`~sharpscope.landscape.grid.evaluate_grid`.

    Each slice is its own resumable surface (``out_dir/directions/NNN``); the set
    holds the curves, their median and 10-90% band, and the curvature at the centre
    along every direction (:func:`center_curvature`). Each slice has its own progress
    bar, labelled ``direction 3/20``.
    """
    if not directions:
        raise SharpscopeError("no directions given")
    batches = list(batches)
    axis = np.asarray(axis, dtype=np.float64).reshape(-1)
    surfaces: list[Surface] = []
    for i, d in enumerate(directions):
        sub = None if out_dir is None else Path(out_dir) / "directions" / f"{i:03d}"
        surfaces.append(
            evaluate_grid(
                model,
                loss_fn,
                batches,
                [d],
                [axis],
                out_dir=sub,
                quiet=quiet,
                metadata=metadata,
                progress_label=f"direction {i + 1}/{len(directions)}",
                **grid_kwargs,
            )
        )
    loss = np.stack([s.loss for s in surfaces])
    acc = np.stack([s.accuracy for s in surfaces])
    curv = np.array([center_curvature(axis, row) for row in loss]).reshape(-1, 2)
    meta = {
        "metadata": dict(metadata or {}),
        "method": surfaces[0].meta.get("method"),
        "elapsed_s": float(sum(s.meta.get("elapsed_s", 0.0) for s in surfaces)),
    }
    result = SliceSet(axis, loss, acc, curv[:, 0], curv[:, 1], meta)
    if out_dir is not None:
        result.save(out_dir)
    return result
