"""Landscape figures (issue 17): formats, basin contour levels, labels, HTML size, CLI flags.

Not pixel tests: the figures' matplotlib objects are read back (levels, labels, titles).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from sharpscope.errors import SharpscopeError
from sharpscope.landscape import Surface
from sharpscope.landscape.plots import (
    parse_levels,
    plot_1d,
    plot_contour,
    plot_heatmap,
    plot_surface3d,
    plot_surface_html,
    plot_trajectory,
    write_slice_plots,
)
from sharpscope.landscape.plots.lines import barrier
from sharpscope.landscape.plots.panels import _label_epochs

from .conftest import make_model, write_checkpoint


def _basin(n: int = 41, corner: float = 100.0) -> Surface:
    """A quadratic basin (minimum 0.05 at the centre) with one corner ``corner`` times higher."""
    x = np.linspace(-1, 1, n)
    s = Surface.empty([x, x])
    xx, yy = np.meshgrid(x, x, indexing="ij")
    s.loss = 0.05 + xx**2 + 2 * yy**2
    s.loss[-1, -1] = corner * s.loss.max()
    s.accuracy = np.full_like(s.loss, 0.5)
    s.done[:] = True
    return s


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_every_figure_type_is_written_in_png_and_pdf(tmp_path):
    s2 = _basin(9)
    x = np.linspace(-0.5, 1.5, 9)
    s1 = Surface.empty([x])
    s1.loss, s1.accuracy, s1.done[:] = 1 + np.sin(np.pi * x), np.full_like(x, 0.5), True
    fmts = ("png", "pdf")
    plot_contour(s2, tmp_path / "contour", formats=fmts)
    plot_heatmap(s2, tmp_path / "heatmap", formats=fmts)
    plot_surface3d(s2, tmp_path / "surface3d", formats=fmts)
    plot_1d([s1], tmp_path / "slice1d", formats=fmts, barrier_between=(0.0, 1.0))
    coords = np.array([[0.6, 0.5], [0.3, 0.2], [0.0, 0.0]])
    plot_trajectory(s2, coords, tmp_path / "trajectory", epochs=[1, 2], formats=fmts)
    for name in ("contour", "heatmap", "surface3d", "slice1d", "trajectory"):
        png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert pdf.read_bytes()[:5] == b"%PDF-", name
    written = write_slice_plots(s2, tmp_path / "w", formats=("svg",), html=False)
    assert sorted(p.name for p in written) == ["contour.svg", "heatmap.svg", "surface3d.svg"]
    assert all(p.read_text().lstrip().startswith("<?xml") for p in written)


def test_a_basin_with_a_huge_corner_keeps_nested_contours():
    """Linear levels put every contour but one above the median; log-rise levels do not."""
    s = _basin()
    median = float(np.median(s.loss))
    fig, ax = plot_contour(s)
    levels = np.asarray(ax.collections[0].levels if ax.collections else [])
    below = levels[levels < median]
    assert len(below) >= 5, levels
    assert np.all(np.diff(below) > 0) and below[0] > s.loss.min()  # nested rings
    _close(fig)
    # the 0.1 behaviour (a count of linear levels) loses the basin: proves the test can fail
    fig, ax = plot_contour(s, levels=20)
    old = np.asarray(ax.collections[0].levels)
    assert (old < median).sum() <= 1
    _close(fig)


def test_axes_titles_and_colour_bars_are_labelled():
    s = _basin(9)
    fig, ax = plot_contour(s, xlabel="direction 1 (filter-normalised)", title="net · eval mode")
    assert ax.get_xlabel() == "direction 1 (filter-normalised)"
    assert ax.get_ylabel() == "direction 2" and ax.get_title() == "net · eval mode"
    bar = fig.axes[-1]
    assert bar is not ax and "loss" in bar.get_ylabel()
    ticks = [t.get_text() for t in bar.get_yticklabels() if t.get_text()]
    assert ticks and all(re.fullmatch(r"[-\d.e$^{}\\times]+", t) for t in ticks), ticks
    _close(fig)
    fig, ax = plot_surface3d(s, title="t")
    assert len(fig.axes) == 2 and ax.get_zlabel() == "loss"  # the 3D surface has a colour bar
    _close(fig)
    fig, ax = plot_trajectory(
        s, np.array([[0.5, 0.5], [0.0, 0.0]]), epochs=[3], explained=[0.61, 0.2]
    )
    assert ax.get_xlabel() == "PC 1 (61.0% of variance)"
    assert ax.get_ylabel() == "PC 2 (20.0% of variance)"
    _close(fig)


def test_the_interpolation_barrier_is_measured_and_annotated():
    x = np.linspace(-0.5, 1.5, 21)
    loss = 1.0 + 0.5 * x + 2.0 * np.sin(np.pi * np.clip(x, 0, 1))
    assert barrier(x, loss, 0.0, 1.0) == pytest.approx((0.5, 1.5, 1.0 + 0.25 + 2.0))
    s = Surface.empty([x])
    s.loss, s.accuracy, s.done[:] = loss, np.full_like(x, np.nan), True
    fig, ax = plot_1d([s], barrier_between=(0.0, 1.0))
    texts = [t.get_text() for t in ax.texts]
    assert any(t == "barrier 1.75" for t in texts), texts
    assert ax.get_legend() is not None and ax.get_legend().get_bbox_to_anchor().y0 < (
        ax.get_window_extent().y0
    )  # below the axes, off the data
    _close(fig)


def test_epoch_labels_do_not_collide():
    s = _basin(9)
    coords = np.array([[0.5, 0.5]] + [[0.3 + 1e-3 * k, 0.3] for k in range(10)] + [[0, 0]])
    fig, ax = plot_contour(s)
    kept = _label_epochs(fig, ax, coords[:-1], list(range(1, 12)))
    assert kept[0] == 0 and 1 in kept and len(kept) == 2  # the ten near-identical ones: one label
    _close(fig)


def test_html_page_is_small_and_on_the_png_scale(tmp_path):
    s = _basin(41)
    path = plot_surface_html([s], tmp_path / "s.html", labels=["sam-final"], title="T")
    text = path.read_text()
    import plotly.offline

    js = len(plotly.offline.get_plotlyjs())
    assert len(text) - js < 200_000, len(text) - js  # typed float32 arrays, not JSON lists
    assert '"dtype":"f4"' in text and "sam-final: contour" in text
    assert '"text":"direction 1"' in text or "direction 1" in text
    # the colour bar shows the same round rises as the matplotlib colour bar
    fig, ax = plot_contour(s)
    labels = [t.get_text() for t in fig.axes[-1].get_yticklabels() if t.get_text()]
    _close(fig)
    for lab in labels:
        plain = lab.strip("$").replace("10^{", "10<sup>").replace("}", "</sup>")
        assert plain.replace("\\times", "×") in text, (lab, plain)


def test_level_options_are_checked():
    assert parse_levels("LI") == "li" and parse_levels("0.1, 0.5,1") == (0.1, 0.5, 1.0)
    for bad in ("", "banana", "1,x", "nan"):
        with pytest.raises(SharpscopeError, match="--levels must be"):
            parse_levels(bad)
    s = _basin(9)
    fig, ax = plot_contour(s, levels=(0.1, 0.5, 1.0))
    assert list(ax.collections[0].levels) == [0.1, 0.5, 1.0]
    _close(fig)


def test_cli_levels_and_formats(cli_runner, cli_app, tmp_path):
    ckpt = write_checkpoint(
        tmp_path / "a.pt", make_model("mlp", {"hidden": [8]}), "mlp", {"hidden": [8]}
    )
    out = tmp_path / "s"
    args = ["slice", str(ckpt), "--range", "-1:1:5", "--samples", "32", "--out", str(out)]
    r = cli_runner.invoke(cli_app, [*args, "--format", "pdf,svg", "--levels", "li", "--quiet"])
    assert r.exit_code == 0, r.output
    for name in ("contour", "heatmap", "surface3d"):
        assert (out / f"{name}.pdf").is_file() and (out / f"{name}.svg").is_file()
        assert not (out / f"{name}.png").exists()
    r = cli_runner.invoke(cli_app, [*args, "--levels", "0.1,x"])
    assert r.exit_code != 0 and r.output.strip().startswith("error: --levels must be")
    r = cli_runner.invoke(cli_app, [*args, "--format", "gif"])
    assert r.exit_code != 0 and "unknown figure format" in r.output
