"""Every probe on a tiny trained ``gpt`` checkpoint of the bundled text task (issue 14).

One SGD run (2 epochs, ``text:context=16,windows=64``, width 16, 1 block, 2 heads) is
trained once through the CLI; each probe then runs through the CLI on 32 windows and
its numbers are checked against an independent computation: the loss by hand (the
model's logits and a plain token cross-entropy), the library's Lanczos on the same
batches, a dense float64 Hessian of a selected block of parameters, and filter
normalisation row by row.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sharpscope import load_problem
from sharpscope.hessian import hessian_eigenvalues
from sharpscope.landscape import random_directions
from sharpscope.landscape.normalize import model_params
from sharpscope.problem.models.gpt import gpt

KW = {"width": 16, "depth": 1, "heads": 2}
DATA = "text:context=16,windows=64,test_windows=32"
FAST = ["--samples", "32", "--batch-size", "16"]
BLOCK = r"^ln_f\."  # the final LayerNorm: 32 parameters, small enough for a dense Hessian


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from sharpscope_cli.app import app
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("gpt") / "run"
    args = ["train", "--model", "gpt", "--model-kwargs", json.dumps(KW), "--data", DATA]
    args += ["--epochs", "2", "--batch-size", "16", "--lr", "0.3", "--warmup-epochs", "1"]
    args += ["--schedule", "cosine", "--out", str(out), "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def jcli(cli_runner, cli_app, tmp_path):
    """Run a command; return its ``--json`` numbers."""
    counter = iter(range(1000))

    def call(*args):
        path = tmp_path / f"out{next(counter)}.json"
        res = cli_runner.invoke(cli_app, [*(str(a) for a in args), "--json", str(path)])
        assert res.exit_code == 0, res.output
        return json.loads(path.read_text())

    return call


def _problem(path, dtype=torch.float32):
    p = load_problem(path, device="cpu", dtype=dtype)
    p.model.eval()
    return p, p.batches("train", 16, samples=32)


def _hand_loss(model: nn.Module, batches) -> float:
    """Mean token cross-entropy over every token of ``batches``, written out."""
    total, tokens = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            assert x.dtype == torch.int64 and torch.equal(x[:, 1:], y[:, :-1])
            logits = model(x)
            total += float(F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction="sum"))
            tokens += y.numel()
    return total / tokens


def _dense_block_hessian(model: nn.Module, batches, pattern: str) -> torch.Tensor:
    """Dense float64 Hessian of the mean token loss w.r.t. the parameters matching ``pattern``."""
    import re

    model = model.double().eval()
    names = [n for n, _ in model.named_parameters() if re.search(pattern, n)]
    fixed = {n: p.detach() for n, p in model.named_parameters()}
    shapes = [fixed[n].shape for n in names]
    flat0 = torch.cat([fixed[n].reshape(-1) for n in names])
    tokens = sum(y.numel() for _, y in batches)

    def loss(flat):
        params, i = dict(fixed), 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i : i + s.numel()].reshape(s)
            i += s.numel()
        total = 0.0
        for x, y in batches:
            logits = functional_call(model, params, (x,))
            total = total + F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction="sum")
        return total / tokens

    return torch.autograd.functional.hessian(loss, flat0)


def test_info_counts_the_gpt_parameters(run, jcli):
    info = jcli("info", run / "final.pt")
    net = gpt((16,), 256, **KW)
    assert info["parameters"] == sum(p.numel() for p in net.parameters())
    assert info["model"]["name"] == "gpt" and info["data"]["spec"] == DATA


def test_slice_1d_and_2d_centre_and_corner_are_the_hand_loss(run, jcli, tmp_path):
    from sharpscope.landscape import load_directions

    ck = run / "final.pt"
    p, batches = _problem(ck)
    centre = _hand_loss(p.model, batches)
    s1 = jcli("slice", ck, "--dims", "1", "--range", "-1:1:3", *FAST, "--out", tmp_path / "s1")
    assert s1["center_loss"] == pytest.approx(centre, rel=1e-5)
    dirs = tmp_path / "d.pt"
    s2 = jcli("slice", ck, "--dims", "2", "--range", "-1:1:3", *FAST, "--out", tmp_path / "s2")
    assert s2["center_loss"] == pytest.approx(centre, rel=1e-5)
    jcli(
        "slice",
        ck,
        "--dims",
        "2",
        "--range",
        "0:1:2",
        *FAST,
        "--out",
        tmp_path / "s3",
        "--save-directions",
        dirs,
    )
    surf = np.load(tmp_path / "s3" / "surface.npz")
    d1, d2 = load_directions(dirs).resolve(p.model)
    corner = {n: w.detach() + d1[n] + d2[n] for n, w in p.model.named_parameters()}
    moved = gpt((16,), 256, **KW).eval()
    moved.load_state_dict(corner)
    assert float(surf["loss"][1, 1]) == pytest.approx(_hand_loss(moved, batches), rel=1e-5)
    assert float(surf["loss"][0, 0]) == pytest.approx(centre, rel=1e-5)


def test_interpolate_ends_are_the_two_checkpoints_losses(run, jcli, tmp_path):
    a, b = run / "epoch_001.pt", run / "final.pt"
    res = jcli("interpolate", a, b, "--range", "0:1:3", *FAST, "--out", tmp_path / "i")
    for key, path in (("loss_a", a), ("loss_b", b)):
        p, batches = _problem(path)
        assert res[key] == pytest.approx(_hand_loss(p.model, batches), rel=1e-5)


def test_eigen_is_the_library_lanczos_on_the_same_batches(run, jcli):
    ck = run / "final.pt"
    res = jcli("eigen", ck, "-k", "2", *FAST)
    p, batches = _problem(ck)
    lib = hessian_eigenvalues(p.model, p.loss_fn, batches, k=2)
    np.testing.assert_allclose(res["eigenvalues"], lib.eigenvalues, rtol=2e-3)
    assert res["parameters"] == sum(q.numel() for q in p.model.parameters())


def test_eigen_and_lambda_max_on_a_block_match_a_dense_float64_hessian(run, jcli):
    ck = run / "final.pt"
    p, batches = _problem(ck, dtype=torch.float64)
    H = _dense_block_hessian(p.model, batches, BLOCK)
    assert H.shape == (32, 32) and torch.allclose(H, H.T, atol=1e-10)
    evals = torch.linalg.eigvalsh(H).flip(0)
    res = jcli("eigen", ck, "-k", "2", "--params", BLOCK, "--tol", "1e-4", *FAST)
    np.testing.assert_allclose(res["eigenvalues"], evals[:2].numpy(), rtol=1e-3)
    sh = jcli("sharpness", ck, "--measure", "lambda_max", "--params", BLOCK, "--rho", "0.1", *FAST)
    assert sh["sharpness"] == pytest.approx(float(evals[0]), rel=1e-3)
    assert sh["second_order_worst"] == pytest.approx(0.01 * float(evals[0]) / 2, rel=1e-3)


def test_trace_and_esd_on_a_block_agree_with_the_dense_trace(run, jcli):
    ck = run / "final.pt"
    p, batches = _problem(ck, dtype=torch.float64)
    exact = float(torch.trace(_dense_block_hessian(p.model, batches, BLOCK)))
    tr = jcli("trace", ck, "--params", BLOCK, "--probes", "200", *FAST)
    assert abs(tr["trace"] - exact) < 5 * tr["stderr"] + 1e-3 * abs(exact)
    assert tr["stderr"] < 0.5 * abs(exact)
    esd = jcli("esd", ck, "--params", BLOCK, *FAST)
    # 32 parameters: Lanczos exhausts the block, so the spectrum's ends are exact
    evals = torch.linalg.eigvalsh(_dense_block_hessian(p.model, batches, BLOCK))
    assert esd["lambda_max"] == pytest.approx(float(evals[-1]), rel=1e-3)
    assert esd["lambda_min"] == pytest.approx(float(evals[0]), rel=1e-3, abs=1e-3)
    mass = np.trapezoid(esd["density"], esd["grid"])
    assert mass == pytest.approx(1.0, abs=0.02)


def test_sharpness_worst_and_average_start_from_the_hand_loss(run, jcli):
    ck = run / "final.pt"
    p, batches = _problem(ck)
    centre = _hand_loss(p.model, batches)
    worst = jcli("sharpness", ck, "--measure", "worst", "--steps", "5", "--restarts", "0", *FAST)
    assert worst["loss"] == pytest.approx(centre, rel=1e-5)
    assert worst["sharpness"] > 0 and worst["delta_norm"] <= 0.05 * (1 + 1e-5)
    avg = jcli("sharpness", ck, "--measure", "average", "--draws", "8", *FAST)
    assert avg["loss"] == pytest.approx(centre, rel=1e-5)
    assert math.isfinite(avg["sharpness"])


def test_plane_trajectory_and_compare_run_and_agree(run, jcli, tmp_path):
    ck = run / "final.pt"
    p, batches = _problem(ck)
    centre = _hand_loss(p.model, batches)
    plane = jcli(
        "plane",
        ck,
        "--range",
        "-1:1:3",
        "--restarts",
        "0",
        "--worst-steps",
        "3",
        *FAST,
        "--out",
        tmp_path / "pl",
    )
    assert plane["loss_theta0"] == pytest.approx(centre, rel=1e-5)
    traj = jcli("trajectory", run, "--points", "3", *FAST, "--out", tmp_path / "tr")
    assert traj["epochs"] == [0, 1, 2] and traj["nonfinite_points"] == 0
    np.testing.assert_allclose(traj["path"][-1], [0.0, 0.0], atol=1e-6)  # the final weights
    cmp = jcli(
        "compare",
        run / "epoch_001.pt",
        ck,
        "--probes",
        "metrics,eigen",
        "--top-k",
        "1",
        *FAST,
        "--out",
        tmp_path / "cmp",
    )
    rows = {r["label"]: r["values"] for r in cmp["tables"]["performance"]["rows"]}
    assert rows[cmp["labels"][1]]["train_loss"] == pytest.approx(centre, rel=1e-5)
    flat = {r["label"]: r["values"] for r in cmp["tables"]["flatness"]["rows"]}
    lib = hessian_eigenvalues(p.model, p.loss_fn, batches, k=1).eigenvalues[0]
    assert flat[cmp["labels"][1]]["lambda_max"] == pytest.approx(float(lib), rel=2e-3)


# ------------------------------------------------------------------ filter normalisation
@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_filter_normalisation_of_every_gpt_parameter_kind(ignore):
    torch.manual_seed(0)
    net = gpt((16,), 256, **KW)
    with torch.no_grad():  # LayerNorms away from the identity, so "= w" is not "= 1"
        for q in net.parameters():
            if q.ndim == 1:
                q.add_(0.1 * torch.randn_like(q))
    (d,) = random_directions(net, count=1, seed=3, norm="filter", ignore=ignore).resolve(net)
    w = model_params(net)
    assert set(d) == set(w)
    kinds = {
        "tok.weight": 256,
        "pos.weight": 16,
        "blocks.0.attn.q.weight": 16,
        "blocks.0.attn.k.weight": 16,
        "blocks.0.attn.v.weight": 16,
        "blocks.0.attn.proj.weight": 16,
        "blocks.0.fc.weight": 64,
        "blocks.0.out.weight": 16,
    }
    for n, rows in kinds.items():  # one filter per token / position / output unit
        assert d[n].shape[0] == rows
        torch.testing.assert_close(d[n].norm(dim=1), w[n].norm(dim=1), rtol=1e-5, atol=1e-7)
        assert not torch.allclose(d[n], w[n])  # a random direction, not the weights
    one_d = [n for n in w if w[n].ndim == 1]
    assert {"ln_f.weight", "ln_f.bias", "blocks.0.ln1.weight", "blocks.0.attn.q.bias"} <= set(one_d)
    for n in one_d:  # LayerNorm weights/biases and biases: as BatchNorm's (Li et al.)
        assert torch.equal(d[n], torch.zeros_like(w[n]) if ignore == "biasbn" else w[n])


def test_a_tied_head_is_one_parameter_and_normalised_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, x):
            return self.head(self.emb(x))

    net = Tied()
    w = model_params(net)
    assert list(w) == ["emb.weight"]
    # seed 7: the autouse torch.manual_seed(0) drew the embedding from the very numbers
    # that seed 0 would draw for the direction (d = w passes any row rule)
    (d,) = random_directions(net, count=1, seed=7).resolve(net)
    assert list(d) == ["emb.weight"]
    assert not torch.allclose(d["emb.weight"], w["emb.weight"])
    torch.testing.assert_close(d["emb.weight"].norm(dim=1), w["emb.weight"].norm(dim=1))
    # the GPT ties its head without a head parameter: the embedding is listed once
    assert sum(n.startswith("tok.") for n in model_params(gpt((16,), 256, **KW))) == 1
