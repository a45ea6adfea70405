"""The self-contained HTML page of a comparison (plotly inlined once, PNGs embedded)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from .format import FLATTEST, FigureOptions, format_value
from .groups import group_html
from .interactive import FIGURE_OF, plotly_figures
from .notes import (
    FIGURE_GUIDE,
    MODE_NOTE,
    SEARCH_HEAD,
    boundary_warnings,
    curvature_note,
    samples_text,
    search_rows,
    settings_rows,
)

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
table.settings td { text-align: left; } table.settings td:first-child { font-weight: 600; }
.warning { background: #fdecea; border-left: 4px solid #c62828; padding: 0.4rem 0.8rem; }
.guide { margin: 0.2rem 0 0.4rem; }
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


def _settings_html(report: Any) -> str:
    """The settings as a two-column table (named settings, ``None`` spelt out)."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in settings_rows(report)
    )
    return f'<table class="settings"><tbody>{rows}</tbody></table>'


def _links(report: Any, name: str) -> str:
    """``static figure: PNG · PDF`` links to the files of figure ``name`` (relative paths)."""
    links = []
    for key, path in report.files.items():
        kind, _, fig = key.partition(":")
        if fig != name or not kind.startswith("figure"):
            continue
        fmt = "png" if kind == "figure" else kind.partition("_")[2]
        rel = Path(path).relative_to(report.out).as_posix()
        links.append(f'<a href="{html.escape(rel)}">{fmt.upper()}</a>')
    return f'<p class="muted">static figure: {" · ".join(links)}</p>' if links else ""


def _embedded(report: Any, name: str, path: Path) -> str:
    """A PNG-only figure, embedded once (it has no interactive counterpart)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<div class="figure"><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{data}"></div>{_links(report, name)}'
    )


def _guide(key: str) -> str:
    text = FIGURE_GUIDE.get(key)
    return f'<p class="guide">{html.escape(text)}</p>' if text else ""


def _figures_html(report: Any, options: FigureOptions) -> list[str]:
    """Each figure once: interactive where it can be, PNG otherwise, static files linked."""
    pngs = {
        k.split(":", 1)[1]: Path(v)
        for k, v in report.files.items()
        if k.startswith("figure:") and Path(v).is_file()
    }
    parts: list[str] = []
    if "measures" in pngs:
        parts += ["<h3>Flatness measures</h3>", _guide("measures")]
        parts.append(_embedded(report, "measures", pngs["measures"]))
    for div_id, heading, fig in plotly_figures(report, options):
        name = FIGURE_OF.get(div_id)
        parts += [f"<h3>{html.escape(heading)}</h3>", _guide(name or "plane_arcs")]
        config = {"displaylogo": False, "responsive": True}
        parts.append(
            fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=config)
        )
        if name:
            parts.append(_links(report, name))
    for name, path in pngs.items():
        if name.startswith("plane_"):
            parts += [f"<h3>XSAM plane of {html.escape(name[6:])}</h3>", _guide("plane_detail")]
            parts.append(_embedded(report, name, path))
    return ["<h2>Figures</h2>", *parts] if parts else []


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _head(report: Any) -> list[str]:
    from plotly.offline import get_plotlyjs

    names = html.escape(", ".join(report.labels))
    s = report.settings
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>sharpscope: {names}</title>",
        _ERROR_SCRIPT,
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        '<pre id="js-errors" hidden></pre><span id="plot-count" hidden></span>',
        f"<h1>sharpscope comparison: {names}</h1>",
        f'<p class="muted">Every probe used the same {samples_text(s.get("probe_samples"))} '
        f"training samples, seed {s['seed']}, {s['mode']} mode and the same "
        "filter-normalised random directions. Lower = flatter for every flatness measure.</p>",
        f'<p class="muted">About the mode: {html.escape(MODE_NOTE)}</p>',
    ]


def _tables_html(report: Any) -> list[str]:
    t = report.tables
    parts = []
    if t["flatness"]["columns"]:
        parts.append("<h2>Flatness</h2>")
        parts.append(_html_table(t["flatness"], first="checkpoint", marks=True))
        parts.append(
            "<ul>"
            + "".join(
                f"<li><b>{html.escape(c['title'])}</b> (lower = flatter): "
                f"{html.escape(c['description'])}</li>"
                for c in t["flatness"]["columns"]
            )
            + "</ul>"
        )
        note = curvature_note(report)
        if note:
            parts.append(f'<p class="muted">{html.escape(note)}.</p>')
    for name, title, first in (
        ("performance", "Loss and accuracy", "checkpoint"),
        ("plane", "XSAM plane", "checkpoint"),
        ("interpolation", "Interpolation between minima", "path"),
    ):
        table = _html_table(t[name], first=first, marks=False)
        if table:
            parts += [f"<h2>{title}</h2>", table]
    rows = search_rows(report)
    if rows:
        parts += ["<h2>Searches and their limits</h2>", _table(SEARCH_HEAD, rows)]
    return parts


def report_html(report: Any, options: FigureOptions | None = None) -> str:
    """The self-contained HTML page of a comparison: each figure once, interactive where
    possible, with its static PNG/PDF linked; a warning where a search hit its limit."""
    options = options or FigureOptions()
    parts = _head(report)
    for note in report.notes:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    warnings = boundary_warnings(report)
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(
            f'<div class="warning" id="search-warnings"><b>Warning: a search ended on its '
            f"limit; the value it reports may be an underestimate.</b><ul>{items}</ul></div>"
        )
    parts += _tables_html(report)
    parts += group_html(report)
    parts += _figures_html(report, options)
    parts += ["<h2>Settings</h2>", _settings_html(report), _FINAL_SCRIPT, "</body></html>"]
    return "\n".join(parts)
