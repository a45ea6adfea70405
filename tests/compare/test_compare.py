"""``sharpscope compare``: exact numbers on shared data and directions, tables that agree, resume, errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from sharpscope.compare import MEASURES, compare, resolve_inputs, unique_labels
from sharpscope.errors import CheckpointError, SharpscopeError

TINY = dict(
    samples=96,
    batch_size=64,
    top_k=2,
    range1d=(-1.0, 1.0, 5),
    range2d=(-1.0, 1.0, 3),
    directions_count=2,
    trace_probes=4,
    density_runs=1,
    density_iters=6,
    worst_steps=2,
    worst_restarts=0,
    average_draws=2,
    plane_range=(-0.1, 0.1, 3),
    interp_range=(-0.5, 1.5, 5),
    seed=0,
    device="cpu",
    quiet=True,
)
TABLE_HEADINGS = {
    "Flatness": "flatness",
    "Loss and accuracy": "performance",
    "XSAM plane": "plane",
    "Interpolation between minima": "interpolation",
}


def train_runs(root: Path, optimizers=("sgd", "sam"), *, hidden=(4,), epochs=2) -> list[Path]:
    """Tiny runs (MLP on digits) with epoch checkpoints; ``root/<optimizer>``."""
    from sharpscope.train import train

    runs = []
    for name in optimizers:
        out = root / name
        train(
            model="mlp",
            model_kwargs={"hidden": list(hidden)},
            data="digits",
            optimizer=name,
            out=out,
            epochs=epochs,
            batch_size=256,
            lr=0.1,
            quiet=True,
            device="cpu",
        )
        runs.append(out)
    return runs


# ----------------------------------------------------------------------------- markdown parsing
def parse_markdown_tables(text: str) -> dict[str, dict]:
    """``{table name: {"header": [...], "rows": {label: [cells]}}}`` from summary.md."""
    tables: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:]
            current = next((v for k, v in TABLE_HEADINGS.items() if title.startswith(k)), None)
            continue
        if current and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            table = tables.setdefault(current, {"header": None, "rows": {}})
            if table["header"] is None:
                table["header"] = cells
            else:
                table["rows"][cells[0]] = cells[1:]
    return tables


def parse_cell(cell: str) -> tuple[float | None, float | None, bool]:
    """``(value, stderr, flattest)`` of a Markdown cell like ``**1.23 ± 0.04** (flattest)``."""
    flattest = "(flattest)" in cell
    text = cell.replace("(flattest)", "").replace("**", "").strip()
    if text == "n/a":
        return None, None, flattest
    value, _, se = text.partition("±")
    return float(value), (float(se) if se.strip() else None), flattest


def close4(a: float, b: float) -> bool:
    """Equal at the 4 significant digits the tables print."""
    return abs(a - b) <= 6e-4 * max(abs(a), abs(b)) + 1e-12


def check_tables_agree(summary: dict, markdown: str) -> int:
    """Every table of summary.json appears in summary.md with the same labels, titles,
    numbers (4 significant digits) and flattest marks; returns the cells checked."""
    md = parse_markdown_tables(markdown)
    checked = 0
    for name, table in summary["tables"].items():
        if not table["columns"] or not table["rows"]:
            assert name not in md, f"{name}: empty in JSON but printed in Markdown"
            continue
        assert name in md, f"table {name} missing from summary.md"
        assert md[name]["header"][1:] == [c["title"] for c in table["columns"]]
        assert list(md[name]["rows"]) == [r["label"] for r in table["rows"]]
        for row in table["rows"]:
            cells = md[name]["rows"][row["label"]]
            for col, cell in zip(table["columns"], cells, strict=True):
                value, se, marked = parse_cell(cell)
                want = row["values"][col["key"]]
                if want is None:
                    assert value is None, (name, row["label"], col["key"], cell)
                else:
                    assert value is not None and close4(value, want), (
                        row["label"],
                        col["key"],
                        cell,
                        want,
                    )
                want_se = row.get("stderr", {}).get(col["key"])
                assert (se is None) == (want_se is None)
                if se is not None:
                    assert abs(se - want_se) <= 0.06 * abs(want_se) + 1e-12
                flattest = row["label"] in table.get("flattest", {}).get(col["key"], [])
                assert marked == flattest, (name, row["label"], col["key"], cell)
                checked += 1
    return checked


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    torch.set_num_threads(1)
    return train_runs(tmp_path_factory.mktemp("runs"), ("sgd", "sam", "xsam"))


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("report") / "report"
    return compare(runs, out=out, **TINY)


# ----------------------------------------------------------------------------- the report
def test_every_artefact_is_written(report):
    out = report.out
    for name in ("summary.json", "summary.md", "report.html", "directions.pt", "settings.json"):
        assert (out / name).is_file(), name
    figures = {Path(v).name for k, v in report.files.items() if k.startswith("figure:")}
    assert figures >= {
        "measures.png",
        "slices_1d.png",
        "slices_2d.png",
        "density.png",
        "interpolation.png",
        "planes.png",
        "lambda_max_over_training.png",
        "plane_sgd.png",
    }
    for name in figures:
        assert (out / "figures" / name).stat().st_size > 5000, name
    page = (out / "report.html").read_text()
    assert page.count('<script type="text/javascript">') == 1  # plotly inlined once
    head, _, rest = page.partition('<script type="text/javascript">')
    outside = head + rest.partition("</script>")[2]  # the page without plotly.js itself
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", outside)  # nothing fetched
    assert "<script src" not in page
    for div in (
        "plot-slices-1d",
        "plot-slices-2d",
        "plot-density",
        "plot-interpolation",
        "plot-plane-arcs",
        "plot-over-training",
    ):
        assert f'id="{div}"' in page, div
    assert 'id="js-errors"' in page and "window.__sharpscopeErrors" in page
    assert report.labels == ["sgd", "sam", "xsam"]


def test_json_and_markdown_tables_agree(report):
    summary = json.loads((report.out / "summary.json").read_text())
    markdown = (report.out / "summary.md").read_text()
    checked = check_tables_agree(summary, markdown)
    assert checked >= 3 * len(MEASURES) + 3 * 6
    assert "lower = flatter" in markdown


def test_flattest_is_the_lowest_value(report):
    table = report.tables["flatness"]
    assert [c["key"] for c in table["columns"]] == [m.key for m in MEASURES]
    for col in table["columns"]:
        values = {r["label"]: r["values"][col["key"]] for r in table["rows"]}
        best = min(values.values())
        assert report.flattest(col["key"]) == [k for k, v in values.items() if v == best]
        assert col["lower_is_flatter"] is True


def test_comparisons_are_ratios_to_the_first_checkpoint(report):
    comp = report.comparisons
    assert comp["baseline"] == "sgd"
    for key, entries in comp["measures"].items():
        base = report.value("sgd", key)
        for e in entries:
            v = report.value(e["label"], key)
            assert e["flatter"] == (v < base)
            if base > 0 and v >= 0:
                assert e["ratio"] == pytest.approx(v / base, rel=1e-12)


def test_probes_share_one_data_subset(report):
    """The loss at the minimum is the same number in every probe (same subset, mode, seed)."""
    for label in report.labels:
        d = report.details[label]
        loss = d["metrics"]["train_loss"]
        assert d["slice1d"]["center_loss"] == pytest.approx(loss, rel=1e-6)
        assert d["slice2d"]["center_loss"] == pytest.approx(loss, rel=1e-6)
        assert d["sharpness"]["worst"]["loss"] == pytest.approx(loss, rel=1e-5)
        assert d["plane"]["loss_theta0"] == pytest.approx(loss, rel=1e-5)
        assert d["metrics"]["logged_test_acc"] == pytest.approx(d["metrics"]["test_acc"], abs=1e-9)
    for pair in report.details["pairs"]:
        assert pair["loss_a"] == pytest.approx(
            report.details[pair["a"]]["metrics"]["train_loss"], rel=1e-5
        )
        assert pair["loss_b"] == pytest.approx(
            report.details[pair["b"]]["metrics"]["train_loss"], rel=1e-5
        )
    assert [(p["a"], p["b"]) for p in report.details["pairs"]] == [
        ("sgd", "sam"),
        ("sgd", "xsam"),
        ("sam", "xsam"),
    ]


def test_shared_directions_are_renormalised_per_model(report, runs):
    """Slice points are exactly theta_m + alpha d_m with d_m the saved raw directions
    filter-normalised against model m's own weights."""
    from sharpscope.landscape import load_directions
    from sharpscope.landscape.grid import evaluate_point
    from sharpscope.problem import load_problem

    dirs = load_directions(report.out / "directions.pt")
    assert len(dirs) == 2 and dirs.norm == "filter" and dirs.ignore == "biasbn" and dirs.seed == 0
    alpha = report.details["sam"]["slice1d"]["x"][-1]
    for label, run in zip(report.labels, runs, strict=True):
        p = load_problem(run / "final.pt", device="cpu")
        d = dirs.resolve(p.model)[1]
        theta = dict(p.model.named_parameters())
        point = {n: theta[n].detach() + alpha * d[n] for n in theta}
        batches = p.batches("train", 64, samples=96, seed=0)
        p.model.eval()
        loss, _ = evaluate_point(p.model, p.loss_fn, batches, point)
        assert report.details[label]["slice1d"]["loss"][1][-1] == pytest.approx(loss, rel=1e-6)


