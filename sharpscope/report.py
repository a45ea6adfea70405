"""Writing a comparison report: ``summary.json``, ``summary.md``, PNG figures and one HTML page.

Everything is drawn from the numbers of a :class:`~sharpscope.compare.ComparisonReport`
(and the grids its probes saved), so re-writing a report never re-runs a probe. The
HTML page is self-contained: plotly.js is inlined once, the PNGs are embedded, and
nothing is fetched from the network. A tiny script records JavaScript errors into a
hidden ``#js-errors`` element so a headless browser can check the page.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from .utils import atomic_write_json, atomic_write_text

__all__ = [
    "summary_markdown",
    "summary_tables",
    "write_report",
    "write_figures",
    "report_html",
    "format_value",
]

FIGURES = {
    "measures": "measures.png",
    "slices_1d": "slices_1d.png",
    "slices_2d": "slices_2d.png",
    "density": "density.png",
    "interpolation": "interpolation.png",
    "planes": "planes.png",
    "over_training": "lambda_max_over_training.png",
}
FLATTEST = "(flattest)"


def format_value(value: Any, stderr: Any = None) -> str:
    """A table cell: 4 significant digits, ``n/a`` for missing, ``± se`` when known."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text = f"{float(value):.4g}"
    if stderr is not None and isinstance(stderr, (int, float)) and math.isfinite(stderr):
        text += f" ± {float(stderr):.2g}"
    return text


