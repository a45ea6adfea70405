"""The causal Transformer and its sequence loss against exact answers.

A tiny float64 GPT (1 block, width 8, 2 heads, context 4, vocabulary 11; 736
parameters) has a dense Hessian we can build twice, with forward-over-reverse
(``sharpscope.reference``) and with plain double-backward autograd; the Hessian
operator's products (both backends), Lanczos eigenvalues and trace estimates are
checked against it.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from sharpscope.errors import DataError, ModelSpecError
from sharpscope.hessian import HessianOperator, hessian_eigenvalues, hessian_trace
from sharpscope.problem.models.gpt import GPT, gpt, perplexity, sequence_cross_entropy
from sharpscope.reference import dense_hessian

VOCAB, CONTEXT = 11, 4


def tiny(seed: int = 0) -> GPT:
    """The tiny model with O(1) random weights (GPT-2's 0.02 init has a near-trivial Hessian)."""
    torch.manual_seed(seed)
    model = gpt((CONTEXT,), VOCAB, width=8, depth=1, heads=2, mlp_ratio=2).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return model


def batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two batches of 3 sequences of 4 tokens (equal token counts, so sequence- and
    token-weighted means agree)."""
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randint(0, VOCAB, (3, CONTEXT), generator=g),
            torch.randint(0, VOCAB, (3, CONTEXT), generator=g),
        )
        for _ in range(2)
    ]


@functools.lru_cache(maxsize=1)
def exact() -> torch.Tensor:
    return dense_hessian(tiny(), sequence_cross_entropy, batches())


def mean_loss_of_vector(model, data):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    total = sum(len(y) for _, y in data)

    def f(theta):
        parts = {
            n: t.view(s) for n, t, s in zip(names, torch.split(theta, sizes), shapes, strict=True)
        }
        return sum(
            sequence_cross_entropy(functional_call(model, parts, (x,)), y) * (len(y) / total)
            for x, y in data
        )

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return f, theta


def test_dense_reference_matches_double_backward():
    """The forward-over-reverse reference (jvp through LayerNorm, GELU, softmax,
    masked_fill, embedding backward) equals reverse-over-reverse autograd."""
    f, theta = mean_loss_of_vector(tiny(), batches())
    H2 = torch.autograd.functional.hessian(f, theta, vectorize=True)
    H = exact()
    assert H.shape == (736, 736)
    torch.testing.assert_close(H, H2, atol=1e-10, rtol=0)
    torch.testing.assert_close(H, H.T, atol=1e-12, rtol=0)
    assert float(torch.linalg.matrix_norm(H)) > 1.0  # a non-trivial Hessian


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_operator_products_match_dense(backend):
    model = tiny()
    op = HessianOperator(model, sequence_cross_entropy, batches(), backend=backend, block_size=3)
    # sequence_cross_entropy weighs batches by their counted tokens: 6 sequences x 4 tokens
    assert op.dim == 736 and op.num_samples == 24
    g = torch.Generator().manual_seed(1)
    V = torch.randn(op.dim, 4, generator=g, dtype=torch.float64)
    H = exact()
    torch.testing.assert_close(op.matmat(V), H @ V, atol=1e-10, rtol=0)
    torch.testing.assert_close(op @ V[:, 0], H @ V[:, 0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_top_eigenvalues_match_eigvalsh(backend):
    evals = torch.linalg.eigvalsh(exact())
    res = hessian_eigenvalues(
        tiny(),
        sequence_cross_entropy,
        batches(),
        k=3,
        tol=1e-10,
        max_products=736,
        backend=backend,
    )
    assert res.converged
    torch.testing.assert_close(res.eigenvalues, evals.flip(0)[:3], rtol=1e-8, atol=0)


def test_trace_estimators_converge_to_exact_trace():
    model, H = tiny(), exact()
    exact_trace = float(torch.trace(H))
    # Hutch++ with probes >= 3 * dim sketches the whole space: exact up to rounding.
    # On the final LayerNorm's 16 parameters (a diagonal block of the dense Hessian).
    offsets, pos = {}, 0
    for n, p in model.named_parameters():
        offsets[n], pos = (pos, pos + p.numel()), pos + p.numel()
    idx = torch.cat([torch.arange(*offsets[n]) for n in ("ln_f.weight", "ln_f.bias")])
    block_trace = float(torch.trace(H[idx][:, idx]))
    full = hessian_trace(
        model, sequence_cross_entropy, batches(), method="hutchpp", probes=48, params="ln_f"
    )
    assert abs(full.trace - block_trace) < 1e-10 * max(1.0, abs(block_trace))
    # Hutchinson over all 736 parameters, fixed seed: within 4 standard errors, and the
    # standard error matches the exact one for Rademacher probes,
    # sqrt(2 sum_{i != j} H_ij^2 / probes).
    probes = 200
    est = hessian_trace(
        model, sequence_cross_entropy, batches(), method="hutchinson", probes=probes, seed=0
    )
    assert abs(est.trace - exact_trace) < 4 * est.stderr
    off = float((H**2).sum() - (torch.diagonal(H) ** 2).sum())
    assert est.stderr == pytest.approx(math.sqrt(2 * off / probes), rel=0.25)


def test_causal_mask_future_tokens_do_not_change_earlier_logits():
    model = tiny()
    x = torch.randint(0, VOCAB, (2, CONTEXT), generator=torch.Generator().manual_seed(3))
    base = model(x)
    for t in range(CONTEXT):
        x2 = x.clone()
        x2[:, t] = (x2[:, t] + 1) % VOCAB
        out = model(x2)
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=0, rtol=0)
        assert (out[:, t] - base[:, t]).abs().max() > 1e-6  # the changed position does change


def test_attention_mask_masks_keys():
    model = tiny()
    x = torch.randint(0, VOCAB, (2, CONTEXT), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, CONTEXT, dtype=torch.int64)
    mask[:, 1] = 0  # key 1 is padding
    out = model(x, attention_mask=mask)
    x2 = x.clone()
    x2[:, 1] = (x2[:, 1] + 5) % VOCAB
    out2 = model(x2, attention_mask=mask)
    # positions 2 and 3 attend to keys 0, 2, 3 only: token 1 no longer reaches them
    torch.testing.assert_close(out2[:, 2:], out[:, 2:], atol=1e-12, rtol=0)
    # ...while without the mask it does
    assert (model(x2)[:, 2:] - model(x)[:, 2:]).abs().max() > 1e-6
    # the mapping form gives the same logits; an all-ones mask is no mask
    torch.testing.assert_close(model({"input_ids": x, "attention_mask": mask}), out)
    torch.testing.assert_close(model(x, torch.ones_like(mask)), model(x))


def test_attention_matches_a_plain_loop():
    """Attention written as an explicit per-query softmax loop over allowed keys."""
    model = tiny()
    attn = model.blocks[0].attn
    g = torch.Generator().manual_seed(5)
    h = torch.randn(2, CONTEXT, 8, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 0, 1]]).bool()
    out = attn(h, mask)
    q, k, v = attn.q(h), attn.k(h), attn.v(h)
    expected = torch.zeros_like(h)
    for b in range(2):
        for t in range(CONTEXT):
            for head in range(2):
                sl = slice(4 * head, 4 * head + 4)
                keys = [s for s in range(t + 1) if mask[b, s] or s == t]  # always itself
                w = torch.softmax(
                    torch.stack([q[b, t, sl] @ k[b, s, sl] / 2.0 for s in keys]), dim=0
                )
                expected[b, t, sl] = sum(wi * v[b, s, sl] for wi, s in zip(w, keys, strict=True))
    torch.testing.assert_close(out, attn.proj(expected), atol=1e-12, rtol=0)
    assert torch.isfinite(out).all()


def test_sequence_cross_entropy_is_the_token_mean():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    target = torch.tensor([[1, 4, -100], [0, -100, 2]])
    by_hand = [
        -torch.log_softmax(logits[b, t], -1)[target[b, t]]
        for b in range(2)
        for t in range(3)
        if target[b, t] != -100
    ]
    expected = sum(by_hand) / 4
    torch.testing.assert_close(sequence_cross_entropy(logits, target), expected)
    target7 = torch.where(target == -100, 7, target)
    torch.testing.assert_close(sequence_cross_entropy(logits, target7, ignore_index=7), expected)
    assert perplexity(expected) == pytest.approx(math.exp(float(expected)), rel=1e-15)
    assert perplexity(1e6) == math.inf


def test_uniform_logits_give_perplexity_equal_to_vocab():
    logits = torch.zeros(2, 3, 256)
    target = torch.randint(0, 256, (2, 3))
    assert perplexity(sequence_cross_entropy(logits, target)) == pytest.approx(256.0, rel=1e-6)


def test_bad_inputs_are_refused_in_one_line():
    logits = torch.zeros(2, 3, 5)
    for call, words in (
        (lambda: sequence_cross_entropy(logits, torch.zeros(2, 4, dtype=torch.long)), "(B, T)"),
        (lambda: sequence_cross_entropy(logits, torch.full((2, 3), -100)), "every target"),
        (lambda: sequence_cross_entropy(logits, torch.zeros(2, 3)), "integer"),
        (lambda: tiny()(torch.zeros(1, 5, dtype=torch.long)), "exceed the model's context of 4"),
        (lambda: tiny()(torch.zeros(1, 4)), "integer token ids"),
        (lambda: tiny()(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 3)), "attention_mask"),
    ):
        with pytest.raises(DataError, match=None) as info:
            call()
        assert words in str(info.value) and "\n" not in str(info.value)
    for kwargs, words in (
        (dict(input_shape=(1, 8, 8), num_classes=10), "shape (context,)"),
        (dict(input_shape=(8,), num_classes=10, width=10, heads=4), "multiple of heads"),
        (dict(input_shape=(8,), num_classes=10, context=4), "shorter"),
        (dict(input_shape=(8,), num_classes=10, vocab=12), "vocab=12"),
        (dict(input_shape=(8,), num_classes=10, depth=0), "depth=0"),
    ):
        with pytest.raises(ModelSpecError) as info:
            gpt(**kwargs)
        assert words in str(info.value) and "\n" not in str(info.value)


def test_factory_shapes_and_tied_head():
    net = gpt((16,), 256)
    names = [n for n, _ in net.named_parameters()]
    assert not any("head" in n for n in names)  # the head is the token embedding
    assert net.context == 16 and len(net.blocks) == 2 and net.tok.weight.shape == (256, 64)
    assert "blocks.0.attn.causal" not in net.state_dict()  # the mask is not checkpointed
    longer = gpt((16,), 256, context=32, width=16, heads=2, depth=1)
    x = torch.randint(0, 256, (2, 10))
    assert longer(x).shape == (2, 10, 256)
    assert longer(x[0]).shape == (10, 256)  # one unbatched sequence
    # logits are exactly h @ E^T: the gradient reaches tok.weight through both uses
    loss = sequence_cross_entropy(longer(x), x)
    loss.backward()
    assert longer.tok.weight.grad is not None and longer.tok.weight.grad.abs().sum() > 0


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    net = gpt((8,), 11, width=16, depth=1, heads=2)
    x = torch.randint(0, 11, (8, 8))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    with torch.no_grad():
        first = float(sequence_cross_entropy(net(x), y))
    for _ in range(20):
        opt.zero_grad()
        loss = sequence_cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = F.cross_entropy(net(x).reshape(-1, 11), y.reshape(-1)).item()
    assert last < first - 0.5


def test_docstring_examples_run():
    import doctest
    import importlib

    result = doctest.testmod(
        importlib.import_module("sharpscope.problem.models.gpt"), optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0 and result.failed == 0
