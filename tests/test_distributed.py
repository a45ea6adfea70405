"""Distributed runs (2 Gloo processes on the CPU) give the single-process numbers.

One ``torch.multiprocessing.spawn`` runs every scenario of ``_dist_workers.run`` on two
ranks; each test recomputes its scenario here, without a process group, and compares.
The CLI test launches ``torchrun`` itself.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import _dist_workers as W
import numpy as np
import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.landscape.grid import Surface, evaluate_grid
from sharpscope.problem.checkpoint import load_checkpoint, save_checkpoint
from sharpscope.problem.data import load_data
from sharpscope.problem.models import ModelSpec, build_model
from sharpscope.runtime import distributed
from sharpscope.train import train

TORCHRUN = Path(sys.executable).with_name("torchrun")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Stop(Exception):
    pass


def _partial_surface(folder: Path) -> tuple[int, float]:
    """A surface with its first chunk done, one done point overwritten by a marker value."""
    model, batches = W.problem()

    def stop(_: Surface) -> None:
        raise _Stop

    with pytest.raises(_Stop):
        evaluate_grid(
            model, W.loss_fn, batches, W.directions(model), W.GRID_AXES,
            out_dir=folder, chunk_size=3, on_chunk=stop,
        )  # fmt: skip
    surface = Surface.load(folder)
    flat = np.flatnonzero(surface.done.reshape(-1))
    assert len(flat) == 3
    surface.loss.reshape(-1)[flat[1]] = 123.0
    surface.save(folder)
    return int(flat[1]), 123.0


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("dist")
    marker = _partial_surface(folder / "partial")
    torch.multiprocessing.spawn(W.run, args=(2, free_port(), str(folder)), nprocs=2, join=True)
    results = [torch.load(folder / f"result{r}.pt", weights_only=False) for r in range(2)]
    for r, res in enumerate(results):
        assert "crash" not in res, f"rank {r} crashed:\n{res['crash']}"
    return {"folder": folder, "results": results, "marker": marker}


@pytest.fixture(scope="module")
def single_probes() -> dict:
    return W.probes()


def test_context(ranks: dict) -> None:
    assert [r["ctx"] for r in ranks["results"]] == [(0, 2, "gloo", True), (1, 2, "gloo", False)]


# ----------------------------------------------------------------------------- Hessian
@pytest.mark.parametrize("key", ["eigen-eval", "eigen-train", "eigen-double"])
def test_eigenvalues_equal_single_process(ranks: dict, single_probes: dict, key: str) -> None:
    single = single_probes[key]
    for res in ranks["results"]:
        values, samples = res["probes"][key]
        np.testing.assert_allclose(values, single[0], rtol=1e-10, atol=1e-12)
        assert samples == single[1] == (33 if key != "eigen-double" else 19)


def test_trace_same_probes_equals_single_process(ranks: dict, single_probes: dict) -> None:
    trace, trace_h2, values = single_probes["trace"]
    for res in ranks["results"]:
        t, t2, v = res["probes"]["trace"]
        np.testing.assert_allclose(v, values, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose([t, t2], [trace, trace_h2], rtol=1e-10)


# ----------------------------------------------------------------------------- grids
def test_grid_equals_single_process(ranks: dict) -> None:
    model, batches = W.problem()
    single = evaluate_grid(model, W.loss_fn, batches, W.directions(model), W.GRID_AXES, quiet=True)
    for res in ranks["results"]:  # every rank returns the whole gathered surface
        loss, acc, done = res["grid"]
        assert done.all()
        np.testing.assert_allclose(loss, single.loss, rtol=1e-12)
        np.testing.assert_allclose(acc, single.accuracy, rtol=1e-12)
    saved = Surface.load(ranks["folder"] / "grid")
    np.testing.assert_allclose(saved.loss, single.loss, rtol=1e-12)
    assert saved.meta["complete"]


def test_grid_resume_skips_done_points(ranks: dict) -> None:
    model, batches = W.problem()
    single = evaluate_grid(model, W.loss_fn, batches, W.directions(model), W.GRID_AXES, quiet=True)
    index, value = ranks["marker"]
    expected = single.loss.copy()
    expected.reshape(-1)[index] = value  # a done point is kept, never recomputed
    for res in ranks["results"]:
        np.testing.assert_allclose(res["grid-resumed"], expected, rtol=1e-12)
    np.testing.assert_allclose(Surface.load(ranks["folder"] / "partial").loss, expected, rtol=1e-12)


# ----------------------------------------------------------------------------- training
def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).build_model().state_dict()


def _assert_same(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-5, msg=k)


@pytest.mark.parametrize("case", ["sgd", "sam-global", "xsam-global"])
def test_global_step_equals_single_process_on_the_union(
    ranks: dict, case: str, tmp_path: Path
) -> None:
    """15 samples in one batch: shards of 8 and 7, weighted so the step is the union's."""
    kw = {k: v for k, v in W.TRAIN_CASES[case].items() if k != "perturbation"}
    train(**W.TRAIN, **kw, out=tmp_path / "single")
    dist_ck = load_checkpoint(ranks["folder"] / case / "final.pt")
    _assert_same(
        _weights(ranks["folder"] / case / "final.pt"), _weights(tmp_path / "single" / "final.pt")
    )
    assert dist_ck.extra["train"]["world_size"] == 2
    assert dist_ck.metrics[0]["train_loss"] == pytest.approx(
        load_checkpoint(tmp_path / "single" / "final.pt").metrics[0]["train_loss"], rel=1e-6
    )


