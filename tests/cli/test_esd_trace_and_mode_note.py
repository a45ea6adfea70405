"""esd prints the SLQ trace with its standard error over runs (or says there is none);
eigen/trace/esd in train mode print the BatchNorm note once, only for a BatchNorm model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sharpscope.hessian.reprs import MODE_NOTE

HERE = Path(__file__).parent
BN = ["--model", "_issue15_bn:make_net", "--data", "_issue15_bn:make_data", "--samples", "0"]
PLAIN = ["--model", "_issue15_bn:make_plain", "--data", "_issue15_bn:make_data", "--samples", "0"]


def _ckpt(tmp_path, monkeypatch, bn=True):
    monkeypatch.syspath_prepend(str(HERE))
    import _issue15_bn as user

    sd = tmp_path / ("bn.pt" if bn else "plain.pt")
    torch.save(user.make_net(bn=bn).state_dict(), sd)
    return sd


def test_esd_prints_the_trace_with_its_standard_error(cli_runner, cli_app, tmp_path, monkeypatch):
    sd = _ckpt(tmp_path, monkeypatch, bn=False)
    r = cli_runner.invoke(cli_app, ["esd", str(sd), *PLAIN, "--runs", "3", "--iters", "5",
                                    "--json", str(tmp_path / "o.json")])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads((tmp_path / "o.json").read_text())
    line = next(x for x in r.stdout.splitlines() if x.startswith("trace"))
    assert out["trace_stderr"] is not None and out["trace_stderr"] > 0
    assert f"{out['trace_estimate']:.5g} +- {out['trace_stderr']:.2g}" in line
    assert "standard error over 3 runs" in line
    r = cli_runner.invoke(cli_app, ["esd", str(sd), *PLAIN, "--runs", "1", "--iters", "5"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("trace"))
    assert "one run: no error bar" in line and "+-" not in line


@pytest.mark.parametrize("command", [["eigen", "-k", "1"], ["trace", "--probes", "4"],
                                     ["esd", "--runs", "1", "--iters", "4"]])  # fmt: skip
def test_train_mode_prints_the_batchnorm_note_once(
    cli_runner, cli_app, tmp_path, monkeypatch, command
):
    bn, plain = _ckpt(tmp_path, monkeypatch), _ckpt(tmp_path, monkeypatch, bn=False)
    for path, opts, mode, expect in [(bn, BN, "train", 1), (bn, BN, "eval", 0),
                                     (plain, PLAIN, "train", 0)]:  # fmt: skip
        extra = ["--no-check-determinism"] if command[0] != "esd" else []
        args = [command[0], str(path), *command[1:], *opts, "--mode", mode, *extra]
        r = cli_runner.invoke(cli_app, args)
        assert r.exit_code == 0, r.output
        notes = [x for x in r.stderr.splitlines() if MODE_NOTE in x]
        assert len(notes) == expect, (path.name, mode, r.stderr)
        assert MODE_NOTE not in r.stdout
