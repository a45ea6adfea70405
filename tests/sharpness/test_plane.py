"""XSAM's plane probe against closed forms on quadratic losses (float64)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from torch import nn

from sharpscope.errors import SharpscopeError
from sharpscope.optim.geometry import global_dot, global_norm
from sharpscope.sharpness import plane_basis, plot_plane, xsam_plane


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


def make_quadratic(eigs: list[float], *, offset: float = 0.5, seed: int = 0) -> Quadratic:
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ Q.T
    w_star = torch.randn(n, generator=g, dtype=torch.float64)
    return Quadratic(A, w_star, w_star + offset * torch.randn(n, generator=g, dtype=torch.float64))


def quad_loss(model: Quadratic, w: torch.Tensor) -> float:
    d = w - model.w_star
    return float(0.5 * d @ model.A @ d)


def trust_region_max(A: np.ndarray, g: np.ndarray, rho: float) -> tuple[float, np.ndarray]:
    """Exact ``max_{||d|| <= rho} g^T d + 1/2 d^T A d`` (secular equation; g has a top-eigvec part)."""
    lam, Q = np.linalg.eigh(A)
    gq = Q.T @ g
    mu = brentq(
        lambda m: float(np.sqrt(np.sum(gq**2 / (m - lam) ** 2)) - rho),
        lam[-1] + 1e-12,
        lam[-1] + np.linalg.norm(g) / rho + 1.0,
        xtol=1e-15,
        rtol=1e-15,
    )
    d = Q @ (gq / (mu - lam))
    return float(g @ d + 0.5 * d @ A @ d), d


def manual_ascent(
    model: Quadratic, rho: float, k: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """XSAM's k-step ascent by hand: v0, v1 and the displacements theta_i - theta_0."""
    A, ws = model.A.numpy(), model.w_star.numpy()
    w0 = model.w.detach().numpy().copy()
    w = w0.copy()
    path = []
    for _ in range(k):
        g = A @ (w - ws)
        w = w + (rho / k) * g / np.linalg.norm(g)
        path.append(w - w0)
    g = A @ (w - ws)
    return (w - w0) / np.linalg.norm(w - w0), g / np.linalg.norm(g), path


RUN = dict(grid=(-0.4, 0.4, 9), worst_steps=40, restarts=1, quiet=True)


@pytest.mark.parametrize(
    "eigs,k",
    [
        pytest.param([3.0, 1.0, 0.5, 0.2, 0.1], 1, id="5d-k1"),
        pytest.param([3.0, 1.0, 0.5, 0.2, 0.1], 3, id="5d-k3"),
        pytest.param([2.0, -0.5, 1.0], 2, id="indefinite-k2"),
    ],
)
def test_plane_matches_manual_ascent_and_closed_form_grid(eigs, k):
    model = make_quadratic(eigs, seed=1)
    rho = 0.1
    r = xsam_plane(model, mean_loss, BATCH, rho=rho, steps=k, **RUN)
    v0, v1, path = manual_ascent(model, rho, k)
    # xsam_ascent returns cos(psi) as a Python float from float32: psi is good to ~1e-6
    assert r.psi == pytest.approx(math.acos(np.clip(v0 @ v1, -1, 1)), abs=2e-6)
    e1 = r.basis[0]["w"].numpy()
    e2 = r.basis[1]["w"].numpy()
    np.testing.assert_allclose(e1, v0, atol=1e-12)
    assert e1 @ e2 == pytest.approx(0.0, abs=1e-12) and np.linalg.norm(e2) == pytest.approx(1.0)
    np.testing.assert_allclose(
        v1, (v1 @ e1) * e1 + (v1 @ e2) * e2, atol=1e-12
    )  # v1 lies in the plane
    assert v1 @ e2 > 0
    # every grid point maps back to theta_0 + a e1 + b e2
    w0 = model.w.detach()
    a_ax, b_ax = r.surface.axes
    for i in (0, 3, 8):
        for j in (1, 4, 7):
            w = w0 + a_ax[i] * torch.from_numpy(e1) + b_ax[j] * torch.from_numpy(e2)
            assert r.surface.loss[i, j] == pytest.approx(quad_loss(model, w), rel=1e-12, abs=1e-15)
    # the ascent path: k points, each step rho / k, the last one on e1
    assert r.path_coords.shape == (k, 2)
    for d, c, off in zip(path, r.path_coords, r.path_off_plane, strict=True):
        np.testing.assert_allclose(c, [d @ e1, d @ e2], atol=1e-12)
        assert math.hypot(*c) ** 2 + off**2 == pytest.approx(float(d @ d), rel=1e-9)
    np.testing.assert_allclose(r.path_coords[-1], [np.linalg.norm(path[-1]), 0.0], atol=1e-12)
    assert r.loss_theta0 == pytest.approx(quad_loss(model, w0), rel=1e-12)


