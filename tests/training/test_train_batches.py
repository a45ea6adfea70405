"""Issue 15 (training): any batch structure and the user's loss. A token model taking
``input_ids``/``attention_mask`` trained from a data factory of mapping batches with
``fn(output, batch)`` equals a hand-written loop; resume is bit-identical; bad inputs are
one ``error:`` line; cross_entropy on (N, T) token windows records perplexity;
``--normalize`` is recorded in the checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import sharpscope.models as models_mod
from sharpscope.checkpoint import load_checkpoint
from sharpscope.data import DataSplits, load_data
from sharpscope.training import train

TESTS = Path(__file__).parents[1]
OPTS = ["--model", "_issue15_train:make_net", "--data", "_issue15_train:make_data",
        "--loss", "_issue15_train:loss", "--batch-size", "8", "--lr", "0.1",
        "--momentum", "0.9", "--weight-decay", "0", "--schedule", "constant", "--quiet"]  # fmt: skip


@pytest.fixture
def user(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    import _issue15_train

    return _issue15_train


def _call(net, b):
    return net(input_ids=b["input_ids"], attention_mask=b["attention_mask"])


def _hand_epochs(user, epochs: int, seed: int = 0):
    """SGD (lr 0.1, momentum 0.9) over the factory's batches, in the order of
    randperm(number of batches) from a generator seeded with ``seed``, once per epoch."""
    net = user.make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.0)
    batches = user.make_data()["train"]
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        total = rows = 0.0
        for i in torch.randperm(len(batches), generator=g).tolist():
            b = batches[i]
            opt.zero_grad()
            lo = user.loss(_call(net, b), b)
            lo.backward()
            opt.step()
            total, rows = total + float(lo.detach()) * len(b["labels"]), rows + len(b["labels"])
        losses.append(total / rows)
    return net, losses


def _split_metrics(user, net, batches):
    with torch.no_grad():
        outs = [(_call(net, b), b) for b in batches]
    n = sum(len(b["labels"]) for b in batches)
    loss = sum(float(user.loss(o, b)) * len(b["labels"]) for o, b in outs) / n
    acc = sum(int((o.argmax(-1) == b["labels"]).sum()) for o, b in outs) / n
    return loss, acc


def test_cli_trains_mapping_batches_with_a_user_loss_like_a_hand_loop(
    cli_runner, cli_app, tmp_path, user
):
    out = tmp_path / "run"
    r = cli_runner.invoke(cli_app, ["train", *OPTS, "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    net, (hand_train_loss,) = _hand_epochs(user, 1)
    final = load_checkpoint(out / "final.pt")
    assert final.loss == "_issue15_train:loss"
    hand = net.state_dict()
    assert set(final.state_dict) == set(hand)
    for k, v in hand.items():
        torch.testing.assert_close(final.state_dict[k], v, rtol=0, atol=1e-6)
    (record,) = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert record["train_loss"] == pytest.approx(hand_train_loss, abs=1e-6)
    test_loss, test_acc = _split_metrics(user, net, user.make_data()["test"])
    assert record["test_loss"] == pytest.approx(test_loss, abs=1e-6)
    assert record["test_acc"] == pytest.approx(test_acc, abs=1e-12)
    assert "perplexity" not in record
    # the checkpoint names the loss by import path: a probe imports it only from --loss
    probe = ["info", str(out / "final.pt"), *OPTS[:4], "--json", "-"]
    r = cli_runner.invoke(cli_app, probe)
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert "never imports a loss named in a file" in lines[0]
    r = cli_runner.invoke(cli_app, [*probe, "--loss", "_issue15_train:loss"])
    assert r.exit_code == 0, r.output


def test_factory_batches_resume_bit_identical(tmp_path, user):
    kw = dict(
        model="_issue15_train:make_net", data="_issue15_train:make_data",
        loss="_issue15_train:loss", batch_size=8, lr=0.1, epochs=3, quiet=True,
    )  # fmt: skip
    whole = train(out=tmp_path / "whole", **kw)

    def stop(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(out=tmp_path / "cut", callback=stop, **kw)
    resumed = train(out=tmp_path / "cut", resume=True, **kw)
    assert resumed.resumed_from == 2
    a, b = (
        load_checkpoint(p / "final.pt").state_dict for p in (tmp_path / "whole", tmp_path / "cut")
    )
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in whole.metrics]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in resumed.metrics]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--data", "_issue15_train:wrong_type"], "returned a str"),
        (["--loss", "_issue15_train:per_sample_loss"], "must return a scalar tensor"),
    ],
)
def test_bad_factory_or_loss_is_one_error_line(cli_runner, cli_app, tmp_path, user, extra, needle):
    r = cli_runner.invoke(
        cli_app, ["train", *OPTS, "--epochs", "1", "--out", str(tmp_path / "r"), *extra]
    )
    assert r.exit_code != 0
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert needle in lines[0] and "Traceback" not in r.output


class _TokenNet(torch.nn.Module):
    """(B, T) -> (B, T, V): a per-token affine map plus a per-position offset."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.lin = torch.nn.Linear(1, num_classes)
        self.pos = torch.nn.Parameter(torch.randn(input_shape[0], num_classes))

    def forward(self, x):
        return self.lin(x.unsqueeze(-1)) + self.pos


