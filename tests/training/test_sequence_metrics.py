"""Sequence models (issue 14): accuracy counts target tokens (not sequences, never the
ignore_index positions) and metrics.jsonl records perplexity for the token loss."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sharpscope.losses as losses_mod
import sharpscope.models as models_mod
from sharpscope.checkpoint import load_checkpoint
from sharpscope.data import DataSplits
from sharpscope.training import train
from sharpscope.training.evaluate import perplexity, prediction_counts

T, V = 5, 3


def _token_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the non-ignored tokens (what ``sequence_cross_entropy`` is)."""
    flat = target.reshape(-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat, ignore_index=-100)


class TokenNet(nn.Module):
    """A tiny (B, T) -> (B, T, V) model: a per-token affine map plus a per-position offset."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.lin = nn.Linear(1, num_classes)
        self.pos = nn.Parameter(torch.randn(input_shape[0], num_classes))

    def forward(self, x):
        return self.lin(x.unsqueeze(-1)) + self.pos


def test_prediction_counts_by_hand():
    # (B, C) classification: one prediction per sample
    out = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    correct, counted = prediction_counts(out, torch.tensor([1, 1, 1]))
    assert (int(correct), int(counted)) == (2, 3)
    # (B, T, V) sequences: one per token, ignore_index (-100) positions never count
    out = torch.zeros(2, 3, 4)
    out[0, 0, 1] = out[0, 1, 2] = out[0, 2, 3] = 1.0  # predicts 1, 2, 3
    out[1, 0, 0] = out[1, 1, 0] = out[1, 2, 2] = 1.0  # predicts 0, 0, 2
    y = torch.tensor([[1, 0, 3], [-100, 0, -100]])
    correct, counted = prediction_counts(out, y)
    assert (int(correct), int(counted)) == (3, 4)


def test_perplexity_is_exp_of_the_mean_token_loss():
    assert perplexity(None) is None
    assert perplexity(0.0) == 1.0 and perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(1e6) == math.inf


def _expected(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Token accuracy and perplexity by a plain loop over every (sequence, position)."""
    with torch.no_grad():
        logits = net(x).double()
    hits = counted = 0
    ce_sum = 0.0
    for b in range(len(y)):
        for t in range(T):
            target = int(y[b, t])
            if target == -100:
                continue
            counted += 1
            hits += int(int(logits[b, t].argmax()) == target)
            ce_sum += float(torch.logsumexp(logits[b, t], 0) - logits[b, t, target])
    return hits / counted, math.exp(ce_sum / counted)


def test_sequence_accuracy_counts_tokens_and_perplexity_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setitem(models_mod.MODELS, "token_net", TokenNet)
    monkeypatch.setitem(losses_mod.LOSSES, "sequence_cross_entropy", _token_ce)
    g = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(24, T, generator=g), torch.randn(16, T, generator=g)
    y_train = torch.randint(0, V, (24, T), generator=g)
    y_test = torch.randint(0, V, (16, T), generator=g)
    y_train[::3, 1] = -100  # padded positions: no loss, no accuracy
    y_test[::2, 4] = -100
    splits = DataSplits(x_train, y_train, x_test, y_test, num_classes=V)
    out = tmp_path / "run"
    # lr 1e-30: the weights stay those of epoch_000.pt, so the epoch's training metrics are
    # those of the initial model on the training set
    train(
        model="token_net",
        data=splits,
        loss="sequence_cross_entropy",
        epochs=1,
        batch_size=8,
        lr=1e-30,
        momentum=0.0,
        weight_decay=0.0,
        out=out,
        quiet=True,
    )
    first, final = load_checkpoint(out / "epoch_000.pt"), load_checkpoint(out / "final.pt")
    for k, v in first.state_dict.items():
        assert torch.equal(v, final.state_dict[k]), k
    net = TokenNet((T,), V)
    net.load_state_dict(final.state_dict)
    (record,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_acc, train_ppl = _expected(net, x_train, y_train)
    test_acc, test_ppl = _expected(net, x_test, y_test)
    assert record["train_acc"] == train_acc and record["test_acc"] == test_acc
    assert 0.0 <= record["train_acc"] <= 1.0 and 0.0 <= record["test_acc"] <= 1.0
    assert record["train_perplexity"] == pytest.approx(train_ppl, rel=1e-5)
    assert record["perplexity"] == pytest.approx(test_ppl, rel=1e-5)


def test_classification_metrics_have_no_perplexity(tmp_path):
    out = tmp_path / "run"
    result = train(data="digits", samples=64, epochs=1, batch_size=32, out=out, quiet=True)
    assert "perplexity" not in result.final and "train_perplexity" not in result.final
