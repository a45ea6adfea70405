"""The self-contained HTML page of a comparison (plotly inlined once, PNGs embedded)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from .figures import _slice_sets, _surfaces
from .format import FLATTEST, _clean, format_value
from .group_figures import plotly_gap_scatter, plotly_group_strips
from .groups import group_html

__all__ = ["report_html"]

# ----------------------------------------------------------------------------- html
_ERROR_SCRIPT = """<script>
window.__sharpscopeErrors = [];
(function () {
  function record(msg) {
    window.__sharpscopeErrors.push(String(msg));
    var el = document.getElementById('js-errors');
    if (el) { el.textContent = window.__sharpscopeErrors.join('\\n'); }
  }
  window.addEventListener('error', function (e) {
    record('error: ' + (e.message || e.type) + (e.filename ? ' at ' + e.filename + ':' + e.lineno : ''));
  });
  window.addEventListener('unhandledrejection', function (e) {
    record('unhandled rejection: ' + (e.reason && e.reason.message ? e.reason.message : e.reason));
  });
})();
</script>"""

_FINAL_SCRIPT = """<script>
(function () {
  var el = document.getElementById('js-errors');
  el.textContent = window.__sharpscopeErrors.join('\\n');
  var plots = document.querySelectorAll('.plotly-graph-div');
  document.getElementById('plot-count').textContent = String(plots.length);
})();
</script>"""

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 1.5rem auto;
       max-width: 1250px; color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } td.flattest { background: #e3f4e1; font-weight: 600; }
.note { background: #fff6dd; border-left: 4px solid #e0b000; padding: 0.4rem 0.8rem; }
.figure img { max-width: 100%; border: 1px solid #eee; margin: 0.4rem 0; }
dl.settings { display: grid; grid-template-columns: max-content auto; gap: 0.15rem 1rem; }
dl.settings dt { font-weight: 600; } dl.settings dd { margin: 0; font-family: monospace; }
.muted { color: #666; font-size: 0.9rem; }
"""


def _html_table(table: dict[str, Any], *, first: str, marks: bool) -> str:
    cols = table["columns"]
    if not cols or not table["rows"]:
        return ""
    flattest = table.get("flattest", {}) if marks else {}
    head = "".join(
        f'<th title="{html.escape(c["description"])}">{html.escape(c["title"])}</th>' for c in cols
    )
    rows = []
    for row in table["rows"]:
        cells = [f"<td>{html.escape(row['label'])}</td>"]
        for c in cols:
            text = html.escape(
                format_value(row["values"].get(c["key"]), row.get("stderr", {}).get(c["key"]))
            )
            if row["label"] in flattest.get(c["key"], []):
                cells.append(f'<td class="flattest">{text} {FLATTEST}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table><thead><tr><th>{html.escape(first)}</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def _rgba(i: int, a: float) -> str:
    h = _COLORS[i % len(_COLORS)].lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{a})"


