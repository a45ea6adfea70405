"""Searches that end on their limit say so (issue 17): XSAM's alpha* at alpha_max, worst-case
ascents cut short by the step limit; results print as one short line or a small table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope.sharpness import average_case_sharpness, worst_case_sharpness, xsam_plane


class Quadratic(nn.Module):
    """Mean loss (with :func:`mean_loss`) exactly ``1/2 (w - w*)^T A (w - w*)``."""

    def __init__(self, A: torch.Tensor, w_star: torch.Tensor, w0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("A", A)
        self.register_buffer("w_star", w_star)
        self.w = nn.Parameter(w0.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.w - self.w_star
        return (0.5 * d @ self.A @ d).expand(x.shape[0])


def mean_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return out.mean()


BATCH = (torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
A = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))


def at_minimum() -> Quadratic:
    return Quadratic(A, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))


def off_minimum() -> Quadratic:
    """The gradient points mostly along the flat axis; the arc rises toward the steep one."""
    w0 = torch.tensor([0.05, 1.0], dtype=torch.float64)
    return Quadratic(A, torch.zeros(2, dtype=torch.float64), w0)


def test_worst_case_cut_short_by_the_step_limit_is_flagged():
    rho = 0.3
    short = worst_case_sharpness(at_minimum(), mean_loss, BATCH, rho=rho, steps=1, restarts=2)
    # zero gradient at the minimum: three random starts, each still rising after one step
    assert short.extra["starts_still_rising"] == 3
    assert "still raising the loss" in short.boundary_note and "(1 steps)" in short.boundary_note
    assert short.value < rho**2 * 4 / 2 - 1e-6  # really short of the exact maximum
    full = worst_case_sharpness(at_minimum(), mean_loss, BATCH, rho=rho, steps=200, restarts=2)
    assert full.value == pytest.approx(rho**2 * 4 / 2, rel=1e-9)  # exact: rho^2 lambda_max / 2
    assert full.boundary_note is None and full.extra["starts_still_rising"] == 0
    assert full.extra["on_boundary"] is True  # the maximiser of a convex quadratic: the sphere
    assert full.to_dict()["boundary_note"] is None
    assert short.to_dict()["boundary_note"] == short.boundary_note


def test_worst_point_inside_the_ball_is_not_on_the_boundary():
    # a concave quadratic: the worst point is theta itself, strictly inside the ball
    model = Quadratic(-A, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    r = worst_case_sharpness(model, mean_loss, BATCH, rho=0.3, steps=30, restarts=1)
    assert r.value == 0.0 and r.extra["on_boundary"] is False


def test_xsam_alpha_star_at_the_search_limit_is_flagged(tmp_path):
    r = xsam_plane(
        off_minimum(),
        mean_loss,
        BATCH,
        rho=0.5,
        alpha_max=0.3,
        grid=(-1, 1, 3),
        worst_steps=60,
        out_dir=tmp_path,
        quiet=True,
    )
    assert np.all(np.diff(r.arc_losses) > 0)  # the arc still rises at the limit
    assert r.alpha_star == pytest.approx(0.3) and r.alpha_at_limit
    assert r.boundary_note.startswith("XSAM's alpha* = 0.3 is the largest alpha searched")
    saved = json.loads((tmp_path / "plane.json").read_text())
    assert saved["alpha_star_at_limit"] is True and saved["boundary_note"] == r.boundary_note


def test_xsam_alpha_star_inside_the_search_range_is_not_flagged():
    r = xsam_plane(
        off_minimum(),
        mean_loss,
        BATCH,
        rho=0.5,
        alpha_max=8.0,
        grid=(-1, 1, 3),
        worst_steps=60,
        quiet=True,
    )
    i = int(np.argmax(r.arc_losses))
    assert 0 < i < len(r.alphas) - 1 and r.alpha_star == pytest.approx(r.alphas[i])
    assert not r.alpha_at_limit and r.boundary_note is None
    assert r.to_dict()["alpha_star_at_limit"] is False


def test_reprs_are_short_and_tables_small():
    w = worst_case_sharpness(at_minimum(), mean_loss, BATCH, rho=0.3, steps=50)
    a = average_case_sharpness(at_minimum(), mean_loss, BATCH, rho=0.1, samples=16)
    p = xsam_plane(off_minimum(), mean_loss, BATCH, rho=0.5, grid=(-1, 1, 5), quiet=True)
    for res in (w, a, p):
        text = repr(res)
        assert len(text) < 400 and "\n" not in text
        assert "tensor" not in text and "array" not in text and "[" not in text
        html = res._repr_html_()
        assert html.startswith("<table>") and html.count("<tr>") <= 8
    assert f"worst={w.value:.6g}" in repr(w)
    assert f"average={a.value:.6g} +- {a.stderr:.2g}" in repr(a)
    assert f"{p.loss_xsam:.6g}" in repr(p) and "PlaneResult(" in repr(p)