def test_arc_passes_through_v0_and_v1_at_rho_max():
    model = make_quadratic([3.0, 1.0, 0.5, 0.2], seed=2)
    rho, rho_max = 0.1, 0.25
    r = xsam_plane(model, mean_loss, BATCH, rho=rho, rho_max=rho_max, alpha_step=0.25, **RUN)
    v0, v1, _ = manual_ascent(model, rho, 1)
    w0 = model.w.detach().numpy()
    alphas = list(r.alphas)
    assert alphas == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    i0, i1 = alphas.index(0.0), alphas.index(1.0)
    assert r.arc_losses[i0] == pytest.approx(
        quad_loss(model, torch.from_numpy(w0 + rho_max * v0)), rel=1e-12
    )
    assert r.arc_losses[i1] == pytest.approx(
        quad_loss(model, torch.from_numpy(w0 + rho_max * v1)), rel=1e-12
    )
    assert r.loss_alpha0 == r.arc_losses[i0] and r.loss_sam == r.arc_losses[i1]
    np.testing.assert_allclose(r.arc_coords[i0], [rho_max, 0.0], atol=1e-12)
    np.testing.assert_allclose(
        r.arc_coords[i1],
        rho_max * np.array([v1 @ r.basis[0]["w"].numpy(), v1 @ r.basis[1]["w"].numpy()]),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        r.arc_coords[i1], rho_max * np.array([math.cos(r.psi), math.sin(r.psi)]), atol=1e-6
    )
    np.testing.assert_allclose(np.linalg.norm(r.arc_coords, axis=1), rho_max, rtol=1e-5)
    assert r.rho_max == rho_max and r.settings["alpha_step"] == 0.25
    assert xsam_plane(model, mean_loss, BATCH, rho=rho, **RUN).rho_max == 2 * rho  # default


def test_two_dimensional_problem_finds_alpha_star_and_the_worst_point():
    """In 2D the plane is the whole space: the worst point is on it and the arc's best alpha is known."""
    model = make_quadratic([4.0, 0.5], offset=0.3, seed=3)
    rho, rho_max = 0.05, 0.2
    r = xsam_plane(
        model, mean_loss, BATCH, rho=rho, rho_max=rho_max, alpha_step=0.05, alpha_max=3.0, **RUN
    )
    v0, v1, _ = manual_ascent(model, rho, 1)
    w0 = model.w.detach().numpy()
    psi = math.acos(np.clip(v0 @ v1, -1, 1))

    def arc_loss(a: float) -> float:
        d = (math.sin((1 - a) * psi) * v0 + math.sin(a * psi) * v1) / math.sin(psi)
        return quad_loss(model, torch.from_numpy(w0 + rho_max * d))

    grid = np.round(np.arange(0, 3.0 + 1e-9, 0.05), 12)
    expected = grid[int(np.argmax([arc_loss(a) for a in grid]))]
    assert r.alpha_star == pytest.approx(expected)
    assert r.loss_xsam == pytest.approx(arc_loss(expected), rel=1e-6)  # psi from float32
    assert r.loss_xsam >= r.loss_sam
    # the worst point of the ball is the trust-region solution, and lies on the plane
    g = (model.A @ (model.w - model.w_star)).detach().numpy()
    best, d = trust_region_max(model.A.numpy(), g, rho_max)
    assert r.worst["loss"] == pytest.approx(quad_loss(model, model.w.detach()) + best, rel=1e-8)
    assert r.worst["angle_to_plane_deg"] == pytest.approx(0.0, abs=1e-4)
    e1, e2 = r.basis[0]["w"].numpy(), r.basis[1]["w"].numpy()
    np.testing.assert_allclose(r.worst["coords"], [d @ e1, d @ e2], atol=1e-5)
    # the worst direction is on the circle of radius rho_max, so XSAM's arc point nearly reaches it
    d_star = (
        math.sin((1 - r.alpha_star) * psi) * v0 + math.sin(r.alpha_star * psi) * v1
    ) / math.sin(psi)
    assert r.worst["cos_xsam"] == pytest.approx(float(d_star @ d) / np.linalg.norm(d), abs=1e-6)
    assert r.worst["cos_sam"] == pytest.approx(float(v1 @ d) / np.linalg.norm(d), abs=1e-6)
    assert 0 < r.worst["capture_sam"] <= r.worst["capture_xsam"] <= 1 + 1e-12


