"""Issue 14 wiring: the byte-level text sources, the GPT and the sequence loss through the
registries (``load_data``, ``build_model``, ``get_loss``) and the ``train`` command."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from sharpscope.errors import DataError, ModelSpecError
from sharpscope.problem.data import DATA_SOURCES, load_data
from sharpscope.problem.data.text import load_text
from sharpscope.problem.losses import LOSSES, cross_entropy, get_loss, sequence_cross_entropy
from sharpscope.problem.models import MODELS, build_model
from sharpscope.problem.models.gpt import GPT


def _plain_token_ce(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over tokens of -log softmax(logits)[target], one token at a time (float64)."""
    total, count = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            row = logits[b, t].double()
            total += float(torch.logsumexp(row, 0) - row[target[b, t]])
            count += 1
    return total / count


# ----------------------------------------------------------------------------- data
def test_text_sources_are_registered():
    assert "text" in DATA_SOURCES and "textfile" in DATA_SOURCES


def test_load_data_text_gives_the_token_windows_unnormalised():
    data = load_data("text:context=16,windows=64")
    x, y, xt, yt = load_text(context=16, train_windows=64)
    assert data.x_train.dtype == torch.int64 and data.y_train.dtype == torch.int64
    assert torch.equal(data.x_train, x) and torch.equal(data.y_train, y)
    assert torch.equal(data.x_test, xt) and torch.equal(data.y_test, yt)
    assert data.input_shape == (16,) and data.num_classes == 256
    assert data.mean is None and data.std is None  # token ids are never standardised
    assert data.spec.spec == "text:context=16,windows=64" and data.spec.normalize is True


def test_load_data_textfile(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 20, encoding="utf-8")
    data = load_data(f"textfile:{path}?context=8,windows=5,test_windows=3")
    assert tuple(data.x_train.shape) == (5, 8) and tuple(data.x_test.shape) == (3, 8)
    assert bool((data.x_train[:, 1:] == data.y_train[:, :-1]).all())
    raw = path.read_bytes()
    window = bytes(data.x_train[0].tolist()) + bytes([int(data.y_train[0, -1])])
    assert window in raw


def test_text_subset_is_seeded():
    a = load_data("text:context=8,windows=40", samples=10, seed=3)
    b = load_data("text:context=8,windows=40", samples=10, seed=3)
    assert len(a.y_train) == 10 and torch.equal(a.x_train, b.x_train)


def test_text_option_errors_are_one_data_error():
    with pytest.raises(DataError, match="text: bad option 'ctx=3'"):
        load_data("text:ctx=3")


def test_float_inputs_are_still_normalised():
    data = load_data("synthetic:train=50,test=10,classes=3,shape=2x3")
    assert data.mean is not None and len(data.mean) == 2
    dims = [0, 2]
    assert torch.allclose(data.x_train.mean(dim=dims), torch.zeros(2), atol=1e-5)


# ----------------------------------------------------------------------------- model
def test_gpt_is_in_the_zoo_and_takes_depth():
    assert "gpt" in MODELS
    net = build_model("gpt", input_shape=(16,), num_classes=256, width=16, depth=1, heads=2)
    assert isinstance(net, GPT) and len(net.blocks) == 1
    assert net(torch.randint(0, 256, (2, 16))).shape == (2, 16, 256)


def test_gpt_unknown_kwarg_names_what_it_takes():
    with pytest.raises(ModelSpecError, match="model 'gpt' does not take layers; it takes "):
        build_model("gpt", input_shape=(16,), num_classes=256, layers=2)


def test_resnets_still_refuse_depth():
    with pytest.raises(ModelSpecError, match="model 'resnet20' does not take depth"):
        build_model("resnet20", input_shape=(3, 8, 8), num_classes=10, depth=32)


# ----------------------------------------------------------------------------- loss
def test_sequence_loss_is_registered():
    assert get_loss("sequence_cross_entropy") is sequence_cross_entropy
    assert "sequence_cross_entropy" in LOSSES


def test_loss_on_gpt_output_equals_the_per_token_loop():
    torch.manual_seed(0)
    data = load_data("text:context=16,windows=64")
    net = build_model("gpt", input_shape=(16,), num_classes=256, width=16, depth=1, heads=2)
    x, y = data.x_train[:4], data.y_train[:4]
    logits = net(x)
    expected = _plain_token_ce(logits.detach(), y)
    assert float(get_loss("sequence_cross_entropy")(logits, y)) == pytest.approx(expected, rel=1e-5)
    assert float(get_loss("cross_entropy")(logits, y)) == pytest.approx(expected, rel=1e-5)
    assert 4.0 < expected < 7.0  # about log(256) at initialisation


def test_cross_entropy_keeps_the_classification_case():
    logits = torch.randn(5, 3, dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 1, 0])
    expected = (
        sum(float(torch.logsumexp(logits[i], 0) - logits[i, target[i]]) for i in range(5)) / 5
    )
    assert float(cross_entropy(logits, target)) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_keeps_torch_convention_for_class_dim_one():
    # (N, C, L) logits with (N, L) targets, C != L: PyTorch's K-dimensional convention
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 5))
    assert float(cross_entropy(logits, target)) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-12
    )


def test_cross_entropy_refuses_an_ambiguous_square_sequence():
    # (B, T, V) with T == V reads as both conventions: refuse rather than guess
    logits = torch.randn(2, 4, 4)
    target = torch.randint(0, 4, (2, 4))
    with pytest.raises(DataError, match="sequence_cross_entropy"):
        cross_entropy(logits, target)


# ----------------------------------------------------------------------------- CLI
def test_cli_trains_a_gpt_on_text(tmp_path, cli_runner, cli_app):
    out = tmp_path / "run"
    result = cli_runner.invoke(
        cli_app,
        [
            "train", "--model", "gpt", "--model-kwargs", '{"width":16,"depth":1,"heads":2}',
            "--data", "text:context=16,windows=64", "--epochs", "1", "--batch-size", "32",
            "--out", str(out), "--device", "cpu", "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from sharpscope.problem import load_problem

    problem = load_problem(out / "final.pt", device="cpu")
    assert problem.model.__class__ is GPT and problem.data.input_shape == (16,)
    x, y = problem.data.x_train[:8], problem.data.y_train[:8]
    loss = float(problem.loss_fn(problem.model(x), y))
    assert math.isfinite(loss) and loss == pytest.approx(
        _plain_token_ce(problem.model(x).detach(), y), rel=1e-5
    )
    exact = load_problem(out / "final.pt", device="cpu", dtype=torch.float64)
    assert exact.data.x_train.dtype == torch.int64  # token ids are not cast to the dtype
    xd = exact.data.x_train[:8]
    assert float(exact.loss_fn(exact.model(xd), y)) == pytest.approx(loss, rel=1e-4)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) >= 1 and math.isfinite(metrics[-1]["train_loss"])