def _shard_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_per_rank_sam_is_the_mean_of_per_shard_ascents(ranks: dict) -> None:
    """Each rank ascends with its own shard's gradient; the perturbed gradients are averaged."""
    folder = ranks["folder"] / "sam-per-rank"
    ck0 = load_checkpoint(folder / "epoch_000.pt")
    data = load_data(W.DATA)
    order = torch.randperm(
        len(data.y_train), generator=torch.Generator().manual_seed(W.TRAIN["seed"])
    )
    shards = torch.tensor_split(order, 2)
    rho, lr, n = 0.5, W.TRAIN["lr"], len(order)
    update = None
    for idx in shards:
        model = ck0.build_model()
        x, y = data.x_train[idx], data.y_train[idx]
        g = _shard_grads(model, x, y)
        norm = torch.sqrt(sum((t**2).sum() for t in g))
        with torch.no_grad():
            for p, t in zip(model.parameters(), g, strict=True):
                p.add_(t, alpha=rho / (float(norm) + 1e-12))
        g_pert = _shard_grads(model, x, y)
        part = [t * (len(idx) / n) for t in g_pert]
        update = part if update is None else [u + t for u, t in zip(update, part, strict=True)]
    ref = ck0.build_model()
    with torch.no_grad():
        for p, u in zip(ref.parameters(), update, strict=True):
            p.sub_(u, alpha=lr)
    _assert_same(_weights(folder / "final.pt"), ref.state_dict())
    # ... which is not the global ascent
    global_w = _weights(ranks["folder"] / "sam-global" / "final.pt")
    assert any(
        not torch.allclose(a, b, atol=1e-6)
        for a, b in zip(_weights(folder / "final.pt").values(), global_w.values(), strict=True)
    )


def test_per_rank_xsam_runs_and_writes_a_normal_checkpoint(ranks: dict) -> None:
    ck = load_checkpoint(ranks["folder"] / "xsam-per-rank" / "final.pt")
    assert ck.optimizer["name"] == "xsam" and ck.extra["train"]["perturbation"] == "per-rank"
    assert len(ck.extra["alpha_history"]) == 1
    assert all(torch.isfinite(t).all() for t in ck.build_model().state_dict().values())


def test_checkpoints_have_the_single_process_format(ranks: dict) -> None:
    folder = ranks["folder"] / "full"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt", "epoch_003.pt",
                     "final.pt", "last.pt", "metrics.jsonl"]  # fmt: skip
    ck = load_checkpoint(folder / "last.pt")
    assert not any(k.startswith("module.") for k in ck.state_dict)
    assert ck.resume["epoch"] == 3 and len(ck.metrics) == 3
    spec = ModelSpec("mlp", {"hidden": [5]})
    build_model(spec, input_shape=(1, 2, 3), num_classes=3).load_state_dict(ck.state_dict)


def test_resume_equals_an_uninterrupted_run(ranks: dict) -> None:
    f = ranks["folder"]
    _assert_same(_weights(f / "resumed" / "final.pt"), _weights(f / "full" / "final.pt"), atol=0)
    assert load_checkpoint(f / "resumed" / "final.pt").metrics[2]["train_loss"] == pytest.approx(
        load_checkpoint(f / "full" / "final.pt").metrics[2]["train_loss"], rel=1e-12
    )


