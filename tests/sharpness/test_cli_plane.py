"""``sharpscope plane`` and ``sharpscope sharpness`` through the CLI, with their error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope.checkpoint import save_checkpoint
from sharpscope.data import load_data
from sharpscope.models import build_model

DATA = "synthetic:train=96,test=32,classes=3,shape=6,seed=1"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A small MLP trained a few steps on synthetic data (off its minimum, so gradients are non-zero)."""
    torch.manual_seed(0)
    d = load_data(DATA)
    net = build_model("mlp", input_shape=d.input_shape, num_classes=d.num_classes, hidden=[8])
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(net(d.x_train), d.y_train).backward()
        opt.step()
    path = tmp_path_factory.mktemp("ckpt") / "mlp.pt"
    save_checkpoint(
        path,
        model=net,
        model_spec={"name": "mlp", "kwargs": {"hidden": [8]}},
        input_shape=d.input_shape,
        num_classes=d.num_classes,
        data_spec=DATA,
        optimizer={"name": "sgd", "hparams": {"lr": 0.2}},
        seed=0,
    )
    return str(path)


PLANE_ARGS = [
    "--rho",
    "0.1",
    "--rho-max",
    "0.2",
    "--range",
    "-0.3:0.3:5",
    "--alpha-step",
    "0.5",
    "--worst-steps",
    "3",
    "--restarts",
    "0",
    "--device",
    "cpu",
]


