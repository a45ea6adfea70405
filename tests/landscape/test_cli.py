"""``sharpscope slice | interpolate | trajectory`` through CliRunner, including error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sharpscope import load_problem
from sharpscope.landscape import Surface

from .conftest import make_model, write_checkpoint

KW = {"channels": [4, 6], "batchnorm": True}
FAST = ["--samples", "64", "--batch-size", "32", "--quiet"]


@pytest.fixture
def ckpts(tmp_path):
    a = write_checkpoint(tmp_path / "a.pt", make_model("cnn", KW, seed=0), "cnn", KW)
    b = write_checkpoint(tmp_path / "b.pt", make_model("cnn", KW, seed=1), "cnn", KW)
    other = write_checkpoint(
        tmp_path / "other.pt", make_model("mlp", {"hidden": [8]}), "mlp", {"hidden": [8]}
    )
    return a, b, other


def _loss(path, samples=64):
    from sharpscope.landscape import evaluate_point

    p = load_problem(path, device="cpu")
    p.model.eval()
    return evaluate_point(p.model, p.loss_fn, p.batches("train", 32, samples=samples))


def test_slice_2d_writes_everything_and_centre_is_the_loss(cli_runner, cli_app, ckpts, tmp_path):
    a, b, _ = ckpts
    out = tmp_path / "s2"
    r = cli_runner.invoke(
        cli_app,
        [
            "slice",
            str(a),
            "--dims",
            "2",
            "--range",
            "-1:1:3",
            "--yrange",
            "-0.5:0.5:3",
            "--html",
            "--out",
            str(out),
            "--save-directions",
            str(tmp_path / "d.pt"),
            "--json",
            str(tmp_path / "s.json"),
            "--orthogonal",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    for name in (
        "surface.npz",
        "meta.json",
        "contour.png",
        "heatmap.png",
        "surface3d.png",
        "surface.html",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["center_loss"] == pytest.approx(_loss(a)[0], rel=1e-5)
    assert summary["directions"]["orthogonal"] is True
    s = Surface.load(out)
    assert s.shape == (3, 3) and s.complete
    # the same directions on checkpoint b: re-normalised against b, recorded as reused
    r = cli_runner.invoke(
        cli_app,
        [
            "slice",
            str(b),
            "--range",
            "-1:1:3",
            "--directions",
            str(tmp_path / "d.pt"),
            "--out",
            str(tmp_path / "sb"),
            "--json",
            "-",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["directions"]["source"].endswith("d.pt")
    # running the finished command again resumes (nothing to do) and gives the same numbers
    r = cli_runner.invoke(
        cli_app,
        [
            "slice",
            str(a),
            "--dims",
            "2",
            "--range",
            "-1:1:3",
            "--yrange",
            "-0.5:0.5:3",
            "--out",
            str(out),
            "--orthogonal",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(Surface.load(out).loss, s.loss)


def test_slice_1d_many_directions(cli_runner, cli_app, ckpts, tmp_path):
    a, _, _ = ckpts
    out = tmp_path / "s1"
    r = cli_runner.invoke(
        cli_app,
        [
            "slice",
            str(a),
            "--dims",
            "1",
            "--range",
            "-1:1:5",
            "--directions-count",
            "3",
            "--out",
            str(out),
            "--json",
            "-",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["direction_count"] == 3 and len(summary["curvature_fit"]) == 3
    assert summary["center_loss"] == pytest.approx(_loss(a)[0], rel=1e-5)
    with np.load(out / "surface.npz") as z:
        assert z["loss"].shape == (3, 5) and z["q10"].shape == (5,)
    assert (out / "slice1d.png").stat().st_size > 0


def test_slice_with_eigenvectors(cli_runner, cli_app, ckpts, tmp_path):
    a, _, _ = ckpts
    model = make_model("cnn", KW)
    vecs = []
    for _ in range(2):
        v = {n: torch.randn(p.shape) for n, p in model.named_parameters()}
        norm = torch.sqrt(sum((t**2).sum() for t in v.values()))
        vecs.append({n: t / norm for n, t in v.items()})
    torch.save(
        {
            "format": "sharpscope-vectors",
            "version": 1,
            "kind": "eigenvectors",
            "which": "top",
            "names": list(vecs[0]),
            "shapes": {n: list(t.shape) for n, t in vecs[0].items()},
            "eigenvalues": torch.tensor([5.0, 1.0]),
            "vectors": vecs,
            "source": str(a),
            "mode": "eval",
            "samples": 64,
        },
        tmp_path / "v.pt",
    )
    r = cli_runner.invoke(
        cli_app,
        [
            "slice",
            str(a),
            "--eigvecs",
            str(tmp_path / "v.pt"),
            "--range",
            "-1:1:3",
            "--out",
            str(tmp_path / "e"),
            "--json",
            "-",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["directions"]["eigenvalues"] == [5.0, 1.0]


def test_interpolate_endpoints_are_the_checkpoints(cli_runner, cli_app, ckpts, tmp_path):
    a, b, _ = ckpts
    r = cli_runner.invoke(
        cli_app,
        [
            "interpolate",
            str(a),
            str(b),
            "--range",
            "-0.5:1.5:5",
            "--out",
            str(tmp_path / "ip"),
            "--html",
            "--json",
            "-",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    (la, aa), (lb, ab) = _loss(a), _loss(b)
    assert s["loss_a"] == pytest.approx(la, rel=1e-5) and s["loss_b"] == pytest.approx(lb, rel=1e-5)
    assert s["accuracy_a"] == pytest.approx(aa) and s["accuracy_b"] == pytest.approx(ab)
    for name in ("slice1d.png", "surface.html", "surface.npz"):
        assert (tmp_path / "ip" / name).stat().st_size > 0


def test_trajectory(cli_runner, cli_app, run_folder, tmp_path):
    r = cli_runner.invoke(
        cli_app,
        [
            "trajectory",
            str(run_folder),
            "--points",
            "4",
            "--out",
            str(tmp_path / "t"),
            "--json",
            "-",
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["epochs"] == [1, 2, 3, 4, 5] and len(s["path"]) == 6
    assert 0.5 < sum(s["explained_variance_ratio"]) <= 1.0 + 1e-9
    surf = Surface.load(tmp_path / "t")
    path = np.array(s["path"])
    assert surf.axes[0][0] < path[:, 0].min() and surf.axes[0][-1] > path[:, 0].max()
    for name in ("trajectory.png", "directions.pt", "trajectory.json"):
        assert (tmp_path / "t" / name).stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["slice", "{a}", "--range", "1:-1:5"], "START must be below STOP"),
        (["slice", "{a}", "--range", "-1:1:0"], "NUM must be at least 1"),
        (["slice", "{a}", "--range", "a:b:3"], "must be numbers"),
        (["slice", "{a}", "--yrange", "0:1"], "invalid --yrange"),
        (["slice", "{missing}"], "no such file"),
        (["slice", "{a}", "--dims", "3"], "--dims must be 1 or 2"),
        (["slice", "{a}", "--dims", "2", "--directions-count", "3"], "needs --dims 1"),
        (
            ["slice", "{a}", "--norm", "filterr", "--range", "0:0:1"],
            "unknown normalisation 'filterr'",
        ),
        (["slice", "{a}", "--directions", "{missing}"], "no such directions file"),
        (["slice", "{a}", "--directions", "{a}", "--eigvecs", "{a}"], "not both"),
        (["slice", "{a}", "--method", "gpu", "--range", "0:0:1"], "unknown method 'gpu'"),
        (["interpolate", "{a}", "{other}"], "not comparable"),
        (["interpolate", "{a}", "{missing}"], "no such file"),
        (["trajectory", "{missing}"], "no such run folder"),
    ],
    ids=[
        "reversed-range",
        "zero-points",
        "non-numbers",
        "short-yrange",
        "missing-ckpt",
        "dims",
        "count-2d",
        "norm",
        "missing-directions",
        "both-sources",
        "method",
        "mismatched-ckpts",
        "missing-b",
        "missing-run",
    ],
)
def test_errors_are_one_line(cli_runner, cli_app, ckpts, tmp_path, args, message):
    a, _, other = ckpts
    subst = {"a": str(a), "other": str(other), "missing": str(tmp_path / "missing.pt")}
    argv = [x.format(**subst) for x in args] + ["--out", str(tmp_path / "o"), *FAST]
    r = cli_runner.invoke(cli_app, argv)
    assert r.exit_code != 0
    assert message in r.output, r.output
    assert "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("error:")]) == 1


def test_directions_of_another_architecture_are_refused(cli_runner, cli_app, ckpts, tmp_path):
    a, _, _ = ckpts
    wide = write_checkpoint(
        tmp_path / "wide.pt",
        make_model("cnn", {"channels": [4, 8], "batchnorm": True}),
        "cnn",
        {"channels": [4, 8], "batchnorm": True},
    )
    r = cli_runner.invoke(
        cli_app,
        [
            "slice",
            str(a),
            "--range",
            "0:0:1",
            "--save-directions",
            str(tmp_path / "d.pt"),
            "--out",
            str(tmp_path / "o1"),
            *FAST,
        ],
    )
    assert r.exit_code == 0, r.output
    r = cli_runner.invoke(
        cli_app,
        [
            "slice",
            str(wide),
            "--directions",
            str(tmp_path / "d.pt"),
            "--out",
            str(tmp_path / "o2"),
            *FAST,
        ],
    )
    assert r.exit_code != 0 and "'features.4.weight' has shape [8, 4, 3, 3]" in r.output, r.output


def test_output_folder_with_other_settings_needs_force(cli_runner, cli_app, ckpts, tmp_path):
    a, _, _ = ckpts
    base = ["slice", str(a), "--dims", "1", "--out", str(tmp_path / "o"), *FAST]
    assert cli_runner.invoke(cli_app, [*base, "--range", "-1:1:3"]).exit_code == 0
    r = cli_runner.invoke(cli_app, [*base, "--range", "-1:1:3", "--seed", "4"])
    assert r.exit_code != 0 and "--force" in r.output
    assert (
        cli_runner.invoke(cli_app, [*base, "--range", "-1:1:3", "--seed", "4", "--force"]).exit_code
        == 0
    )
