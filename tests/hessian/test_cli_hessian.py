"""``sharpscope eigen | trace | esd`` through typer's CliRunner, with the vectors file and run folders."""

from __future__ import annotations

import json

import pytest
import torch

from sharpscope.checkpoint import save_checkpoint
from sharpscope.hessian import load_vectors, probe_over_training, save_vectors
from sharpscope.models import build_model
from sharpscope.problem import load_problem
from sharpscope.reference import dense_hessian

DATA = "synthetic:train=48,test=8,classes=3,shape=1x4x4"
SPEC = {"name": "mlp", "kwargs": {"hidden": [4]}}
FAST = ["--backend", "double", "--batch-size", "20", "-q"]


def _save(path, seed=0, lr=0.1, epoch=1):
    torch.manual_seed(seed)
    net = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, hidden=[4])
    return save_checkpoint(
        path,
        model=net,
        model_spec=SPEC,
        input_shape=(1, 4, 4),
        num_classes=3,
        data_spec=DATA,
        optimizer={"name": "sgd", "hparams": {"lr": lr}},
        seed=seed,
        metrics=[
            {"epoch": e, "lr": lr * (0.5 ** (e - 1)), "train_loss": 1.0}
            for e in range(1, epoch + 1)
        ],
    )


@pytest.fixture
def ckpt(tmp_path):
    return _save(tmp_path / "m.pt")


def _exact_eigs(path):
    p = load_problem(path, device="cpu", dtype=torch.float64)
    H = dense_hessian(p.model, p.loss_fn, p.batches("train", 20))
    return torch.linalg.eigvalsh(H)


