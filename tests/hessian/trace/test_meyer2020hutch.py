"""Hutch++: error shrinks with probes, beats Hutchinson, exact once the sketch spans the space."""

from __future__ import annotations

import numpy as np
import pytest

from sharpscope.hessian import HessianOperator, hessian_trace, hutchinson_trace, hutchpp_trace

from ..cases import MatrixOperator, exact, loss_fn, make


def test_error_shrinks_with_probes_and_beats_hutchinson():
    H = exact("cnn-bn", "eval")
    tr = float(H.trace())
    op = MatrixOperator(H)
    errors = {
        m: float(np.mean([abs(hutchpp_trace(op, probes=m, seed=s).trace - tr) for s in range(20)]))
        for m in (15, 60)
    }
    assert errors[60] < 0.5 * errors[15]
    hutch = float(
        np.mean([abs(hutchinson_trace(op, probes=60, seed=s).trace - tr) for s in range(20)])
    )
    assert errors[60] < hutch


def test_exact_when_sketch_spans_the_space():
    H = exact("mlp", "eval")
    est = hutchpp_trace(MatrixOperator(H), probes=3 * H.shape[0] + 3)
    assert abs(est.trace - float(H.trace())) < 1e-9


def test_real_operator_gives_the_matrix_numbers():
    model, batches = make("mlp-bn")
    H = exact("mlp-bn", "eval")
    a = hessian_trace(model, loss_fn, batches, method="hutchpp", probes=9, seed=2, backend="double")
    b = hutchpp_trace(MatrixOperator(H), probes=9, seed=2)
    assert a.trace == pytest.approx(b.trace, rel=1e-9) and a.hvp_count == b.hvp_count == 11
    assert isinstance(HessianOperator, type)
