"""The faster CPU loop runs several points at once (one model copy per worker): every point
equals the plain loop, and a point's value does not depend on the worker, the chunking or
where a resumed run starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope.landscape import evaluate_grid
from sharpscope.landscape.fast import FastLoop

from .conftest import make_model
from .test_grid_fast import _batches, _directions, _plain_loop


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _plain(model):
    def point(c):  # the plain loop's value of one point: the first point's check
        loss, acc = _plain_loop(model, _batches(), _directions(model), [c[0]], [c[1]])
        return float(loss[0, 0]), float(acc[0, 0])

    return point


def _loop(model, loss_fn=nn.functional.cross_entropy):
    batches, dirs = _batches(), _directions(model)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    return FastLoop(model, loss_fn, batches, base, dirs)


def test_points_spread_over_workers_equal_the_plain_loop(two_threads):
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True}).eval()
    xs, ys = np.linspace(-1, 1, 7), np.linspace(-1, 1, 5)
    surface = evaluate_grid(model, nn.functional.cross_entropy, _batches(), _directions(model),
                            [xs, ys], method="loop", quiet=True, chunk_size=35)  # fmt: skip
    want_loss, want_acc = _plain_loop(model, _batches(), _directions(model), xs, ys)
    np.testing.assert_allclose(surface.loss, want_loss, rtol=1e-6, atol=0)
    np.testing.assert_allclose(surface.accuracy, want_acc, rtol=0, atol=1e-12)
    fast = _loop(model)
    assert fast.workers == 2
    coefs = np.array([[a, b] for a in xs for b in ys])
    losses, _ = fast.chunk(coefs, _plain(model))
    assert fast.enabled and len(fast.copies) == 2
    np.testing.assert_allclose(np.reshape(losses, want_loss.shape), want_loss, rtol=1e-6)


def test_a_points_value_does_not_depend_on_worker_chunk_or_resume_point(two_threads):
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True}).eval()
    xs, ys = np.linspace(-1, 1, 6), np.linspace(-0.5, 0.5, 4)
    coefs = np.array([[a, b] for a in xs for b in ys])

    plain = _plain(model)
    whole, _ = _loop(model).chunk(coefs, plain)
    one_by_one = _loop(model)
    singles = [one_by_one.chunk(coefs[i : i + 1], plain)[0][0] for i in range(len(coefs))]
    assert singles == whole  # bit for bit: each point on 1 thread whichever worker
    for k in (1, 5, 13):  # a run resumed at point k computes k.. as the first run did
        resumed, _ = _loop(model).chunk(coefs[k:], plain)
        assert resumed == whole[k:]
    assert len(set(whole)) == len(whole)  # the points differ: the test can fail


def test_a_users_loss_is_called_from_one_thread_only(two_threads):
    model = make_model("cnn", {"channels": [4, 6], "batchnorm": False}).eval()
    calls = []

    def my_loss(out, y):  # keeps state: not safe to call from two threads
        calls.append(len(y))
        return nn.functional.cross_entropy(out, y)

    fast = _loop(model, my_loss)
    assert fast.workers == 1
    assert _loop(model, nn.CrossEntropyLoss()).workers == 2  # torch's own module: pure
    plain = _loop(model, my_loss).point  # the same path, to compare with
    losses, _ = fast.chunk(np.array([[0.0, 0.0], [0.5, 0.5], [-1.0, 0.2]]), plain)
    assert fast.enabled and len(fast.copies) == 1
    assert torch.get_num_threads() == 2  # the loop restores the thread count


def test_no_more_workers_than_half_the_free_memory_holds(two_threads, monkeypatch):
    import sharpscope.landscape.fast as fast_mod

    model = make_model("cnn", {"channels": [4, 6], "batchnorm": True}).eval()
    per = fast_mod._worker_bytes(_loop(model).copies[0].work, _batches()[0])
    params = sum(p.numel() * 4 for p in model.parameters())
    assert per > params  # the copy and the activations of one batch
    monkeypatch.setattr(fast_mod, "available_memory", lambda _dev: 3 * per)
    assert _loop(model).workers == 1  # two workers would need 4x
    monkeypatch.setattr(fast_mod, "available_memory", lambda _dev: 4 * per)
    assert _loop(model).workers == 2
