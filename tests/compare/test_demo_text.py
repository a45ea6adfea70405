"""``sharpscope demo --task text``: AdamW, SAM and XSAM (AdamW base, warmup + cosine) train
the small Transformer on the bundled corpus; the report is the image demo's, with
perplexity. ``--quick`` runs here; the full demo is ``-m slow``."""

from __future__ import annotations

import json
import math
import time

import pytest

from sharpscope.demo import demo_settings, run_demo
from sharpscope.errors import SharpscopeError

from .test_compare import check_tables_agree

GROUPS = ("adamw", "sam", "xsam")


def _invoke(args):
    from sharpscope_cli.app import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def text_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("text-demo") / "demo"
    result = _invoke(["demo", "--task", "text", "--quick", "--out", str(out), "--device", "cpu",
                      "--format", "png,svg", "--color-scale", "panel"])  # fmt: skip
    return out, result


def test_quick_text_demo_writes_every_artefact(text_demo):
    out, result = text_demo
    assert result.exit_code == 0, result.output
    assert "runs: adamw trained, sam trained, xsam trained" in result.output
    assert f"report: {out / 'report' / 'report.html'}" in result.output
    t = demo_settings(quick=True, task="text")["train"]
    for name in GROUPS:
        for seed in t["seeds"]:
            run = out / name / f"seed{seed}"
            assert (run / "final.pt").is_file() and (run / "metrics.jsonl").is_file()
            epochs = sorted(p.name for p in run.glob("epoch_*.pt"))
            assert epochs == [f"epoch_{k:03d}.pt" for k in range(t["epochs"] + 1)]
    report = out / "report"
    for name in ("summary.json", "summary.md", "report.html", "directions.pt"):
        assert (report / name).is_file(), name
    for fig in ("measures", "slices_1d", "slices_2d", "density", "planes", "interpolation",
                "lambda_max_over_training", "groups"):  # fmt: skip
        assert (report / "figures" / f"{fig}.png").is_file(), fig
        assert (report / "figures" / f"{fig}.svg").is_file(), fig
    assert not list((report / "figures").glob("*.pdf"))  # --format png,svg


def test_quick_text_demo_trains_adamw_based_transformers(text_demo):
    from sharpscope.checkpoint import load_checkpoint

    out, _ = text_demo
    for name, optimizer in zip(GROUPS, ("sgd", "sam", "xsam"), strict=True):
        ck = load_checkpoint(out / name / "seed0" / "final.pt")
        assert ck.optimizer["name"] == optimizer
        assert ck.optimizer["hparams"]["base"] == "adamw"
        assert ck.model["name"] == "gpt"
        assert ck.model["kwargs"] == demo_settings(quick=True, task="text")["train"]["model_kwargs"]
        lrs = [json.loads(line)["lr"] for line in (out / name / "seed0" / "metrics.jsonl")
               .read_text().splitlines()]  # fmt: skip
        assert lrs[0] < lrs[1]  # the first epoch warms up


def test_quick_text_demo_reports_perplexity(text_demo):
    out, _ = text_demo
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert list(summary["groups"]) == list(GROUPS)
    assert check_tables_agree(summary, (out / "report" / "summary.md").read_text()) > 30
    md = (out / "report" / "summary.md").read_text()
    assert "test perplexity" in md and "perplexity (logged)" in md
    for label in summary["labels"]:
        m = summary["details"][label]["metrics"]
        assert math.isclose(m["test_perplexity"], math.exp(m["test_loss"]), rel_tol=1e-9)
        last = (out / label.replace(".", "/") / "metrics.jsonl").read_text().splitlines()[-1]
        assert m["logged_perplexity"] == json.loads(last)["perplexity"]
        # the test split is the whole test split and the model is in eval mode, as in training
        assert math.isclose(m["test_perplexity"], m["logged_perplexity"], rel_tol=1e-4)
        assert summary["details"][label]["over_training"]["epochs"] == [0, 1, 2]


def test_image_demo_refuses_the_text_demos_folder_before_training(text_demo):
    out, _ = text_demo
    r = _invoke(["demo", "--quick", "--out", str(out), "--device", "cpu"])
    assert r.exit_code != 0 and "holds a different run (sam on gpt, 2 epochs)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (out / "sgd").exists()  # every group is checked before any is trained


def test_text_demo_bad_task_is_one_line(tmp_path):
    r = _invoke(["demo", "--task", "audio", "--quick", "--out", str(tmp_path / "d")])
    assert r.exit_code != 0 and "unknown demo task 'audio'" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    with pytest.raises(SharpscopeError, match="unknown colour scale"):
        run_demo(out=tmp_path / "d", task="text", quick=True, color_scale="log")
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_full_text_demo(tmp_path):
    """The full text demo (a few minutes on 2 cores): every group's verdicts are reported."""
    start = time.perf_counter()
    report = run_demo(out=tmp_path / "demo", task="text", device="cpu", quiet=True)
    seconds = time.perf_counter() - start
    assert report.settings["demo"]["runs"] == {g: "trained" for g in GROUPS}
    verdicts = report.group_stats["verdicts"]["lambda_max"]
    assert [(v["a"], v["b"]) for v in verdicts] == [("sam", "adamw"), ("xsam", "adamw"),
                                                    ("xsam", "sam")]  # fmt: skip
    for label in report.labels:
        m = report.details[label]["metrics"]
        assert math.isclose(m["test_perplexity"], m["logged_perplexity"], rel_tol=1e-4)
        assert m["logged_perplexity"] < 256  # better than a uniform guess over the bytes
    print(f"full text demo: {seconds:.0f} s")
