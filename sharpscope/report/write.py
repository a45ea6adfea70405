"""Writing a report folder: figures (re-drawn only when the numbers change), summaries, page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runtime.files import atomic_write_json, atomic_write_text
from .figures import (
    _fig_density,
    _fig_interpolation,
    _fig_measures,
    _fig_over_training,
    _fig_slices_1d,
    _fig_slices_2d,
    panel_labels,
)
from .format import FIGURES, FigureOptions
from .group_figures import fig_gap_scatter, fig_group_strips
from .html import report_html
from .markdown import summary_markdown
from .planes import _fig_planes, _plane_detail

__all__ = ["write_figures", "write_report"]


def _digest(report: Any, opts: FigureOptions | None = None) -> str:
    import hashlib
    import json

    from ..runtime.files import to_jsonable

    settings = {
        k: v for k, v in report.settings.items() if k not in ("reused_probes", "computed_probes")
    }
    payload = {"labels": report.labels, "details": report.details, "settings": settings}
    if getattr(report, "groups", None):  # (only then: older reports keep their digest)
        payload["groups"] = report.groups
    if opts is not None:  # the figures depend on how they are written, too
        payload["figures"] = {"formats": list(opts.formats), "color_scale": opts.color_scale}
    text = json.dumps(to_jsonable(payload), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def write_figures(report: Any, options: FigureOptions | None = None) -> dict[str, str]:
    """Write every figure the report's numbers allow; return ``{"figure:name": png path}``.

    Each figure is written once per format of ``options`` (default: PNG and PDF, see
    :class:`~sharpscope.report.format.FigureOptions`); the other formats are listed as
    ``{"figure_pdf:name": path}``. The figures are a function of the numbers and the
    options: when ``figures/index.json`` records the same and every figure it lists is
    there, nothing is drawn again.
    """
    opts = options or FigureOptions()
    from ..runtime.cache import Damaged, notice, read_json_checked

    folder = report.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.json"
    digest = _digest(report, opts)
    try:
        old = read_json_checked(index)
    except FileNotFoundError:
        old = None
    except Damaged as exc:
        notice(index, str(exc))
        old = None
    files = old.get("files") if isinstance(old, dict) else None
    if (
        isinstance(old, dict)
        and old.get("digest") == digest
        and isinstance(files, dict)
        and files
        # only this folder's own figures: never a path the index names elsewhere
        and all(isinstance(f, str) and Path(f).parent == folder for f in files.values())
        and all(Path(f).is_file() for f in files.values())
    ):
        return dict(files)
    files = _draw_figures(report, folder, opts)
    atomic_write_json(index, {"digest": digest, "files": files})
    return files


def _draw_figures(report: Any, folder: Path, opts: FigureOptions | None = None) -> dict[str, str]:
    opts = opts or FigureOptions()
    makers = {
        "measures": _fig_measures,
        "slices_1d": _fig_slices_1d,
        "slices_2d": _fig_slices_2d,
        "density": _fig_density,
        "interpolation": _fig_interpolation,
        "planes": _fig_planes,
        "over_training": _fig_over_training,
        "group_strips": fig_group_strips,
        "gap_scatter": fig_gap_scatter,
    }
    drawn: dict[str, Path | None] = {}
    for name, make in makers.items():
        drawn[name] = make(report, folder / FIGURES[name], opts)
    for label in panel_labels(report):
        drawn[f"plane_{label}"] = _plane_detail(report, label, folder / f"plane_{label}.png", opts)
    files: dict[str, str] = {}
    for name, written in drawn.items():
        if written is None:
            continue
        files[f"figure:{name}"] = str(written)
        for fmt in opts.formats[1:]:  # PNG first, then the others beside it
            files[f"figure_{fmt}:{name}"] = str(Path(written).with_suffix(f".{fmt}"))
    return files


def write_report(report: Any, options: FigureOptions | None = None) -> dict[str, str]:
    """Write figures, ``summary.json``, ``summary.md`` and ``report.html`` into ``report.out``.

    ``options``: the figures' formats and colour scale (:class:`FigureOptions`; default
    PNG + PDF, one log scale of the rise above each model's own minimum).
    """
    out = Path(report.out)
    options = options or FigureOptions()
    report.files = {**write_figures(report, options)}
    report.files.update(
        {
            "summary_json": str(out / "summary.json"),
            "summary_md": str(out / "summary.md"),
            "html": str(out / "report.html"),
            "directions": str(out / "directions.pt"),
        }
    )
    atomic_write_text(out / "summary.md", summary_markdown(report))
    atomic_write_json(out / "summary.json", report.to_dict())
    atomic_write_text(out / "report.html", report_html(report, options))
    return report.files
