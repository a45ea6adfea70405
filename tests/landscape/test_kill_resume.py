"""SIGKILL ``sharpscope slice`` mid-grid, run it again: the surface is identical to an
uninterrupted run's and every file is there (no temporary file, no stale lock)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sharpscope.landscape import Surface

from .conftest import write_checkpoint

FILES = ("surface.npz", "meta.json", "contour.png", "heatmap.png", "surface3d.png")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    import torch

    from sharpscope import build_model

    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[32])
    folder = tmp_path_factory.mktemp("kill")
    return write_checkpoint(folder / "mlp.pt", model, "mlp", {"hidden": [32]})


def _cmd(ckpt: Path, out: Path) -> list[str]:
    exe = Path(sys.executable).with_name("sharpscope")
    return [
        str(exe),
        "slice",
        str(ckpt),
        "--dims",
        "2",
        "--range",
        "-1:1:31",
        "--yrange",
        "-1:1:29",
        "--samples",
        "256",
        "--batch-size",
        "128",
        "--method",
        "loop",
        "--chunk-size",
        "3",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _points_done(out: Path) -> int:
    try:
        return int(json.loads((out / "meta.json").read_text())["points_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _kill_then_resume(
    ckpt: Path, out: Path, reference: Surface, delay: float, *, mid_grid: bool = True
) -> int:
    proc = subprocess.Popen(_cmd(ckpt, out), env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _points_done(out) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_at_kill = Surface.load(out).done.sum()
    if mid_grid:
        assert 0 < done_at_kill < reference.done.size
    else:  # a random moment may also fall after the last point, while the figures are written
        assert 0 < done_at_kill <= reference.done.size
    r = subprocess.run(_cmd(ckpt, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    resumed = Surface.load(out)
    assert resumed.complete
    assert np.array_equal(resumed.loss, reference.loss)
    assert np.array_equal(resumed.accuracy, reference.accuracy)
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    left = [p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".lock")]
    assert left == []
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] and meta["points_done"] == reference.done.size
    return int(done_at_kill)


@pytest.fixture(scope="module")
def reference(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "full"
    r = subprocess.run(_cmd(ckpt, out), env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return Surface.load(out)


def test_sigkill_mid_grid_then_resume_is_identical(ckpt, reference, tmp_path):
    _kill_then_resume(ckpt, tmp_path / "s", reference, delay=0.0)


@pytest.mark.slow
def test_sigkill_at_random_moments(ckpt, reference, tmp_path):
    rng = random.Random(0)
    for i in range(6):
        _kill_then_resume(
            ckpt, tmp_path / f"s{i}", reference, delay=rng.uniform(0.0, 1.5), mid_grid=False
        )