def test_worst_point_off_the_plane_in_higher_dimension():
    model = make_quadratic([3.0, 2.5, 1.0, 0.5, 0.2, 0.1], offset=0.4, seed=4)
    rho_max = 0.3
    r = xsam_plane(model, mean_loss, BATCH, rho=0.1, rho_max=rho_max, **RUN)
    g = (model.A @ (model.w - model.w_star)).detach().numpy()
    best, d = trust_region_max(model.A.numpy(), g, rho_max)
    assert r.worst["sharpness"] == pytest.approx(best, rel=1e-6)
    e1, e2 = r.basis[0]["w"].numpy(), r.basis[1]["w"].numpy()
    proj = (d @ e1) * e1 + (d @ e2) * e2
    expected = math.degrees(math.atan2(np.linalg.norm(d - proj), np.linalg.norm(proj)))
    assert r.worst["angle_to_plane_deg"] == pytest.approx(expected, abs=0.05)
    assert r.worst["loss"] >= max(r.loss_sam, r.loss_xsam)  # started from both


def test_parallel_v0_v1_is_flagged_and_never_nan():
    """An isotropic quadratic: the gradient at theta_k is parallel to v0 (psi = 0)."""
    n = 4
    w_star = torch.zeros(n, dtype=torch.float64)
    model = Quadratic(
        2.0 * torch.eye(n, dtype=torch.float64),
        w_star,
        torch.tensor([0.3, -0.1, 0.2, 0.05]).double(),
    )
    r = xsam_plane(model, mean_loss, BATCH, rho=0.1, steps=2, **RUN)
    assert r.degenerate
    assert r.psi == pytest.approx(0.0, abs=1e-6)
    e1, e2 = r.basis
    assert float(global_dot(list(e1.values()), list(e2.values()))) == pytest.approx(0.0, abs=1e-12)
    assert float(global_norm(list(e2.values()))) == pytest.approx(1.0)
    for key in (
        "psi",
        "cos_psi",
        "alpha_star",
        "loss_alpha0",
        "loss_sam",
        "loss_xsam",
        "worst_loss",
        "cos_worst_sam",
        "cos_worst_xsam",
        "worst_angle_to_plane_deg",
    ):
        assert math.isfinite(r.to_dict()[key]), key
    json.dumps(r.to_dict(), allow_nan=False)  # raises on NaN or infinity
    assert np.isfinite(r.arc_losses).all() and np.isfinite(r.arc_coords).all()
    np.testing.assert_allclose(r.arc_coords[:, 1], 0.0, atol=1e-12)  # the arc stays on e1
    assert np.isfinite(r.surface.loss).all()


