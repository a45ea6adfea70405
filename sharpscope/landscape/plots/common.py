"""What every landscape figure shares: the matplotlib backend, value transforms, levels, saving."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SharpscopeError
from ..surface import Surface

__all__ = ["shared_levels"]

_TINY = 1e-12


def _plt():
    import matplotlib

    if (
        matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo")
        and not _interactive()
    ):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _interactive() -> bool:
    import sys

    return "ipykernel" in sys.modules


def _values(loss: np.ndarray, log: bool) -> np.ndarray:
    v = np.array(loss, dtype=np.float64, copy=True)
    v[~np.isfinite(v)] = np.nan
    if log:
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.log10(np.clip(v, _TINY, None))
    return v


def _label(log: bool, what: str = "loss") -> str:
    return f"log10 {what}" if log else what


def shared_levels(
    surfaces: Sequence[Surface],
    *,
    log: bool = False,
    n: int = 20,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray | None:
    """Contour levels common to several surfaces (``None`` when nothing is finite or all is flat)."""
    vals = [_values(s.loss, log) for s in surfaces]
    finite = np.concatenate([v[np.isfinite(v)] for v in vals]) if vals else np.array([])
    if finite.size == 0:
        return None
    lo = float(finite.min()) if vmin is None else float(vmin)
    hi = float(finite.max()) if vmax is None else float(vmax)
    if not hi > lo + 1e-12 * max(1.0, abs(lo)):
        return None
    return np.linspace(lo, hi, int(n))


def _save(fig: Any, path: str | Path | None, own: bool) -> None:
    if path is None:
        return
    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SharpscopeError(f"plot file {path} must end in .png, .pdf or .svg")
    from ...distributed import is_main

    if not is_main():  # distributed runs: rank 0 writes the figures
        if own:
            _plt().close(fig)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(path)
    if own:
        _plt().close(fig)


def _new_ax(ax: Any, **kw: Any) -> tuple[Any, Any, bool]:
    if ax is not None:
        return ax.figure, ax, False
    fig, ax = _plt().subplots(**kw)
    return fig, ax, True


def _check_2d(surface: Surface) -> None:
    if surface.dims != 2:
        raise SharpscopeError(f"this plot needs a 2D surface, got {surface.dims}D")


def _empty_note(ax: Any) -> None:
    ax.text(0.5, 0.5, "no finite loss values", ha="center", va="center", transform=ax.transAxes)
