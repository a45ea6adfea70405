"""``sharpscope train`` through Typer's CliRunner: a real short run, argument plumbing, error paths."""

from __future__ import annotations

import json

import pytest
import torch

import sharpscope.training as train_mod


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is faster and immune to oversubscription on a busy CI box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


ARGS = [
    "train",
    "--model",
    "mlp",
    "--model-kwargs",
    '{"hidden": [16]}',
    "--data",
    "synthetic:train=96,test=32",
    "--batch-size",
    "32",
    "--epochs",
    "2",
    "--device",
    "cpu",
    "--quiet",
]


def test_train_command_writes_run_and_json(cli_runner, cli_app, tmp_path):
    out, js = tmp_path / "run", tmp_path / "summary.json"
    result = cli_runner.invoke(
        cli_app,
        [*ARGS, "--optimizer", "xsam", "--rho", "0.1", "--out", str(out), "--json", str(js)],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(js.read_text())
    assert (
        summary["optimizer"] == "xsam"
        and summary["epochs"] == 2
        and summary["hparams"]["rho_max"] == 0.2
    )
    assert summary["final"]["alpha"] is not None
    assert {p.name for p in out.iterdir()} >= {
        "epoch_000.pt",
        "epoch_001.pt",
        "epoch_002.pt",
        "final.pt",
        "last.pt",
        "metrics.jsonl",
    }
    again = cli_runner.invoke(
        cli_app, [*ARGS, "--optimizer", "xsam", "--rho", "0.1", "--out", str(out)]
    )
    assert (
        again.exit_code == 1
        and "holds a finished run" in again.output
        and "--force" in again.output
    )
    forced = cli_runner.invoke(cli_app, [*ARGS, "--optimizer", "sgd", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output


def test_options_reach_the_library(cli_runner, cli_app, tmp_path, monkeypatch):
    seen = {}

    def fake_train(**kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(train_mod, "train", fake_train)
    cli_runner.invoke(
        cli_app,
        [
            "train",
            "--out",
            str(tmp_path),
            "--optimizer",
            "xsam",
            "--alpha",
            "0.5",
            "--steps",
            "3",
            "--rho-max",
            "0.3",
            "--schedule",
            "step",
            "--milestones",
            "100,150",
            "--bn-policy",
            "all",
            "--base",
            "adamw",
            "--bf16",
            "--save-every",
            "5",
        ],
    )
    assert seen["optimizer"] == "xsam" and seen["alpha"] == 0.5 and seen["steps"] == 3
    assert (
        seen["rho_max"] == 0.3 and seen["milestones"] == [100, 150] and seen["bn_policy"] == "all"
    )
    assert seen["base"] == "adamw" and seen["bf16"] is True and seen["save_every"] == 5
    cli_runner.invoke(cli_app, ["train", "--out", str(tmp_path)])
    assert seen["alpha"] is None and seen["milestones"] is None  # dynamic alpha by default


ERRORS = [
    pytest.param(["--optimizer", "adam-sam"], "unknown optimizer 'adam-sam'", id="bad-optimizer"),
    pytest.param(
        ["--optimizer", "sam", "--rho", "-0.1"], "rho must be >= 0, got -0.1", id="negative-rho"
    ),
    pytest.param(
        ["--optimizer", "xsam", "--alpha", "lots"],
        "--alpha must be a number or 'dynamic'",
        id="alpha",
    ),
    pytest.param(["--optimizer", "xsam", "--steps", "0"], "steps must be >= 1, got 0", id="k0"),
    pytest.param(
        ["--schedule", "step", "--milestones", "a,b"],
        "--milestones must be whole epoch numbers",
        id="ms",
    ),
    pytest.param(["--resume"], "nothing to resume in", id="resume-nothing"),
    pytest.param(
        ["--model-kwargs", "[1]"], "--model-kwargs must be a JSON object", id="model-kwargs"
    ),
]


@pytest.mark.parametrize(("extra", "message"), ERRORS)
def test_error_paths_exit_nonzero_with_one_line(cli_runner, cli_app, tmp_path, extra, message):
    result = cli_runner.invoke(cli_app, [*ARGS, "--out", str(tmp_path / "r"), *extra])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_ctrl_c_exits_130_and_keeps_last(cli_runner, cli_app, tmp_path, monkeypatch):
    real = train_mod.train

    def interrupted(**kw):
        return real(**kw, callback=lambda epoch, record: (_ for _ in ()).throw(KeyboardInterrupt()))

    monkeypatch.setattr(train_mod, "train", interrupted)
    out = tmp_path / "r"
    result = cli_runner.invoke(cli_app, [*ARGS, "--optimizer", "sam", "--out", str(out)])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "--resume" in result.output
    assert (out / "last.pt").exists() and not (out / "final.pt").exists()
    monkeypatch.setattr(train_mod, "train", real)
    resumed = cli_runner.invoke(
        cli_app, [*ARGS, "--optimizer", "sam", "--out", str(out), "--resume"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert (out / "final.pt").exists()
