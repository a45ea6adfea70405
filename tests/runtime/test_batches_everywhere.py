"""Issue 15: mapping batches (``input_ids``/``attention_mask``/``labels``) through every
computation, against answers computed here without sharpscope: a dense float64 Hessian of a
hand-written token-mean loss, its eigenvalues and trace, the loss itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sharpscope.errors import SharpscopeError
from sharpscope.hessian import (
    HessianOperator,
    hessian_eigenvalues,
    hessian_trace,
    spectral_density,
)
from sharpscope.reference import dense_hessian, dense_loss
from sharpscope.runtime.batches import batch_loss_fn

V, D = 5, 3
IGNORE = -100


class TinyTransformer(nn.Module):
    """Embedding, one masked softmax-attention mixing layer with a residual, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.q = nn.Linear(D, D, bias=False)
        self.k = nn.Linear(D, D, bias=False)
        self.head = nn.Linear(D, V)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(input_ids)
        scores = self.q(h) @ self.k(h).transpose(-1, -2) / math.sqrt(D)
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, -1e4)
        return self.head(h + torch.softmax(scores, -1) @ h)


def make_model(seed: int = 0) -> TinyTransformer:
    torch.manual_seed(seed)
    return TinyTransformer().double()


def make_batch(seed: int, rows: int, length: int, pad: int) -> dict[str, torch.Tensor]:
    """``rows`` sequences; the last ``pad`` positions of the first row are padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (rows, length), generator=g)
    mask = torch.ones(rows, length, dtype=torch.long)
    labels = torch.randint(0, V, (rows, length), generator=g)
    if pad:
        mask[0, -pad:] = 0
        labels[0, -pad:] = IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# two batches of different sizes and token counts: 3*4-2 = 10 and 2*4-0 = 8 tokens
BATCHES = [make_batch(1, 3, 4, 2), make_batch(2, 2, 4, 0)]


def token_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the non-ignored tokens (a built-in-style ``(output, y)`` loss)."""
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=IGNORE)


