"""Sharpness measures against closed forms on quadratic losses (float64)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from torch import nn

from sharpscope.errors import DataError, SharpscopeError
from sharpscope.reference import dense_hessian
from sharpscope.sharpness import (
    SHARPNESS_MEASURES,
    average_case_sharpness,
    sharpness,
    worst_case_sharpness,
)


class Quadratic(nn.Module):
    """A model whose mean loss (with :func:`mean_loss`) is exactly ``1/2 (w - w*)^T A (w - w*)``."""

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


BATCH = (torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))


def make_quadratic(eigs: list[float], *, offset: float = 0.0, seed: int = 0) -> Quadratic:
    g = torch.Generator().manual_seed(seed)
    n = len(eigs)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ Q.T
    w_star = torch.randn(n, generator=g, dtype=torch.float64)
    w0 = w_star + offset * torch.randn(n, generator=g, dtype=torch.float64)
    return Quadratic(A, w_star, w0)


def trust_region_max(A: np.ndarray, g: np.ndarray, rho: float) -> tuple[float, np.ndarray]:
    """Exact ``max_{||d|| <= rho} g^T d + 1/2 d^T A d`` via the secular equation (no hard case)."""
    lam, Q = np.linalg.eigh(A)
    gq = Q.T @ g
    top = lam[-1]
    if np.linalg.norm(g) < 1e-14:
        d = rho * Q[:, -1]
        return 0.5 * rho**2 * max(top, 0.0), d
    if top <= 0:  # concave: the unconstrained maximiser may be inside
        d_in = np.linalg.solve(-A, g) if top < 0 else None
        if d_in is not None and np.linalg.norm(d_in) <= rho:
            return float(g @ d_in + 0.5 * d_in @ A @ d_in), d_in

    def phi(mu: float) -> float:
        return float(np.sqrt(np.sum(gq**2 / (mu - lam) ** 2)) - rho)

    lo = top + 1e-12
    hi = top + np.linalg.norm(g) / rho + 1.0
    mu = brentq(phi, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500)
    d = Q @ (gq / (mu - lam))
    return float(g @ d + 0.5 * d @ A @ d), d


# ----------------------------------------------------------------------------- worst case, l2
L2_CASES = [
    pytest.param([3.0, 2.0, 1.0, 0.5], 0.0, 0.1, id="psd-at-minimum"),
    pytest.param([5.0, 1.0, 0.2, 0.1, 0.0], 0.0, 0.3, id="psd-flat-direction-at-minimum"),
    pytest.param([3.0, 2.0, 1.0, 0.5], 0.5, 0.1, id="psd-off-minimum"),
    pytest.param([2.0, 1.0, -0.5, -1.5], 0.5, 0.2, id="indefinite-off-minimum"),
    pytest.param([4.0, 4.0 * 0.95, 1.0], 0.3, 0.05, id="close-top-eigenvalues"),
]


@pytest.mark.parametrize("eigs,offset,rho", L2_CASES)
def test_worst_l2_matches_trust_region(eigs, offset, rho):
    model = make_quadratic(eigs, offset=offset, seed=1)
    A = model.A.numpy()
    g = (model.A @ (model.w - model.w_star)).detach().numpy()
    exact, d_exact = trust_region_max(A, g, rho)
    r = worst_case_sharpness(model, mean_loss, BATCH, rho=rho, steps=60, restarts=2, seed=0)
    assert r.value == pytest.approx(exact, rel=1e-6, abs=1e-12)
    assert r.value <= exact + 1e-12  # a feasible point can never beat the maximum
    d = r.delta["w"].numpy()
    assert np.linalg.norm(d) <= rho * (1 + 1e-12)
    cos = float(d @ d_exact / (np.linalg.norm(d) * np.linalg.norm(d_exact)))
    if offset == 0.0:  # at a minimum the maximiser is +-the top eigenvector
        assert abs(cos) > 0.999
    else:
        assert cos > 0.999


def test_worst_at_minimum_is_half_rho_squared_lambda_max():
    model = make_quadratic([3.0, 1.0, 0.5, 0.25, 0.1], seed=2)
    rho = 0.2
    r = worst_case_sharpness(model, mean_loss, BATCH, rho=rho, steps=60, restarts=1)
    assert r.value == pytest.approx(rho**2 * 3.0 / 2, rel=1e-6)
    top = torch.linalg.eigh(model.A).eigenvectors[:, -1]
    cos = float(r.delta["w"] @ top / r.delta["w"].norm())
    assert abs(cos) > 0.999
    assert r.loss_at_theta == pytest.approx(0.0, abs=1e-15)


def squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # not nn.functional.mse_loss: jacfwd(grad(mse_loss)) hits a torch ZeroTensor bug in dense_hessian
    return ((out - y) ** 2).mean()


def test_worst_linear_model_mse_matches_dense_hessian():
    """A linear model with MSE is exactly quadratic in its parameters: compare with the dense Hessian."""
    torch.manual_seed(3)
    net = nn.Linear(3, 2).double()
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    batches = [(x[:25], y[:25]), (x[25:], y[25:])]  # uneven batches: sample-weighted mean
    H = dense_hessian(net, squared_error, batches).numpy()
    loss = squared_error(net(x), y)
    g = torch.cat(
        [t.reshape(-1) for t in torch.autograd.grad(loss, list(net.parameters()))]
    ).numpy()
    rho = 0.1
    exact, _ = trust_region_max(H, g, rho)
    r = worst_case_sharpness(net, squared_error, batches, rho=rho, steps=80, restarts=1)
    assert r.value == pytest.approx(exact, rel=1e-6)
    assert r.loss_at_theta == pytest.approx(float(loss.detach()), rel=1e-12)


def test_worst_adaptive_is_trust_region_in_scaled_coordinates():
    model = make_quadratic([3.0, 2.0, 1.0, 0.5], offset=0.4, seed=4)
    w = model.w.detach()
    D = np.diag(w.abs().numpy())
    A = model.A.numpy()
    g = (model.A @ (w - model.w_star)).numpy()
    rho = 0.1
    exact, u_exact = trust_region_max(D @ A @ D, D @ g, rho)
    r = worst_case_sharpness(model, mean_loss, BATCH, rho=rho, adaptive=True, steps=80, restarts=1)
    assert r.value == pytest.approx(exact, rel=1e-6)
    np.testing.assert_allclose(r.delta["w"].numpy(), D @ u_exact, atol=1e-4 * rho)


# ----------------------------------------------------------------------------- worst case, linf
def brute_force_vertices(model: Quadratic, rho: float) -> float:
    A = model.A.numpy()
    g = (model.A @ (model.w - model.w_star)).detach().numpy()
    n = len(g)
    best = -math.inf
    for signs in itertools.product((-1.0, 1.0), repeat=n):
        d = rho * np.array(signs)
        best = max(best, float(g @ d + 0.5 * d @ A @ d))
    return best


@pytest.mark.parametrize(
    "eigs,offset,rho,seed",
    [
        pytest.param([2.0, 0.5], 0.0, 0.1, 0, id="2d-at-minimum"),
        pytest.param([3.0, 1.0, 0.2], 0.0, 0.2, 1, id="3d-at-minimum"),
        pytest.param([3.0, 1.0, 0.2], 0.3, 0.1, 2, id="3d-off-minimum"),
        pytest.param([1.0, 0.9, 0.8], 0.5, 0.05, 3, id="3d-gradient-dominated"),
    ],
)
def test_worst_linf_matches_vertex_brute_force(eigs, offset, rho, seed):
    model = make_quadratic(eigs, offset=offset, seed=seed)
    exact = brute_force_vertices(model, rho)
    r = worst_case_sharpness(
        model, mean_loss, BATCH, rho=rho, norm="linf", steps=20, restarts=4, seed=seed
    )
    assert r.value == pytest.approx(exact, rel=1e-9, abs=1e-14)
    assert float(r.delta["w"].abs().max()) <= rho * (1 + 1e-12)


# ----------------------------------------------------------------------------- average case
@pytest.mark.parametrize(
    "norm,factor",
    [pytest.param("l2", 0.5, id="gaussian"), pytest.param("linf", 1 / 6, id="uniform-cube")],
)
@pytest.mark.parametrize(
    "offset", [pytest.param(0.0, id="at-minimum"), pytest.param(0.5, id="off-minimum")]
)
def test_average_converges_to_rho2_trace(norm, factor, offset):
    model = make_quadratic([3.0, 2.0, 1.0, 0.5, 0.1], offset=offset, seed=5)
    rho = 0.1
    exact = rho**2 * float(torch.trace(model.A)) * factor
    r = average_case_sharpness(model, mean_loss, BATCH, rho=rho, norm=norm, samples=400, seed=0)
    assert r.stderr is not None and 0 < r.stderr < 0.1 * exact
    assert abs(r.value - exact) < 4 * r.stderr  # a 4-sigma band, fixed seed
    # the standard error shrinks like 1 / sqrt(samples)
    r4 = average_case_sharpness(model, mean_loss, BATCH, rho=rho, norm=norm, samples=1600, seed=1)
    assert r4.stderr == pytest.approx(r.stderr / 2, rel=0.2)
    assert abs(r4.value - exact) < 4 * r4.stderr


def test_average_without_antithetic_is_unbiased_but_noisier():
    model = make_quadratic([3.0, 2.0, 1.0], offset=1.0, seed=6)
    rho = 0.1
    exact = rho**2 * float(torch.trace(model.A)) / 2
    plain = average_case_sharpness(model, mean_loss, BATCH, rho=rho, samples=2000, antithetic=False)
    paired = average_case_sharpness(model, mean_loss, BATCH, rho=rho, samples=200)
    assert abs(plain.value - exact) < 4 * plain.stderr
    assert paired.stderr < plain.stderr  # the first-order term is cancelled exactly


def test_average_adaptive_scales_by_theta():
    model = make_quadratic([3.0, 2.0, 1.0, 0.5], offset=0.5, seed=7)
    w = model.w.detach()
    rho = 0.1
    exact = rho**2 / 2 * float(torch.sum(w**2 * torch.diag(model.A)))
    r = average_case_sharpness(model, mean_loss, BATCH, rho=rho, adaptive=True, samples=800)
    assert abs(r.value - exact) < 4 * r.stderr


# ----------------------------------------------------------------------------- interface
def test_registry_and_json_keys():
    assert set(SHARPNESS_MEASURES) == {"worst", "average", "lambda_max", "trace"}
    model = make_quadratic([1.0, 0.5], offset=0.2)
    d = sharpness(model, mean_loss, BATCH, measure="average", rho=0.1, samples=8).to_dict()
    assert {"sharpness", "loss", "stderr", "settings", "iterations"} <= set(d)
    assert d["settings"]["rho"] == 0.1 and d["settings"]["norm"] == "l2"
    assert d["settings"]["data_samples"] == 4


def test_worst_dominates_average_and_is_deterministic():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,))
    kw = dict(rho=0.1, steps=10, restarts=1, seed=3)
    a = sharpness(net, nn.functional.cross_entropy, (x, y), measure="worst", **kw)
    b = sharpness(net, nn.functional.cross_entropy, (x, y), measure="worst", **kw)
    assert a.value == b.value and a.iterations == b.iterations
    avg = sharpness(
        net,
        nn.functional.cross_entropy,
        (x, y),
        measure="average",
        rho=0.1 / math.sqrt(107),
        samples=16,
    )
    assert a.value > avg.value


@pytest.mark.parametrize("measure", ["worst", "average", "lambda_max", "trace"])
def test_model_is_unchanged(measure):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    nn.functional.cross_entropy(net(x), y).backward()
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = [p.grad.clone() for p in net.parameters()]
    sharpness(
        net,
        nn.functional.cross_entropy,
        [(x, y)],
        measure=measure,
        rho=0.05,
        mode="train",
        steps=3,
        restarts=1,
        samples=3,
    )
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p, g in zip(net.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        pytest.param({"rho": -0.1}, "rho must be a positive number, got -0.1", id="negative-rho"),
        pytest.param({"rho": float("nan")}, "rho must be a positive number", id="nan-rho"),
        pytest.param(
            {"rho": 0.1, "measure": "sharpest"}, "unknown measure 'sharpest'", id="unknown-measure"
        ),
        pytest.param({"rho": 0.1, "norm": "l3"}, "unknown norm 'l3'", id="bad-norm"),
        pytest.param({"rho": 0.1, "steps": 0}, "steps must be at least 1, got 0", id="zero-steps"),
        pytest.param(
            {"rho": 0.1, "restarts": -1}, "restarts must be 0 or more", id="negative-restarts"
        ),
        pytest.param(
            {"rho": 0.1, "measure": "average", "samples": 0},
            "samples must be at least 1",
            id="zero-samples",
        ),
        pytest.param({"rho": 0.1, "mode": "test"}, "mode must be 'eval' or 'train'", id="bad-mode"),
        pytest.param(
            {"rho": 0.1, "measure": "lambda_max", "norm": "linf"},
            "plain l2 geometry",
            id="hessian-linf",
        ),
    ],
)
def test_errors(kwargs, message):
    model = make_quadratic([1.0, 0.5])
    with pytest.raises(SharpscopeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sharpness(model, mean_loss, BATCH, **kwargs)


def test_empty_data_is_an_error():
    with pytest.raises(DataError, match="empty"):
        sharpness(make_quadratic([1.0]), mean_loss, [], rho=0.1)


# ----------------------------------------------------------------------------- Hessian measures
def test_lambda_max_and_trace_through_the_same_interface():
    model = make_quadratic([3.0, 2.0, 1.0, 0.5, -0.25], offset=0.3, seed=8)
    rho = 0.1
    top = sharpness(model, mean_loss, BATCH, measure="lambda_max", rho=rho)
    assert top.value == pytest.approx(3.0, rel=1e-6)
    assert top.extra["second_order_worst"] == pytest.approx(rho**2 * 3.0 / 2, rel=1e-6)
    assert top.loss_at_theta == pytest.approx(float(model(BATCH[0]).mean().detach()), rel=1e-12)
    tr = sharpness(model, mean_loss, BATCH, measure="trace", rho=rho, samples=400)
    assert tr.stderr is not None and abs(tr.value - 6.25) < 4 * tr.stderr
    # the trace's second-order prediction is the average-case sharpness of a quadratic
    avg = sharpness(model, mean_loss, BATCH, measure="average", rho=rho, samples=400)
    assert abs(avg.value - tr.extra["second_order_average"]) < 4 * (
        avg.stderr + rho**2 / 2 * tr.stderr
    )