def test_plane_basis_fallback_is_seeded():
    v0 = [torch.tensor([1.0, 0.0, 0.0])]
    a = plane_basis(v0, [torch.tensor([-1.0, 0.0, 0.0])], seed=5)
    b = plane_basis(v0, [torch.tensor([-1.0, 0.0, 0.0])], seed=5)
    assert a[2] and b[2]
    assert torch.equal(a[1][0], b[1][0]) and abs(float(a[1][0][0])) < 1e-6


def test_model_is_unchanged_and_mode_train_works(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))
    x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    nn.functional.cross_entropy(net(x), y).backward()
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.grad.clone() for p in net.parameters()]
    r = xsam_plane(
        net,
        nn.functional.cross_entropy,
        [(x[:10], y[:10]), (x[10:], y[10:])],
        rho=0.05,
        mode="train",
        grid=(-0.2, 0.2, 3),
        alpha_step=0.5,
        worst_steps=2,
        restarts=0,
        quiet=True,
        out_dir=tmp_path,
    )
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p, g in zip(net.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)
    assert {"surface.npz", "meta.json", "plane.json"} <= {f.name for f in tmp_path.iterdir()}
    saved = json.loads((tmp_path / "plane.json").read_text())
    assert saved["alpha_star"] == r.alpha_star and saved["settings"]["mode"] == "train"
    # a second run resumes the finished grid and gives the same numbers
    again = xsam_plane(
        net,
        nn.functional.cross_entropy,
        [(x[:10], y[:10]), (x[10:], y[10:])],
        rho=0.05,
        mode="train",
        grid=(-0.2, 0.2, 3),
        alpha_step=0.5,
        worst_steps=2,
        restarts=0,
        quiet=True,
        out_dir=tmp_path,
    )
    np.testing.assert_array_equal(again.surface.loss, r.surface.loss)


def test_plots_png_and_self_contained_html(tmp_path):
    model = make_quadratic([3.0, 1.0, 0.5], seed=6)
    r = xsam_plane(model, mean_loss, BATCH, rho=0.1, steps=2, **RUN)
    plot_plane(r, tmp_path / "plane.png")
    plot_plane(r, tmp_path / "plane.pdf")
    plot_plane(r, tmp_path / "plane.html")
    assert (tmp_path / "plane.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "plane.pdf").read_bytes()[:4] == b"%PDF"
    html = (tmp_path / "plane.html").read_text()
    assert "Plotly.newPlot" in html and 'src="https://cdn' not in html
    with pytest.raises(SharpscopeError, match="must end in"):
        plot_plane(r, tmp_path / "plane.jpg")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        pytest.param({"rho": -0.1}, "rho must be a positive number, got -0.1", id="negative-rho"),
        pytest.param(
            {"rho": 0.1, "rho_max": 0.0}, "rho_max must be a positive number", id="zero-rho-max"
        ),
        pytest.param(
            {"rho": 0.1, "steps": 0}, "steps must be a whole number of at least 1", id="zero-steps"
        ),
        pytest.param(
            {"rho": 0.1, "alpha_step": 0},
            "alpha_step must be a positive number",
            id="zero-alpha-step",
        ),
        pytest.param(
            {"rho": 0.1, "grid": (0.5, -0.5, 11)}, "start must be below stop", id="reversed-grid"
        ),
        pytest.param(
            {"rho": 0.1, "grid": (-0.5, 0.5, 1)}, "num must be a whole number", id="one-point-grid"
        ),
        pytest.param({"rho": 0.1, "axes": [np.zeros(3)]}, "axes must be two arrays", id="one-axis"),
        pytest.param({"rho": 0.1, "mode": "test"}, "mode must be 'eval' or 'train'", id="bad-mode"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(SharpscopeError, match=message):
        xsam_plane(make_quadratic([1.0, 0.5]), mean_loss, BATCH, quiet=True, **kwargs)


def test_zero_gradient_is_a_clear_error():
    model = make_quadratic([1.0, 0.5], offset=0.0)
    with pytest.raises(SharpscopeError, match="gradient at theta_0 is zero"):
        xsam_plane(model, mean_loss, BATCH, rho=0.1, quiet=True)