def token_ce_weighted(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return token_ce(logits, labels)


token_ce_weighted.weight = lambda batch: int((batch["labels"] != IGNORE).sum())  # type: ignore[attr-defined]


def hand_token_mean(model: nn.Module, params: dict, batches: list) -> torch.Tensor:
    """The mean over ALL non-ignored tokens of all batches, written out by hand."""
    total, count = 0.0, 0
    for b in batches:
        out = functional_call(model, params, (b["input_ids"], b["attention_mask"]))
        total = total + F.cross_entropy(
            out.reshape(-1, V), b["labels"].reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
        count += int((b["labels"] != IGNORE).sum())
    return total / count


def hand_sequence_weighted(model: nn.Module, params: dict, batches: list) -> torch.Tensor:
    """Batch token-means weighted by the batch's number of sequences (no ``weight``)."""
    rows = sum(b["input_ids"].shape[0] for b in batches)
    out = 0.0
    for b in batches:
        logits = functional_call(model, params, (b["input_ids"], b["attention_mask"]))
        out = out + token_ce(logits, b["labels"]) * (b["input_ids"].shape[0] / rows)
    return out


def dense(model: nn.Module, hand, batches: list) -> torch.Tensor:
    """Dense float64 Hessian of ``hand`` by jacfwd(jacrev), flattened in parameter order."""
    names = [n for n, _ in model.named_parameters()]
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    sizes = [t.numel() for t in base.values()]
    theta = torch.cat([t.reshape(-1) for t in base.values()])

    def f(vec: torch.Tensor) -> torch.Tensor:
        parts = torch.split(vec, sizes)
        return hand(
            model, {n: p.view_as(base[n]) for n, p in zip(names, parts, strict=True)}, batches
        )

    return torch.func.jacfwd(torch.func.jacrev(f))(theta)


@pytest.fixture(scope="module")
def exact() -> dict[str, torch.Tensor]:
    model = make_model()
    return {
        "tokens": dense(model, hand_token_mean, BATCHES),
        "rows": dense(model, hand_sequence_weighted, BATCHES),
    }


def _product_check(op: HessianOperator, H: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(5)
    Vs = torch.randn(op.dim, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op @ Vs, H @ Vs, rtol=0, atol=1e-10)
    torch.testing.assert_close(op @ Vs[:, 0], H @ Vs[:, 0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_products_on_mapping_batches_weighted_by_tokens(exact, backend) -> None:
    model = make_model()
    op = HessianOperator(model, token_ce_weighted, BATCHES, backend=backend, block_size=2)
    assert op.num_samples == 18  # tokens, from the loss's weight(batch)
    _product_check(op, exact["tokens"])


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_products_on_mapping_batches_weighted_by_sequences(exact, backend) -> None:
    model = make_model()
    op = HessianOperator(model, token_ce, BATCHES, backend=backend, block_size=2)
    assert op.num_samples == 5  # sequences: the labels' first dimension
    _product_check(op, exact["rows"])


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_products_on_a_streamed_mapping_iterable(exact, backend) -> None:
    class Stream:  # re-iterable, not a list: batches move to the device as they come
        def __iter__(self):
            yield from BATCHES

    op = HessianOperator(make_model(), token_ce_weighted, Stream(), backend=backend)
    _product_check(op, exact["tokens"])
    assert op.num_samples == 18


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_inputs_mapping_with_targets_and_a_batch_loss(backend) -> None:
    """``(inputs_dict, y)`` batches, and a user loss taking ``(output, batch)``: one batch
    (the double backend keeps one gradient graph for it)."""
    model, batch = make_model(), BATCHES[0]
    H = dense(model, hand_token_mean, [batch])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    op = HessianOperator(model, token_ce, (inputs, batch["labels"]), backend=backend)
    _product_check(op, H)

    def user(output, b):  # fn(output, batch) -> mean loss
        return token_ce(output, b["labels"])

    op = HessianOperator(model, batch_loss_fn(user), batch, backend=backend)
    _product_check(op, H)


def test_reference_accepts_mapping_batches(exact) -> None:
    model = make_model()
    torch.testing.assert_close(
        dense_hessian(model, token_ce_weighted, BATCHES), exact["tokens"], rtol=0, atol=1e-12
    )
    params = dict(model.named_parameters())
    with torch.no_grad():
        expected = float(hand_token_mean(model, params, BATCHES))
    assert dense_loss(model, token_ce_weighted, BATCHES) == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_eigenvalues_on_mapping_batches(exact, backend) -> None:
    evals = torch.linalg.eigvalsh(exact["tokens"])
    res = hessian_eigenvalues(
        make_model(), token_ce_weighted, BATCHES, k=3, backend=backend, tol=1e-12
    )
    torch.testing.assert_close(
        torch.as_tensor(res.eigenvalues, dtype=torch.float64),
        evals.flip(0)[:3],
        rtol=0,
        atol=1e-8,
    )
    low = hessian_eigenvalues(
        make_model(), token_ce_weighted, BATCHES, k=1, which="smallest", tol=1e-12
    )
    assert float(low.eigenvalues[0]) == pytest.approx(float(evals[0]), abs=1e-8)


def test_trace_on_mapping_batches(exact) -> None:
    model = make_model()
    dim = exact["tokens"].shape[0]
    # XTrace with more test vectors than dimensions: the sketch spans the whole space
    res = hessian_trace(
        model, token_ce_weighted, BATCHES, method="xtrace", probes=2 * dim + 4, backend="forward"
    )
    assert res.trace == pytest.approx(float(exact["tokens"].trace()), abs=1e-8)


def test_density_on_mapping_batches(exact) -> None:
    """SLQ's first two moments are exact for each start vector: ``v^T H v`` and ``v^T H^2 v``
    (start vectors: normalised Rademacher columns drawn as slq_density draws them)."""
    H = exact["tokens"]
    dim, runs = H.shape[0], 2
    res = spectral_density(
        make_model(), token_ce_weighted, BATCHES, runs=runs, iters=dim, seed=3, backend="double"
    )
    gen = torch.Generator().manual_seed(3)
    signs = torch.randint(0, 2, (dim, runs), generator=gen, dtype=torch.int8).double() * 2 - 1
    Vs = signs / math.sqrt(dim)
    assert res.moment(1) == pytest.approx(float(((H @ Vs) * Vs).sum(0).mean()), abs=1e-10)
    assert res.moment(2) == pytest.approx(float(((H @ Vs) ** 2).sum(0).mean()), abs=1e-10)
    evals = torch.linalg.eigvalsh(H).numpy()
    for node in res.nodes.reshape(-1):  # full Lanczos: every Ritz value is an eigenvalue
        assert min(abs(evals - node)) < 1e-8


def test_batch_the_model_cannot_take_is_one_line() -> None:
    bad = {"tokens": BATCHES[0]["input_ids"], "labels": BATCHES[0]["labels"]}
    with pytest.raises(SharpscopeError) as err:
        op = HessianOperator(make_model(), token_ce, [bad], backend="double")
        op @ torch.ones(op.dim, dtype=torch.float64)
    msg = str(err.value)
    assert "\n" not in msg and "tokens" in msg and "input_ids" in msg and "attention_mask" in msg


def test_a_loss_returning_a_non_scalar_is_one_line() -> None:
    def per_token(output, b):
        return F.cross_entropy(output.reshape(-1, V), b["labels"].reshape(-1), reduction="none")

    op = HessianOperator(make_model(), batch_loss_fn(per_token), BATCHES, backend="double")
    with pytest.raises(SharpscopeError) as err:
        op @ torch.ones(op.dim, dtype=torch.float64)
    msg = str(err.value)
    assert "\n" not in msg and "per_token" in msg and "scalar" in msg


def _hand_loss_at(model: nn.Module, shift: dict[str, torch.Tensor], batches: list) -> float:
    params = {n: p.detach() + shift.get(n, 0.0) for n, p in model.named_parameters()}
    with torch.no_grad():
        return float(hand_token_mean(model, params, batches))


@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_slice_on_mapping_batches_is_the_token_mean(method) -> None:
    from sharpscope.landscape.grid import evaluate_grid, evaluate_point

    model = make_model()
    g = torch.Generator().manual_seed(9)
    d = {
        n: torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in model.named_parameters()
    }
    axis = np.array([-0.5, 0.0, 0.25])
    s = evaluate_grid(
        model, token_ce_weighted, BATCHES, [d], [axis], method=method, quiet=True, chunk_size=2
    )
    for a, got in zip(axis, s.loss, strict=True):
        want = _hand_loss_at(model, {n: float(a) * t for n, t in d.items()}, BATCHES)
        assert float(got) == pytest.approx(want, abs=1e-12)
    assert s.loss[1] == pytest.approx(_hand_loss_at(model, {}, BATCHES), abs=1e-12)
    # token targets: accuracy over the kept tokens (targets != -100), as in training
    from sharpscope.runtime.batches import batch_target, call_model

    with torch.no_grad():
        hits = kept = 0
        for b in BATCHES:
            y = batch_target(b)
            keep = y != -100
            hits += int(((call_model(model, b).argmax(-1) == y) & keep).sum())
            kept += int(keep.sum())
    assert s.accuracy[1] == pytest.approx(hits / kept, abs=1e-12)
    loss, _ = evaluate_point(model, token_ce_weighted, BATCHES)
    assert loss == pytest.approx(_hand_loss_at(model, {}, BATCHES), abs=1e-12)


def test_sharpness_and_plane_on_mapping_batches() -> None:
    from sharpscope.sharpness import worst_case_sharpness, xsam_plane

    model = make_model()
    exact = _hand_loss_at(model, {}, BATCHES)
    r = worst_case_sharpness(model, token_ce_weighted, BATCHES, rho=0.05, steps=3, restarts=1)
    assert r.loss_at_theta == pytest.approx(exact, abs=1e-12)
    want = _hand_loss_at(model, r.delta, BATCHES)
    assert r.perturbed_loss == pytest.approx(want, abs=1e-12)
    assert r.value == pytest.approx(want - exact, abs=1e-12)
    assert r.settings["data_samples"] == 5  # sequences
    p = xsam_plane(model, token_ce_weighted, BATCHES, rho=0.05, grid=(-0.1, 0.1, 3), quiet=True)
    assert p.loss_theta0 == pytest.approx(exact, abs=1e-12)
    assert float(p.surface.loss[1, 1]) == pytest.approx(exact, abs=1e-12)


def _flat_grad(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The gradient of the hand-written token mean at ``params``, flattened."""
    leaves = {n: t.detach().clone().requires_grad_(True) for n, t in params.items()}
    loss = hand_token_mean(model, leaves, BATCHES)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(leaves.values()))])


def _unflat(vec: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    parts = torch.split(vec, [t.numel() for t in like.values()])
    return {n: p.view_as(t) for (n, t), p in zip(like.items(), parts, strict=True)}


def _closure(model: nn.Module):
    """The training closure on mapping batches: the token mean through loss_on_batch."""
    from sharpscope.runtime.batches import batch_weight, loss_on_batch

    weights = [batch_weight(b, token_ce_weighted) for b in BATCHES]

    def closure() -> torch.Tensor:
        loss = sum(
            loss_on_batch(model, token_ce_weighted, b) * (w / sum(weights))
            for b, w in zip(BATCHES, weights, strict=True)
        )
        loss.backward()
        return loss

    return closure


def test_sam_step_on_mapping_batches_is_the_hand_step() -> None:
    from sharpscope.optim import SAM

    model, rho, lr = make_model(), 0.05, 0.1
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    flat = torch.cat([t.reshape(-1) for t in theta.values()])
    g = _flat_grad(model, theta)
    g_adv = _flat_grad(model, _unflat(flat + rho * g / g.norm(), theta))
    want = flat - lr * g_adv
    opt = SAM(model, "sgd", rho=rho, lr=lr)
    closure = _closure(model)
    closure()
    opt.step(closure)
    got = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_xsam_step_on_mapping_batches_is_the_hand_step() -> None:
    """Two ascent steps of rho/2, then alpha = 0: along v0 = theta_2 - theta_0, scaled by
    the gradient norm at theta_2."""
    from sharpscope.optim import XSAM

    model, rho, lr = make_model(), 0.05, 0.1
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    t0 = torch.cat([t.reshape(-1) for t in theta.values()])
    g0 = _flat_grad(model, theta)
    t1 = t0 + (rho / 2) * g0 / g0.norm()
    g1 = _flat_grad(model, _unflat(t1, theta))
    t2 = t1 + (rho / 2) * g1 / g1.norm()
    g2 = _flat_grad(model, _unflat(t2, theta))
    v0 = (t2 - t0) / (t2 - t0).norm()
    want = t0 - lr * g2.norm() * v0
    opt = XSAM(model, "sgd", rho=rho, steps=2, alpha=0.0, lr=lr)
    closure = _closure(model)
    closure()
    opt.step(closure)
    got = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
