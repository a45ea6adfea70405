"""sharpscope.runtime.figstyle: the paper style, multi-format saving, basin contour levels, label helpers."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sharpscope.errors import SharpscopeError  # noqa: E402
from sharpscope.runtime import figstyle as fs  # noqa: E402


def _bowl(corner: float | None = 44.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, 41)
    xx, yy = np.meshgrid(x, x)
    z = xx**2 + yy**2
    if corner is not None:
        z[0, 0] = corner
    return xx, yy, z


def _on_round_grid(values) -> bool:
    """At least two values, equally spaced by 1, 2 or 5 x 10^k, each a whole multiple of it."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return False
    steps = np.diff(v)
    step = float(steps[0])
    if not np.allclose(steps, step, rtol=1e-9, atol=0):
        return False
    mant = step / 10.0 ** math.floor(math.log10(step) + 1e-12)
    if not any(abs(mant - m) < 1e-9 for m in (1, 2, 5)):
        return False
    return bool(np.allclose(v / step, np.round(v / step), atol=1e-9))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- style
def test_style_file_ships_in_the_package_and_is_applied_inside_the_context():
    assert fs.STYLE_PATH.is_file()
    assert fs.STYLE_PATH.parent.name == "sharpscope"
    before = dict(matplotlib.rcParams)
    with fs.style():
        rc = matplotlib.rcParams
        assert rc["font.size"] == 8
        assert rc["axes.titlesize"] == 9
        assert rc["axes.spines.top"] is False and rc["axes.spines.right"] is False
        assert rc["savefig.dpi"] == 200
        assert rc["savefig.bbox"] == "tight"
        assert rc["pdf.fonttype"] == 42
        assert rc["svg.fonttype"] == "none"
        assert rc["image.cmap"] == fs.SEQUENTIAL_CMAP
        assert tuple(rc["figure.figsize"]) == fs.figsize(columns=1)
        cycle = [c.upper() for c in rc["axes.prop_cycle"].by_key()["color"]]
        assert cycle == [c.upper() for c in fs.COLORS]
        fig, ax = plt.subplots()
        assert not ax.spines["top"].get_visible()
    assert matplotlib.rcParams["font.size"] == before["font.size"]
    assert matplotlib.rcParams["savefig.dpi"] == before["savefig.dpi"]


def test_figsize_one_and_two_columns():
    assert fs.figsize() == (3.4, 2.55)
    assert fs.figsize(columns=2, aspect=0.5) == (7.0, 3.5)
    assert fs.figsize(columns=1, aspect=1.0, rows=2) == (3.4, 6.8)
    for bad in ({"columns": 3}, {"aspect": 0}, {"aspect": float("nan")}, {"rows": 0}):
        with pytest.raises(SharpscopeError):
            fs.figsize(**bad)


# ----------------------------------------------------------------------------- saving
def test_parse_formats():
    assert fs.parse_formats("pdf,png") == ("pdf", "png")
    assert fs.parse_formats(" PNG , .svg,png ") == ("png", "svg")
    assert fs.parse_formats(["svg"]) == ("svg",)
    with pytest.raises(SharpscopeError, match="unknown figure format 'jpg'") as exc:
        fs.parse_formats("png,jpg")
    assert "\n" not in str(exc.value)
    with pytest.raises(SharpscopeError, match="no figure format"):
        fs.parse_formats(" , ")


def test_save_figure_writes_every_format_side_by_side(tmp_path):
    with fs.style():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0], label="a")
        ax.set_title("title text")
        paths = fs.save_figure(fig, tmp_path / "out" / "contour.png", formats="png,pdf,svg")
    assert paths == [tmp_path / "out" / f"contour.{e}" for e in ("png", "pdf", "svg")]
    png, pdf, svg = (p.read_bytes() for p in paths)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert pdf.startswith(b"%PDF")
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert b"title text" in svg  # svg.fonttype none: text stays text
    # no temporary file left beside them
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "contour.pdf",
        "contour.png",
        "contour.svg",
    ]
    # PDF and SVG carry no date: the same figure gives the same bytes
    again = fs.save_figure(fig, tmp_path / "again", formats=("pdf", "svg"))
    assert again[0].read_bytes() == pdf and again[1].read_bytes() == svg
    # saved outside the style too: TrueType fonts (pdf.fonttype 42), never Type 3
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf


def test_save_figure_checks_formats_before_writing(tmp_path):
    fig, _ = plt.subplots()
    with pytest.raises(SharpscopeError, match="unknown figure format"):
        fs.save_figure(fig, tmp_path / "f", formats=("png", "eps"))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- levels
def test_log_levels_nest_the_basin_despite_a_large_corner_loss():
    _, _, z = _bowl(corner=44.0)
    levels = fs.contour_levels(z)
    med = float(np.median(z))
    inside = levels[(levels > z.min()) & (levels < med)]
    assert len(inside) >= 5
    assert levels.max() <= z.max() and levels.min() > z.min()
    # the old default (20 linear levels from min to max) fails the same check
    old = np.linspace(z.min(), z.max(), 20)
    assert len(old[(old > z.min()) & (old < med)]) < 5


def test_log_levels_are_geometric_in_the_rise_and_anchored_at_powers_of_ten():
    _, _, z = _bowl()
    z = z + 3.0  # the minimum is 3: levels are 3 + 10**(k/p)
    scale = fs.loss_scale(z)
    rise = scale.levels - 3.0
    ratios = rise[1:] / rise[:-1]
    assert np.allclose(ratios, ratios[0])
    p = round(1 / math.log10(ratios[0]))
    assert np.allclose(np.log10(rise) * p, np.round(np.log10(rise) * p), atol=1e-9)
    assert scale.zmin == 3.0 and scale.zmax == 47.0
    assert 9 <= len(scale.levels) <= 15  # about n=12
    assert len(fs.contour_levels(z, n=30)) > len(scale.levels)


def test_log_levels_ignore_non_finite_values_and_flat_or_empty_surfaces():
    _, _, z = _bowl(corner=None)
    zz = z.copy()
    zz[5, 5] = np.nan
    zz[6, 6] = np.inf
    assert len(fs.contour_levels(zz)) >= 5
    assert fs.contour_levels(np.full((4, 4), np.nan)).size == 0
    assert fs.contour_levels(np.full((4, 4), 2.5)).size == 0
    assert fs.loss_scale(np.full((4, 4), 2.5)).empty


def test_li_levels_restricted_to_the_data_and_clipped_by_vmin_vmax():
    _, _, z = _bowl(corner=None)  # 0 .. 2
    assert np.allclose(fs.contour_levels(z, mode="li"), [0.1, 0.6, 1.1, 1.6])
    assert np.allclose(fs.contour_levels(z * 20, mode="li"), np.arange(0.1, 10, 0.5))
    assert np.allclose(fs.contour_levels(z, mode="li", vmax=1.2), [0.1, 0.6, 1.1])
    assert np.allclose(fs.contour_levels(z, mode="li", vmin=0.5, vmax=1.2), [0.6, 1.1])
    assert fs.contour_levels(z + 20, mode="li").size == 0


def test_linear_levels_are_round():
    _, _, z = _bowl(corner=None)
    levels = fs.contour_levels(z * 1.009 + 0.003, mode="linear", n=5)
    assert np.allclose(levels, [0.5, 1.0, 1.5, 2.0])  # data 0.003 .. 2.021
    assert _on_round_grid(fs.contour_levels(z * 7.3 - 0.41, mode="linear"))
    assert not _on_round_grid([0.003, 0.506, 1.009])  # the old colour-bar ticks


