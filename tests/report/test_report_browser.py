"""The HTML report in headless Chromium: no JavaScript errors, every plot rendered, not blank."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (
        p
        for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
        if p and Path(p).is_file()
    ),
    None,
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=10000",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip(
            "headless Chromium is not installed (apt-get install chromium); CI runs this test"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    from compare.test_compare import TINY, train_runs

    from sharpscope.compare import compare

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("browser")
    runs = train_runs(root, ("sgd", "sam"), epochs=1)
    report = compare(runs, out=root / "report", **TINY)
    return report.html_path


class _PlotScan(HTMLParser):
    """Records, for each ``plotly-graph-div``, whether it holds rendered plot elements."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []  # the plot id each open element belongs to
        self.plots: dict[str, set[str]] = {}
        self.errors: str | None = None
        self._in_errors = False
        self.plot_count: str = ""
        self._in_count = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        owner = self.stack[-1] if self.stack else None
        if "plotly-graph-div" in classes:
            owner = a.get("id")
            self.plots[owner] = set()
        elif owner is not None:
            self.plots[owner] |= classes
        self._in_errors = a.get("id") == "js-errors"
        if self._in_errors:
            self.errors = ""
        self._in_count = a.get("id") == "plot-count"
        if tag not in (
            "meta",
            "link",
            "br",
            "img",
            "input",
            "hr",
            "path",
            "rect",
            "line",
            "use",
            "circle",
            "image",
            "stop",
        ):
            self.stack.append(owner)

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        owner = self.stack[-1] if self.stack else None
        if owner is not None:
            self.plots[owner] |= set((a.get("class") or "").split())

    def handle_endtag(self, tag):
        if self.stack and tag not in (
            "meta",
            "link",
            "br",
            "img",
            "input",
            "hr",
            "path",
            "rect",
            "line",
            "use",
            "circle",
            "image",
            "stop",
        ):
            self.stack.pop()
        self._in_errors = self._in_count = False

    def handle_data(self, data):
        if self._in_errors:
            self.errors = (self.errors or "") + data
        if self._in_count:
            self.plot_count += data


def _run(chromium: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_page_loads_without_errors_and_plots_render(chromium, page, tmp_path):
    result = _run(chromium, ["--dump-dom", page.as_uri()], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    scan = _PlotScan()
    scan.feed(result.stdout)
    assert scan.errors == "", f"JavaScript errors: {scan.errors!r}"
    expected = {
        "plot-slices-1d",
        "plot-slices-2d",
        "plot-density",
        "plot-interpolation",
        "plot-plane-arcs",
        "plot-planes",  # the XSAM planes are interactive too (each figure once, issue 17)
        "plot-over-training",
    }
    assert set(scan.plots) == expected
    assert scan.plot_count.strip() == str(len(expected))  # the final script ran
    for plot_id, classes in scan.plots.items():
        assert {"plot-container", "main-svg"} <= classes, (
            f"{plot_id} did not render: {sorted(classes)[:10]}"
        )


def test_screenshot_is_not_blank(chromium, page, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    shot = tmp_path / "page.png"
    result = _run(
        chromium, [f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()], tmp_path
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert float(np.std(img)) > 0.05  # text, tables and plots, not an empty page
    assert float(np.mean(img.reshape(-1, 3).std(axis=1))) > 0.002  # some colour (the plots)
