"""The PNG figures of a comparison (matplotlib), drawn from the report's numbers and grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .format import FigureOptions, _arr

DEFAULT_OPTIONS = FigureOptions()


def _plt():
    from ..landscape.plots import _plt as plt_

    return plt_()


def _save(fig: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS) -> Path:
    """Write ``fig`` once per format beside ``path`` (a ``.png`` path); return the PNG's path."""
    from ..runtime.figstyle import save_figure

    try:
        save_figure(fig, path, formats=opts.formats)
    finally:
        _plt().close(fig)
    return path


def _legend_outside(ax: Any, **kw: Any) -> Any:
    from ..runtime.figstyle import place_legend_outside

    return place_legend_outside(ax, **{"fontsize": 7.5, "frameon": False, **kw})


def _slice_sets(report: Any) -> list[tuple[str, Any]]:
    from ..landscape.multi import SliceSet

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
    from ..landscape.grid import Surface

    out = []
    for label in panel_labels(report):
        d = report.details.get(label, {}).get(probe)
        if d is None:
            continue
        out.append((label, Surface.load(d["surface_dir"])))
    return out


def panel_labels(report: Any) -> list[str]:
    """The checkpoints that get a panel of their own (2D slices, planes): every one, or the
    first run of each group in a comparison of groups (a panel per seed would not fit)."""
    groups = getattr(report, "groups", None)
    return [members[0] for members in groups.values()] if groups else list(report.labels)


def _fig_measures(report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS) -> Path | None:
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
    ax.set_xlabel("flatness measure")
    ax.set_ylabel(f"value / {base['label']}'s value  (lower = flatter)")
    ax.set_title(f"Flatness measures relative to {base['label']}")
    _legend_outside(ax, title="checkpoint")
    ax.set_ylim(0, max(1.15, ax.get_ylim()[1]))
    fig.tight_layout()
    return _save(fig, path, opts)


def _fig_slices_1d(report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS) -> Path | None:
    from ..landscape.plots import plot_1d

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
    ax.get_legend().set_title("dashed: accuracy (right axis)", prop={"size": 7})
    return _save(fig, path, opts)


def _shared_colorbar(fig: Any, axes: Any, levels: Any, label: str = "loss") -> None:
    import matplotlib as mpl

    if levels is None:
        return
    norm = mpl.colors.Normalize(vmin=float(levels[0]), vmax=float(levels[-1]))
    sm = mpl.cm.ScalarMappable(norm=norm, cmap="viridis")
    fig.colorbar(sm, ax=list(axes), label=label, shrink=0.9)


def _fig_slices_2d(report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS) -> Path | None:
    from .scales import draw_panel, panel_scales, shared_colorbar

    items = _surfaces(report, "slice2d")
    if not items:
        return None
    plt = _plt()
    scales = panel_scales([s.loss for _, s in items], opts.color_scale)
    fig, axes = plt.subplots(
        1, len(items), figsize=(3.6 * len(items) + 1.2, 3.9), squeeze=False, layout="constrained"
    )
    axes = list(axes[0])
    mappable = None
    for k, (ax, (label, surf)) in enumerate(zip(axes, items, strict=True)):
        cs = draw_panel(ax, surf.axes, scales.z[k], scales.scales[k])
        mappable = mappable or cs
        if not scales.shared and cs is not None:
            shared_colorbar(fig, ax, cs, scales.scales[k], "training loss")
        ax.set_title(f"{label} (loss at centre {surf.value_at_center():.3g})")
        ax.set_xlabel("d1 (filter-normalised)")
        ax.set_ylabel("d2 (filter-normalised)")
        ax.plot([0], [0], "+", color="white", ms=10)
        ax.set_aspect("equal", adjustable="box")
    if scales.shared:
        shared_colorbar(fig, axes, mappable, scales.scales[0], scales.label)
    fig.suptitle(
        f"2D loss slices along the same two filter-normalised directions ({scales.describe()})"
    )
    return _save(fig, path, opts)


def _fig_density(report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS) -> Path | None:
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
            label=f"{label}: lambda_max {d['lambda_max']:.3g}, {_slq_trace(d)}",
        )
    ax.set_yscale("log")
    top = max(float(np.nanmax(np.maximum(_arr(d["density"]), 1e-12))) for _, d in items)
    ax.set_ylim(max(1e-7, top * 1e-7), top * 3)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel("density (log scale)")
    d0 = items[0][1]
    ax.set_title(f"Hessian spectral density (SLQ: {d0['runs']} runs x {d0['iters']} Lanczos steps)")
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path, opts)


def _slq_trace(d: dict[str, Any]) -> str:
    """``tr ≈ 12.3 ± 0.4`` of a density record (the SLQ trace, its standard error over runs)."""
    from .format import format_value

    tr = d.get("trace_estimate")
    if tr is None:
        return "tr n/a"
    se = d.get("trace_stderr")
    note = "" if se is not None else " (one run: no error bar)"
    return f"tr ≈ {format_value(tr, se)}{note}"


def _fig_interpolation(
    report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS
) -> Path | None:
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
    _legend_outside(ax, where="below")
    return _save(fig, path, opts)


def _momentum(report: Any, label: str) -> float:
    hp = (report.details.get(label, {}).get("metrics") or {}).get("hparams") or {}
    m = hp.get("momentum")
    return float(m) if isinstance(m, (int, float)) else 0.0


def _fig_over_training(
    report: Any, path: Path, opts: FigureOptions = DEFAULT_OPTIONS
) -> Path | None:
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
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, path, opts)
