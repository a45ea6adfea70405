"""plot_plane and plane_figure_html share one colour scale; labelled axes; several formats."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope.sharpness import plane_figure_html, plot_plane, xsam_plane
from sharpscope.sharpness.plots import plane_scale


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x, y = torch.randn(30, 4, dtype=torch.float64), torch.randint(0, 3, (30,))
    return xsam_plane(
        net, nn.functional.cross_entropy, (x, y), rho=0.3, grid=(-1.5, 1.5, 9), quiet=True
    )


def test_png_and_html_draw_the_same_levels(result, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.contour import ContourSet

    scale = plane_scale(result)
    assert len(scale.levels) >= 3  # a basin with several contours
    fig = plot_plane(result)
    sets = [c for c in fig.axes[0].get_children() if isinstance(c, ContourSet)]
    assert sets and all(np.allclose(c.levels, scale.levels) for c in sets)
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    arc_panel = fig.axes[1]
    assert arc_panel.get_xlabel().startswith("alpha") and arc_panel.get_ylabel()
    plt.close(fig)
    page = plane_figure_html(result, tmp_path / "plane.html").read_text()
    contours = scale.plotly_contours()
    start = json.loads(re.search(r'"contours":(\{[^}]*\})', page).group(1))["start"]
    assert start == pytest.approx(contours["start"])
    lo, hi = scale.transform(list(scale.color_range()))
    assert re.search(r'"zmin":([-0-9.e]+)', page) and float(
        re.search(r'"zmin":([-0-9.e]+)', page).group(1)
    ) == pytest.approx(lo)
    assert float(re.search(r'"zmax":([-0-9.e]+)', page).group(1)) == pytest.approx(hi)


def test_formats_write_one_file_each(result, tmp_path):
    plot_plane(result, tmp_path / "plane.png", formats=["png", "pdf", "svg"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plane.pdf", "plane.png", "plane.svg"]
    plot_plane(result, tmp_path / "only.pdf")
    assert (tmp_path / "only.pdf").read_bytes().startswith(b"%PDF")


def test_linear_levels_on_request(result):
    assert plane_scale(result, log=False).mode == "linear"
    assert plane_scale(result).mode == "log"
