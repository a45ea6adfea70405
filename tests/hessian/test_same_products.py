"""Every estimator multiplies through HessianOperator.matmat with the block Lanczos uses."""

from __future__ import annotations

import pytest

from sharpscope.hessian import (
    HessianOperator,
    exact_trace,
    hutchinson_trace,
    hutchpp_trace,
    lanczos,
    trace_to_stderr,
    xtrace,
)
from sharpscope.hessian.density import slq_density

from .cases import loss_fn, make


@pytest.mark.parametrize(("backend", "block"), [("double", 8), ("forward", 4), ("forward", 1)])
def test_trace_and_lanczos_share_the_product_routine_and_block(backend, block):
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, backend=backend, block_size=block)
    calls: dict[str, list[int]] = {}
    current = ["?"]
    inner = []
    orig_matmat, orig_products = op.matmat, op._products

    def matmat(V):
        calls.setdefault(current[0], []).append(V.shape[1])
        return orig_matmat(V)

    def products(rows):
        inner.append(current[0])
        return orig_products(rows)

    op.matmat, op._products = matmat, products
    for name, run in [
        ("lanczos", lambda: lanczos(op, k=2, tol=1e-6, check=False)),
        ("hutchinson", lambda: hutchinson_trace(op, probes=12, check=False)),
        ("hutchpp", lambda: hutchpp_trace(op, probes=12, check=False)),
        ("xtrace", lambda: xtrace(op, probes=12, check=False)),
        ("density", lambda: slq_density(op, runs=1, iters=6, check=False)),
        ("to-stderr-xtrace", lambda: trace_to_stderr(op, rel_stderr=0.2, check=False)),
        ("to-stderr-hutchinson",
         lambda: trace_to_stderr(op, rel_stderr=0.2, method="hutchinson", check=False)),
        ("exact", lambda: exact_trace(op)),
    ]:
        current[0] = name
        run()
    expected = op.preferred_block
    assert expected == (block if backend == "forward" else 1)
    names = ("lanczos", "hutchinson", "hutchpp", "xtrace", "to-stderr-xtrace",
             "to-stderr-hutchinson", "exact")  # fmt: skip
    for name in names:
        assert calls[name], name
        assert max(calls[name]) == expected, (name, calls[name])
    # the same product routine underneath, once per matmat call
    assert all(inner.count(n) == len(calls[n]) for n in calls)
