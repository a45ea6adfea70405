"""Issue 14: SAM/XSAM over an AdamW base with linear warm-up then cosine, from the library
and the command line; the learning rates are checked against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sharpscope.checkpoint import load_checkpoint
from sharpscope.training import train

# 64 samples in batches of 32: 2 steps per epoch; 3 epochs = 6 steps, the first 2 warm-up
QUICK = dict(
    model="mlp",
    data="digits",
    samples=64,
    batch_size=32,
    epochs=3,
    base="adamw",
    lr=1e-3,
    weight_decay=1e-2,
    schedule="cosine",
    warmup_epochs=1,
    device="cpu",
    quiet=True,
)
# lr at the start of each epoch (steps 0, 2, 4): warm-up 1/2; cosine at 0/4 and 2/4 of its span
EXPECTED_LR = [1e-3 * 0.5, 1e-3 * 1.0, 1e-3 * 0.5 * (1 + math.cos(math.pi * 2 / 4))]


def _has_key(obj, key):
    if isinstance(obj, dict):
        return key in obj or any(_has_key(v, key) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_key(v, key) for v in obj)
    return False


@pytest.mark.parametrize("optimizer", ["sam", "xsam"])
def test_sharpness_aware_over_adamw_with_warmup_cosine(tmp_path, optimizer):
    res = train(**QUICK, optimizer=optimizer, rho=0.05, out=tmp_path)
    assert [m["lr"] for m in res.metrics] == pytest.approx(EXPECTED_LR, rel=1e-12)
    assert res.hparams["base"] == "adamw" and res.hparams["betas"] == [0.9, 0.999]
    assert "momentum" not in res.hparams
    last = load_checkpoint(tmp_path / "last.pt")
    assert _has_key(last.resume["optimizer"], "exp_avg_sq")  # AdamW's state, saved for resume
    assert last.resume["settings"]["warmup_epochs"] == 1
    assert math.isfinite(res.final["train_loss"])


def test_adamw_warmup_run_resumes_bit_for_bit(tmp_path):
    full = tmp_path / "full"
    train(**QUICK, optimizer="sam", out=full)
    cut = tmp_path / "cut"
    stop = dict(callback=lambda epoch, record: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train(**QUICK, optimizer="sam", out=cut, **stop)
    train(**QUICK, optimizer="sam", out=cut, resume=True)
    a, b = load_checkpoint(full / "final.pt"), load_checkpoint(cut / "final.pt")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_cli_base_adamw_and_warmup_epochs(cli_runner, cli_app, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--optimizer", "xsam", "--base", "adamw", "--lr", "1e-3"]
    args += ["--weight-decay", "1e-2", "--schedule", "cosine", "--warmup-epochs", "1"]
    args += ["--samples", "64", "--batch-size", "32", "--epochs", "3", "--device", "cpu"]
    res = cli_runner.invoke(cli_app, [*args, "--quiet", "--out", str(out), "--json", "-"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["hparams"]["base"] == "adamw"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx(EXPECTED_LR, rel=1e-12)
