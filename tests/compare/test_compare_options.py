"""``sharpscope compare`` with the probing commands' loading options (issue 15: --model,
--model-kwargs, --data, --loss, --normalize, part of the settings and cache keys) and the
report's figure options (issue 17: --format, --color-scale), end to end from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sharpscope.compare import CompareSettings, compare
from sharpscope.errors import SharpscopeError

TESTS = Path(__file__).parents[1]
OPTS = ["--model", "_issue15_user:make_net", "--data", "_issue15_user:make_data",
        "--loss", "_issue15_user:loss"]  # fmt: skip
SMALL = ["--samples", "0", "--top-k", "1", "--range", "-1:1:3", "--range2d", "-1:1:3",
         "--directions-count", "1", "--trace-probes", "2", "--device", "cpu", "-q"]  # fmt: skip


@pytest.fixture
def user_checkpoints(tmp_path, monkeypatch):
    """Two plain state dicts of the user's dict-input model (the second one moved)."""
    monkeypatch.syspath_prepend(str(TESTS))
    import _issue15_user as user

    a, b = user.make_net(), user.make_net()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.3 * torch.randn_like(p))
    paths = [tmp_path / "first.pt", tmp_path / "second.pt"]
    for net, path in zip((a, b), paths, strict=True):
        torch.save(net.state_dict(), path)
    return user, paths, (a, b)


def _hand_loss(user, net):
    """Mean loss over every training sample, one sample at a time (eval mode)."""
    net = net.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in user.make_data()["train"]:
            for i in range(len(batch["labels"])):
                one = {k: v[i : i + 1] for k, v in batch.items()}
                total += float(user.loss(net(one["features"], one["scale"]), one))
                n += 1
    return total / n


def test_compare_loads_plain_state_dicts_with_the_users_model_data_and_loss(
    cli_runner, cli_app, tmp_path, user_checkpoints
):
    user, paths, nets = user_checkpoints
    out = tmp_path / "report"
    args = ["compare", *map(str, paths), *OPTS, *SMALL, "--out", str(out)]
    r = cli_runner.invoke(
        cli_app, [*args, "--probes", "metrics,eigen,interpolation", "--json", "-"]
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    for label, net in zip(("first", "second"), nets, strict=True):
        got = summary["details"][label]["metrics"]["train_loss"]
        assert abs(got - _hand_loss(user, net)) < 1e-6, (label, got)
    # the interpolation path starts and ends at the two minima's losses
    pair = summary["details"]["pairs"][0]
    assert abs(pair["loss_a"] - _hand_loss(user, nets[0])) < 1e-6
    assert abs(pair["loss_b"] - _hand_loss(user, nets[1])) < 1e-6
    saved = json.loads((out / "settings.json").read_text())["settings"]
    assert saved["problem"] == {
        "model": "_issue15_user:make_net",
        "data": "_issue15_user:make_data",
        "loss": "_issue15_user:loss",
    }
    # the loading options are settings: another normalisation is another report
    r = cli_runner.invoke(cli_app, [*args, "--probes", "metrics,eigen,interpolation",
                                    "--normalize", "1,2"])  # fmt: skip
    assert r.exit_code != 0 and "problem differ" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    # mapping batches are never normalised: one line, and the old report is kept (--force
    # replaces it only once every input is valid)
    r = cli_runner.invoke(cli_app, [*args, "--probes", "metrics", "--normalize", "1,2",
                                    "--force"])  # fmt: skip
    assert r.exit_code != 0 and "never normalises" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert (
        json.loads((out / "settings.json").read_text())["settings"]["problem"] == saved["problem"]
    )
    assert (out / "cache" / "first" / "eigen.json").is_file()


def test_library_keywords_and_cache_keys(tmp_path, user_checkpoints):
    user, paths, nets = user_checkpoints
    kw = dict(model="_issue15_user:make_net", data="_issue15_user:make_data", samples=None,
              probes=["metrics"], device="cpu", quiet=True)  # fmt: skip
    rep = compare(paths, out=tmp_path / "r", loss="_issue15_user:loss", **kw)
    assert abs(rep.details["first"]["metrics"]["train_loss"] - _hand_loss(user, nets[0])) < 1e-6
    # a loss that is twice the user's: the cached number must not be reused
    rep2 = compare(paths, out=tmp_path / "r", loss="_issue15_user:loss", force=True, **kw)
    assert rep2.settings["reused_probes"] == 0  # force recomputes
    record = json.loads((tmp_path / "r" / "cache" / "first" / "metrics.json").read_text())
    assert record["key"]["settings"]["problem"]["loss"] == "_issue15_user:loss"
    # without loading options the settings (and old report folders) are as before
    assert "problem" not in CompareSettings().to_dict()
    assert CompareSettings(model_kwargs={}).to_dict() == CompareSettings().to_dict()
    with pytest.raises(SharpscopeError, match="model_kwargs must be a dict"):
        CompareSettings(model_kwargs="width=3")
    with pytest.raises(SharpscopeError, match="model_kwargs must be a dict"):
        compare(paths, out=tmp_path / "x", model_kwargs=[1], **{**kw, "probes": None})
    assert not (tmp_path / "x").exists()


def test_model_kwargs_reach_the_model(cli_runner, cli_app, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    import _issue15_user as user

    net = user.make_net(width=5)
    torch.save(net.state_dict(), tmp_path / "w5.pt")
    out = tmp_path / "report"
    base = ["compare", str(tmp_path / "w5.pt"), *OPTS, *SMALL, "--out", str(out),
            "--probes", "metrics", "--json", "-"]  # fmt: skip
    r = cli_runner.invoke(cli_app, base)  # width 3 by default: the weights do not fit
    assert r.exit_code != 0 and "Traceback" not in r.output
    r = cli_runner.invoke(cli_app, [*base, "--model-kwargs", '{"width": 5}'])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["details"]["w5"]["metrics"]["train_loss"]
    assert abs(got - _hand_loss(user, net)) < 1e-6


def test_figure_formats_and_colour_scale(cli_runner, cli_app, tmp_path, user_checkpoints):
    _, paths, _ = user_checkpoints
    out = tmp_path / "report"
    args = ["compare", *map(str, paths), *OPTS, *SMALL, "--out", str(out),
            "--probes", "metrics,slice2d"]  # fmt: skip
    r = cli_runner.invoke(cli_app, [*args, "--format", "png,svg"])
    assert r.exit_code == 0, r.output
    figs = out / "figures"
    assert (figs / "slices_2d.png").is_file() and (figs / "slices_2d.svg").is_file()
    assert not list(figs.glob("*.pdf"))
    rise = (figs / "slices_2d.png").read_bytes()
    # another colour scale redraws the figures from the cached numbers
    r = cli_runner.invoke(cli_app, [*args, "--color-scale", "shared", "--format", "pdf"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["computed_probes"] == 0
    assert (figs / "slices_2d.pdf").is_file()
    assert (figs / "slices_2d.png").read_bytes() != rise
    for bad, msg in ((["--color-scale", "log"], "unknown colour scale 'log'"),
                     (["--format", "png,gif"], "unknown figure format 'gif'")):  # fmt: skip
        r = cli_runner.invoke(cli_app, [*args, *bad, "--out", str(tmp_path / "new")])
        assert r.exit_code != 0 and msg in r.stderr, r.output
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "new").exists()
