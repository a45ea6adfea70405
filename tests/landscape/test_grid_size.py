"""Grids that cannot fit are refused up front; long ones get one warning line first."""

from __future__ import annotations

import numpy as np
import pytest

from sharpscope import get_loss
from sharpscope.errors import SharpscopeError
from sharpscope.landscape import evaluate_grid, grid, points, random_directions, settings

from .conftest import make_model

CE = get_loss("cross_entropy")


def test_a_billion_points_are_refused_before_any_work(batches, tmp_path, monkeypatch):
    model = make_model("mlp", {"hidden": [8]})
    d = random_directions(model, count=2, seed=0).resolve(model)
    ax = np.linspace(-1, 1, 40_000)  # 1.6e9 points: about 64 GiB of result arrays
    monkeypatch.setattr(settings, "_memory_bytes", lambda: 16 * 2**30)
    calls = []
    monkeypatch.setattr(grid, "evaluate_point", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(points, "evaluate_point", lambda *a, **k: calls.append(1))
    with pytest.raises(SharpscopeError, match=r"1,600,000,000 points needs about 61\.1 GiB"):
        evaluate_grid(model, CE, batches, d, [ax, ax], out_dir=tmp_path / "s", quiet=True)
    assert calls == [] and not (tmp_path / "s" / "surface.npz").exists()


def test_a_long_job_warns_once_and_still_runs(batches, capsys, monkeypatch):
    model = make_model("mlp", {"hidden": [8]})
    d = random_directions(model, count=1, seed=0).resolve(model)
    monkeypatch.setattr(grid, "WARN_AFTER_S", 0.0)
    s = evaluate_grid(model, CE, batches, d, [np.linspace(-1, 1, 70)], quiet=True)
    assert s.done.all()
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("notice: 70 grid points at about"), lines
    # a short job says nothing
    monkeypatch.setattr(grid, "WARN_AFTER_S", 3600.0)
    evaluate_grid(model, CE, batches, d, [np.linspace(-1, 1, 70)], quiet=True)
    assert capsys.readouterr().err == ""
