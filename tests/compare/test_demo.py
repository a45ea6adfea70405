"""``sharpscope demo --quick``: trains two seeds of three optimizers, compares them as groups,
writes every artefact; reruns resume."""

from __future__ import annotations

import json

import pytest

from sharpscope.demo import README_FIGURES, demo_settings, run_demo
from sharpscope.errors import SharpscopeError

from .test_compare import check_tables_agree


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from sharpscope_cli.app import app
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("demo")
    out, figs = root / "demo", root / "figures"
    result = CliRunner().invoke(
        app, ["demo", "--quick", "--out", str(out), "--figures-dir", str(figs), "--device", "cpu"]
    )
    return out, figs, result


def test_quick_demo_writes_every_artefact(demo):
    out, figs, result = demo
    assert result.exit_code == 0, result.output
    assert "runs: sgd trained, sam trained, xsam trained" in result.output
    assert f"report: {out / 'report' / 'report.html'}" in result.output
    assert "(flattest)" in result.output
    for name in ("sgd", "sam", "xsam"):
        for seed in (0, 1):
            run = out / name / f"seed{seed}"
            assert (run / "final.pt").is_file() and (run / "metrics.jsonl").is_file()
            assert sorted(p.name for p in run.glob("epoch_*.pt")) == [
                "epoch_000.pt",
                "epoch_001.pt",
                "epoch_002.pt",
            ]
    report = out / "report"
    for name in ("summary.json", "summary.md", "report.html", "directions.pt"):
        assert (report / name).is_file(), name
    assert sorted(p.name for p in figs.iterdir()) == sorted(README_FIGURES)
    for name in README_FIGURES:
        assert (figs / name).read_bytes() == (report / "figures" / name).read_bytes()


def test_quick_demo_tables_agree(demo):
    out, _, _ = demo
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["labels"] == [f"{o}.seed{k}" for o in ("sgd", "sam", "xsam") for k in (0, 1)]
    assert list(summary["groups"]) == ["sgd", "sam", "xsam"]
    verdicts = summary["group_stats"]["verdicts"]["lambda_max"]
    assert [(v["a"], v["b"]) for v in verdicts] == [
        ("sam", "sgd"),
        ("xsam", "sgd"),
        ("xsam", "sam"),
    ]
    assert check_tables_agree(summary, (out / "report" / "summary.md").read_text()) > 30
    for label in summary["labels"]:
        details = summary["details"][label]
        assert set(details) >= {
            "metrics",
            "eigen",
            "trace",
            "density",
            "sharpness",
            "slice1d",
            "slice2d",
            "plane",
            "over_training",
        }
        assert details["over_training"]["epochs"] == [0, 1, 2]
        assert details["metrics"]["optimizer"] == label.split(".")[0]
    assert len(summary["details"]["pairs"]) == 3
    assert summary["settings"]["samples"] == demo_settings(quick=True)["compare"]["samples"]


def test_rerun_reuses_trainings_and_probes(demo, cli_runner, cli_app):
    out, _, _ = demo
    result = cli_runner.invoke(
        cli_app, ["demo", "--quick", "--out", str(out), "--device", "cpu", "--json", "-", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"]["computed_probes"] == 0
    assert data["settings"]["reused_probes"] == 6 * 9 + 3  # 9 probes per run, 3 paths


def test_a_different_run_in_the_folder_is_an_error(demo, tmp_path):
    from sharpscope.train import train

    train(
        model="mlp",
        data="digits",
        optimizer="sgd",
        out=tmp_path / "sgd",
        epochs=1,
        quiet=True,
        device="cpu",
    )
    with pytest.raises(SharpscopeError, match="holds a different run.*--force"):
        run_demo(out=tmp_path, quick=True, device="cpu", quiet=True)


def test_demo_out_must_be_a_folder(tmp_path, cli_runner, cli_app):
    (tmp_path / "f").write_text("x")
    result = cli_runner.invoke(cli_app, ["demo", "--quick", "--out", str(tmp_path / "f")])
    assert result.exit_code == 1 and "is a file" in result.output


@pytest.mark.slow
def test_full_demo(tmp_path):
    """The full demo (minutes): every run reaches 95% test accuracy and every measure is reported."""
    report = run_demo(out=tmp_path, device="cpu", quiet=True)
    assert len(report.labels) == 9  # 3 seeds of each optimizer
    for label in report.labels:
        assert report.value(label, "test_acc") >= 0.95
        for key in ("lambda_max", "trace", "worst", "average", "curvature_1d", "rise_2d"):
            assert report.value(label, key) is not None
    assert len(report.details["sgd.seed0"]["over_training"]["epochs"]) == 21