def test_only_rank_0_writes_files(ranks: dict) -> None:
    assert ranks["results"][1]["rank1-wrote"] == []
    assert not (ranks["folder"] / "rank1").exists()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "key, words",
    [
        ("error-batches", ["2 processes but only 1 batches", "--batch-size"]),
        ("error-train", ["2 processes but batches of 1 samples", "--batch-size 2"]),
        ("error-resume", ["nothing to resume"]),
        ("error-versions", ["different versions", "rank 1: sharpscope 0.0.0+other"]),
    ],
)
def test_misconfiguration_is_one_line_on_every_rank(ranks: dict, key: str, words: list) -> None:
    messages = [r[key] for r in ranks["results"]]
    assert messages[0] == messages[1] and messages[0].startswith("SharpscopeError: ")
    assert "\n" not in messages[0]
    for w in words:
        assert w in messages[0]


ENV = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999", "LOCAL_RANK": "1", "RANK": "1"}


@pytest.mark.parametrize(
    "env, device, words",
    [
        ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "x"}, "cpu",
         ["MASTER_PORT is not set", "torchrun"]),
        ({**ENV, "WORLD_SIZE": "2", "RANK": "5"}, "cpu", ["RANK=5 is outside 0..1"]),
        ({**ENV, "WORLD_SIZE": "two"}, "cpu", ["WORLD_SIZE='two' is not a whole number"]),
        ({**ENV, "WORLD_SIZE": "2"}, "cuda", ["local rank 1 needs GPU 1", "1 GPU(s)", "--device cpu"]),
    ],
    ids=["no-port", "rank-outside", "world-not-int", "fewer-gpus"],
)  # fmt: skip
def test_launch_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict, device: str, words: list
) -> None:
    for k in distributed.ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SharpscopeError) as err:
        distributed.init_distributed(device=device)
    for w in words:
        assert w in str(err.value)
    assert distributed.current() is None


def test_single_process_has_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.init_distributed(device="cpu")
    assert (ctx.world_size, ctx.is_main, ctx.active) == (1, True, False)
    assert distributed.current() is None and distributed.is_main()
    assert not torch.distributed.is_initialized()
    assert ctx.shard([1, 2, 3]) == [1, 2, 3] and ctx.run_on_main(lambda: 7) == 7


def test_cli_reports_a_misconfigured_launch(cli_runner, cli_app, monkeypatch, tmp_path) -> None:
    for k in distributed.ENV_VARS:
        monkeypatch.delenv(k, raising=False)
    result = cli_runner.invoke(
        cli_app, ["eigen", str(tmp_path / "x.pt"), "--device", "cpu"], env={"WORLD_SIZE": "2"}
    )
    assert result.exit_code == 1
    assert "error: distributed launch: RANK is not set" in result.output
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- CLI
def test_torchrun_eigen_equals_single_process(tmp_path: Path, cli_runner, cli_app) -> None:
    torch.manual_seed(0)
    data = load_data("synthetic:train=64,test=8,classes=3,shape=1x2x3,seed=0")
    spec = ModelSpec("mlp", {"hidden": [6]})
    model = build_model(spec, input_shape=data.input_shape, num_classes=data.num_classes)
    save_checkpoint(
        tmp_path / "tiny.pt", model=model, model_spec=spec, input_shape=data.input_shape,
        num_classes=data.num_classes, data_spec=data.spec, optimizer={"name": "sgd", "hparams": {}},
        seed=0, metrics=[],
    )  # fmt: skip
    args = ["eigen", str(tmp_path / "tiny.pt"), "-k", "2", "--samples", "64", "--batch-size", "16",
            "--backend", "forward", "--device", "cpu", "--tol", "1e-6", "--quiet"]  # fmt: skip
    single = cli_runner.invoke(cli_app, [*args, "--json", str(tmp_path / "single.json")])
    assert single.exit_code == 0, single.output
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "sharpscope", *args,
         "--json", str(tmp_path / "dist.json")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = json.loads((tmp_path / "single.json").read_text())
    b = json.loads((tmp_path / "dist.json").read_text())
    np.testing.assert_allclose(b["eigenvalues"], a["eigenvalues"], rtol=1e-5)
    assert (b["samples"], b["hvp_count"]) == (a["samples"], a["hvp_count"])
    assert proc.stdout == ""  # --quiet, JSON to a file: nothing printed by any rank
