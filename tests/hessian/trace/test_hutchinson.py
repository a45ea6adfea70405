"""Hutchinson's estimator converges to the exact trace and tr(H^2) (fixed seeds)."""

from __future__ import annotations

import pytest

from sharpscope.errors import SharpscopeError
from sharpscope.hessian import HessianOperator, hessian_trace, hutchinson_trace

from ..cases import MatrixOperator, assert_unchanged, exact, loss_fn, make, snapshot


@pytest.mark.parametrize(
    ("name", "mode"), [("mlp", "eval"), ("cnn-bn", "train")], ids=["mlp-eval", "cnn-bn-train"]
)
def test_converges_within_four_standard_errors(name, mode):
    H = exact(name, mode)
    probes = 4000
    est = hutchinson_trace(MatrixOperator(H), probes=probes, seed=3)
    tr, tr2 = float(H.trace()), float((H @ H).trace())
    assert abs(est.trace - tr) < 4 * est.stderr
    assert abs(est.trace_h2 - tr2) < 4 * est.stderr_h2
    # the standard error is honest: Var(v^T H v) = 2 sum_{i != j} H_ij^2 for Rademacher v
    var = 2 * (float((H * H).sum()) - float((H.diagonal() ** 2).sum()))
    assert est.stderr == pytest.approx((var / probes) ** 0.5, rel=0.1)
    assert est.hvp_count == probes + 2 and est.probes == probes and len(est.samples) == probes


def test_real_operator_gives_the_matrix_numbers():
    model, batches = make("cnn-bn")
    H = exact("cnn-bn", "train")
    op = HessianOperator(model, loss_fn, batches, mode="train", backend="double")
    a = hutchinson_trace(op, probes=6, seed=5, block_size=3, check=False)
    b = hutchinson_trace(MatrixOperator(H), probes=6, seed=5, block_size=3, check=False)
    assert a.trace == pytest.approx(b.trace, rel=1e-10) and a.trace_h2 == pytest.approx(
        b.trace_h2, rel=1e-10
    )


def test_hessian_trace_leaves_model_alone():
    model, batches = make("mlp-bn")
    model.train()
    before = snapshot(model)
    est = hessian_trace(
        model, loss_fn, batches, probes=4, mode="train", backend="forward", block_size=2
    )
    assert_unchanged(model, before)
    assert est.mode == "train" and est.backend == "forward" and est.hvp_count == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [(dict(probes=1), "probes"), (dict(method="x"), "unknown trace")],
    ids=["probes", "method"],
)
def test_errors(kwargs, message):
    model, batches = make("mlp")
    with pytest.raises(SharpscopeError, match=message):
        hessian_trace(model, loss_fn, batches, backend="double", **kwargs)