def test_hessian_numbers_match_the_dense_hessian(report, runs):
    from sharpscope.problem import load_problem
    from sharpscope.reference import dense_hessian

    for label, run in zip(report.labels, runs, strict=True):
        p = load_problem(run / "final.pt", device="cpu", dtype=torch.float64)
        H = dense_hessian(p.model, p.loss_fn, p.batches("train", 64, samples=96, seed=0))
        evals = torch.linalg.eigvalsh(H).flip(0)
        got = report.details[label]["eigen"]["eigenvalues"]
        assert got == pytest.approx(evals[:2].tolist(), rel=2e-3)
        trace = report.details[label]["trace"]
        assert abs(trace["trace"] - float(H.trace())) <= 5 * trace["stderr"] + 1e-6


def test_lambda_max_over_training_from_run_folders(report):
    for label in report.labels:
        ot = report.details[label]["over_training"]
        assert ot["epochs"] == [0, 1, 2]
        assert len(ot["lambda_max"]) == 3 and all(v > 0 for v in ot["lambda_max"])
        # the last epoch checkpoint holds the final weights
        assert ot["lambda_max"][-1] == pytest.approx(report.value(label, "lambda_max"), rel=1e-2)
        assert ot["lr"][0] == pytest.approx(0.1)


def test_second_call_reuses_every_probe(report, runs):
    before = json.loads((report.out / "summary.json").read_text())
    again = compare(runs, out=report.out, **TINY)
    assert again.settings["computed_probes"] == 0
    assert again.settings["reused_probes"] == before["settings"]["computed_probes"]
    assert again.tables == before["tables"]