def test_explicit_levels_are_honoured_and_validated():
    _, _, z = _bowl()
    assert np.array_equal(fs.contour_levels(z, levels=[0.5, 0.1, 2.0, 0.5]), [0.1, 0.5, 2.0])
    assert np.array_equal(fs.contour_levels(z, levels=[0.1, 0.5, 2.0], vmax=1.0), [0.1, 0.5])
    assert np.array_equal(fs.contour_levels(z, levels=[0.1, 0.5, 2.0], vmin=0.2), [0.5, 2.0])
    with pytest.raises(SharpscopeError, match="finite"):
        fs.contour_levels(z, levels=[0.1, float("nan")])
    with pytest.raises(SharpscopeError, match="unknown contour level mode 'cubic'"):
        fs.contour_levels(z, mode="cubic")
    with pytest.raises(SharpscopeError, match="vmax"):
        fs.contour_levels(z, vmin=2.0, vmax=1.0)


def test_log_levels_with_vmax_and_a_shared_scale_for_two_surfaces():
    _, _, z = _bowl()
    assert fs.contour_levels(z, vmax=1.0).max() <= 1.0
    a, b = z, z * 3 + 1
    shared = fs.loss_scale(np.concatenate([a.ravel(), b.ravel()]))
    assert shared.zmin == 0.0 and shared.zmax == b.max()


# ----------------------------------------------------------------------------- ticks
def test_nice_ticks_are_round_numbers():
    ticks = fs.nice_ticks(0.003, 1.009)
    assert np.allclose(ticks, [0.2, 0.4, 0.6, 0.8, 1.0])
    assert [fs.format_number(t) for t in ticks] == ["0.2", "0.4", "0.6", "0.8", "1"]
    for lo, hi in [(0.003, 1.009), (2.49, 44.0), (-3.2, 7.7), (1e-4, 3.3e-4), (12345, 99999)]:
        t = fs.nice_ticks(lo, hi, n=5)
        assert 2 <= len(t) <= 5
        assert all(lo <= v <= hi for v in t)
        assert _on_round_grid(t), (lo, hi, t)


def test_nice_log_ticks():
    assert np.allclose(fs.nice_ticks(0.0025, 44.0, log=True), [0.01, 0.1, 1, 10])
    assert np.allclose(fs.nice_ticks(1e-8, 1e3, log=True, n=4), [1e-8, 1e-5, 1e-2, 10])
    assert np.allclose(fs.nice_ticks(0.03, 0.4, log=True), [0.05, 0.1, 0.2])
    with pytest.raises(SharpscopeError, match="positive"):
        fs.nice_ticks(0.0, 1.0, log=True)


def test_format_number_never_uses_si_prefixes():
    assert fs.format_number(0.001) == "0.001"
    assert fs.format_number(1e-5) == "1e-5"
    assert fs.format_number(1e-5, markup="html") == "10<sup>-5</sup>"
    assert fs.format_number(2e-5, markup="mathtext") == "$2\\times10^{-5}$"
    assert fs.format_number(1e6, markup="mathtext") == "$10^{6}$"


# ----------------------------------------------------------------------------- colour scale
def test_colour_scale_ticks_norm_and_plotly_describe_the_same_scale():
    import plotly.graph_objects as go

    xx, yy, z = _bowl()
    scale = fs.loss_scale(z)
    pos, labels = scale.ticks()
    assert labels == ["0.01", "0.1", "1", "10"]
    assert np.allclose(pos, scale.zmin + np.array([0.01, 0.1, 1, 10]))
    # the norm is logarithmic in the rise: the geometric middle of the range maps to 0.5
    norm = scale.norm()
    lo, hi = scale.color_range()
    mid = scale.zmin + math.sqrt((lo - scale.zmin) * (hi - scale.zmin))
    assert norm(lo) == pytest.approx(0.0) and norm(hi) == pytest.approx(1.0)
    assert norm(mid) == pytest.approx(0.5)
    # plotly: evenly spaced contours on the transformed values are exactly the levels
    spec = scale.plotly_contour(z, x=xx[0], y=yy[:, 0])
    c = spec["contours"]
    k = np.arange(len(scale.levels))
    assert np.allclose(scale._inverse(c["start"] + k * c["size"]), scale.levels)
    assert c["end"] == pytest.approx(c["start"] + k[-1] * c["size"])
    cb = spec["colorbar"]
    assert cb["ticktext"] == labels and cb["exponentformat"] == "power"
    assert np.allclose(cb["tickvals"], np.log10([0.01, 0.1, 1, 10]))
    assert spec["customdata"][0][0] == 44.0  # hovering shows the real loss
    go.Contour(**spec)  # plotly accepts every key
    surf = scale.plotly_surface(z, x=xx[0], y=yy[:, 0])
    assert surf["z"][0][0] == 44.0 and surf["surfacecolor"][0][0] == pytest.approx(math.log10(44))
    assert (surf["cmin"], surf["cmax"]) == (spec["zmin"], spec["zmax"])
    go.Surface(**surf)
    assert fs.plotly_colorbar(scale) == cb
    assert fs.plotly_colorbar([0.1, 0.6, 1.1])["ticktext"] == ["0.2", "0.4", "0.6", "0.8", "1"]
    assert fs.plotly_log_axis("density")["exponentformat"] == "power"