def test_cross_entropy_on_token_windows_records_perplexity(tmp_path, monkeypatch):
    monkeypatch.setitem(models_mod.MODELS, "token_net5", _TokenNet)
    g = torch.Generator().manual_seed(0)
    x_train, x_test = torch.randn(24, 5, generator=g), torch.randn(16, 5, generator=g)
    y_train = torch.randint(0, 3, (24, 5), generator=g)
    y_test = torch.randint(0, 3, (16, 5), generator=g)
    splits = DataSplits(x_train, y_train, x_test, y_test, num_classes=3)
    out = tmp_path / "run"
    # lr 1e-30: the weights stay the initial ones, so the metrics are the initial model's
    train(model="token_net5", data=splits, loss="cross_entropy", epochs=1, batch_size=8,
          lr=1e-30, momentum=0.0, weight_decay=0.0, out=out, quiet=True)  # fmt: skip
    net = _TokenNet((5,), 3)
    net.load_state_dict(load_checkpoint(out / "final.pt").state_dict)
    (record,) = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    with torch.no_grad():
        for key, x, y in (("train_perplexity", x_train, y_train), ("perplexity", x_test, y_test)):
            ce = F.cross_entropy(net(x).reshape(-1, 3), y.reshape(-1))  # mean over tokens
            assert record[key] == pytest.approx(math.exp(float(ce)), rel=1e-5)


def test_normalize_option_is_used_and_recorded(cli_runner, cli_app, tmp_path):
    common = ["train", "--data", "digits", "--samples", "64", "--epochs", "1",
              "--batch-size", "32", "--quiet"]  # fmt: skip
    r = cli_runner.invoke(cli_app, [*common, "--out", str(tmp_path / "std")])
    assert r.exit_code == 0, r.output
    std = load_checkpoint(tmp_path / "std" / "final.pt").data_spec
    ref = load_data("digits", samples=64)
    assert std.normalize is True
    assert list(std.mean) == list(ref.mean) and list(std.std) == list(ref.std)
    r = cli_runner.invoke(cli_app, [*common, "--normalize", "none", "--out", str(tmp_path / "raw")])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "raw" / "final.pt").data_spec.normalize is False
    r = cli_runner.invoke(cli_app, [*common, "--normalize", "3,2", "--out", str(tmp_path / "fix")])
    assert r.exit_code == 0, r.output
    fixed = load_checkpoint(tmp_path / "fix" / "final.pt").data_spec
    assert load_data(fixed).x_train.equal(
        (load_data("digits", samples=64, normalize=False).x_train - 3) / 2
    )
    r = cli_runner.invoke(cli_app, [*common, "--normalize", "x", "--out", str(tmp_path / "bad")])
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), r.output


def test_outputs_without_class_scores_have_no_accuracy(cli_runner, cli_app, tmp_path, user):
    out = tmp_path / "reg"
    r = cli_runner.invoke(
        cli_app,
        ["train", "--model", "_issue15_train:make_regressor",
         "--data", "_issue15_train:make_regression", "--loss", "_issue15_train:squared_error",
         "--batch-size", "5", "--epochs", "1", "--lr", "0.01", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    (record,) = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert record["train_acc"] is None and record["test_acc"] is None
    assert "acc n/a" in r.output
    net = load_checkpoint(out / "final.pt").state_dict
    reg = user.make_regressor()
    reg.load_state_dict(net)
    _, test = user.make_regression()
    with torch.no_grad():
        hand = sum(float(user.squared_error(reg(b["features"]), b)) * 5 for b in test) / 10
    assert record["test_loss"] == pytest.approx(hand, abs=1e-6)


@pytest.mark.parametrize("name", ["sam", "xsam"])
def test_sam_and_xsam_closures_and_alpha_search_use_the_mapping_batches(tmp_path, user, name):
    """The sharpness-aware passes (and XSAM's alpha search) on mapping batches with the
    user's loss equal the same optimizer stepped by hand over the same batch order."""
    from sharpscope.optim.factory import make_optimizer
    from sharpscope.training import TrainSettings

    kw = dict(optimizer=name, lr=0.1, momentum=0.9, weight_decay=0.0, schedule="constant",
              epochs=2, batch_size=8)  # fmt: skip
    train(out=tmp_path / "run", model="_issue15_train:make_net", data="_issue15_train:make_data",
          loss="_issue15_train:loss", quiet=True, **kw)  # fmt: skip
    net = user.make_net()
    opt = make_optimizer(name, net, **TrainSettings(**kw).hparams)
    batches = user.make_data()["train"]
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        if name == "xsam":
            opt.new_epoch()
        for i in torch.randperm(len(batches), generator=g).tolist():
            b = batches[i]

            def closure(b=b):
                lo = user.loss(_call(net, b), b)
                lo.backward()
                return lo

            opt.zero_grad(set_to_none=True)
            user.loss(_call(net, b), b).backward()
            if name == "xsam":
                opt.step(closure, loss_fn=lambda b=b: float(user.loss(_call(net, b), b).detach()))
            else:
                opt.step(closure)
    final = load_checkpoint(tmp_path / "run" / "final.pt").state_dict
    for k, v in net.state_dict().items():
        torch.testing.assert_close(final[k], v, rtol=0, atol=1e-6)
    moved = user.make_net().state_dict()
    assert any(not torch.allclose(moved[k], v) for k, v in net.state_dict().items())
