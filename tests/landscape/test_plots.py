"""Plots: every file is written and non-empty, NaN cells are gaps, comparison shares levels."""

from __future__ import annotations

import numpy as np
import pytest

from sharpscope.errors import SharpscopeError
from sharpscope.landscape import Surface
from sharpscope.landscape.multi import SliceSet, center_curvature
from sharpscope.landscape.plots import (
    plot_1d,
    plot_comparison,
    plot_contour,
    plot_surface_html,
    plot_trajectory,
    shared_levels,
    write_slice_plots,
)


def _bowl(scale=1.0, holes=True):
    x, y = np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)
    s = Surface.empty([x, y])
    xx, yy = np.meshgrid(x, y, indexing="ij")
    s.loss = scale * (xx**2 + 2 * yy**2) + 0.1
    s.accuracy = 1 - 0.3 * s.loss / s.loss.max()
    if holes:
        s.loss[2, 3], s.loss[4, 5], s.loss[0, 0] = np.nan, np.inf, -np.inf
    s.done[:] = True
    return s


@pytest.mark.parametrize("log", [False, True], ids=["linear", "log"])
@pytest.mark.parametrize("surface", ["bowl-with-holes", "all-nan", "constant"])
def test_2d_plots_are_written_even_with_gaps(tmp_path, surface, log):
    s = {
        "bowl-with-holes": _bowl(),
        "all-nan": Surface.empty([np.linspace(-1, 1, 3)] * 2),
        "constant": _bowl(0.0, holes=False),
    }[surface]
    files = write_slice_plots(s, tmp_path, log=log, html=True, pdf=True)
    names = sorted(p.name for p in files)
    assert names == sorted(
        [
            "contour.png",
            "heatmap.png",
            "surface3d.png",
            "contour.pdf",
            "heatmap.pdf",
            "surface3d.pdf",
            "surface.html",
        ]
    )
    for p in files:
        assert p.stat().st_size > 1000, p
    html = (tmp_path / "surface.html").read_text()
    assert "plotly" in html and len(html) > 1_000_000  # plotly.js embedded: opens offline


def test_1d_plots_with_band_and_nan(tmp_path):
    x = np.linspace(-1, 1, 11)
    s = Surface.empty([x])
    s.loss, s.accuracy, s.done[:] = x**2, 1 - x**2, True
    s.loss[3] = np.nan
    rows = np.stack([k * x**2 + 0.1 for k in (1.0, 2.0, 3.0)])
    rows[1, 0] = np.inf
    curv = np.array([center_curvature(x, r) for r in rows])
    sset = SliceSet(x, rows, np.full_like(rows, 0.5), curv[:, 0], curv[:, 1])
    np.testing.assert_allclose(sset.median[1:], rows[1, 1:])
    np.testing.assert_allclose(curv[:, 1], [2.0, 4.0, 6.0], rtol=1e-9)  # exact parabolas
    np.testing.assert_allclose(curv[:, 0], [2.0, 4.0, 6.0], rtol=1e-9)
    for name, items in (("one.png", [s]), ("band.pdf", [sset, s])):
        plot_1d(items, tmp_path / name, labels=["a", "b"], log=True)
        assert (tmp_path / name).stat().st_size > 1000
    plot_surface_html([s, s], tmp_path / "one.html", labels=["a", "b"])
    assert (tmp_path / "one.html").stat().st_size > 1000


def test_center_curvature_without_a_zero_point():
    x = np.linspace(0.5, 2, 7)
    fd, fit = center_curvature(x, 3 * x**2)
    assert np.isnan(fd) and fit == pytest.approx(6.0)


def test_plot_contour_draws_into_a_given_axes_with_markers(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    f2, a2 = plot_contour(_bowl(), ax=ax, markers=[{"xy": (0.2, 0.1), "label": "SAM"}])
    assert f2 is fig and a2 is ax
    assert any(line.get_label() == "SAM" for line in ax.get_lines())
    fig.savefig(tmp_path / "c.png")
    plt.close(fig)


def test_comparison_shares_levels(tmp_path):
    a, b = _bowl(1.0), _bowl(3.0)
    levels = shared_levels([a, b])
    assert levels[0] == pytest.approx(0.1) and levels[-1] == pytest.approx(3 * 3 + 0.1)
    for kind in ("contour", "filled", "heatmap"):
        _, axes = plot_comparison(
            [a, b], tmp_path / f"{kind}.png", labels=["SGD", "SAM"], kind=kind
        )
        assert (tmp_path / f"{kind}.png").stat().st_size > 1000
    plot_surface_html([a, b], tmp_path / "cmp.html", labels=["SGD", "SAM"])
    with pytest.raises(SharpscopeError, match="unknown comparison kind"):
        plot_comparison([a, b], kind="pie")


def test_trajectory_plot(tmp_path):
    plot_trajectory(
        _bowl(),
        np.array([[0.5, 0.4], [0.2, 0.1], [0.0, 0.0]]),
        tmp_path / "t.png",
        epochs=[1, 2],
        explained=[0.7, 0.2],
    )
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_plot_errors(tmp_path):
    with pytest.raises(SharpscopeError, match="needs a 2D surface"):
        plot_contour(Surface.empty([np.zeros(3)]))
    with pytest.raises(SharpscopeError, match=r"must end in \.png"):
        plot_contour(_bowl(), tmp_path / "x.gif")