def test_eigen_json_table_and_vectors_round_trip(cli_runner, cli_app, ckpt, tmp_path):
    out, vec = tmp_path / "e.json", tmp_path / "v.pt"
    r = cli_runner.invoke(
        cli_app,
        [
            "eigen",
            str(ckpt),
            "--top-k",
            "2",
            "--tol",
            "1e-6",
            "--json",
            str(out),
            "--save-vectors",
            str(vec),
            "--backend",
            "double",
            "--batch-size",
            "20",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "eigenvalue" in r.output and "Hessian-vector products" in r.output
    d = json.loads(out.read_text())
    assert {
        "eigenvalues",
        "residuals",
        "hvp_count",
        "seconds",
        "samples",
        "mode",
        "device",
        "backend",
    } <= set(d)
    assert d["samples"] == 48 and d["mode"] == "eval" and d["backend"] == "double"
    exact = _exact_eigs(ckpt)
    assert d["eigenvalues"] == pytest.approx(exact.flip(0)[:2].tolist(), rel=1e-4)  # float32 model
    v = load_vectors(vec)
    assert v["format"] == "sharpscope-vectors" and v["version"] == 1 and v["kind"] == "eigenvectors"
    assert (
        v["which"] == "largest"
        and v["source"] == str(ckpt)
        and v["mode"] == "eval"
        and v["samples"] == 48
    )
    assert v["eigenvalues"].dtype == torch.float64 and len(v["vectors"]) == 2
    assert list(v["shapes"]) == v["names"] and set(v["vectors"][0]) == set(v["names"])
    norm = sum(float((t.double() ** 2).sum()) for t in v["vectors"][0].values())
    assert norm == pytest.approx(1.0, rel=1e-5)
    save_vectors(
        tmp_path / "w.pt", vectors=v["vectors"], eigenvalues=v["eigenvalues"], which="largest"
    )
    assert torch.equal(
        load_vectors(tmp_path / "w.pt")["vectors"][1]["net.1.weight"],
        v["vectors"][1]["net.1.weight"],
    )


def test_eigen_both_batch_only_per_layer_and_compare(cli_runner, cli_app, ckpt):
    r = cli_runner.invoke(
        cli_app,
        [
            "eigen",
            str(ckpt),
            "--top-k",
            "1",
            "--which",
            "both",
            "--batch-only",
            "--per-layer",
            "--compare-pyhessian",
            "--backend",
            "double",
            "--batch-size",
            "20",
            "--json",
            "-",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["samples"] == 20 and len(d["eigenvalues"]) == 2 and d["ratio"] is not None
    assert set(d["layers"]) == {"net.1", "net.3"}
    # PyHessian's power iteration returns a Rayleigh quotient: never above lambda_max, often well below
    assert 0 < d["pyhessian"]["eigenvalues"][0] <= d["eigenvalues"][0] * (1 + 1e-4)
    assert d["pyhessian"]["hvp_count"] > 0 and d["pyhessian"]["seconds"] > 0


def test_trace_and_compare(cli_runner, cli_app, ckpt):
    r = cli_runner.invoke(
        cli_app,
        [
            "trace",
            str(ckpt),
            "--method",
            "hutchpp",
            "--probes",
            "12",
            "--json",
            "-",
            "--compare-pyhessian",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {
        "trace",
        "stderr",
        "trace_h2",
        "hvp_count",
        "samples",
        "mode",
        "device",
        "backend",
    } <= set(d)
    assert d["method"] == "hutchpp" and "trace" in d["pyhessian"]
    r = cli_runner.invoke(cli_app, ["trace", str(ckpt), "--probes", "4", "--backend", "double"])
    assert r.exit_code == 0 and "trace" in r.output and "tr(H^2)" in r.output


def test_esd_plot_and_html(cli_runner, cli_app, ckpt, tmp_path):
    png, html, js = tmp_path / "d.png", tmp_path / "d.html", tmp_path / "d.json"
    r = cli_runner.invoke(
        cli_app,
        [
            "esd",
            str(ckpt),
            "--runs",
            "2",
            "--iters",
            "10",
            "--plot",
            str(png),
            "--html",
            str(html),
            "--json",
            str(js),
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG" and "plotly" in html.read_text()[:200000]
    d = json.loads(js.read_text())
    assert len(d["grid"]) == len(d["density"]) and len(d["nodes"]) == 2


def test_run_folder_probes_every_epoch_and_reuses_cache(cli_runner, cli_app, tmp_path):
    run = tmp_path / "run"
    for e in (1, 2, 3):
        _save(run / f"epoch_{e:03d}.pt", seed=e, lr=0.2, epoch=e)
    args = ["eigen", str(run), "--top-k", "1", *FAST, "--json", str(tmp_path / "o.json")]
    r = cli_runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "o.json").read_text())
    assert [e["epoch"] for e in d["epochs"]] == [1, 2, 3] and d["computed"] == 3
    assert [e["lr"] for e in d["epochs"]] == pytest.approx([0.2, 0.1, 0.05])
    assert (run / "probes" / "eigen.json").is_file() and (run / "probes" / "eigen.png").is_file()
    _save(run / "epoch_004.pt", seed=4, lr=0.2, epoch=4)
    r = cli_runner.invoke(cli_app, args)
    d2 = json.loads((tmp_path / "o.json").read_text())
    assert d2["reused"] == 3 and d2["computed"] == 1
    assert d2["epochs"][0]["eigenvalues"] == d["epochs"][0]["eigenvalues"]
    r = cli_runner.invoke(cli_app, ["trace", str(run), "--probes", "3", *FAST])
    assert r.exit_code == 0 and (run / "probes" / "trace.json").is_file()
    out = probe_over_training(
        run, what="eigen", settings={"k": 2, "backend": "double", "batch_size": 20}
    )
    assert out["computed"] == 4  # other settings: recomputed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eigen", "{ck}", "--which", "middle"], "which must be largest, smallest or both"),
        (["eigen", "{ck}", "--tol", "0"], "tolerance must be in (0, 1)"),
        (["eigen", "{ck}", "--tol", "5"], "tolerance"),
        (["eigen", "{ck}", "--params", "nomatch_q"], "matches no parameter"),
        (["eigen", "{ck}", "--mode", "test"], "--mode must be eval or train"),
        (["eigen", "{missing}"], "no such file"),
        (["trace", "{ck}", "--method", "exact"], "--method must be hutchinson or hutchpp"),
        (["trace", "{ck}", "--probes", "1"], "--probes must be at least 2"),
        (["esd", "{ck}", "--plot", "x.gif"], "--plot must end in"),
        (["esd", "{missing}"], "no such file"),
        (["eigen", "{empty_run}"], "holds no epoch_XXX.pt"),
    ],
    ids=[
        "which",
        "tol-zero",
        "tol-big",
        "pattern",
        "mode",
        "missing",
        "method",
        "probes",
        "plot",
        "esd-missing",
        "empty-run",
    ],
)
def test_errors(cli_runner, cli_app, ckpt, tmp_path, args, message):
    (tmp_path / "emptyrun").mkdir()
    fill = {
        "ck": str(ckpt),
        "missing": str(tmp_path / "nope.pt"),
        "empty_run": str(tmp_path / "emptyrun"),
    }
    r = cli_runner.invoke(cli_app, [a.format(**fill) for a in args] + ["--backend", "double"])
    assert r.exit_code != 0
    assert message in r.output and "Traceback" not in r.output