def test_uneven_explicit_levels_map_to_level_index_for_plotly():
    _, _, z = _bowl()
    scale = fs.loss_scale(z, levels=[0.01, 0.1, 1.0, 10.0])
    c = scale.plotly_contours()
    assert (c["start"], c["end"], c["size"]) == (0.0, 3.0, 1.0)
    assert np.allclose(scale.transform([0.01, 0.1, 1.0, 10.0]), [0, 1, 2, 3])


def test_rise_norm():
    norm = fs.rise_norm(1.0, 101.0, floor=0.01)
    assert norm(1.01) == pytest.approx(0.0)
    assert norm(101.0) == pytest.approx(1.0)
    assert norm(2.0) == pytest.approx(0.5)  # rise 1 is half-way between 0.01 and 100 in log
    with pytest.raises(SharpscopeError):
        fs.rise_norm(2.0, 1.0)


def test_a_real_contour_figure_with_these_levels(tmp_path):
    xx, yy, z = _bowl()
    scale = fs.loss_scale(z)
    with fs.style():
        fig, ax = plt.subplots(figsize=fs.figsize(columns=1, aspect=0.9))
        cs = ax.contour(xx, yy, z, levels=scale.levels, norm=scale.norm())
        ax.clabel(cs, fmt=scale.level_formatter())
        cb = scale.colorbar(fig, cs, ax=ax)
        ax.set_xlabel(fs.direction_label(1, "filter"))
        ax.set_ylabel(fs.direction_label("d2", "filter"))
        ax.set_title(fs.title_for("runs/resnet20-sam.pt", "eval"))
        paths = fs.save_figure(fig, tmp_path / "contour", formats=("png",))
    assert np.array_equal(cs.levels, scale.levels)
    assert ax.get_xlabel() == "direction 1 (filter-normalised)"
    assert ax.get_ylabel() == "direction 2 (filter-normalised)"
    assert ax.get_title() == "resnet20-sam · eval mode"
    assert cb.ax.get_ylabel() == "loss − min  (min = 0)"
    assert [t.get_text() for t in cb.ax.get_yticklabels()] == ["0.01", "0.1", "1", "10"]
    assert paths[0].stat().st_size > 0


# ----------------------------------------------------------------------------- labels
def test_direction_label_and_title():
    assert fs.direction_label(1, "filter") == "direction 1 (filter-normalised)"
    assert fs.direction_label("d2", "layer") == "direction 2 (layer-normalised)"
    assert fs.direction_label(2, "none") == "direction 2 (not normalised)"
    assert fs.direction_label("pc1", None, explained=0.4567) == "PC 1 (45.7% of variance)"
    with pytest.raises(SharpscopeError, match="normalisation 'batch'"):
        fs.direction_label(1, "batch")
    with pytest.raises(SharpscopeError, match="direction 3"):
        fs.direction_label(3, "filter")
    assert fs.title_for("resnet20-sam", "eval") == "resnet20-sam · eval mode"
    assert fs.title_for("/x/y/resnet20-sam.pt", "train") == "resnet20-sam · train mode"
    assert fs.title_for("a\x1b[31mb\nc") == "ab c"
    with pytest.raises(SharpscopeError, match="mode 'test'"):
        fs.title_for("m", "test")


