"""XTrace against its definition, the exact trace of dense float64 Hessians, and Hutchinson."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.hessian import hessian_trace, hutchinson_trace, hutchpp_trace, xtrace
from sharpscope.hessian.trace._common import rademacher
from sharpscope.hessian.trace.epperly2024xtrace import xtrace_naive

from ..cases import MatrixOperator, exact, loss_fn, make


def decaying(n: int = 150, power: float = 2.0, seed: int = 0) -> torch.Tensor:
    """A symmetric matrix with eigenvalues 1/k^power (a decaying spectrum, like Hessians')."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    lam = 1.0 / torch.arange(1, n + 1, dtype=torch.float64) ** power
    return (U * lam) @ U.T


def test_fast_formula_equals_the_leave_one_out_definition():
    H = exact("cnn-bn", "eval")
    op = MatrixOperator(H)
    est = xtrace(op, probes=20, seed=3, check=False)
    Om = rademacher(op, 10, torch.Generator().manual_seed(3))
    naive = xtrace_naive(H, Om)
    np.testing.assert_allclose(est.samples, naive.numpy(), rtol=1e-8, atol=1e-10)
    assert est.trace == pytest.approx(float(naive.mean()), rel=1e-10)
    assert est.hvp_count == 20


def test_converges_to_the_exact_trace_with_calibrated_stderr():
    H = exact("cnn-bn", "eval")
    tr = float(H.trace())
    op = MatrixOperator(H)
    runs = {m: [xtrace(op, probes=m, seed=s, check=False) for s in range(20)] for m in (16, 64)}
    err = {m: float(np.mean([abs(r.trace - tr) for r in rs])) for m, rs in runs.items()}
    assert err[64] < 0.5 * err[16]
    assert err[64] < 0.05 * abs(tr)  # stated tolerance: 5% of the trace at 64 products
    covered = sum(abs(r.trace - tr) < 3 * r.stderr for r in runs[64])
    assert covered >= 16  # the standard error is of the right size (not 0, not huge)
    assert all(np.isfinite(r.stderr) and r.stderr > 0 for r in runs[64])
    hutch = float(
        np.mean([abs(hutchinson_trace(op, probes=64, seed=s).trace - tr) for s in range(20)])
    )
    assert err[64] < hutch


def test_exact_when_the_sketch_spans_the_space():
    H = exact("mlp", "eval")
    est = xtrace(MatrixOperator(H), probes=2 * H.shape[0])
    assert abs(est.trace - float(H.trace())) < 1e-8 * float(H.abs().sum())


def test_decaying_spectrum_fewer_products_than_hutchinson_at_equal_spread():
    # Hutch++ and XTrace with 40 products spread less than Hutchinson with 160.
    H = decaying()
    op = MatrixOperator(H)
    tr = float(H.trace())

    def spread(fn, m):
        return float(
            np.sqrt(np.mean([(fn(op, probes=m, seed=s).trace - tr) ** 2 for s in range(30)]))
        )

    hutch = spread(hutchinson_trace, 160)
    assert spread(hutchpp_trace, 40) < hutch
    assert spread(xtrace, 40) < hutch


def test_real_operator_gives_the_matrix_numbers_and_errors():
    model, batches = make("mlp-bn")
    H = exact("mlp-bn", "eval")
    a = hessian_trace(model, loss_fn, batches, method="xtrace", probes=10, seed=2, backend="double")
    b = xtrace(MatrixOperator(H), probes=10, seed=2)
    assert a.trace == pytest.approx(b.trace, rel=1e-8) and a.method == "xtrace"
    assert a.hvp_count == 10 + 2  # the determinism check's two products
    with pytest.raises(SharpscopeError, match="probes must be at least 4"):
        xtrace(MatrixOperator(H), probes=3)
    low_rank = torch.ones(6, 6, dtype=torch.float64) + torch.diag(torch.tensor([0.0] * 5 + [2.0]))
    est = xtrace(MatrixOperator(low_rank), probes=8, check=False)  # rank 2 < 4 sketch vectors
    assert est.trace == pytest.approx(8.0, rel=1e-12) and est.stderr == 0.0
