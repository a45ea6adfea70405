"""PlaneSettings: the validated settings of xsam_plane write exactly the files written before."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope.errors import SharpscopeError
from sharpscope.sharpness import PlaneSettings, xsam_plane


def _net_and_data():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (30,))
    return net, [(x[:20], y[:20]), (x[20:], y[20:])]


def test_files_hold_exactly_the_settings_dicts(tmp_path):
    net, batches = _net_and_data()
    res = xsam_plane(
        net,
        nn.functional.cross_entropy,
        batches,
        rho=0.2,
        steps=2,
        grid=(-0.3, 0.3, 5),
        worst_steps=5,
        restarts=1,
        out_dir=tmp_path,
        quiet=True,
    )
    meta = json.loads((tmp_path / "meta.json").read_text())["metadata"]
    plane = json.loads((tmp_path / "plane.json").read_text())
    # the layout written by 0.1 (old folders keep loading): written out by hand
    assert meta == {
        "probe": "xsam_plane",
        "rho": 0.2,
        "rho_max": 0.4,
        "k": 2,
        "psi": res.psi,
        "alpha_star": res.alpha_star,
        "degenerate": res.degenerate,
    }
    assert plane["settings"] == {
        "mode": "eval",
        "seed": 0,
        "data_samples": 30,
        "batches": 2,
        "parameters": 4,
        "alpha_max": 2.0,
        "alpha_step": 0.1,
        "grid": [[-0.3, 0.3, 5], [-0.3, 0.3, 5]],
    }
    s = PlaneSettings(rho=0.2, steps=2, grid=(-0.3, 0.3, 5), worst_steps=5, restarts=1)
    assert {**s.to_dict(), "psi": res.psi, "alpha_star": res.alpha_star} == {
        k: v for k, v in meta.items() if k != "degenerate"
    }
    assert s.grid_metadata(psi=res.psi, alpha_star=res.alpha_star, degenerate=res.degenerate) == (
        meta
    )
    assert s.record(data_samples=30, batches=2, parameters=4) == plane["settings"]


def test_settings_are_frozen_and_resolved():
    s = PlaneSettings(rho=0.05, axes=[[0, 1, 2], [-1, 1]])
    assert s.rho_max == 0.1
    assert s.axes == ((0.0, 1.0, 2.0), (-1.0, 1.0))
    assert [a.tolist() for a in s.plane_axes] == [[0.0, 1.0, 2.0], [-1.0, 1.0]]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.rho = 1.0  # type: ignore[misc]
    grid = PlaneSettings(rho=1, grid=(-1, 1, 3))
    assert isinstance(grid.rho, float) and grid.rho_max == 2.0
    np.testing.assert_array_equal(grid.plane_axes[0], [-1.0, 0.0, 1.0])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"rho": 0}, "rho must be a positive number, got 0"),
        ({"rho": True}, "rho must be a positive number, got True"),
        ({"rho": 0.1, "rho_max": float("nan")}, "rho_max must be a positive number"),
        ({"rho": 0.1, "steps": 1.0}, "steps must be a whole number of at least 1, got 1.0"),
        ({"rho": 0.1, "alpha_max": -1}, "alpha_max must be a non-negative number"),
        ({"rho": 0.1, "worst_steps": 0}, "worst_steps must be at least 1, got 0"),
        ({"rho": 0.1, "restarts": -1}, "restarts must be 0 or more, got -1"),
        ({"rho": 0.1, "grid": "x"}, "grid must be \\(start, stop, num\\)"),
        ({"rho": 0.1, "mode": "test"}, "mode must be 'eval' or 'train', got 'test'"),
    ],
)
def test_settings_errors(kwargs, message):
    with pytest.raises(SharpscopeError, match=message):
        PlaneSettings(**kwargs)
