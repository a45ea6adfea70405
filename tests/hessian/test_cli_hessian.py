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


def _run(tmp_path, epochs=(0, 1, 2, 3)):
    run = tmp_path / "run"
    for e in epochs:
        _save(run / f"epoch_{e:03d}.pt", seed=e, lr=0.2, epoch=e)
    return run


def test_run_folder_probes_every_epoch_and_reuses_cache(cli_runner, cli_app, tmp_path):
    run = _run(tmp_path)
    args = ["eigen", str(run), "--top-k", "1", *FAST, "--json", str(tmp_path / "o.json")]
    r = cli_runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "o.json").read_text())
    assert [e["epoch"] for e in d["epochs"]] == [0, 1, 2, 3] and d["computed"] == 4
    assert [e["lr"] for e in d["epochs"]] == pytest.approx([0.2, 0.2, 0.1, 0.05])
    assert (run / "probes" / "eigen.json").is_file() and (run / "probes" / "eigen.png").is_file()
    _save(run / "epoch_004.pt", seed=4, lr=0.2, epoch=4)
    r = cli_runner.invoke(cli_app, args)
    d2 = json.loads((tmp_path / "o.json").read_text())
    assert d2["reused"] == 4 and d2["computed"] == 1
    assert d2["epochs"][0]["eigenvalues"] == d["epochs"][0]["eigenvalues"]
    r = cli_runner.invoke(cli_app, ["trace", str(run), "--probes", "3", *FAST])
    assert r.exit_code == 0 and (run / "probes" / "trace.json").is_file()
    targeted = [
        "trace",
        str(run),
        "--rel-stderr",
        "0.05",
        *FAST,
        "--json",
        str(tmp_path / "t.json"),
    ]
    r = cli_runner.invoke(cli_app, targeted)  # other settings: recomputed, the target cached
    t = json.loads((tmp_path / "t.json").read_text())
    assert r.exit_code == 0 and t["computed"] == 5 and t["settings"]["rel_stderr"] == 0.05
    assert all(e["reached"] and e["stderr"] <= 0.05 * abs(e["trace"]) for e in t["epochs"])
    r = cli_runner.invoke(cli_app, targeted)
    assert json.loads((tmp_path / "t.json").read_text())["reused"] == 5
    out = probe_over_training(
        run, what="eigen", settings={"k": 2, "backend": "double", "batch_size": 20}
    )
    assert out["computed"] == 5  # other settings: recomputed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eigen", "{ck}", "--which", "middle"], "which must be largest, smallest or both"),
        (["eigen", "{ck}", "--tol", "0"], "tolerance must be in (0, 1)"),
        (["eigen", "{ck}", "--tol", "5"], "tolerance"),
        (["eigen", "{ck}", "--params", "nomatch_q"], "matches no parameter"),
        (["eigen", "{ck}", "--mode", "test"], "--mode must be eval or train"),
        (["eigen", "{missing}"], "no such file"),
        (["trace", "{ck}", "--method", "exact"], "--method must be hutchinson, hutchpp or xtrace"),
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


# ----------------------------------------------------------------------------- issue 11
_GOOD = {"settings": {}, "epochs": {}}
DAMAGED = {
    "binary": b"\xff\xfe\x00\x01binary\x80",
    "list": b"[1, 2, 3]",
    "epochs-list": json.dumps({"settings": {}, "epochs": [1, 2]}).encode(),
    "record-string": json.dumps({"settings": {}, "epochs": {"1": "x"}}).encode(),
    "eigenvalues-string": json.dumps(
        {"settings": {}, "epochs": {"1": {"epoch": 1, "file": "epoch_001.pt", "eigenvalues": "3"}}}
    ).encode(),
    "lr-string": json.dumps(
        {
            "settings": {},
            "epochs": {
                "1": {"epoch": 1, "file": "epoch_001.pt", "eigenvalues": [1.0], "lr": "0.1"}
            },
        }
    ).encode(),
    "deep": b"[" * 100_000,
    "huge-int": b'{"settings": {}, "epochs": {"1": ' + b"9" * 100_000 + b"}}",
    "nan": b'{"settings": {}, "epochs": {"1": NaN}}',
    "truncated": b'{"settings": {"k": 1}, "epo',
}