def test_a_changed_checkpoint_is_probed_again(runs, tmp_path):
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(runs[0], a)
    shutil.copytree(runs[1], b)
    probes = ["metrics", "slice1d", "interpolation"]
    first = compare([a, b], out=tmp_path / "r", probes=probes, **TINY)
    shutil.copyfile(runs[2] / "final.pt", b / "final.pt")  # b now holds xsam's minimum
    second = compare([a, b], out=tmp_path / "r", probes=probes, **TINY)
    assert second.settings["computed_probes"] == 3  # b's two probes and the pair
    assert second.value("b", "train_loss") != first.value("b", "train_loss")
    assert second.details["b"]["slice1d"]["center_loss"] == pytest.approx(
        second.value("b", "train_loss"), rel=1e-6
    )


def test_other_settings_need_force(runs, tmp_path):
    probes = ["metrics", "eigen"]
    compare(runs[:2], out=tmp_path / "r", probes=probes, **TINY)
    with pytest.raises(SharpscopeError, match=r"other settings \(rho differ\).*--force"):
        compare(runs[:2], out=tmp_path / "r", probes=probes, **{**TINY, "rho": 0.1})
    forced = compare(
        runs[:2], out=tmp_path / "r", probes=probes, force=True, **{**TINY, "rho": 0.1}
    )
    assert forced.settings["rho"] == 0.1 and forced.settings["computed_probes"] == 4


