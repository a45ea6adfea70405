"""Directions: Li et al. filter/layer normalisation, orthogonality, reuse, eigen files, PCA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.landscape import (
    Directions,
    difference_direction,
    eigen_directions,
    load_directions,
    load_trajectory,
    normalize_direction,
    pca_directions,
    random_directions,
)

from .conftest import MODEL_CASES, make_model


def _li_reference(d: torch.Tensor, w: torch.Tensor, norm: str, ignore: str) -> torch.Tensor:
    """A literal transcription of Li et al.'s normalize_directions_for_weights (net_plotter.py)."""
    d = d.clone()
    if d.dim() <= 1:
        if ignore == "biasbn":
            d.fill_(0)
        else:
            d.copy_(w)
        return d
    if norm == "filter":
        for di, wi in zip(d, w, strict=True):
            di.mul_(wi.norm() / (di.norm() + 1e-10))
    elif norm == "layer":
        d.mul_(w.norm() / d.norm())
    return d


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
@pytest.mark.parametrize("norm", ["filter", "layer"])
@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_normalisation_matches_li_et_al(case, norm, ignore):
    _, name, kw = case
    model = make_model(name, kw)
    dirs = random_directions(model, count=1, seed=4, norm=norm, ignore=ignore)
    got = dirs.resolve(model)[0]
    for n, w in model.named_parameters():
        ref = _li_reference(dirs.vectors[0][n], w.detach(), norm, ignore)
        torch.testing.assert_close(got[n], ref, rtol=1e-5, atol=1e-7)
        if w.dim() > 1 and norm == "filter":
            torch.testing.assert_close(
                got[n].flatten(1).norm(dim=1), w.detach().flatten(1).norm(dim=1)
            )
        if w.dim() <= 1:
            expected = torch.zeros_like(w) if ignore == "biasbn" else w.detach()
            assert torch.equal(got[n], expected)
    # BatchNorm running statistics are buffers, never part of a direction
    assert not any("running" in n for n in got)


@pytest.mark.parametrize("norm", ["filter", "layer", "none"])
def test_orthogonal_directions_are_orthogonal_and_stay_normalised(norm):
    model = make_model("cnn", {"channels": [4, 6]})
    dirs = random_directions(model, count=2, seed=1, norm=norm, ignore="biasbn", orthogonal=True)
    d1, d2 = dirs.resolve(model)
    dot = sum((d1[n].double() * d2[n].double()).sum() for n in d1)
    n1 = torch.sqrt(sum((d1[n].double() ** 2).sum() for n in d1))
    n2 = torch.sqrt(sum((d2[n].double() ** 2).sum() for n in d2))
    assert abs(float(dot / (n1 * n2))) < 1e-6
    plain = random_directions(model, count=2, seed=1, norm=norm, ignore="biasbn").resolve(model)[1]
    for n, w in model.named_parameters():
        if norm == "filter" and w.dim() > 1:
            torch.testing.assert_close(
                d2[n].flatten(1).norm(dim=1), w.detach().flatten(1).norm(dim=1)
            )
        elif norm == "layer" and w.dim() > 1:
            torch.testing.assert_close(d2[n].norm(), w.detach().norm())
    if norm == "none":
        torch.testing.assert_close(
            n2.float(), torch.sqrt(sum((plain[n] ** 2).sum() for n in plain))
        )


def test_unknown_norm_is_an_error():
    with pytest.raises(SharpscopeError, match="unknown normalisation 'bogus'"):
        normalize_direction(torch.ones(2, 2), torch.ones(2, 2), norm="bogus")


def test_saved_directions_are_renormalised_on_another_model(tmp_path):
    a = make_model("cnn", {"channels": [4, 6], "batchnorm": True}, seed=0)
    b = make_model("cnn", {"channels": [4, 6], "batchnorm": True}, seed=7)
    dirs = random_directions(a, count=2, seed=3, norm="filter", ignore="biasbn", orthogonal=True)
    dirs.save(tmp_path / "d.pt")
    raw = torch.load(tmp_path / "d.pt", weights_only=True)
    assert (
        raw["format"] == "sharpscope-directions"
        and raw["kind"] == "random"
        and raw["norm"] == "filter"
    )
    loaded = load_directions(tmp_path / "d.pt")
    on_b = loaded.resolve(b)
    fresh_b = random_directions(
        b, count=2, seed=3, norm="filter", ignore="biasbn", orthogonal=True
    ).resolve(b)
    for x, y in zip(on_b, fresh_b, strict=True):
        for n in x:
            torch.testing.assert_close(x[n], y[n])
    # equivalent, not equal: each model's own filter norms
    w = dict(b.named_parameters())["features.0.weight"].detach()
    torch.testing.assert_close(
        on_b[0]["features.0.weight"].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1)
    )


def test_directions_on_a_model_of_other_shapes_name_the_parameter(tmp_path):
    a = make_model("cnn", {"channels": [4, 6]})
    other = make_model("cnn", {"channels": [4, 8]})
    random_directions(a, count=1).save(tmp_path / "d.pt")
    with pytest.raises(
        SharpscopeError,
        match=r"'features.3.weight' has shape \[8, 4, 3, 3\] but the directions have \[6, 4, 3, 3\]",
    ):
        load_directions(tmp_path / "d.pt").resolve(other)


