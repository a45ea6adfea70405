"""The faster CPU loop (landscape/fast.py) and token accuracy in grid points.

Every value is compared with a plain loop written here: copy the point's weights into a
copy of the model, evaluate each batch, weighted mean.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope.landscape import evaluate_grid
from sharpscope.landscape.fast import FastLoop
from sharpscope.landscape.points import evaluate_point

from .conftest import make_model


def _batches(seed: int = 1, n: int = 40, size: int = 16, channels: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return [(x[i : i + size], y[i : i + size]) for i in range(0, n, size)]


def _directions(model: nn.Module, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return [
        {n: 0.3 * torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}
        for _ in range(2)
    ]


def _plain_loop(model, batches, dirs, xs, ys):
    """Li et al.: set the weights, evaluate every batch, next point (eval mode)."""
    loss = np.zeros((len(xs), len(ys)))
    acc = np.zeros((len(xs), len(ys)))
    work = copy.deepcopy(model).eval()
    center = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for i, a in enumerate(xs):
            for j, b in enumerate(ys):
                for n, p in work.named_parameters():
                    p.copy_(center[n] + float(a) * dirs[0][n] + float(b) * dirs[1][n])
                total = hits = n_all = 0.0
                for x, y in batches:
                    out = work(x)
                    total += nn.functional.cross_entropy(out, y).double().item() * len(y)
                    hits += (out.argmax(-1) == y).sum().item()
                    n_all += len(y)
                loss[i, j], acc[i, j] = total / n_all, hits / n_all
    return loss, acc


def _snapshot(model: nn.Module):
    state = {k: (v.clone(), v.stride()) for k, v in model.state_dict().items()}
    return state, [m.training for m in model.modules()], [p.grad for p in model.parameters()]


@pytest.mark.parametrize(
    "case", [("cnn", {"channels": [4, 6], "batchnorm": True}), ("mlp", {"hidden": [16]})]
)
def test_fast_grid_equals_the_plain_loop_and_leaves_the_model(case):
    model = make_model(*case)
    model.eval()
    batches = _batches()
    dirs = _directions(model)
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-0.5, 1.0, 4)
    before = _snapshot(model)
    surface = evaluate_grid(
        model, nn.functional.cross_entropy, batches, dirs, [xs, ys], method="loop", quiet=True
    )
    want_loss, want_acc = _plain_loop(model, batches, dirs, xs, ys)
    np.testing.assert_allclose(surface.loss, want_loss, rtol=1e-6, atol=0)
    np.testing.assert_allclose(surface.accuracy, want_acc, rtol=0, atol=1e-12)
    after = _snapshot(model)
    assert before[1] == after[1] and before[2] == after[2]
    for k, (v, stride) in before[0].items():
        assert torch.equal(after[0][k][0], v), k
        assert after[0][k][1] == stride, k  # still in the caller's memory format


def test_fast_loop_is_used_for_conv_models_and_agrees_point_by_point():
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True}).eval()
    batches = _batches()
    dirs = _directions(model)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert FastLoop.pays(model, torch.device("cpu"), batches)
    assert not FastLoop.pays(make_model("mlp", {"hidden": [16]}), torch.device("cpu"), batches)
    fast = FastLoop(model, nn.functional.cross_entropy, batches, base, dirs)
    coefs = np.array([[0.0, 0.0], [0.5, -0.25], [-1.0, 1.0]])
    plain_calls = []

    def plain(coef):
        plain_calls.append(coef)
        p = {n: base[n] + coef[0] * dirs[0][n] + coef[1] * dirs[1][n] for n in base}
        return evaluate_point(model, nn.functional.cross_entropy, batches, p)

    with torch.no_grad():
        losses, accs = fast.chunk(coefs, plain)
    assert fast.enabled and plain_calls == [[0.0, 0.0]]  # only the first point, as the check
    for c, lo, ac in zip(coefs, losses, accs, strict=True):
        want = plain(list(c))
        assert lo == pytest.approx(want[0], rel=1e-6) and ac == want[1]


class _Flattens(nn.Module):
    """A conv model whose forward views its input as rows: channels-last breaks ``view``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(x.view(len(x), -1)) + 0.0 * self.conv(x).sum()


def test_a_model_the_fast_path_breaks_falls_back_to_the_plain_loop():
    torch.manual_seed(0)
    model = _Flattens().eval()
    batches = _batches(channels=2)
    dirs = _directions(model)
    xs, ys = np.linspace(-1, 1, 3), np.linspace(-1, 1, 2)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    fast = FastLoop(model, nn.functional.cross_entropy, batches, base, dirs)
    with torch.no_grad():
        fast.chunk(
            np.zeros((2, 2)), lambda c: evaluate_point(model, nn.functional.cross_entropy, batches)
        )
    assert fast.checked and not fast.enabled
    surface = evaluate_grid(
        model, nn.functional.cross_entropy, batches, dirs, [xs, ys], method="loop", quiet=True
    )
    want_loss, want_acc = _plain_loop(model, batches, dirs, xs, ys)
    np.testing.assert_allclose(surface.loss, want_loss, rtol=1e-6, atol=0)
    np.testing.assert_allclose(surface.accuracy, want_acc, rtol=0, atol=1e-12)