def test_legend_outside_the_data():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="loss")
    ax2 = fs.twin_axis(ax)
    assert ax2.spines["right"].get_visible()
    ax2.plot([0, 1], [1, 0], ls="--", label="accuracy")
    leg = fs.place_legend_outside(ax, extra_axes=[ax2])
    assert [t.get_text() for t in leg.get_texts()] == ["loss", "accuracy"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert leg.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
    leg = fs.place_legend_outside(ax, where="below")
    fig.canvas.draw()
    assert leg.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0
    fig2, bare = plt.subplots()
    assert fs.place_legend_outside(bare) is None
    with pytest.raises(SharpscopeError, match="legend place 'left'"):
        fs.place_legend_outside(ax, where="left")


def test_annotate_barrier():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.5, 0.6])
    note = fs.annotate_barrier(ax, 0.5, 0.55, 2.0, "barrier 1.45")
    assert note.get_text() == "barrier 1.45"
    lo, hi = ax.get_ylim()
    assert lo <= 0.55 and hi >= 2.0
    with pytest.raises(SharpscopeError, match="finite"):
        fs.annotate_barrier(ax, 0.5, float("nan"), 1.0, "x")


def test_non_overlapping_labels_hand_cases():
    assert np.allclose(fs.non_overlapping_labels([0, 0, 0], 1), [-1, 0, 1])
    assert np.allclose(fs.non_overlapping_labels([0, 0.1, 5], 1), [-0.45, 0.55, 5])
    # input order is kept in the output; positions far apart are untouched, bit for bit
    assert np.allclose(fs.non_overlapping_labels([5, 0.1, 0], 1), [5, 0.55, -0.45])
    spaced = np.array([0.3, 1.7, 4.1])
    assert np.array_equal(fs.non_overlapping_labels(spaced, 1), spaced)
    assert fs.non_overlapping_labels([], 1).size == 0
    with pytest.raises(SharpscopeError):
        fs.non_overlapping_labels([0, 1], -1)


def test_non_overlapping_labels_properties_and_minimal_displacement():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = np.round(rng.uniform(0, 10, size=rng.integers(2, 15)), 1)
        gap = float(rng.uniform(0.2, 1.5))
        out = fs.non_overlapping_labels(p, gap)
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(out[order]) >= gap - 1e-9)  # order kept, gaps kept
        # optimal in the squared sense: beats pushing labels to the right greedily
        # and the two single-direction pushes
        greedy = p[order].copy()
        for i in range(1, len(greedy)):
            greedy[i] = max(greedy[i], greedy[i - 1] + gap)
        cost = np.sum((out[order] - p[order]) ** 2)
        assert cost <= np.sum((greedy - p[order]) ** 2) + 1e-9
        # exact optimality (KKT of the convex problem): in each run of labels packed at
        # exactly min_gap the moves sum to zero and their running sums are <= 0
        # (non-negative multipliers of the gap constraints)
        o, d = out[order], out[order] - p[order]
        cuts = np.flatnonzero(np.diff(o) > gap + 1e-9) + 1
        for block in np.split(d, cuts):
            assert abs(block.sum()) <= 1e-9
            assert np.all(np.cumsum(block)[:-1] <= 1e-9)


def test_thin_labels():
    pts = np.array([[0, 0], [0.1, 0], [0.2, 0.1], [1.5, 0], [1.55, 0.05], [3, 0]])
    assert fs.thin_labels(pts, 1.0) == [0, 3, 5]
    assert fs.thin_labels(pts, 0.0) == list(range(6))
    assert fs.thin_labels([0.0, 0.4, 0.9], 0.5) == [0, 2]
