"""SLQ spectral density: moments match tr(H^k)/n, exact nodes when the Krylov space is full."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.hessian import HessianOperator, slq_density, spectral_density

from .cases import MatrixOperator, assert_unchanged, exact, loss_fn, make, snapshot


def test_moments_match_exact_spectrum():
    H = exact("mlp-bn", "train")
    lam = torch.linalg.eigvalsh(H).numpy()
    res = slq_density(MatrixOperator(H), runs=400, iters=20, seed=1)
    for k in (1, 2, 3, 4):  # unbiased for k < 2 iters: within 4 standard errors of tr(H^k)/n
        per_run = np.sum(res.weights * res.nodes**k, axis=1)
        stderr = per_run.std(ddof=1) / np.sqrt(len(per_run))
        assert abs(res.moment(k) - float(np.mean(lam**k))) < 4 * stderr, k
        assert stderr < 0.1 * abs(float(np.mean(lam**k)))
    np.testing.assert_allclose(res.weights.sum(axis=1), 1.0, rtol=1e-10)
    assert np.trapezoid(res.density, res.grid) == pytest.approx(1.0, abs=1e-3)
    assert res.nodes.max() == pytest.approx(lam.max(), rel=1e-6)  # extremes converge first
    assert res.nodes.min() == pytest.approx(lam.min(), rel=1e-6)


def test_real_operator_gives_the_matrix_numbers():
    model, batches = make("mlp-bn")
    H = exact("mlp-bn", "train")
    op = HessianOperator(model, loss_fn, batches, mode="train", backend="double")
    a = slq_density(op, runs=2, iters=8, seed=4, check=False)
    b = slq_density(MatrixOperator(H), runs=2, iters=8, seed=4, check=False)
    np.testing.assert_allclose(a.nodes, b.nodes, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-7, atol=1e-12)


def test_full_krylov_space_gives_exact_nodes():
    H = exact("mlp", "eval")
    lam = torch.linalg.eigvalsh(H).numpy()
    res = slq_density(MatrixOperator(H), runs=1, iters=H.shape[0], seed=0, check=False)
    used = res.weights[0] > 1e-14
    # every node is an eigenvalue, and the weights are the start vector's squared projections
    assert np.abs(res.nodes[0][used][:, None] - lam[None]).min(axis=1).max() < 1e-8


def test_spectral_density_leaves_model_alone_and_errors():
    model, batches = make("cnn")
    before = snapshot(model)
    res = spectral_density(
        model, loss_fn, batches, runs=2, iters=10, backend="double", sigma=0.05, grid_points=50
    )
    assert_unchanged(model, before)
    assert res.grid.shape == (50,) and res.nodes.shape == (2, 10) and res.sigma == 0.05
    d = res.to_dict()
    assert {"grid", "density", "nodes", "weights", "lambda_max"} <= set(d)
    with pytest.raises(SharpscopeError, match="runs"):
        spectral_density(model, loss_fn, batches, runs=0, backend="double")
    with pytest.raises(SharpscopeError, match="sigma"):
        spectral_density(model, loss_fn, batches, runs=1, iters=3, sigma=-1.0, backend="double")