def _arr(values: Any) -> np.ndarray:
    """A float array from JSON lists (``None`` -> NaN) or an array."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    values = list(values or [])
    if values and isinstance(values[0], list):
        return np.array(
            [[np.nan if v is None else v for v in row] for row in values], dtype=np.float64
        )
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


# ----------------------------------------------------------------------------- markdown
def _md_table(table: dict[str, Any], *, first: str, marks: bool) -> list[str]:
    cols = table["columns"]
    if not cols or not table["rows"]:
        return []
    flattest = table.get("flattest", {}) if marks else {}
    head = [first] + [c["title"] for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["rows"]:
        cells = [row["label"]]
        for c in cols:
            text = format_value(row["values"].get(c["key"]), row.get("stderr", {}).get(c["key"]))
            if row["label"] in flattest.get(c["key"], []):
                text = f"**{text}** {FLATTEST}"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _verdict_lines(report: Any) -> list[str]:
    comp = report.comparisons
    if not comp:
        return []
    base = comp["baseline"]
    titles = {c["key"]: c["title"] for c in report.tables["flatness"]["columns"]}
    lines = [f"## Versus {base}", ""]
    for key, entries in comp["measures"].items():
        parts = []
        for e in entries:
            if e["flatter"] is None:
                parts.append(f"{e['label']}: n/a")
                continue
            word = "flatter" if e["flatter"] else "sharper"
            ratio = f"{e['ratio']:.3g}x" if e["ratio"] is not None else "ratio n/a"
            sig = ""
            if e.get("significant") is not None:
                sig = "" if e["significant"] else ", within 2 standard errors"
            parts.append(
                f"{e['label']} {format_value(e['value'])} vs {format_value(e['baseline_value'])} "
                f"({ratio}, {word}{sig})"
            )
        lines.append(f"- **{titles.get(key, key)}**: " + "; ".join(parts))
    lines.append("")
    return lines


def summary_markdown(report: Any) -> str:
    """The Markdown summary of a comparison (the tables agree with ``summary.json``)."""
    s = report.settings
    t = report.tables
    lines = [
        f"# sharpscope comparison: {', '.join(report.labels)}",
        "",
        f"{len(report.labels)} checkpoint(s) probed on the same {s.get('probe_samples')} "
        f"training samples (seed {s['seed']}, {s['mode']} mode, rho {s['rho']:g}, "
        f"{s['directions_count']} shared filter-normalised directions).",
        "",
    ]
    for note in report.notes:
        lines += [f"> note: {note}", ""]
    if t["flatness"]["columns"]:
        lines += [
            "## Flatness (lower = flatter for every measure)",
            "",
            *_md_table(t["flatness"], first="checkpoint", marks=True),
            "",
        ]
        for c in t["flatness"]["columns"]:
            direction = "lower = flatter" if c["lower_is_flatter"] else "higher = flatter"
            lines.append(f"- **{c['title']}** ({direction}): {c['description']}.")
        lines.append("")
    lines += _verdict_lines(report)
    for name, title, first in (
        ("performance", "Loss and accuracy", "checkpoint"),
        ("plane", "XSAM plane (Chen & Zhou 2026)", "checkpoint"),
        ("interpolation", "Interpolation between minima", "path"),
    ):
        rows = _md_table(t[name], first=first, marks=False)
        if rows:
            lines += [f"## {title}", "", *rows, ""]
            for c in t[name]["columns"]:
                lines.append(f"- **{c['title']}**: {c['description']}.")
            lines.append("")
    eig = [
        (label, report.details[label]["eigen"]["eigenvalues"])
        for label in report.labels
        if "eigen" in report.details.get(label, {})
    ]
    if eig:
        lines += ["## Top Hessian eigenvalues", ""]
        for label, values in eig:
            lines.append(f"- {label}: " + ", ".join(format_value(v) for v in values))
        lines.append("")
    figs = [(k, v) for k, v in report.files.items() if k.startswith("figure:")]
    if figs:
        lines += ["## Figures", ""]
        for key, path in figs:
            rel = Path(path).relative_to(report.out).as_posix()
            lines.append(f"![{key.split(':', 1)[1]}]({rel})")
        lines.append("")
    return "\n".join(lines)


def summary_tables(report: Any) -> str:
    """The flatness and the loss/accuracy tables as Markdown (what the CLI prints)."""
    t = report.tables
    lines = []
    if t["flatness"]["columns"]:
        lines += [
            "Flatness (lower = flatter):",
            *_md_table(t["flatness"], first="checkpoint", marks=True),
            "",
        ]
    perf = _md_table(t["performance"], first="checkpoint", marks=False)
    if perf:
        lines += ["Loss and accuracy:", *perf, ""]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines).rstrip()


# ----------------------------------------------------------------------------- figures
def _plt():
    from .landscape.plots import _plt as plt_

    return plt_()


def _save(fig: Any, path: Path) -> Path:
    from .hessian.plots import save_figure

    save_figure(fig, path)
    _plt().close(fig)
    return path


def _slice_sets(report: Any) -> list[tuple[str, Any]]:
    from .landscape.multi import SliceSet

    out = []
    for label in report.labels:
        d = report.details.get(label, {}).get("slice1d")
        if d is None:
            continue
        out.append(
            (
                label,
                SliceSet(
                    _arr(d["x"]),
                    _arr(d["loss"]),
                    _arr(d["accuracy"]),
                    _arr(d["curvature_fd"]),
                    _arr(d["curvature_fit"]),
                ),
            )
        )
    return out


def _surfaces(report: Any, probe: str) -> list[tuple[str, Any]]:
    from .landscape.grid import Surface

    out = []
    for label in report.labels:
        d = report.details.get(label, {}).get(probe)
        if d is None:
            continue
        out.append((label, Surface.load(d["surface_dir"])))
    return out


def _fig_measures(report: Any, path: Path) -> Path | None:
    t = report.tables["flatness"]
    rows = t["rows"]
    if len(rows) < 2 or not t["columns"]:
        return None
    base = rows[0]
    keys = [c for c in t["columns"] if (base["values"].get(c["key"]) or 0) > 0]
    if not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(10.0, 1.1 * len(keys) + 3), 4.4))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        ratios = [(row["values"].get(c["key"]) or np.nan) / base["values"][c["key"]] for c in keys]
        xs = np.arange(len(keys)) + (i - (len(rows) - 1) / 2) * width
        bars = ax.bar(xs, ratios, width=width, label=row["label"], color=f"C{i}")
        for b, r in zip(bars, ratios, strict=True):
            if np.isfinite(r):
                ax.annotate(
                    f"{r:.3g}",
                    (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(keys)), [c["title"] for c in keys], rotation=20, ha="right")
    ax.set_ylabel(f"value / {base['label']}'s value  (lower = flatter)")
    ax.set_title(f"Flatness measures relative to {base['label']}")
    ax.legend(title="checkpoint", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylim(0, max(1.15, ax.get_ylim()[1]))
    fig.tight_layout()
    return _save(fig, path)


def _fig_slices_1d(report: Any, path: Path) -> Path | None:
    from .landscape.plots import plot_1d

    sets = _slice_sets(report)
    if not sets:
        return None
    n = report.settings["directions_count"]
    fig, ax = plot_1d(
        [s for _, s in sets],
        None,
        labels=[label for label, _ in sets],
        title=f"1D loss slices along {n} shared filter-normalised directions\n"
        "(median, 10-90% band; dashed: accuracy)",
        xlabel="alpha  (step along a filter-normalised direction)",
    )
    ax.set_ylabel("training loss (probe subset)")
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.14, 1.0), frameon=False)
    return _save(fig, path)


def _shared_colorbar(fig: Any, axes: Any, levels: Any, label: str = "loss") -> None:
    import matplotlib as mpl

    if levels is None:
        return
    norm = mpl.colors.Normalize(vmin=float(levels[0]), vmax=float(levels[-1]))
    sm = mpl.cm.ScalarMappable(norm=norm, cmap="viridis")
    fig.colorbar(sm, ax=list(axes), label=label, shrink=0.9)


def _fig_slices_2d(report: Any, path: Path) -> Path | None:
    from .landscape.plots import plot_contour, shared_levels

    items = _surfaces(report, "slice2d")
    if not items:
        return None
    plt = _plt()
    levels = shared_levels([s for _, s in items], n=25)
    fig, axes = plt.subplots(
        1, len(items), figsize=(4.4 * len(items) + 1.2, 4.4), squeeze=False, layout="constrained"
    )
    axes = axes[0]
    for ax, (label, surf) in zip(axes, items, strict=True):
        plot_contour(
            surf,
            ax=ax,
            levels=levels,
            filled=True,
            colorbar=False,
            title=f"{label} (loss at centre {surf.value_at_center():.3g})",
            xlabel="d1 (filter-normalised)",
            ylabel="d2 (filter-normalised)",
        )
        ax.plot([0], [0], "+", color="white", ms=10)
        ax.set_aspect("equal", adjustable="box")
    _shared_colorbar(fig, axes, levels, "training loss")
    fig.suptitle(
        "2D loss slices along the same two filter-normalised directions (one colour scale)"
    )
    return _save(fig, path)


def _fig_density(report: Any, path: Path) -> Path | None:
    items = [
        (label, report.details[label]["density"])
        for label in report.labels
        if "density" in report.details.get(label, {})
    ]
    if not items:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for i, (label, d) in enumerate(items):
        dens = np.maximum(_arr(d["density"]), 1e-12)
        ax.plot(
            _arr(d["grid"]),
            dens,
            color=f"C{i}",
            lw=1.6,
            label=f"{label} (lambda_max {d['lambda_max']:.3g})",
        )
    ax.set_yscale("log")
    top = max(float(np.nanmax(np.maximum(_arr(d["density"]), 1e-12))) for _, d in items)
    ax.set_ylim(max(1e-7, top * 1e-7), top * 3)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel("density (log scale)")
    d0 = items[0][1]
    ax.set_title(f"Hessian spectral density (SLQ: {d0['runs']} runs x {d0['iters']} Lanczos steps)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _fig_interpolation(report: Any, path: Path) -> Path | None:
    pairs = report.details.get("pairs") or []
    if not pairs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    ax2 = ax.twinx()
    for i, p in enumerate(pairs):
        t = _arr(p["t"])
        ax.plot(
            t, _arr(p["loss"]), color=f"C{i}", lw=1.8, label=f"{p['a']} (t=0) to {p['b']} (t=1)"
        )
        ax2.plot(t, _arr(p["accuracy"]), color=f"C{i}", lw=1.0, ls="--")
    for x in (0.0, 1.0):
        ax.axvline(x, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("t  (theta = (1 - t) theta_a + t theta_b)")
    ax.set_ylabel("training loss (probe subset)")
    ax2.set_ylabel("accuracy (dashed)")
    ax2.set_ylim(-0.02, 1.02)
    ax.set_title("Linear interpolation between the minima")
    ax.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    return _save(fig, path)


def _fig_planes(report: Any, path: Path) -> Path | None:
    from .landscape.plots import plot_contour, shared_levels

    items = _surfaces(report, "plane")
    if not items:
        return None
    plt = _plt()
    levels = shared_levels([s for _, s in items], n=25)
    fig, axes = plt.subplots(
        1, len(items), figsize=(4.6 * len(items) + 1.2, 4.9), squeeze=False, layout="constrained"
    )
    axes = axes[0]
    for ax, (label, surf) in zip(axes, items, strict=True):
        rec = report.details[label]["plane"]
        plot_contour(
            surf,
            ax=ax,
            levels=levels,
            filled=True,
            colorbar=False,
            xlabel="a  (along v0)",
            ylabel="b  (v1's part orthogonal to v0)",
        )
        arc = _arr(rec["arc"]["coords"]).reshape(-1, 2)  # absolute plane coordinates
        ax.plot(arc[:, 0], arc[:, 1], "-", color="white", lw=2.2)
        ax.plot([0], [0], "o", color="black", mec="white", ms=6, label="theta_0")
        v1 = np.asarray(rec["v1_coords"], dtype=float) * rec["rho_max"]
        ax.plot(*v1, "^", color="tab:orange", mec="white", ms=10, label="SAM (alpha=1)")
        alphas = _arr(rec["arc"]["alphas"])
        j = int(np.argmin(np.abs(alphas - rec["alpha_star"])))
        ax.plot(
            *arc[j],
            "*",
            color="tab:red",
            mec="white",
            ms=15,
            label=f"XSAM alpha*={rec['alpha_star']:.2g}",
        )
        ax.set_title(f"{label}: psi = {rec['psi_deg']:.1f} deg")
        ax.set_aspect("equal", adjustable="box")
        ax.legend(fontsize=7, loc="lower left")
    _shared_colorbar(fig, axes, levels, "training loss")
    fig.suptitle(
        f"XSAM v0-v1 planes (rho={report.settings['rho']:g}, white arc: slerp(v0, v1) at "
        f"rho_max={report.details[items[0][0]]['plane']['rho_max']:g}; one colour scale)"
    )
    return _save(fig, path)


def _plane_detail(report: Any, label: str, path: Path) -> Path | None:
    from .landscape.grid import Surface
    from .plane import PlaneResult, plot_plane

    rec = report.details[label].get("plane")
    if rec is None:
        return None
    result = PlaneResult(
        rho=rec["rho"],
        rho_max=rec["rho_max"],
        steps=rec["k"],
        psi=rec["psi"],
        cos_psi=rec["cos_psi"],
        grad_norm=rec["grad_norm"],
        loss_theta0=rec["loss_theta0"],
        alphas=_arr(rec["arc"]["alphas"]),
        arc_losses=_arr(rec["arc"]["losses"]),
        alpha_star=rec["alpha_star"],
        loss_alpha0=rec["loss_alpha0"],
        loss_sam=rec["loss_sam"],
        loss_xsam=rec["loss_xsam"],
        arc_coords=_arr(rec["arc"]["coords"]).reshape(-1, 2),
        v1_coords=np.asarray(rec["v1_coords"], dtype=float),
        path_coords=_arr(rec["path"]["coords"]).reshape(-1, 2),
        path_off_plane=_arr(rec["path"]["off_plane"]),
        worst=dict(rec["worst"]),
        degenerate=bool(rec["degenerate"]),
        surface=Surface.load(rec["surface_dir"]),
        settings=dict(rec["settings"]),
    )
    plot_plane(result, path, title=f"XSAM plane of {label}")
    return path


def _momentum(report: Any, label: str) -> float:
    hp = (report.details.get(label, {}).get("metrics") or {}).get("hparams") or {}
    m = hp.get("momentum")
    return float(m) if isinstance(m, (int, float)) else 0.0


def _fig_over_training(report: Any, path: Path) -> Path | None:
    items = [
        (label, report.details[label]["over_training"])
        for label in report.labels
        if "over_training" in report.details.get(label, {})
    ]
    if not items:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    lam_all = []
    for i, (label, d) in enumerate(items):
        lam = _arr(d["lambda_max"])
        lam_all.append(lam)
        ax.plot(d["epochs"], lam, "o-", ms=3.5, color=f"C{i}", label=f"{label}: lambda_max")
    label0, d0 = items[0]
    lrs = [(e, lr) for e, lr in zip(d0["epochs"], d0["lr"], strict=True) if lr]
    if lrs:
        ep = [e for e, _ in lrs]
        ax.plot(
            ep,
            [2.0 / lr for _, lr in lrs],
            "--",
            color="black",
            lw=1.2,
            label=f"2 / lr ({label0}'s schedule; GD's stability limit)",
        )
        beta = _momentum(report, label0)
        if beta > 0:
            ax.plot(
                ep,
                [(2.0 + 2.0 * beta) / lr for _, lr in lrs],
                ":",
                color="grey",
                lw=1.2,
                label=f"(2 + 2 beta) / lr, momentum beta={beta:g}",
            )
    finite = np.concatenate([a[np.isfinite(a)] for a in lam_all]) if lam_all else np.array([])
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
        ax.set_ylim(finite.min() / 2, max(finite.max() * 20, finite.min() * 10))
    ax.set_xlabel("epoch")
    ax.set_ylabel("top Hessian eigenvalue (log scale)")
    ax.set_title("Sharpness over training (Cohen et al. 2021's edge of stability)")
    ax.legend(fontsize=7.5)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _digest(report: Any) -> str:
    import hashlib
    import json

    from .utils import to_jsonable

    settings = {
        k: v for k, v in report.settings.items() if k not in ("reused_probes", "computed_probes")
    }
    payload = {"labels": report.labels, "details": report.details, "settings": settings}
    text = json.dumps(to_jsonable(payload), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def write_figures(report: Any) -> dict[str, str]:
    """Write every PNG figure the report's numbers allow; return ``{"figure:name": path}``.

    The figures are a function of the numbers: when ``figures/index.json`` records the
    same numbers and every figure it lists is there, nothing is drawn again.
    """
    from ._cache import Damaged, notice, read_json_checked

    folder = report.out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.json"
    digest = _digest(report)
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
    files = _draw_figures(report, folder)
    atomic_write_json(index, {"digest": digest, "files": files})
    return files


def _draw_figures(report: Any, folder: Path) -> dict[str, str]:
    makers = {
        "measures": _fig_measures,
        "slices_1d": _fig_slices_1d,
        "slices_2d": _fig_slices_2d,
        "density": _fig_density,
        "interpolation": _fig_interpolation,
        "planes": _fig_planes,
        "over_training": _fig_over_training,
    }
    files: dict[str, str] = {}
    for name, make in makers.items():
        written = make(report, folder / FIGURES[name])
        if written is not None:
            files[f"figure:{name}"] = str(written)
    for label in report.labels:
        written = _plane_detail(report, label, folder / f"plane_{label}.png")
        if written is not None:
            files[f"figure:plane_{label}"] = str(written)
    return files


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


def _clean(values: Any) -> list:
    return [None if v is None or not np.isfinite(v) else float(v) for v in np.ravel(_arr(values))]


def _plotly_figures(report: Any) -> list[tuple[str, str, Any]]:
    """``(id, heading, plotly figure)`` for every interactive figure the numbers allow."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figs: list[tuple[str, str, Any]] = []
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]

    def rgba(i: int, a: float) -> str:
        h = colors[i % len(colors)].lstrip("#")
        return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{a})"

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
                    fillcolor=rgba(i, 0.18),
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
                    line={"color": colors[i % len(colors)], "width": 2.5},
                )
            )
        fig.update_layout(
            title="1D slices: median over the shared directions, 10-90% band",
            xaxis_title="alpha (filter-normalised step)",
            yaxis_title="training loss",
        )
        figs.append(("plot-slices-1d", "1D slices", fig))

    surfaces = _surfaces(report, "slice2d")
    if surfaces:
        from .landscape.plots import shared_levels

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
        figs.append(("plot-slices-2d", "2D slices", fig))

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
                    line={"color": colors[i % len(colors)]},
                )
            )
        fig.update_layout(
            title="Hessian spectral density (SLQ)",
            xaxis_title="eigenvalue",
            yaxis_title="density",
            yaxis_type="log",
        )
        figs.append(("plot-density", "Spectral density", fig))

    pairs = report.details.get("pairs") or []
    if pairs:
        fig = go.Figure()
        for i, p in enumerate(pairs):
            fig.add_trace(
                go.Scatter(
                    x=_clean(p["t"]),
                    y=_clean(p["loss"]),
                    name=f"{p['a']} -> {p['b']}",
                    line={"color": colors[i % len(colors)]},
                )
            )
        fig.update_layout(
            title="Linear interpolation between minima",
            xaxis_title="t (0 = a, 1 = b)",
            yaxis_title="training loss",
        )
        figs.append(("plot-interpolation", "Interpolation", fig))

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
                    line={"color": colors[i % len(colors)]},
                )
            )
        fig.add_vline(x=1.0, line_dash="dash", annotation_text="SAM (alpha = 1)")
        fig.update_layout(
            title="Loss along XSAM's slerp arc at rho_max",
            xaxis_title="alpha (0 = v0, 1 = v1)",
            yaxis_title="loss",
        )
        figs.append(("plot-plane-arcs", "XSAM arcs", fig))

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
                    line={"color": colors[i % len(colors)]},
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
        figs.append(("plot-over-training", "Over training", fig))
    return figs


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


def write_report(report: Any) -> dict[str, str]:
    """Write figures, ``summary.json``, ``summary.md`` and ``report.html`` into ``report.out``."""
    out = Path(report.out)
    report.files = {**write_figures(report)}
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
    atomic_write_text(out / "report.html", report_html(report))
    return report.files