def test_one_checkpoint_warns_and_marks_nothing(runs, tmp_path):
    with pytest.warns(UserWarning, match="only one checkpoint"):
        rep = compare(
            [runs[0] / "final.pt"], out=tmp_path / "r", probes=["metrics", "eigen"], **TINY
        )
    assert rep.tables["flatness"]["flattest"] == {"lambda_max": []}
    assert rep.comparisons == {}
    assert "(flattest)" not in (rep.out / "summary.md").read_text()
    assert rep.labels == ["sgd"]


def test_mismatched_checkpoints(runs, tmp_path):
    other = train_runs(tmp_path / "wide", ("sgd",), hidden=(6,), epochs=1)[0]
    with pytest.raises(CheckpointError, match="not comparable.*--allow-mismatch"):
        compare([runs[0], other], out=tmp_path / "r", **TINY)
    rep = compare(
        [runs[0], other],
        out=tmp_path / "r2",
        allow_mismatch=True,
        probes=["metrics", "slice1d", "interpolation"],
        **TINY,
    )
    assert rep.labels == ["sgd", "sgd-2"]
    assert any("allow-mismatch" in n for n in rep.notes)
    assert any("own random directions" in n for n in rep.notes)
    assert rep.details["pairs"] == []
    assert rep.value("sgd-2", "curvature_1d") is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"range1d": "-1:1:50"}, "0 .* must be a grid point"),
        ({"range1d": "0:1:5"}, "must be a grid point"),
        ({"range1d": "1:-1:5"}, "START must be below STOP"),
        ({"range1d": "a:b:c"}, "must be numbers"),
        ({"range2d": (-1, 1)}, "expected"),
        ({"range1d": "-1:1:2"}, "at least 3 points"),
        ({"probes": ["eigen", "hessian"]}, "unknown probe.*hessian"),
        ({"mode": "test"}, "mode must be eval or train"),
        ({"rho": 0.0}, "rho must be a positive number"),
        ({"samples": -3}, "samples must be"),
        ({"top_k": 0}, "top_k must be"),
    ],
    ids=[
        "even-points",
        "no-zero",
        "reversed",
        "not-numbers",
        "two-values",
        "two-points",
        "unknown-probe",
        "bad-mode",
        "zero-rho",
        "negative-samples",
        "zero-k",
    ],
)
def test_bad_settings(runs, tmp_path, kwargs, message):
    with pytest.raises(SharpscopeError, match=message):
        compare(runs[:2], out=tmp_path / "r", **{**TINY, **kwargs})
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, runs: [], "at least one checkpoint"),
        (lambda tmp, runs: [tmp / "missing.pt"], "no such checkpoint or run folder"),
        (lambda tmp, runs: [runs[0], tmp / "nope"], "no such checkpoint or run folder: .*nope"),
        (lambda tmp, runs: [_unfinished(tmp)], "holds no final.pt"),
    ],
    ids=["none", "missing-file", "missing-folder", "unfinished-run"],
)
def test_bad_inputs(runs, tmp_path, make, message):
    with pytest.raises(SharpscopeError, match=message):
        compare(make(tmp_path, runs), out=tmp_path / "r", **TINY)


