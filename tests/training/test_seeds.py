"""Several seeds of one run (issue 13): ``--seeds 0,1`` writes ``out/seed0/``, ``out/seed1/``,
each bit for bit the run that ``--seed k`` writes alone; resume/force per seed."""

from __future__ import annotations

import json

import pytest
import torch

from sharpscope.checkpoint import load_checkpoint
from sharpscope.errors import SharpscopeError
from sharpscope.training import train, train_seeds

ARGS = [
    "train",
    "--model",
    "mlp",
    "--data",
    "digits",
    "--samples",
    "64",
    "--batch-size",
    "32",
    "--epochs",
    "1",
    "--optimizer",
    "sam",
    "--device",
    "cpu",
    "--quiet",
]
QUICK = dict(
    model="mlp", data="digits", samples=64, batch_size=32, epochs=1, device="cpu", quiet=True
)


def _weights(folder):
    return load_checkpoint(folder / "final.pt").state_dict


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _metrics(folder):
    rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_seeds_write_one_run_folder_per_seed_equal_to_single_runs(cli_runner, cli_app, tmp_path):
    out = tmp_path / "runs" / "sam"
    res = cli_runner.invoke(cli_app, [*ARGS, "--seeds", "0,1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["seed0", "seed1"]
    for k in (0, 1):
        assert {"epoch_000.pt", "epoch_001.pt", "last.pt", "final.pt"} <= {
            p.name for p in (out / f"seed{k}").iterdir()
        }
    assert not _same(_weights(out / "seed0"), _weights(out / "seed1"))
    for k in (0, 1):
        single = tmp_path / f"single{k}"
        res = cli_runner.invoke(cli_app, [*ARGS, "--seed", str(k), "--out", str(single)])
        assert res.exit_code == 0, res.output
        assert _same(_weights(out / f"seed{k}"), _weights(single))
        assert _metrics(out / f"seed{k}") == _metrics(single)
        saved = load_checkpoint(out / f"seed{k}" / "last.pt").resume["settings"]
        assert saved == load_checkpoint(single / "last.pt").resume["settings"]


def test_seed_and_seeds_are_exclusive(cli_runner, cli_app, tmp_path):
    res = cli_runner.invoke(
        cli_app, [*ARGS, "--seed", "1", "--seeds", "0,1", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 1
    assert "--seed and --seeds are exclusive" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    bad = cli_runner.invoke(cli_app, [*ARGS, "--seeds", "0,x", "--out", str(tmp_path / "r")])
    assert bad.exit_code == 1 and "--seeds must be whole numbers" in bad.output


@pytest.mark.parametrize(
    ("seeds", "message"),
    [([], "seeds is empty"), ([0, 1, 0], "seeds repeat 0"), ([0, 1.5], "seed must be")],
)
def test_bad_seed_lists_are_refused(tmp_path, seeds, message):
    with pytest.raises(SharpscopeError, match=message):
        train_seeds(seeds=seeds, out=tmp_path, **QUICK)
    assert list(tmp_path.iterdir()) == []


def test_seed_keyword_with_seeds_is_refused(tmp_path):
    with pytest.raises(SharpscopeError, match="exclusive"):
        train_seeds(seeds=[0], seed=1, out=tmp_path, **QUICK)


def test_an_existing_seed_run_is_refused_before_any_seed_trains(tmp_path):
    train(**QUICK, seed=1, out=tmp_path / "seed1")
    with pytest.raises(SharpscopeError, match="seed1 holds a finished run"):
        train_seeds(seeds=[0, 1], out=tmp_path, **QUICK)
    assert not (tmp_path / "seed0").exists()
    before = _weights(tmp_path / "seed1")
    train_seeds(seeds=[0, 1], out=tmp_path, **QUICK, force=True, lr=0.05)
    assert not _same(before, _weights(tmp_path / "seed1"))


def test_resume_continues_each_seed_and_keeps_finished_ones(tmp_path):
    # seed 0 finished, seed 1 interrupted after epoch 1 of 2, seed 2 never started
    first = train_seeds(seeds=[0], out=tmp_path, **{**QUICK, "epochs": 2})
    stop = dict(callback=lambda epoch, record: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train(**{**QUICK, "epochs": 2}, seed=1, out=tmp_path / "seed1", **stop)
    results = train_seeds(seeds=[0, 1, 2], out=tmp_path, **{**QUICK, "epochs": 2}, resume=True)
    assert [r.out.name for r in results] == ["seed0", "seed1", "seed2"]
    assert results[0].metrics == first[0].metrics and results[1].resumed_from == 1
    assert results[2].resumed_from is None
    for k in (1, 2):
        single = tmp_path / "single" / f"s{k}"
        train(**{**QUICK, "epochs": 2}, seed=k, out=single)
        assert _same(_weights(tmp_path / f"seed{k}"), _weights(single))
    # a finished seed whose settings differ is not silently kept
    with pytest.raises(SharpscopeError, match=r"cannot resume .*seed0: settings differ: lr"):
        train_seeds(seeds=[0], out=tmp_path, **{**QUICK, "epochs": 2, "lr": 0.3}, resume=True)
