"""``sharpscope.train``: checkpoints, bit-for-bit resume, error paths, and accuracy on digits."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sharpscope.checkpoint import load_checkpoint
from sharpscope.errors import NonFiniteLossError, SharpscopeError
from sharpscope.training import lr_factor, train


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is faster and immune to oversubscription on a busy CI box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


DATA = "synthetic:train=192,test=64,noise=1.0"
QUICK = {"model": "mlp", "data": DATA, "batch_size": 32, "lr": 0.05, "quiet": True, "device": "cpu"}


def _weights(path):
    return load_checkpoint(path).state_dict


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Stop(Exception):
    pass


def _interrupt_after(n):
    def callback(epoch, record):
        if epoch == n:
            raise KeyboardInterrupt

    return callback


RESUME_CASES = [
    pytest.param("sgd", {"schedule": "cosine"}, id="sgd-cosine"),
    pytest.param(
        "xsam", {"schedule": "cosine", "rho": 0.1, "search_every": None}, id="xsam-dynamic"
    ),
    pytest.param("asam", {"schedule": "step", "milestones": [2], "rho": 0.3}, id="asam-step"),
]


@pytest.mark.parametrize(("opt", "kw"), RESUME_CASES)
def test_resume_after_interrupt_gives_identical_weights(tmp_path, opt, kw):
    mk = {"model_kwargs": {"batchnorm": True, "dropout": 0.1, "hidden": [32]}}
    full = train(**QUICK, **mk, **kw, optimizer=opt, epochs=3, out=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train(
            **QUICK,
            **mk,
            **kw,
            optimizer=opt,
            epochs=3,
            out=tmp_path / "cut",
            callback=_interrupt_after(1),
        )
    assert (tmp_path / "cut" / "last.pt").exists() and not (tmp_path / "cut" / "final.pt").exists()
    assert load_checkpoint(tmp_path / "cut" / "last.pt").resume["epoch"] == 1
    resumed = train(**QUICK, **mk, **kw, optimizer=opt, epochs=3, out=tmp_path / "cut", resume=True)
    assert resumed.resumed_from == 1
    assert _equal(_weights(tmp_path / "full" / "final.pt"), _weights(tmp_path / "cut" / "final.pt"))
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in full.metrics]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in resumed.metrics]
    assert full.alpha_history == resumed.alpha_history
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_extending_a_constant_schedule_run_equals_the_longer_run(tmp_path):
    kw = {**QUICK, "optimizer": "sam", "schedule": "constant", "rho": 0.1}
    train(**kw, epochs=2, out=tmp_path / "full")
    train(**kw, epochs=1, out=tmp_path / "ext")
    train(**kw, epochs=2, out=tmp_path / "ext", resume=True)
    assert _equal(_weights(tmp_path / "full" / "final.pt"), _weights(tmp_path / "ext" / "final.pt"))


def test_run_folder_layout_and_checkpoint_contents(tmp_path):
    res = train(**QUICK, optimizer="xsam", rho=0.1, epochs=3, save_every=2, out=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_000.pt", "epoch_002.pt", "final.pt", "last.pt", "metrics.jsonl"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {
        "epoch",
        "lr",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "seconds",
        "alpha",
    }
    final = load_checkpoint(tmp_path / "final.pt")
    assert final.optimizer["name"] == "xsam" and final.optimizer["hparams"]["bn_policy"] == "clean"
    assert final.optimizer["hparams"]["rho_max"] == pytest.approx(0.2)
    assert len(final.metrics) == 3 and final.resume is None
    assert [h["step"] for h in final.extra["alpha_history"]] == [
        0,
        6,
        12,
    ]  # 192 / 32 = 6 steps per epoch
    assert res.final["alpha"] == final.extra["alpha_history"][-1]["alpha"]
    last = load_checkpoint(tmp_path / "last.pt")
    assert last.resume["epoch"] == 3 and set(last.resume) >= {
        "model",
        "optimizer",
        "scheduler",
        "rng",
        "settings",
    }
    assert _equal(last.state_dict, final.state_dict)
    init = load_checkpoint(tmp_path / "epoch_000.pt")
    assert init.metrics == [] and not _equal(init.state_dict, final.state_dict)
    model = final.build_model()
    assert sum(p.numel() for p in model.parameters()) > 0


def test_finished_run_is_not_overwritten_without_force(tmp_path):
    train(**QUICK, optimizer="sgd", epochs=2, out=tmp_path)
    with pytest.raises(SharpscopeError, match="holds a finished run"):
        train(**QUICK, optimizer="sgd", epochs=2, out=tmp_path)
    with pytest.raises(SharpscopeError, match="already finished \\(2 epochs\\): nothing to resume"):
        train(**QUICK, optimizer="sgd", epochs=2, out=tmp_path, resume=True)
    train(**QUICK, optimizer="sgd", epochs=1, out=tmp_path, force=True)
    assert not (tmp_path / "epoch_002.pt").exists()  # files of the old run are gone
    assert len(load_checkpoint(tmp_path / "final.pt").metrics) == 1


def test_resume_refusals_name_the_problem(tmp_path):
    with pytest.raises(SharpscopeError, match="nothing to resume in .*no last.pt"):
        train(**QUICK, optimizer="sgd", epochs=2, out=tmp_path / "empty", resume=True)
    with pytest.raises(KeyboardInterrupt):
        train(**QUICK, optimizer="sam", epochs=2, out=tmp_path / "r", callback=_interrupt_after(1))
    with pytest.raises(SharpscopeError, match="holds an unfinished run .*--resume"):
        train(**QUICK, optimizer="sam", epochs=2, out=tmp_path / "r")
    with pytest.raises(
        SharpscopeError, match="settings differ: .*lr 0.05 \\(saved\\) vs 0.1 \\(now\\)"
    ):
        train(**{**QUICK, "lr": 0.1}, optimizer="sam", epochs=2, out=tmp_path / "r", resume=True)
    with pytest.raises(SharpscopeError, match="optimizer 'sam' \\(saved\\) vs 'xsam' \\(now\\)"):
        train(**QUICK, optimizer="xsam", epochs=2, out=tmp_path / "r", resume=True)


def test_non_finite_loss_stops_with_epoch_and_step(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"at epoch \d+, step \d+ .*stopped") as info:
        train(
            **{**QUICK, "lr": 1e30},
            optimizer="sgd",
            momentum=0.0,
            schedule="constant",
            epochs=3,
            out=tmp_path,
        )
    assert "\n" not in str(info.value)
    assert not (tmp_path / "final.pt").exists() and (tmp_path / "epoch_000.pt").exists()


INVALID = [
    pytest.param({"optimizer": "adam-sam"}, "unknown optimizer 'adam-sam'", id="optimizer"),
    pytest.param(
        {"optimizer": "sam", "rho": -0.5}, "rho must be >= 0, got -0.5", id="negative-rho"
    ),
    pytest.param({"schedule": "linear"}, "unknown schedule 'linear'", id="schedule"),
    pytest.param({"epochs": 0}, "epochs must be >= 1, got 0", id="epochs"),
    pytest.param(
        {"warmup_epochs": 2, "epochs": 2},
        "warmup_epochs (2) must be smaller than epochs (2)",
        id="warmup",
    ),
    pytest.param({"batch_size": 0}, "batch size must be >= 1, got 0", id="batch"),
    pytest.param({"optimizer": "xsam", "bn_policy": "none"}, "unknown bn_policy 'none'", id="bn"),
    pytest.param({"loss": "hinge"}, "unknown loss 'hinge'", id="loss"),
    pytest.param({"model": "resnet7"}, "unknown model 'resnet7'", id="model"),
]


@pytest.mark.parametrize(("kw", "message"), INVALID)
def test_invalid_settings_raise_clear_errors(tmp_path, kw, message):
    with pytest.raises(SharpscopeError) as info:
        train(**{**QUICK, "epochs": 1, **kw}, out=tmp_path)
    assert message in str(info.value)
    assert not (tmp_path / "final.pt").exists()


def test_bf16_autocast_on_cpu(tmp_path):
    res = train(
        **QUICK,
        optimizer="xsam",
        rho=0.1,
        epochs=1,
        bf16=True,
        model_kwargs={"hidden": [16]},
        out=tmp_path,
    )
    assert math.isfinite(res.final["train_loss"]) and res.final["test_acc"] > 0


def test_lr_schedules():
    kw = {"total_steps": 100, "steps_per_epoch": 10}
    assert lr_factor(0, **kw, schedule="cosine") == 1.0
    assert lr_factor(50, **kw, schedule="cosine") == pytest.approx(0.5)
    assert lr_factor(3, **kw, schedule="cosine", warmup_steps=10) == pytest.approx(0.4)
    assert lr_factor(10, **kw, schedule="cosine", warmup_steps=10) == 1.0
    assert lr_factor(99, **kw, schedule="constant") == 1.0
    assert [
        lr_factor(s, **kw, schedule="step", milestones=[5, 8]) for s in (49, 50, 80)
    ] == pytest.approx([1.0, 0.1, 0.01])


DIGITS = {
    "model": "mlp",
    "data": "digits",
    "epochs": 8,
    "batch_size": 64,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "seed": 0,
    "quiet": True,
    "device": "cpu",
    "save_every": 0,
}


@pytest.mark.parametrize(
    ("opt", "kw"), [("sgd", {}), ("sam", {"rho": 0.05}), ("xsam", {"rho": 0.05})]
)
def test_digits_reaches_95_percent(tmp_path, opt, kw):
    res = train(**DIGITS, **kw, optimizer=opt, out=tmp_path)
    assert res.final["test_acc"] >= 0.95, res.final
