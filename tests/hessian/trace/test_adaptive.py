"""The trace to a stated standard error (``trace_to_stderr``): incremental XTrace equals
its definition, targets are met and calibrated, the budget holds, the exact switch is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.hessian import HessianOperator, exact_trace, hessian_trace, trace_to_stderr
from sharpscope.hessian.trace.adaptive import _Sketch
from sharpscope.hessian.trace.epperly2024xtrace import xtrace_estimates, xtrace_naive

from ..cases import MatrixOperator, exact, loss_fn, make
from .test_epperly2024xtrace import decaying


def test_grown_sketch_gives_the_leave_one_out_definition():
    # three rounds of growth (5, then 7, then 4 columns) against one QR per i by definition
    H = decaying(60)
    op = MatrixOperator(H)
    sk = _Sketch(op, torch.Generator().manual_seed(1))
    for cols in (5, 7, 4):
        sk.grow(cols)
        R = torch.triu(sk.Q.T @ sk.Y)
        assert torch.allclose(sk.Q @ R, sk.Y, atol=1e-12)  # still a QR factorisation
        assert torch.allclose(sk.Z, H @ sk.Q, atol=1e-12)  # each column multiplied once
        got = xtrace_estimates(sk.Om, sk.Q, R, sk.Z)
        assert torch.allclose(got, xtrace_naive(H, sk.Om), rtol=1e-9, atol=1e-12)
    assert op.hvp_count == 2 * 16  # Y and Z: every product used, none repeated


@pytest.mark.parametrize("method", ["xtrace", "hutchinson"])
def test_target_reached_and_calibrated_over_seeds(method):
    H = decaying(150, power=1.0)
    tr = float(H.trace())
    op = MatrixOperator(H)
    rel = 0.03
    runs = [trace_to_stderr(op, rel_stderr=rel, method=method, max_products=2000,
                            allow_exact=False, seed=s, check=False) for s in range(25)]  # fmt: skip
    assert all(r.reached and r.stderr <= rel * abs(r.trace) for r in runs)
    assert all(r.method == method and r.target_rel_stderr == rel for r in runs)
    covered = sum(abs(r.trace - tr) <= 3 * r.stderr for r in runs)
    assert covered >= 21  # 3 standard errors cover the exact trace (stated: 21 of 25)
    assert np.mean([abs(r.trace - tr) for r in runs]) < 2 * rel * tr


def test_xtrace_needs_fewer_products_than_hutchinson_on_a_decaying_spectrum():
    op = MatrixOperator(decaying(150, power=1.0))
    cost = {}
    for method in ("xtrace", "hutchinson"):
        cost[method] = np.median([trace_to_stderr(op, rel_stderr=0.02, method=method,
                                                  max_products=5000, allow_exact=False, seed=s,
                                                  check=False).hvp_count for s in range(9)])  # fmt: skip
    assert cost["xtrace"] < 0.5 * cost["hutchinson"]


@pytest.mark.parametrize("method", ["xtrace", "hutchinson"])
def test_budget_is_never_exceeded_and_a_missed_target_says_so(method):
    op = MatrixOperator(decaying(150, power=0.5))
    for s in range(6):
        before = op.hvp_count
        r = trace_to_stderr(op, rel_stderr=1e-4, method=method, max_products=40,
                            allow_exact=False, seed=s, check=False)  # fmt: skip
        assert r.hvp_count == op.hvp_count - before <= 40
        assert r.reached is False and r.stderr > 1e-4 * abs(r.trace)
        assert r.to_dict()["reached"] is False


@pytest.mark.parametrize("method", ["xtrace", "hutchinson"])
def test_the_determinism_check_counts_against_the_budget(method):
    op = MatrixOperator(decaying(150, power=0.5))
    r = trace_to_stderr(op, rel_stderr=1e-4, method=method, max_products=16,
                        allow_exact=False, check=True)  # fmt: skip
    assert r.hvp_count == op.hvp_count <= 16 and not r.reached  # 2 of the 16 went to the check


@pytest.mark.parametrize("method", ["xtrace", "hutchinson"])
def test_switches_to_the_exact_trace_when_it_is_cheaper(method):
    H = exact("cnn-bn", "eval")  # dim well under what 1e-4 would cost stochastically
    op = MatrixOperator(H)
    r = trace_to_stderr(op, rel_stderr=1e-4, method=method, max_products=2000, check=False)
    assert r.method == "exact" and r.stderr == 0.0 and r.reached
    assert r.trace == pytest.approx(float(H.trace()), rel=1e-12, abs=1e-12)
    assert r.trace_h2 == pytest.approx(float((H * H).sum()), rel=1e-12)
    assert H.shape[0] < r.hvp_count <= H.shape[0] + 60  # the stochastic start is counted


def test_rank_deficient_hessian_is_exact_through_the_sketch():
    g = torch.Generator().manual_seed(0)
    U = torch.linalg.qr(torch.randn(40, 5, generator=g, dtype=torch.float64))[0]
    H = (U * torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5], dtype=torch.float64)) @ U.T
    r = trace_to_stderr(MatrixOperator(H), rel_stderr=0.01, check=False)
    assert r.method == "xtrace" and r.stderr == 0.0 and r.reached
    assert r.trace == pytest.approx(11.5, rel=1e-10)


def test_real_operator_exact_trace_and_hessian_trace_entry():
    model, batches = make("cnn-bn")
    H = exact("cnn-bn", "train")
    op = HessianOperator(model, loss_fn, batches, mode="train", backend="double")
    tr, tr2 = exact_trace(op)
    assert tr == pytest.approx(float(H.trace()), rel=1e-9)
    assert tr2 == pytest.approx(float((H * H).sum()), rel=1e-9)
    res = hessian_trace(model, loss_fn, batches, mode="train", method="xtrace",
                        rel_stderr=1e-5, probes=2000, check=False)  # fmt: skip
    assert res.method == "exact" and res.trace == pytest.approx(float(H.trace()), rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="hutchpp"), "xtrace or hutchinson"),
        (dict(rel_stderr=0.0), r"\(0, 1\)"),
        (dict(rel_stderr=float("nan")), r"\(0, 1\)"),
        (dict(max_products=8), "at least 16"),
    ],
)
def test_errors(kwargs, message):
    op = MatrixOperator(decaying(20))
    with pytest.raises(SharpscopeError, match=message):
        trace_to_stderr(op, **{"rel_stderr": 0.02, **kwargs})