class _TinyLM(nn.Module):
    def __init__(self, vocab: int = 7) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 5)
        self.out = nn.Linear(5, vocab)

    def forward(self, x):
        return self.out(self.emb(x))  # (B, T, V)


def _token_loss(out, y):
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_token_outputs_get_an_accuracy_at_the_slice_centre(method):
    torch.manual_seed(0)
    model = _TinyLM().eval()
    x = torch.randint(0, 7, (6, 4))
    y = torch.randint(0, 7, (6, 4))
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    d = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    s = evaluate_grid(
        model, _token_loss, batches, [d], [np.array([-0.5, 0.0, 0.5])], method=method, quiet=True
    )
    with torch.no_grad():
        want = (model(x).argmax(-1) == y).float().mean().item()
    assert s.accuracy[1] == pytest.approx(want, abs=1e-12)
    assert np.all(np.isfinite(s.accuracy))


def test_token_accuracy_counts_only_kept_tokens():
    torch.manual_seed(0)
    model = _TinyLM().eval()
    x = torch.randint(0, 7, (3, 5))
    y = torch.randint(0, 7, (3, 5))
    y[0, 3:] = -100
    y[2, 0] = -100
    with torch.no_grad():
        out = model(x)
    keep = y != -100
    want = ((out.argmax(-1) == y) & keep).sum().item() / keep.sum().item()
    loss, acc = evaluate_point(model, _token_loss, [(x, y)])
    assert acc == pytest.approx(want, abs=1e-12) and math.isfinite(loss)


def test_a_model_deepcopy_cannot_copy_is_evaluated_with_functional_call():
    import threading

    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True}).eval()
    model.lock = threading.Lock()  # deepcopy raises TypeError on it
    batches = _batches()
    dirs = _directions(model)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert FastLoop(model, nn.functional.cross_entropy, batches, base, dirs).work is None
    xs, ys = np.linspace(-1, 1, 3), np.linspace(-1, 1, 2)
    surface = evaluate_grid(
        model, nn.functional.cross_entropy, batches, dirs, [xs, ys], method="loop", quiet=True
    )
    del model.lock
    want_loss, want_acc = _plain_loop(model, batches, dirs, xs, ys)
    np.testing.assert_allclose(surface.loss, want_loss, rtol=1e-6, atol=0)
    np.testing.assert_allclose(surface.accuracy, want_acc, rtol=0, atol=1e-12)


def test_batchnorm_folds_with_each_points_own_statistics():
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True}).eval()
    batches = _batches()
    g = torch.Generator().manual_seed(5)
    tensors = dict(model.named_parameters())
    tensors.update({n: b for n, b in model.named_buffers() if "running_var" in n})
    dirs = [{n: 0.2 * torch.rand(t.shape, generator=g) for n, t in tensors.items()}] * 2
    base = {n: t.detach().clone() for n, t in tensors.items()}
    fast = FastLoop(model, nn.functional.cross_entropy, batches, base, dirs)
    assert fast._folded is not None and len(fast._folded.pairs) == 2
    coefs = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.5], [0.5, 1.0]])

    def plain(c):
        p = {n: base[n] + c[0] * dirs[0][n] + c[1] * dirs[1][n] for n in base}
        return evaluate_point(model, nn.functional.cross_entropy, batches, p)

    with torch.no_grad():
        losses, _ = fast.chunk(coefs, plain)
    assert fast.enabled  # the folded path agreed on the first point and computed the rest
    want = [plain(list(c))[0] for c in coefs]
    np.testing.assert_allclose(losses, want, rtol=1e-6, atol=0)
    assert len({round(v, 6) for v in want}) == len(want)  # the statistics moved the loss


class _SkipsBatchNorm(nn.Module):
    """The conv's output feeds the BatchNorm AND the sum: folding it would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 10)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        h = self.conv(x)
        return self.fc((self.bn(h) + h).mean((2, 3)))


def test_a_wrong_fold_is_caught_by_the_first_point_and_the_plain_loop_is_used():
    torch.manual_seed(0)
    model = _SkipsBatchNorm().eval()
    batches = _batches()
    dirs = _directions(model)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    fast = FastLoop(model, nn.functional.cross_entropy, batches, base, dirs)
    assert fast._folded is not None  # the hooks cannot see the second use
    with torch.no_grad():
        fast.chunk(
            np.zeros((2, 2)),
            lambda c: evaluate_point(model, nn.functional.cross_entropy, batches),
        )
    assert not fast.enabled
    xs, ys = np.linspace(-1, 1, 3), np.linspace(-1, 1, 2)
    surface = evaluate_grid(
        model, nn.functional.cross_entropy, batches, dirs, [xs, ys], method="loop", quiet=True
    )
    want_loss, want_acc = _plain_loop(model, batches, dirs, xs, ys)
    np.testing.assert_allclose(surface.loss, want_loss, rtol=1e-6, atol=0)
    np.testing.assert_allclose(surface.accuracy, want_acc, rtol=0, atol=1e-12)
