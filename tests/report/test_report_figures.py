"""Report figures for a paper: PNG + PDF of each, labelled axes, a colour scale that keeps the
comparison, each figure once in a page of bounded size, readable settings, boundary warnings."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.report import FigureOptions, boundary_warnings, report_html, summary_markdown
from sharpscope.report.scales import RISE_LABEL, panel_scales

HTML_BOUND = 2_000_000  # bytes of the page apart from the inlined plotly.js


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from compare.test_compare import TINY, train_runs

    from sharpscope.compare import compare

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("figs")
    runs = train_runs(root, ("sgd", "sam"), epochs=1)
    return compare(runs, out=root / "report", **TINY)


def _figure_names(report) -> list[str]:
    return [k.split(":", 1)[1] for k in report.files if k.startswith("figure:")]


def test_every_report_figure_is_written_as_png_and_pdf(report):
    names = _figure_names(report)
    assert {"slices_2d", "planes", "density", "slices_1d", "measures"} <= set(names)
    for name in names:
        png, pdf = report.files[f"figure:{name}"], report.files[f"figure_pdf:{name}"]
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", name
        assert open(pdf, "rb").read(5) == b"%PDF-", name


def test_figures_have_axis_labels_and_titles(report, monkeypatch, tmp_path):
    import sharpscope.runtime.figstyle as figstyle
    from sharpscope.report import _draw_figures

    seen: dict[str, list] = {}

    def record(fig, path, **kw):
        axes = [a for a in fig.axes if a.get_label() != "<colorbar>"]
        seen[str(path)] = [(a.get_xlabel(), a.get_ylabel(), a.get_title()) for a in axes]
        seen[str(path) + ":suptitle"] = fig._suptitle.get_text() if fig._suptitle else ""
        return []

    monkeypatch.setattr(figstyle, "save_figure", record)
    _draw_figures(report, tmp_path, FigureOptions())
    drawn = [p for p in seen if not p.endswith(":suptitle")]
    # every figure drawn here (the plane details are sharpness.plots' own, tested there)
    names = {p.rsplit("/", 1)[1] for p in drawn}
    assert names >= {"measures.png", "slices_1d.png", "slices_2d.png", "density.png"}
    assert names >= {"interpolation.png", "planes.png", "lambda_max_over_training.png"}
    for path in drawn:
        labelled = [a for a in seen[path] if a[0] and a[1]]
        assert labelled, path  # at least one panel with both axis labels
        titled = any(a[2] for a in seen[path]) or seen[path + ":suptitle"]
        assert titled, path
    panels = seen[str(tmp_path / "slices_2d.png")]
    assert all(x.startswith("d1") and y.startswith("d2") and t for x, y, t in panels)


def test_shared_rise_scale_keeps_the_comparison():
    x = np.linspace(-1, 1, 9)
    bowl = np.add.outer(x**2, x**2)
    narrow, shifted = 4 * bowl, bowl + 10.0
    rise = panel_scales([bowl, shifted, narrow], "rise")
    # the same basin at another height looks the same; a narrower one looks different
    assert rise.label == RISE_LABEL and rise.shared
    np.testing.assert_allclose(rise.z[0], rise.z[1])
    norm = rise.scales[0].norm()
    assert float(norm(rise.z[2][0, 4])) > float(norm(rise.z[0][0, 4]))
    # the 0.1 scale: one linear range over absolute losses: the low bowls all look alike
    flat = panel_scales([bowl, shifted, narrow], "shared")
    lin = flat.scales[0].norm()
    assert float(lin(bowl.max())) < 0.2 and float(lin(narrow.max())) < 0.8
    per = panel_scales([bowl, narrow], "panel")
    assert not per.shared and per.scales[0] is not per.scales[1]


def test_figure_options_are_validated():
    assert FigureOptions(formats=("pdf",)).formats == ("png", "pdf")
    with pytest.raises(SharpscopeError, match="unknown figure format 'gif'"):
        FigureOptions(formats=("gif",))
    with pytest.raises(SharpscopeError, match="unknown colour scale 'rainbow'"):
        FigureOptions(color_scale="rainbow")


def test_page_shows_each_figure_once_with_static_files_linked(report):
    page = report.html_path.read_text()
    head, _, rest = page.partition('<script type="text/javascript">')
    plotly_js, _, tail = rest.partition("</script>")
    assert len((head + tail).encode()) < HTML_BOUND
    assert page.count('<script type="text/javascript">') == 1
    # interactive figures are not repeated as images; only PNG-only figures are embedded
    images = re.findall(r'<img alt="([^"]+)"', page)
    assert sorted(images) == sorted(
        n for n in _figure_names(report) if n == "measures" or n.startswith("plane_")
    )
    for div in ("plot-slices-2d", "plot-planes", "plot-density"):
        assert page.count(f'id="{div}"') == 1
    assert 'href="figures/slices_2d.pdf"' in page and 'href="figures/slices_2d.png"' in page
    assert '"exponentformat":"power"' in page.replace(" ", "")  # density: no SI prefixes


def test_settings_are_a_readable_table(report):
    page = report.html_path.read_text()
    table = page.partition('<table class="settings">')[2].partition("</table>")[0]
    assert "<td>shared random directions</td><td>2</td>" in table
    assert "{" not in table and "None" not in table
    assert "<td>directions: kind</td><td>random</td>" in table


def test_search_limits_are_warned_about(report):
    rec = report.details["sgd"]["plane"]
    old = (rec.get("alpha_star_at_limit"), rec.get("boundary_note"))
    rec["alpha_star_at_limit"], rec["boundary_note"] = True, "XSAM's alpha* = 2 is the largest"
    try:
        page, md = report_html(report), summary_markdown(report)
    finally:
        rec["alpha_star_at_limit"], rec["boundary_note"] = old
    assert 'id="search-warnings"' in page and "XSAM&#x27;s alpha* = 2 is the largest" in page
    assert "> **warning**: sgd, XSAM plane: XSAM's alpha* = 2 is the largest" in md
    assert 'id="search-warnings"' not in report_html(report) or boundary_warnings(report)


def test_boundary_warnings_name_every_search_that_hit_its_limit():
    rep = SimpleNamespace(
        labels=["a", "b", "c"],
        details={
            "a": {"plane": {"alpha_star": 2.0, "alpha_star_at_limit": True}},
            "b": {"sharpness": {"worst": {"boundary_note": "all 3 ascent starts were rising"}}},
            "c": {"plane": {"alpha_star": 0.7, "alpha_star_at_limit": False}},
        },
    )
    assert boundary_warnings(rep) == [
        "a, XSAM plane: alpha* = 2 is the largest alpha searched; the arc's maximum may lie "
        "beyond it",
        "b, worst-case sharpness: all 3 ascent starts were rising",
    ]


def test_markdown_explains_curvatures_and_density_error(report):
    md = summary_markdown(report)
    assert "fitted" in md and "finite difference" in md and "quadratic bowl" in md
    assert "one run: no error bar" in md  # TINY uses density_runs=1
    assert "BatchNorm" in md
