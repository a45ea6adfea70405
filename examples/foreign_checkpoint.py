"""Probing a checkpoint sharpscope did not write: a plain state dict, your model, your data,
your loss, all named by import path (``--model/--data/--loss pkg.mod:name``).

This file is both the user's module (``make_net``, ``make_data``, ``smooth_ce``) and a
script: run as ``python examples/foreign_checkpoint.py`` it saves a plain state dict, runs
``sharpscope info | eigen | trace | slice`` on it exactly as the README shows, and checks
every number against a hand computation (the loss) or the dense float64 Hessian.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_net(width: int = 6, num_classes: int = 3) -> nn.Module:
    """The user's network (given ``num_classes`` by sharpscope because it accepts it)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, num_classes))


def make_data(n: int = 96, seed: int = 0) -> tuple:
    """Three Gaussian blobs in the plane: ``(train, test)``, each an ``(x, y)`` pair."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]])
    x = centres[y] + torch.randn(n, 2, generator=g)
    return (x, y), (x[: n // 4], y[: n // 4])


def smooth_ce(output: torch.Tensor, batch: tuple) -> torch.Tensor:
    """The user's loss, ``fn(output, batch)``: the batch's mean label-smoothed cross-entropy."""
    return F.cross_entropy(output, batch[1], label_smoothing=0.1)


OPTS = ["--model", "foreign_checkpoint:make_net", "--data", "foreign_checkpoint:make_data?n=96",
        "--loss", "foreign_checkpoint:smooth_ce"]  # fmt: skip


def main() -> None:
    import json
    import sys
    from pathlib import Path

    from sharpscope_cli.app import app
    from typer.testing import CliRunner

    from sharpscope.reference import dense_hessian
    from sharpscope.runtime.batches import batch_loss_fn

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # as `cd examples` would
    torch.set_num_threads(1)
    torch.save(make_net().state_dict(), "foreign.pt")  # a plain state dict, no metadata

    def run(*args: str) -> dict:
        r = CliRunner().invoke(app, [*args, *OPTS, "--json", "-", "-q"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    net = make_net().double().eval()
    (x, y), _ = make_data(96)
    batch = (x.double(), y)
    with torch.no_grad():
        hand = float(smooth_ce(net(batch[0]), batch))
    info = run("info", "foreign.pt")
    assert abs(info["train_loss"] - hand) < 1e-6, (info["train_loss"], hand)
    assert info["loss"] == "foreign_checkpoint:smooth_ce"
    assert info["normalization"]["mode"] == "none"  # a plain state dict: the data as stored

    H = torch.linalg.eigvalsh(dense_hessian(net, batch_loss_fn(smooth_ce), [batch]))
    eig = run("eigen", "foreign.pt", "-k", "2", "--samples", "0", "--tol", "1e-6",
              "--save-vectors", "vec.pt")  # fmt: skip
    for got, want in zip(eig["eigenvalues"], H.flip(0)[:2].tolist(), strict=True):
        assert abs(got - want) < 1e-4 * max(1.0, abs(want)), (got, want)

    tr = run("trace", "foreign.pt", "--method", "xtrace", "--probes", "80", "--samples", "0")
    assert abs(tr["trace"] - float(H.sum())) < 1e-3 * max(1.0, abs(float(H.sum()))), tr["trace"]

    sl = run("slice", "foreign.pt", "--dims", "1", "--range", "-1:1:5", "--eigvecs", "vec.pt",
             "--out", "slice-foreign")  # fmt: skip
    assert abs(sl["center_loss"] - hand) < 1e-6
    assert sl["directions"]["source_fingerprint"].startswith("sha256:")
    print(f"loss {hand:.6f}, top eigenvalues {eig['eigenvalues']}, trace {tr['trace']:.6f}")


if __name__ == "__main__":
    main()
