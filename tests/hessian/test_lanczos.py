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
    assert res.converged and res.residual_source == "fresh-products"
    assert (res.residuals < 1e-9).all()
    for vec, j in zip(res.eigenvectors, idx, strict=True):  # eigenvectors up to sign
        cos = abs(float(vec @ evecs[:, j]))
        assert cos > 1 - 1e-8
    if which == "both":
        assert res.ratio == pytest.approx(abs(float(evals[0])) / float(evals[-1]), rel=1e-8)


def test_residuals_are_those_of_the_returned_vectors():
    model, batches = make("mlp-bn")
    op = HessianOperator(model, loss_fn, batches, mode="train", backend="double")
    res = lanczos(op, k=2, tol=1e-2, check=False, stop="residual")  # residuals above rounding
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


def _float32_problem():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 16, 10),
    )
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(128, 1, 8, 8, generator=g), torch.randint(0, 10, (128,), generator=g)
    lf = torch.nn.functional.cross_entropy
    import copy

    H = dense_hessian(copy.deepcopy(net).double(), lf, (x.double(), y))
    return net, lf, (x, y), H


def test_float32_residuals_are_true_and_eigenvalues_unbiased():
    # Before: the recurrence's estimate (1e-21 .. 1e-7) was reported while the returned
    # float32 vectors had true residuals near 1e-6, and the float32 basis biased the
    # eigenvalues upwards by up to 5e-7.
    net, lf, batch, H = _float32_problem()
    exact_top = torch.linalg.eigvalsh(H).flip(0)[:4]
    op = HessianOperator(net, lf, batch, backend="double")
    res = lanczos(op, k=4, tol=1e-6, block_size=1, check=False, stop="residual")
    V = res.eigenvectors.double().T
    true = torch.linalg.vector_norm(H @ V - V * res.eigenvalues, dim=0) / res.eigenvalues.abs()
    assert (res.residuals >= 0.1 * true).all(), (res.residuals, true)  # both at the float32 floor
    assert (res.residuals <= 3 * true + 1e-7).all(), (res.residuals, true)
    if res.converged:
        assert (true < 3e-6).all()
    torch.testing.assert_close(res.eigenvalues, exact_top, rtol=1e-6, atol=0)
    # verify=True: one more block product of the returned vectors, counted
    op2 = HessianOperator(net, lf, batch, backend="double")
    again = lanczos(op2, k=4, tol=1e-6, block_size=1, check=False, stop="residual", verify=True)
    assert again.residual_source == "fresh-products"
    assert again.hvp_count == again.lanczos_products + 4
    torch.testing.assert_close(again.residuals, res.residuals, rtol=1.0, atol=5e-7)


def test_k_larger_than_parameter_count_is_an_error():
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, backend="double")
    with pytest.raises(SharpscopeError, match=rf"top-k 200 is larger .*\({op.dim}\)"):
        lanczos(op, k=200)
    with pytest.raises(SharpscopeError, match=rf"top-k 42 per end \(84 in all\).*\({op.dim}\)"):
        lanczos(op, k=42, which="both")
    assert op.hvp_count == 0  # refused before any product


def test_loose_tolerance_stops_on_ritz_values():
    model, batches = make("cnn-bn")
    lam = float(torch.linalg.eigvalsh(exact("cnn-bn", "eval"))[-1])
    kw = dict(k=1, tol=1e-3, block_size=1, check=False)
    fast = lanczos(HessianOperator(model, loss_fn, batches, backend="double"), **kw)
    slow = lanczos(
        HessianOperator(model, loss_fn, batches, backend="double"), stop="residual", **kw
    )
    assert fast.stopped_on == "value" and fast.converged
    assert slow.stopped_on == "residual" and slow.converged
    assert fast.lanczos_products < slow.lanczos_products
    assert abs(float(fast.eigenvalues[0]) - lam) < 1e-3 * lam
    tight = lanczos(HessianOperator(model, loss_fn, batches, backend="double"), k=1, tol=1e-5)
    assert tight.stopped_on == "residual"  # auto: tight tolerances stop on residuals only
    with pytest.raises(SharpscopeError, match="stop must be"):
        lanczos(HessianOperator(model, loss_fn, batches, backend="double"), stop="never")


def test_determinism_check_is_skippable_and_paid_once_per_operator():
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, backend="double")
    skipped = lanczos(op, k=1, tol=1e-8, block_size=1, check_determinism=False)
    assert skipped.hvp_count == skipped.lanczos_products and not skipped.determinism_checked
    first = lanczos(op, k=1, tol=1e-8, block_size=1)
    assert first.hvp_count == first.lanczos_products + 1 and first.determinism_checked
    second = lanczos(op, k=2, tol=1e-8, block_size=1, seed=3)  # already checked: free
    assert second.hvp_count == second.lanczos_products and second.determinism_checked
    res = hessian_eigenvalues(
        model, loss_fn, batches, k=1, backend="double", check_determinism=False
    )
    assert res.hvp_count == res.lanczos_products