@pytest.mark.parametrize("content", list(DAMAGED.values()), ids=list(DAMAGED))
def test_damaged_probe_cache_is_a_miss_with_one_notice(cli_runner, cli_app, tmp_path, content):
    run = _run(tmp_path, epochs=(0, 1))
    cache = run / "probes" / "eigen.json"
    cache.parent.mkdir()
    cache.write_bytes(content)
    out = tmp_path / "o.json"
    r = cli_runner.invoke(cli_app, ["eigen", str(run), "-k", "1", *FAST, "--json", str(out)])
    assert r.exit_code == 0, r.output
    notices = [line for line in r.stderr.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and notices[0].startswith(f"notice: ignoring damaged cache {cache} (")
    assert notices[0].endswith("); recomputing") and "error" not in r.stderr
    d = json.loads(out.read_text())
    assert d["computed"] == 2 and [e["epoch"] for e in d["epochs"]] == [0, 1]
    # the cache was rewritten whole; the next call reuses it without a notice
    r = cli_runner.invoke(cli_app, ["eigen", str(run), "-k", "1", *FAST, "--json", str(out)])
    assert r.exit_code == 0 and "notice" not in r.stderr
    assert json.loads(out.read_text())["reused"] == 2


def test_damaged_trace_cache_is_a_miss(cli_runner, cli_app, tmp_path):
    run = _run(tmp_path, epochs=(0, 1))
    cache = run / "probes" / "trace.json"
    cache.parent.mkdir()
    cache.write_text(json.dumps({"settings": {}, "epochs": {"0": {"epoch": 0, "file": "x"}}}))
    r = cli_runner.invoke(cli_app, ["trace", str(run), "--probes", "3", *FAST])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [
        f"notice: ignoring damaged cache {cache} (epochs['0'].trace is not a number); recomputing"
    ]


def test_probe_cache_check_accepts_what_the_probes_write(tmp_path):
    from sharpscope.hessian.probe import check_probe_cache
    from sharpscope.runtime.cache import load_cache_json

    run = _run(tmp_path, epochs=(0, 1))
    for what, settings in (("eigen", {"k": 2, "backend": "double"}), ("trace", {"probes": 3})):
        probe_over_training(run, what=what, settings={**settings, "batch_size": 20})
        obj, reason = load_cache_json(run / "probes" / f"{what}.json", check_probe_cache(what))
        assert reason is None and set(obj["epochs"]) == {"0", "1"}


_HOLD_LOCK = """
import sys, time
from sharpscope.utils import folder_lock
with folder_lock(sys.argv[1], command="sharpscope eigen (test holder)"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_writer_of_a_probe_cache_gets_one_error_naming_the_first(
    cli_runner, cli_app, tmp_path
):
    import subprocess
    import sys

    run = _run(tmp_path, epochs=(0, 1))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run / "probes")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = cli_runner.invoke(cli_app, ["eigen", str(run), "-k", "1", *FAST])
        lines = r.stderr.splitlines()
        assert r.exit_code == 1 and len(lines) == 1, r.output
        assert lines[0].startswith(f"error: {run / 'probes'} is in use by another sharpscope")
        assert f"pid {holder.pid}" in lines[0] and "test holder" in lines[0]
        assert not (run / "probes" / "eigen.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and taken over
    r = cli_runner.invoke(cli_app, ["eigen", str(run), "-k", "1", *FAST])
    assert r.exit_code == 0, r.output
    assert not (run / "probes" / ".sharpscope.lock").exists()


def _poisoned(path, how):
    torch.manual_seed(0)
    net = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, hidden=[4])
    with torch.no_grad():
        if how == "nan":
            net.net[1].weight[0, 3] = float("nan")
            net.net[1].weight[1, 0] = float("inf")
        else:  # finite weights whose logits overflow: the loss is not finite
            net.net[1].weight.fill_(3e38)
    return save_checkpoint(
        path, model=net, model_spec=SPEC, input_shape=(1, 4, 4), num_classes=3, data_spec=DATA
    )


@pytest.mark.parametrize("command", ["eigen", "trace", "esd"])
def test_non_finite_weights_are_named_before_any_hessian_work(
    cli_runner, cli_app, tmp_path, command, monkeypatch
):
    import sharpscope.hessian.probe as probe

    ck = _poisoned(tmp_path / "nan.pt", "nan")
    for name in ("hessian_eigenvalues", "hessian_trace"):
        monkeypatch.setattr(probe, name, lambda *a, **k: pytest.fail("Hessian work started"))
    r = cli_runner.invoke(cli_app, [command, str(ck), *FAST])
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        f"error: {ck} has 2 non-finite parameter values (first: net.1.weight): its Hessian is "
        "undefined; probe an earlier checkpoint (the training probably diverged)"
    ]
    assert "determinis" not in r.output


def test_non_finite_loss_at_the_centre_is_named(cli_runner, cli_app, tmp_path):
    ck = _poisoned(tmp_path / "big.pt", "overflow")
    r = cli_runner.invoke(cli_app, ["eigen", str(ck), *FAST])
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"error: the loss of {ck} at its own weights is ")
    assert "determinis" not in r.output


def test_eigen_plot_of_one_checkpoint_is_a_stem_plot(cli_runner, cli_app, ckpt, tmp_path):
    png = tmp_path / "fig" / "spectrum.png"
    r = cli_runner.invoke(
        cli_app, ["eigen", str(ckpt), "-k", "3", "--which", "both", "--plot", str(png), *FAST[:-1]]
    )
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {png}" in r.output
    assert sorted(p.name for p in png.parent.iterdir()) == ["spectrum.png"]


def test_plot_spectrum_draws_every_eigenvalue(tmp_path):
    import matplotlib.pyplot as plt

    from sharpscope.hessian.plots import plot_spectrum

    fig = plot_spectrum([2.0, -0.5, 7.0], tmp_path / "s.svg", residuals=[1e-4, 1e-3, 1e-5])
    heads = sorted(
        float(y) for ax in fig.axes for line in ax.lines for y in line.get_ydata() if y != 0
    )
    plt.close(fig)
    assert heads == [-0.5, 2.0, 7.0] and (tmp_path / "s.svg").read_text().lstrip().startswith("<")


def test_trace_plot_of_one_checkpoint_says_why_not(cli_runner, cli_app, ckpt, tmp_path):
    r = cli_runner.invoke(cli_app, ["trace", str(ckpt), "--plot", str(tmp_path / "t.png"), *FAST])
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1
    assert "--plot draws the trace over training and needs a run folder" in r.stderr
    assert not (tmp_path / "t.png").exists()