def test_plane_writes_figures_json_and_grid(cli_runner, cli_app, checkpoint, tmp_path):
    out = tmp_path / "plane"
    result = cli_runner.invoke(
        cli_app,
        [
            "plane",
            checkpoint,
            *PLANE_ARGS,
            "--steps",
            "2",
            "--out",
            str(out),
            "--html",
            "--json",
            str(tmp_path / "p.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    names = {f.name for f in out.iterdir()}
    assert {"plane.png", "plane.json", "plane.html", "surface.npz", "meta.json"} <= names
    record = json.loads((tmp_path / "p.json").read_text())
    for key in (
        "psi",
        "alpha_star",
        "loss_alpha0",
        "loss_sam",
        "loss_xsam",
        "worst_loss",
        "cos_worst_sam",
        "cos_worst_xsam",
        "worst_angle_to_plane_deg",
        "rho",
        "rho_max",
        "k",
        "loss_theta0",
    ):
        assert key in record and record[key] is not None, key
    assert record["rho"] == 0.1 and record["rho_max"] == 0.2 and record["k"] == 2
    assert record["settings"]["data_samples"] == 96  # --samples 2048 > the split: all of it
    assert record == json.loads((out / "plane.json").read_text())
    alphas = record["arc"]["alphas"]
    assert alphas == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert record["arc"]["losses"][alphas.index(1.0)] == record["loss_sam"]
    assert "XSAM plane of" in result.output and "worst point of the ball" in result.output
    with np.load(out / "surface.npz") as z:
        assert z["loss"].shape == (5, 5)


def test_plane_json_to_stdout_is_pure_json(cli_runner, cli_app, checkpoint, tmp_path):
    result = cli_runner.invoke(
        cli_app,
        [
            "plane",
            checkpoint,
            *PLANE_ARGS,
            "--out",
            str(tmp_path / "o"),
            "--json",
            "-",
            "--samples",
            "40",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["settings"]["data_samples"] == 40


@pytest.mark.parametrize(
    "measure,extra,keys",
    [
        pytest.param(
            "worst",
            ["--norm", "linf", "--steps", "3"],
            {"perturbed_loss", "iterations"},
            id="worst-linf",
        ),
        pytest.param("worst", ["--adaptive", "--steps", "3"], {"delta_norm"}, id="worst-adaptive"),
        pytest.param("average", ["--draws", "4"], {"stderr"}, id="average"),
        pytest.param("lambda_max", [], {"second_order_worst"}, id="lambda-max"),
        pytest.param("trace", ["--draws", "8"], {"stderr", "second_order_average"}, id="trace"),
    ],
)
def test_sharpness_json(cli_runner, cli_app, checkpoint, tmp_path, measure, extra, keys):
    path = tmp_path / "s.json"
    result = cli_runner.invoke(
        cli_app,
        [
            "sharpness",
            checkpoint,
            "--measure",
            measure,
            "--rho",
            "0.05",
            "--samples",
            "64",
            "--device",
            "cpu",
            "--json",
            str(path),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(path.read_text())
    assert {"sharpness", "loss", "settings", "measure"} <= set(record)
    assert keys <= set(record)
    assert record["measure"] == measure and record["settings"]["rho"] == 0.05
    assert record["settings"]["data_samples"] == 64
    if measure in ("average", "trace"):
        assert record["stderr"] is not None and record["stderr"] > 0
    if measure == "worst":
        assert record["sharpness"] > 0 and record["perturbed_loss"] > record["loss"]
    assert f"{record['sharpness']:.6g}" in result.output


def test_sharpness_is_reproducible(cli_runner, cli_app, checkpoint):
    args = [
        "sharpness",
        checkpoint,
        "--rho",
        "0.05",
        "--steps",
        "4",
        "--samples",
        "64",
        "--json",
        "-",
        "--device",
        "cpu",
    ]
    a = json.loads(cli_runner.invoke(cli_app, args).stdout)
    b = json.loads(cli_runner.invoke(cli_app, args).stdout)
    assert a["sharpness"] == b["sharpness"]


@pytest.mark.parametrize(
    "args,message",
    [
        pytest.param(
            ["sharpness", "{ckpt}", "--rho", "-0.1"],
            "rho must be a positive number, got -0.1",
            id="sharpness-negative-rho",
        ),
        pytest.param(
            ["sharpness", "{ckpt}", "--measure", "sharpest"],
            "unknown measure 'sharpest'",
            id="unknown-measure",
        ),
        pytest.param(["sharpness", "{ckpt}", "--norm", "l1"], "unknown norm 'l1'", id="bad-norm"),
        pytest.param(
            ["sharpness", "{ckpt}", "--measure", "trace", "--norm", "linf"],
            "plain l2 geometry",
            id="trace-linf",
        ),
        pytest.param(
            ["sharpness", "{ckpt}", "--mode", "test"],
            "mode must be 'eval' or 'train'",
            id="bad-mode",
        ),
        pytest.param(
            ["sharpness", "{ckpt}", "--samples", "-3"],
            "samples must be 0 (all) or more",
            id="negative-samples",
        ),
        pytest.param(["sharpness", "{missing}"], "missing.pt", id="sharpness-missing-file"),
        pytest.param(
            ["plane", "{ckpt}", "--rho", "-0.1"],
            "rho must be a positive number, got -0.1",
            id="plane-negative-rho",
        ),
        pytest.param(
            ["plane", "{ckpt}", "--range", "0.5:-0.5:11"],
            "invalid --range '0.5:-0.5:11'",
            id="reversed-range",
        ),
        pytest.param(
            ["plane", "{ckpt}", "--range", "-1:1"], "invalid --range '-1:1'", id="short-range"
        ),
        pytest.param(["plane", "{ckpt}", "--range", "0:0:1"], "NUM >= 2", id="one-point-range"),
        pytest.param(
            ["plane", "{ckpt}", "--steps", "0"],
            "steps must be a whole number of at least 1",
            id="zero-steps",
        ),
        pytest.param(["plane", "{missing}"], "missing.pt", id="plane-missing-file"),
    ],
)
def test_errors_are_one_line(cli_runner, cli_app, checkpoint, tmp_path, args, message):
    argv = [a.format(ckpt=checkpoint, missing=str(tmp_path / "missing.pt")) for a in args]
    result = cli_runner.invoke(
        cli_app, [*argv, "--out", str(tmp_path / "o")] if argv[0] == "plane" else argv
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert (
        result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    )


def test_help_lists_both_commands(cli_runner, cli_app):
    result = cli_runner.invoke(cli_app, ["--help"])
    assert "plane" in result.output and "sharpness" in result.output


def test_search_limits_give_one_warning_line_on_stderr(cli_runner, cli_app, checkpoint, tmp_path):
    base = ["--samples", "64", "--device", "cpu", "--json", "-", "--quiet"]
    result = cli_runner.invoke(
        cli_app, ["sharpness", checkpoint, "--rho", "0.5", "--steps", "1", *base]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # stdout stays pure JSON
    assert record["boundary_note"] and record["starts_still_rising"] == 3
    assert result.stderr.strip() == f"warning: {record['boundary_note']}"
    # on this checkpoint the arc still rises at alpha = 1 (alpha* = 1.5 with a wider search)
    plane = [*PLANE_ARGS, "--alpha-max", "1", "--alpha-step", "0.1", "--out", str(tmp_path / "p")]
    result = cli_runner.invoke(cli_app, ["plane", checkpoint, *plane, *base])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["alpha_star"] == 1.0 and record["alpha_star_at_limit"] is True
    assert result.stderr.startswith("warning: XSAM's alpha* = 1 is the largest alpha searched")
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli_runner.invoke(
        cli_app, ["sharpness", checkpoint, "--rho", "0.05", "--steps", "100", *base]
    )
    assert json.loads(result.stdout)["boundary_note"] is None and result.stderr == ""
