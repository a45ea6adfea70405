"""Lanczos eigenpairs against numpy/torch eigendecompositions of dense float64 Hessians."""

from __future__ import annotations

import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.hessian import HessianOperator, hessian_eigenvalues, lanczos, layer_eigenvalues
from sharpscope.reference import dense_hessian

from .cases import assert_unchanged, exact, loss_fn, make, snapshot

CASES = [
    ("mlp", "eval", "largest", 1, "forward"),
    ("mlp-bn", "train", "smallest", 1, "double"),
    ("mlp-bn", "train", "largest", 4, "forward"),
    ("cnn", "eval", "both", 1, "double"),
    ("cnn-bn", "train", "largest", 3, "double"),
    ("cnn-bn", "eval", "both", 2, "double"),
]


@pytest.mark.parametrize(
    ("name", "mode", "which", "block", "backend"),
    CASES,
    ids=[f"{n}-{m}-{w}-b{b}-{be}" for n, m, w, b, be in CASES],
)
def test_eigenpairs_match_dense(name, mode, which, block, backend):
    model, batches = make(name)
    H = exact(name, mode)
    evals, evecs = torch.linalg.eigh(H)
    before = snapshot(model)
    op = HessianOperator(model, loss_fn, batches, mode=mode, backend=backend, block_size=block)
    res = lanczos(
        op, k=3, which=which, tol=1e-10, max_products=op.dim, block_size=block, verify=True
    )
    assert_unchanged(model, before)
    top, low = list(range(len(evals) - 1, len(evals) - 4, -1)), [0, 1, 2]
    idx = {"largest": top, "smallest": low, "both": top + low[::-1]}[which]
    torch.testing.assert_close(res.eigenvalues, evals[idx], rtol=1e-8, atol=0)
    assert res.converged and res.residual_source == "products"
    assert (res.residuals < 1e-9).all()
    for vec, j in zip(res.eigenvectors, idx, strict=True):  # eigenvectors up to sign
        cos = abs(float(vec @ evecs[:, j]))
        assert cos > 1 - 1e-8
    if which == "both":
        assert res.ratio == pytest.approx(abs(float(evals[0])) / float(evals[-1]), rel=1e-8)


def test_relation_residuals_are_true_residuals():
    model, batches = make("mlp-bn")
    op = HessianOperator(model, loss_fn, batches, mode="train", backend="double")
    res = lanczos(op, k=2, tol=1e-2, check=False)  # stops early: residuals well above rounding
    H = exact("mlp-bn", "train")
    true = torch.linalg.vector_norm(
        H @ res.eigenvectors.T - res.eigenvectors.T * res.eigenvalues, dim=0
    )
    torch.testing.assert_close(res.residuals, true / res.eigenvalues.abs(), rtol=1e-6, atol=1e-12)
    assert (res.residuals < 1e-2).all()
    assert res.lanczos_products == res.hvp_count


def test_lanczos_beats_power_iteration_products():
    model, batches = make("cnn-bn")
    H = exact("cnn-bn", "eval")
    res = hessian_eigenvalues(model, loss_fn, batches, k=1, tol=1e-6, backend="double", check=False)
    lam = torch.linalg.eigvalsh(H)
    assert res.eigenvalues[0] == pytest.approx(float(lam[-1]), rel=1e-9)
    v = torch.randn(H.shape[0], dtype=torch.float64)
    power = 0
    while True:  # power iteration to the same accuracy
        v = H @ v
        v /= v.norm()
        power += 1
        if abs(float(v @ H @ v) - float(lam[-1])) < 1e-9 * float(lam[-1]):
            break
    assert res.lanczos_products < power


def test_library_call_leaves_model_alone_and_per_layer():
    model, batches = make("mlp-bn")
    model.train()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    before = snapshot(model)
    res = hessian_eigenvalues(
        model, loss_fn, batches, k=2, mode="train", return_vectors=True, tol=1e-6, backend="double"
    )
    assert_unchanged(model, before)
    assert res.mode == "train" and res.samples == 24 and len(res.vectors()) == 2
    layers = layer_eigenvalues(
        model, loss_fn, batches, k=1, mode="train", tol=1e-6, backend="double"
    )
    assert_unchanged(model, before)
    for layer, r in layers.items():
        names = [n for n, _ in model.named_parameters() if n.rpartition(".")[0] == layer]
        block = dense_hessian(model, loss_fn, batches, params=names, mode="train")
        assert float(r.eigenvalues[0]) == pytest.approx(
            float(torch.linalg.eigvalsh(block)[-1]), rel=1e-9
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(which="middle"), "which must be"),
        (dict(tol=0.0), "tolerance"),
        (dict(tol=2.0), "tolerance"),
        (dict(k=0), "top-k"),
    ],
    ids=["which", "tol-zero", "tol-big", "k"],
)
def test_argument_errors(kwargs, message):
    model, batches = make("mlp")
    with pytest.raises(SharpscopeError, match=message):
        hessian_eigenvalues(model, loss_fn, batches, **kwargs)


def test_lanczos_reuses_the_determinism_check_product():
    # The check multiplies one random vector twice; Lanczos starts from that vector and
    # reuses its product, so the check costs one extra product, not two.
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, backend="double")
    res = lanczos(op, k=2, tol=1e-8, block_size=1)
    assert res.hvp_count == res.lanczos_products + 1
    exact_top = torch.linalg.eigvalsh(exact("mlp", "eval")).flip(0)[:2]
    torch.testing.assert_close(res.eigenvalues, exact_top.to(res.eigenvalues), rtol=1e-8, atol=0)