def _unfinished(tmp: Path) -> Path:
    run = tmp / "unfinished"
    run.mkdir()
    (run / "epoch_000.pt").write_bytes(b"")
    return run


def test_out_must_be_a_folder(runs, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SharpscopeError, match="is a file"):
        compare(runs[:2], out=tmp_path / "file", **TINY)


@pytest.mark.parametrize(
    ("names", "labels"),
    [
        (["sgd", "sam"], ["sgd", "sam"]),
        (["sgd", "sgd", "sgd"], ["sgd", "sgd-2", "sgd-3"]),
        (["a b", "a/b", ""], ["a_b", "a_b-2", "model"]),
    ],
    ids=["distinct", "duplicates", "unsafe"],
)
def test_unique_labels(names, labels):
    assert unique_labels(names) == labels


def test_resolve_inputs_labels_run_folders(runs):
    recs = resolve_inputs([runs[0], runs[1] / "final.pt", runs[2] / "epoch_001.pt"])
    assert [r["name"] for r in recs] == ["sgd", "sam", "epoch_001"]
    assert recs[0]["run"] == runs[0] and recs[1]["run"] == runs[1] and recs[2]["run"] is None
    assert recs[0]["checkpoint"] == runs[0] / "final.pt"


# ----------------------------------------------------------------------------- CLI
def test_cli_compare_prints_the_table_and_writes_json(cli_runner, cli_app, runs, tmp_path):
    out = tmp_path / "r"
    args = [
        "compare",
        str(runs[0]),
        str(runs[1]),
        "--out",
        str(out),
        "--samples",
        "96",
        "--batch-size",
        "64",
        "--top-k",
        "1",
        "--range",
        "-1:1:3",
        "--range2d",
        "-1:1:3",
        "--directions-count",
        "1",
        "--trace-probes",
        "2",
        "--device",
        "cpu",
        "--probes",
        "metrics,eigen,slice1d",
        "--json",
        str(tmp_path / "s.json"),
    ]
    result = cli_runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "(flattest)" in result.output and f"report: {out / 'report.html'}" in result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["labels"] == ["sgd", "sam"] and data["settings"]["probes"] == [
        "metrics",
        "eigen",
        "slice1d",
    ]
    again = cli_runner.invoke(cli_app, [*args[:-2], "--json", "-", "--quiet"])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["settings"]["computed_probes"] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--range", "-1:1:4"], "must be a grid point"),
        (["--probes", "nope"], "unknown probe"),
        (["--rho", "-1"], "rho must be a positive number"),
    ],
    ids=["range", "probe", "rho"],
)
def test_cli_compare_errors(cli_runner, cli_app, runs, tmp_path, extra, message):
    result = cli_runner.invoke(
        cli_app, ["compare", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "r"), *extra]
    )
    assert result.exit_code == 1
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output and result.output.count("\n") <= 2


def test_cli_compare_missing_and_mismatched(cli_runner, cli_app, runs, tmp_path):
    result = cli_runner.invoke(
        cli_app, ["compare", str(tmp_path / "gone.pt"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1 and "no such checkpoint or run folder" in result.output
    other = train_runs(tmp_path / "w", ("sgd",), hidden=(3,), epochs=1)[0]
    result = cli_runner.invoke(
        cli_app, ["compare", str(runs[0]), str(other), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1 and "--allow-mismatch" in result.output


def test_format_value_round_trips():
    from sharpscope.report import format_value

    for v in (1.0, 123456.0, 1.234567e-7, -0.5, 0.0):
        value, se, _ = parse_cell(format_value(v, 0.25))
        assert close4(value, v) and se == 0.25
    assert format_value(None) == "n/a" and format_value(math.nan) == "n/a"
    assert parse_cell(format_value(3)) == (3.0, None, False)
    assert np.isclose(parse_cell("**1.5 ± 0.1** (flattest)")[0], 1.5)
