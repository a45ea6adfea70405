"""Groups of runs (issue 13): ``sharpscope compare sgd=GLOB sam=FOLDER``: every probe on every
seed, mean and interval per group, a verdict per pair, the correlation with the gap; the
numbers agree with direct calls of :mod:`sharpscope.compare.stats` on the per-run values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sharpscope.compare import compare
from sharpscope.compare.stats import compare_groups, kendall_with_gap, summarize
from sharpscope.errors import SharpscopeError

from .test_attack_compare import CLI_TINY, cli
from .test_compare import TINY

FAST = {**TINY, "probes": ["metrics", "eigen", "trace", "sharpness"]}


def train_group(root: Path, optimizer: str, seeds=(0, 1), hidden=(4,)) -> Path:
    """``root/<optimizer>/seed{k}``: tiny MLP runs on digits, one per seed."""
    from sharpscope.training import train_seeds

    out = root / optimizer
    train_seeds(
        seeds=list(seeds),
        out=out,
        model="mlp",
        model_kwargs={"hidden": list(hidden)},
        data="digits",
        optimizer=optimizer,
        epochs=2,
        batch_size=256,
        lr=0.1,
        quiet=True,
        device="cpu",
    )
    return out


@pytest.fixture(scope="module")
def groups(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("groups")
    for name in ("sgd", "sam"):
        train_group(root, name)
    return root


@pytest.fixture(scope="module")
def cli_report(groups, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report"
    res = cli(
        "compare", f"sgd={groups}/sgd/seed*", str(groups / "sam"), "--out", str(out), *CLI_TINY
    )
    assert res.returncode == 0, res.stderr
    return out, res


def test_groups_through_the_cli(cli_report):
    out, _ = cli_report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == {
        "sgd": ["sgd.seed0", "sgd.seed1"],
        "sam": ["sam.seed0", "sam.seed1"],
    }
    assert summary["labels"] == ["sgd.seed0", "sgd.seed1", "sam.seed0", "sam.seed1"]
    stats = summary["group_stats"]
    assert set(stats["summaries"]) == {c["key"] for c in summary["tables"]["flatness"]["columns"]}
    for measure, verdicts in stats["verdicts"].items():
        assert [(v["a"], v["b"]) for v in verdicts] == [("sam", "sgd")], measure
    assert len(summary["details"]["pairs"]) == 1  # between the first runs of the groups
    md = (out / "summary.md").read_text()
    assert "## Groups: mean [95% CI] over runs" in md and "Is it really flatter?" in md
    assert md.count("sam vs sgd: not distinguishable") + md.count("sam is ") == len(
        stats["verdicts"]
    )
    assert "Kendall tau" in md
    page = (out / "report.html").read_text()
    assert 'id="plot-group-strips"' in page and 'id="plot-gap-scatter"' in page
    assert (out / "figures" / "groups.png").is_file()
    assert (out / "figures" / "gap_correlation.png").is_file()


def test_json_matches_direct_calls_of_the_statistics(cli_report):
    out, _ = cli_report
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["label"]: r for r in summary["tables"]["flatness"]["rows"]}
    perf = {r["label"]: r["values"] for r in summary["tables"]["performance"]["rows"]}
    stats, seed = summary["group_stats"], summary["settings"]["seed"]
    checked = 0
    for measure, per_group in stats["summaries"].items():
        values, errors = {}, {}
        for group, members in summary["groups"].items():
            values[group] = [rows[m]["values"][measure] for m in members]
            se = [rows[m]["stderr"].get(measure) for m in members]
            errors[group] = se if measure in ("trace", "average") else None
            want = summarize(values[group], std_errors=errors[group]).to_dict()
            got = per_group[group]
            assert got["values"] == values[group] and got["stderr"] == errors[group]
            assert {k: got[k] for k in want} == json.loads(json.dumps(want))
            checked += 1
        want = compare_groups(
            values["sam"], values["sgd"], a_se=errors["sam"], b_se=errors["sgd"], seed=seed
        ).to_dict()
        got = stats["verdicts"][measure][0]
        assert {k: got[k] for k in want} == json.loads(json.dumps(want))
        labels = [m for members in summary["groups"].values() for m in members]
        gaps = [perf[m]["test_loss"] - perf[m]["train_loss"] for m in labels]
        corr = kendall_with_gap([rows[m]["values"][measure] for m in labels], gaps).to_dict()
        got = stats["correlations"][measure]["gap_loss"]
        assert {k: got[k] for k in corr} == json.loads(json.dumps(corr))
        assert got["gaps"] == gaps
    assert checked >= 2 * 6


def test_report_verdict_is_compare_groups_on_the_runs(groups, tmp_path):
    rep = compare(
        {"sgd": sorted((groups / "sgd").glob("seed*")), "sam": [groups / "sam"]},
        out=tmp_path / "r",
        **FAST,
    )
    v = rep.verdict("sam", "sgd", "trace")
    sam = [rep.value(m, "trace") for m in rep.groups["sam"]]
    sgd = [rep.value(m, "trace") for m in rep.groups["sgd"]]
    se = {
        g: [r["stderr"]["trace"] for r in rep.tables["flatness"]["rows"] if r["label"] in ms]
        for g, ms in rep.groups.items()
    }
    assert v == compare_groups(sam, sgd, a_se=se["sam"], b_se=se["sgd"], seed=0)
    stored = rep.group_stats["verdicts"]["trace"][0]
    assert {k: stored[k] for k in v.to_dict()} == v.to_dict()
    from sharpscope.report import summary_tables

    printed = summary_tables(rep)
    assert "Is it really flatter?" in printed and "Groups (mean [95% CI] over runs):" in printed
    back = rep.verdict("sgd", "sam", "lambda_max")
    assert (back.n_a, back.n_b) == (2, 2)
    assert rep.group_summary("sam", "lambda_max").n == 2
    with pytest.raises(SharpscopeError, match="no group 'adam'"):
        rep.verdict("adam", "sgd", "trace")


def test_adding_a_seed_computes_only_the_new_run(groups, tmp_path):
    out = tmp_path / "r"
    seeds = sorted((groups / "sgd").glob("seed*"))
    first = compare({"sgd": seeds[:1], "sam": [groups / "sam"]}, out=out, **FAST)
    assert first.verdict("sgd", "sam", "lambda_max").word == "not distinguishable (one run)"
    assert "(one run)" in (out / "summary.md").read_text()
    again = compare({"sgd": seeds, "sam": [groups / "sam"]}, out=out, **FAST)
    assert again.settings["computed_probes"] == len(FAST["probes"])  # the new seed only
    assert again.settings["reused_probes"] == 3 * len(FAST["probes"])
    assert again.verdict("sgd", "sam", "lambda_max").n_a == 2


def test_a_group_mixing_architectures_is_refused(groups, tmp_path):
    other = train_group(tmp_path / "other", "sgd", seeds=(5,), hidden=(6,))
    out = tmp_path / "r"
    args = ["compare", f"mix={groups}/sgd/seed0", f"mix={other}/seed5", "--out", str(out)]
    res = cli(*args, *CLI_TINY)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "group 'mix' mixes architectures or data" in lines[0] and "--allow-mismatch" in lines[0]
    assert not out.exists()
    res = cli(*args, *CLI_TINY, "--allow-mismatch", "--probes", "metrics,eigen")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    "arg,message",
    [
        ("=runs/x", "invalid group"),
        ("sgd=", "invalid group"),
        ("sgd={root}/nothing-*", "matches no checkpoint"),
    ],
)
def test_bad_group_arguments(groups, tmp_path, arg, message):
    res = cli("compare", arg.format(root=groups), "--out", str(tmp_path / "r"), *CLI_TINY)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1 and message in lines[0], res.stderr