def test_load_directions_rejects_other_files(tmp_path):
    torch.save({"format": "something"}, tmp_path / "x.pt")
    with pytest.raises(SharpscopeError, match="not a sharpscope directions file"):
        load_directions(tmp_path / "x.pt")
    with pytest.raises(SharpscopeError, match="no such directions file"):
        load_directions(tmp_path / "missing.pt")


def test_eigen_directions_read_the_vectors_file(tmp_path):
    model = make_model("mlp", {"hidden": [16]})
    names = [n for n, _ in model.named_parameters()]
    vecs = [{n: torch.randn(p.shape) for n, p in model.named_parameters()} for _ in range(3)]
    torch.save(
        {
            "format": "sharpscope-vectors",
            "version": 1,
            "kind": "eigenvectors",
            "which": "top",
            "names": names,
            "shapes": {n: list(p.shape) for n, p in model.named_parameters()},
            "eigenvalues": torch.tensor([3.0, 2.0, 1.0]),
            "vectors": vecs,
            "source": "x.pt",
            "mode": "eval",
            "samples": 10,
        },
        tmp_path / "v.pt",
    )
    dirs = eigen_directions(tmp_path / "v.pt", count=2)
    assert dirs.kind == "eigen" and dirs.meta["eigenvalues"] == [3.0, 2.0]
    got = dirs.resolve(model)
    for n in names:  # used as they are
        torch.testing.assert_close(got[1][n], vecs[1][n])
    with pytest.raises(SharpscopeError, match="holds 3 eigenvector"):
        eigen_directions(tmp_path / "v.pt", count=4)


def test_difference_direction():
    a, b = make_model("mlp", {"hidden": [16]}, seed=0), make_model("mlp", {"hidden": [16]}, seed=1)
    d = difference_direction(a, b).resolve(a)[0]
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(d[n], pb.detach() - pa.detach())


def test_pca_matches_sklearn_and_projects_the_path(run_folder):
    from sklearn.decomposition import PCA

    traj = load_trajectory(run_folder)
    assert traj.epochs == [1, 2, 3, 4, 5]
    dirs, coords = pca_directions(traj, ignore="none")
    rows = np.stack(
        [
            torch.cat([(p[n] - traj.final[n]).reshape(-1) for n in traj.final]).double().numpy()
            for p in traj.params
        ]
    )
    ref = PCA(n_components=2).fit(rows)
    np.testing.assert_allclose(
        dirs.meta["explained_variance_ratio"], ref.explained_variance_ratio_, rtol=1e-6
    )
    for i in range(2):
        v = torch.cat([dirs.vectors[i][n].reshape(-1) for n in traj.final]).double().numpy()
        assert abs(abs(float(v @ ref.components_[i])) - 1.0) < 1e-5
        np.testing.assert_allclose(coords[:-1, i], rows @ v, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(coords[-1], [0.0, 0.0])


def test_pca_biasbn_zeroes_1d_entries(run_folder):
    dirs, _ = pca_directions(run_folder, ignore="biasbn")
    for t in dirs.vectors[0].values():
        if t.dim() <= 1:
            assert not t.any()


def test_trajectory_errors(tmp_path, run_folder):
    with pytest.raises(SharpscopeError, match="no such run folder"):
        load_trajectory(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SharpscopeError, match="has no final.pt"):
        load_trajectory(tmp_path / "empty")
    for p in list(run_folder.glob("epoch_*.pt"))[1:]:
        p.unlink()
    with pytest.raises(SharpscopeError, match="a trajectory needs at least 2"):
        load_trajectory(run_folder)


def test_directions_object_validates():
    with pytest.raises(SharpscopeError, match="unknown direction kind"):
        Directions("magic", [{"a": torch.ones(1)}])
    with pytest.raises(SharpscopeError, match="at least 1"):
        random_directions(make_model("mlp", {"hidden": [4]}), count=0)


def test_a_missing_epoch_file_is_named(run_folder, cli_runner, cli_app, tmp_path):
    """A gap in the run's epochs is one error naming the file, never a silently shorter path."""
    from sharpscope.errors import CheckpointError
    from sharpscope.landscape.directions import load_trajectory

    assert load_trajectory(run_folder).epochs == [1, 2, 3, 4, 5]
    (run_folder / "epoch_003.pt").unlink()
    with pytest.raises(CheckpointError, match=r"lacks epoch_003\.pt"):
        load_trajectory(run_folder)
    r = cli_runner.invoke(
        cli_app,
        ["trajectory", str(run_folder), "--points", "3", "--out", str(tmp_path / "t"), "--quiet"],
    )
    lines = r.output.strip().splitlines()
    assert r.exit_code != 0 and len(lines) == 1 and "epoch_003.pt" in lines[0], r.output


def test_missing_epochs_follow_the_runs_own_record():
    from sharpscope.landscape.trajectory import _missing_epochs

    rec = {"train": {"epochs": 10, "save_every": 5}}
    assert _missing_epochs([0, 5, 10], rec) == []
    assert _missing_epochs([0, 10], rec) == [5]  # spacing alone could not see this one
    assert _missing_epochs([5, 10], rec) == [0]
    assert _missing_epochs([0, 1, 2, 4], {}) == [3]
    assert _missing_epochs([0, 2, 6], {"train": {"epochs": "x"}}) == [4]
