"""Issue 16 follow-ups in the Hessian commands: determinism flag, --stop, --max-memory,
xtrace, and the over-training cache reader, figures and finite check."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest
import torch

from sharpscope.errors import CheckpointError
from sharpscope.hessian import probe_over_training
from sharpscope.problem import load_problem
from sharpscope.reference import dense_hessian

from .test_cli_hessian import FAST, _run, _save


@pytest.fixture
def ckpt(tmp_path):
    return _save(tmp_path / "m.pt")


def _eigen(cli_runner, cli_app, tmp_path, *args):
    out = tmp_path / "o.json"
    r = cli_runner.invoke(cli_app, ["eigen", *args, *FAST, "--json", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


def _dense(path):
    p = load_problem(path, device="cpu", dtype=torch.float64)
    return dense_hessian(p.model, p.loss_fn, p.batches("train", 20))


def test_no_check_determinism_skips_exactly_the_check_product(cli_runner, cli_app, ckpt, tmp_path):
    a = _eigen(cli_runner, cli_app, tmp_path, str(ckpt), "-k", "2", "--tol", "1e-6")
    b = _eigen(cli_runner, cli_app, tmp_path, str(ckpt), "-k", "2", "--tol", "1e-6",
               "--no-check-determinism")  # fmt: skip
    assert a["determinism_checked"] is True and b["determinism_checked"] is False
    # the check's second product is Lanczos' first: the check costs exactly one product
    assert a["hvp_count"] == a["lanczos_products"] + 1
    assert b["hvp_count"] == b["lanczos_products"]
    exact = torch.linalg.eigvalsh(_dense(ckpt)).flip(0)[:2]
    assert b["eigenvalues"] == pytest.approx(exact.tolist(), rel=1e-4)


def test_stop_is_forwarded_and_printed(cli_runner, cli_app, ckpt, tmp_path):
    d = _eigen(cli_runner, cli_app, tmp_path, str(ckpt), "--stop", "residual", "--tol", "1e-3")
    assert d["stopped_on"] in ("residual", "dimension")
    assert all(r < 1e-3 for r in d["residuals"])
    r = cli_runner.invoke(
        cli_app, ["eigen", str(ckpt), "--backend", "double", "--batch-size", "20"]
    )
    assert r.exit_code == 0 and "stopped on " in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stop", "never"], "error: --stop must be auto, residual or value, got 'never'"),
        (["--max-memory", "2X"], "error: --max-memory must be a number of bytes like 2G"),
    ],
)
def test_bad_stop_and_max_memory_are_one_line(cli_runner, cli_app, ckpt, args, message):
    r = cli_runner.invoke(cli_app, ["eigen", str(ckpt), *args, *FAST])
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(message)


def test_max_memory_lowers_the_vmap_block_not_the_values(cli_runner, cli_app, ckpt, tmp_path):
    common = [str(ckpt), "-k", "2", "--tol", "1e-6", "--backend", "forward", "-q"]
    out = tmp_path / "o.json"
    r = cli_runner.invoke(cli_app, ["eigen", *common, "--max-memory", "1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["block_size"] == 1  # one byte fits no more than one vector per pass
    exact = torch.linalg.eigvalsh(_dense(ckpt)).flip(0)[:2]
    assert d["eigenvalues"] == pytest.approx(exact.tolist(), rel=1e-4)


def test_trace_xtrace_and_no_check(cli_runner, cli_app, ckpt, tmp_path):
    out = tmp_path / "t.json"
    args = ["trace", str(ckpt), "--method", "xtrace", "--probes", "40", *FAST, "--json", str(out)]
    r = cli_runner.invoke(cli_app, [*args, "--no-check-determinism"])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert d["method"] == "xtrace" and d["hvp_count"] == 40  # no check products
    exact = float(torch.trace(_dense(ckpt)))
    assert abs(d["trace"] - exact) <= 4 * d["stderr"] + 1e-3 * abs(exact)
    r = cli_runner.invoke(cli_app, args)
    assert json.loads(out.read_text())["hvp_count"] == 42  # the check: two products


def test_over_training_reads_a_damaged_cache_as_a_miss(tmp_path, capsys):
    run = _run(tmp_path, epochs=(0, 1))
    settings = {"k": 1, "batch_size": 20, "backend": "double"}
    probe_over_training(run, settings=settings)
    cache = run / "probes" / "eigen.json"
    good = json.loads(cache.read_text())
    good["epochs"]["1"]["eigenvalues"] = "many"  # valid JSON, wrong schema
    cache.write_text(json.dumps(good))
    capsys.readouterr()
    out = probe_over_training(run, settings=settings)
    err = capsys.readouterr().err
    assert out["computed"] == 2 and out["reused"] == 0
    assert err.count("notice: ignoring damaged cache") == 1 and "eigenvalues" in err
    assert isinstance(json.loads(cache.read_text())["epochs"]["1"]["eigenvalues"], list)


def test_over_training_closes_its_figure(tmp_path):
    run = _run(tmp_path, epochs=(0, 1))
    before = plt.get_fignums()
    probe_over_training(run, settings={"k": 1, "batch_size": 20, "backend": "double"},
                        plot=tmp_path / "p.png")  # fmt: skip
    assert plt.get_fignums() == before and (tmp_path / "p.png").is_file()


def test_over_training_checks_each_epoch_is_finite(tmp_path):
    run = _run(tmp_path, epochs=(0, 1, 2))
    bad = run / "epoch_002.pt"
    ck = torch.load(bad, weights_only=True)
    key = next(k for k in ck["state_dict"] if k.endswith("weight"))
    ck["state_dict"][key][0, 0] = float("nan")
    torch.save(ck, bad)
    with pytest.raises(CheckpointError, match=r"epoch_002\.pt has 1 non-finite parameter value "):
        probe_over_training(run, settings={"k": 1, "batch_size": 20, "backend": "double"})
    cached = json.loads((run / "probes" / "eigen.json").read_text())["epochs"]
    assert sorted(cached) == ["0", "1"]  # the finished epochs are kept