def _plotly_slices_1d(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    sets = _slice_sets(report)
    if sets:
        fig = go.Figure()
        for i, (label, s) in enumerate(sets):
            x = s.x.tolist()
            fig.add_trace(
                go.Scatter(
                    x=x + x[::-1],
                    y=_clean(s.q90) + _clean(s.q10)[::-1],
                    fill="toself",
                    fillcolor=_rgba(i, 0.18),
                    line={"width": 0},
                    hoverinfo="skip",
                    name=f"{label}: 10-90% band",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=_clean(s.median),
                    name=f"{label}: median",
                    line={"color": _COLORS[i % len(_COLORS)], "width": 2.5},
                )
            )
        fig.update_layout(
            title="1D slices: median over the shared directions, 10-90% band",
            xaxis_title="alpha (filter-normalised step)",
            yaxis_title="training loss",
        )
        return ("plot-slices-1d", "1D slices", fig)
    return None


def _plotly_slices_2d(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    surfaces = _surfaces(report, "slice2d")
    if surfaces:
        from ..landscape.plots import shared_levels

        levels = shared_levels([s for _, s in surfaces])
        lo, hi = (float(levels[0]), float(levels[-1])) if levels is not None else (None, None)
        fig = make_subplots(rows=1, cols=len(surfaces), subplot_titles=[lb for lb, _ in surfaces])
        for k, (label, s) in enumerate(surfaces, start=1):
            z = [_clean(row) for row in s.loss.T]
            fig.add_trace(
                go.Contour(
                    x=s.axes[0].tolist(),
                    y=s.axes[1].tolist(),
                    z=z,
                    zmin=lo,
                    zmax=hi,
                    colorscale="Viridis",
                    showscale=k == len(surfaces),
                    colorbar={"title": "loss"},
                    contours=(
                        {"start": lo, "end": hi, "size": (hi - lo) / 19} if lo is not None else {}
                    ),
                    name=label,
                ),
                row=1,
                col=k,
            )
            fig.update_xaxes(title_text="d1", row=1, col=k)
            fig.update_yaxes(title_text="d2", row=1, col=k)
        fig.update_layout(title="2D slices (shared directions, one colour scale)", height=460)
        return ("plot-slices-2d", "2D slices", fig)
    return None


def _plotly_density(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    dens = [
        (lb, report.details[lb]["density"])
        for lb in report.labels
        if "density" in report.details.get(lb, {})
    ]
    if dens:
        fig = go.Figure()
        for i, (label, d) in enumerate(dens):
            fig.add_trace(
                go.Scatter(
                    x=_clean(d["grid"]),
                    y=[max(v or 0.0, 1e-12) for v in _clean(d["density"])],
                    name=label,
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        fig.update_layout(
            title="Hessian spectral density (SLQ)",
            xaxis_title="eigenvalue",
            yaxis_title="density",
            yaxis_type="log",
        )
        return ("plot-density", "Spectral density", fig)
    return None


def _plotly_interpolation(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    pairs = report.details.get("pairs") or []
    if pairs:
        fig = go.Figure()
        for i, p in enumerate(pairs):
            fig.add_trace(
                go.Scatter(
                    x=_clean(p["t"]),
                    y=_clean(p["loss"]),
                    name=f"{p['a']} -> {p['b']}",
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        fig.update_layout(
            title="Linear interpolation between minima",
            xaxis_title="t (0 = a, 1 = b)",
            yaxis_title="training loss",
        )
        return ("plot-interpolation", "Interpolation", fig)
    return None


def _plotly_planes(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    planes = [
        (lb, report.details[lb]["plane"])
        for lb in report.labels
        if "plane" in report.details.get(lb, {})
    ]
    if planes:
        fig = go.Figure()
        for i, (label, rec) in enumerate(planes):
            fig.add_trace(
                go.Scatter(
                    x=_clean(rec["arc"]["alphas"]),
                    y=_clean(rec["arc"]["losses"]),
                    name=f"{label} (alpha* = {rec['alpha_star']:.2g})",
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        fig.add_vline(x=1.0, line_dash="dash", annotation_text="SAM (alpha = 1)")
        fig.update_layout(
            title="Loss along XSAM's slerp arc at rho_max",
            xaxis_title="alpha (0 = v0, 1 = v1)",
            yaxis_title="loss",
        )
        return ("plot-plane-arcs", "XSAM arcs", fig)
    return None


def _plotly_over_training(report: Any) -> tuple[str, str, Any] | None:
    import plotly.graph_objects as go

    over = [
        (lb, report.details[lb]["over_training"])
        for lb in report.labels
        if "over_training" in report.details.get(lb, {})
    ]
    if over:
        fig = go.Figure()
        for i, (label, d) in enumerate(over):
            fig.add_trace(
                go.Scatter(
                    x=d["epochs"],
                    y=_clean(d["lambda_max"]),
                    mode="lines+markers",
                    name=label,
                    line={"color": _COLORS[i % len(_COLORS)]},
                )
            )
        e_lr = [(e, lr) for e, lr in zip(over[0][1]["epochs"], over[0][1]["lr"], strict=True) if lr]
        if e_lr:
            fig.add_trace(
                go.Scatter(
                    x=[e for e, _ in e_lr],
                    y=[2.0 / lr for _, lr in e_lr],
                    name="2 / lr",
                    line={"dash": "dash", "color": "black"},
                )
            )
        fig.update_layout(
            title="lambda_max over training",
            xaxis_title="epoch",
            yaxis_title="top Hessian eigenvalue",
            yaxis_type="log",
        )
        return ("plot-over-training", "Over training", fig)
    return None


_PLOTLY_MAKERS = (
    _plotly_slices_1d,
    _plotly_slices_2d,
    _plotly_density,
    _plotly_interpolation,
    _plotly_planes,
    _plotly_over_training,
    plotly_group_strips,
    plotly_gap_scatter,
)


def _plotly_figures(report: Any) -> list[tuple[str, str, Any]]:
    """``(id, heading, plotly figure)`` for every interactive figure the numbers allow."""
    return [fig for make in _PLOTLY_MAKERS if (fig := make(report)) is not None]


def _settings_html(report: Any) -> str:
    items = {**report.settings, **{f"env.{k}": v for k, v in report.environment.items()}}
    items["checkpoints"] = ", ".join(report.checkpoints)
    rows = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items.items()
    )
    return f'<dl class="settings">{rows}</dl>'


def report_html(report: Any) -> str:
    """The self-contained HTML page of a comparison."""
    from plotly.offline import get_plotlyjs

    t = report.tables
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>sharpscope: {html.escape(', '.join(report.labels))}</title>",
        _ERROR_SCRIPT,
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        '<pre id="js-errors" hidden></pre><span id="plot-count" hidden></span>',
        f"<h1>sharpscope comparison: {html.escape(', '.join(report.labels))}</h1>",
        f'<p class="muted">Every probe used the same {report.settings.get("probe_samples")} training '
        f"samples, seed {report.settings['seed']}, {report.settings['mode']} mode and the same "
        "filter-normalised random directions. Lower = flatter for every flatness measure.</p>",
    ]
    for note in report.notes:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    if t["flatness"]["columns"]:
        parts.append("<h2>Flatness</h2>")
        parts.append(_html_table(t["flatness"], first="checkpoint", marks=True))
        parts.append(
            "<ul>"
            + "".join(
                f"<li><b>{html.escape(c['title'])}</b> (lower = flatter): {html.escape(c['description'])}</li>"
                for c in t["flatness"]["columns"]
            )
            + "</ul>"
        )
    for name, title, first in (
        ("performance", "Loss and accuracy", "checkpoint"),
        ("plane", "XSAM plane", "checkpoint"),
        ("interpolation", "Interpolation between minima", "path"),
    ):
        table = _html_table(t[name], first=first, marks=False)
        if table:
            parts += [f"<h2>{title}</h2>", table]
    parts += group_html(report)
    figs = _plotly_figures(report)
    if figs:
        parts.append("<h2>Interactive figures</h2>")
        for div_id, heading, fig in figs:
            parts.append(f"<h3>{html.escape(heading)}</h3>")
            parts.append(
                fig.to_html(
                    full_html=False,
                    include_plotlyjs=False,
                    div_id=div_id,
                    config={"displaylogo": False, "responsive": True},
                )
            )
    pngs = [
        (k.split(":", 1)[1], Path(v)) for k, v in report.files.items() if k.startswith("figure:")
    ]
    if pngs:
        parts.append("<h2>Figures</h2>")
        for name, path in pngs:
            if not path.is_file():
                continue
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            rel = path.relative_to(report.out).as_posix()
            parts.append(
                f'<div class="figure"><p class="muted">{html.escape(rel)}</p>'
                f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}"></div>'
            )
    parts += ["<h2>Settings</h2>", _settings_html(report), _FINAL_SCRIPT, "</body></html>"]
    return "\n".join(parts)
