"""What each rank of the 2-process Gloo runs in ``test_distributed.py`` (one spawn for all cases).

Every scenario is also computed in the test process without a process group; the
test compares. Rank 1 gets its own output folders, which must stay absent: only rank
0 writes files.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SIZES = (7, 12, 5, 9)  # four batches of unequal size: two per rank
DATA = "synthetic:train=15,test=6,classes=3,shape=1x2x3,seed=0"
TRAIN = dict(
    model="mlp",
    model_kwargs={"hidden": [5]},
    data=DATA,
    epochs=1,
    batch_size=15,
    lr=0.2,
    momentum=0.0,
    weight_decay=0.0,
    schedule="constant",
    seed=3,
    device="cpu",
    quiet=True,
)
TRAIN_CASES = {
    "sgd": dict(optimizer="sgd"),
    "sam-global": dict(optimizer="sam", rho=0.5, perturbation="global"),
    "sam-per-rank": dict(optimizer="sam", rho=0.5, perturbation="per-rank"),
    "xsam-global": dict(optimizer="xsam", rho=0.5, perturbation="global"),
    "xsam-per-rank": dict(optimizer="xsam", rho=0.5, perturbation="per-rank"),
}
GRID_AXES = (np.linspace(-1.0, 1.0, 5), np.linspace(-0.5, 0.5, 4))


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y)


def problem(bn: bool = True) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A float64 MLP (BatchNorm with random statistics) and four batches."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(4, 6)]
    if bn:
        layers.append(nn.BatchNorm1d(6))
    model = nn.Sequential(*layers, nn.Tanh(), nn.Linear(6, 3)).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    batches = [
        (
            torch.randn(n, 4, generator=g, dtype=torch.float64),
            torch.randint(0, 3, (n,), generator=g),
        )
        for n in SIZES
    ]
    return model, batches


def directions(model: nn.Module) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in model.named_parameters()}
        for _ in range(2)
    ]


def probes() -> dict[str, Any]:
    """The Hessian and grid numbers (the same calls with and without a process group)."""
    from sharpscope.hessian import hessian_eigenvalues, hessian_trace

    model, batches = problem()
    out: dict[str, Any] = {}
    for mode in ("eval", "train"):
        res = hessian_eigenvalues(
            model, loss_fn, batches, k=3, mode=mode, tol=1e-9, backend="forward", seed=0
        )
        out[f"eigen-{mode}"] = (res.eigenvalues, res.samples)
    res = hessian_eigenvalues(
        model, loss_fn, batches[:2], k=2, tol=1e-9, backend="double", seed=1
    )  # one batch per rank: the cached-graph path
    out["eigen-double"] = (res.eigenvalues, res.samples)
    tr = hessian_trace(model, loss_fn, batches, probes=12, seed=5, backend="forward")
    out["trace"] = (tr.trace, tr.trace_h2, list(tr.samples))
    return out


def _error(fn: Any) -> str | None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the message is what the test checks
        return f"{type(exc).__name__}: {exc}"
    return None


def run(rank: int, world: int, port: int, folder: str) -> None:
    """The body of one rank (``torch.multiprocessing.spawn`` target)."""
    os.environ.update(
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    out = Path(folder)
    mine = out if rank == 0 else out / "rank1"  # rank 1's folders must stay absent
    result: dict[str, Any] = {}
    try:
        from sharpscope.hessian import HessianOperator
        from sharpscope.landscape.grid import evaluate_grid
        from sharpscope.runtime import distributed
        from sharpscope.train import train

        ctx = distributed.init_distributed(device="cpu")
        result["ctx"] = (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main)
        result["probes"] = probes()

        model, batches = problem()
        surface = evaluate_grid(
            model, loss_fn, batches, directions(model), GRID_AXES, out_dir=mine / "grid", quiet=True
        )
        result["grid"] = (surface.loss, surface.accuracy, surface.done)
        resumed = evaluate_grid(
            model, loss_fn, batches, directions(model), GRID_AXES, out_dir=mine / "partial"
        )
        result["grid-resumed"] = resumed.loss

        for name, kw in TRAIN_CASES.items():
            train(**TRAIN, **kw, out=mine / name)
        train(**{**TRAIN, "epochs": 3, "batch_size": 4}, optimizer="sgd", out=mine / "full")
        train(**{**TRAIN, "epochs": 2, "batch_size": 4}, optimizer="sgd", out=mine / "resumed")
        train(
            **{**TRAIN, "epochs": 3, "batch_size": 4},
            optimizer="sgd",
            out=mine / "resumed",
            resume=True,
        )

        # misconfigurations: every rank must raise the same one-line error
        result["error-batches"] = _error(lambda: HessianOperator(model, loss_fn, batches[:1]))
        result["error-train"] = _error(
            lambda: train(**{**TRAIN, "batch_size": 1}, optimizer="sgd", out=mine / "bad")
        )
        result["error-resume"] = _error(
            lambda: train(**TRAIN, optimizer="sgd", out=mine / "nothing", resume=True)
        )
        if rank == 1:
            import sharpscope._version as version

            version.__version__ = "0.0.0+other"
        result["error-versions"] = _error(lambda: distributed._check_versions(ctx))
        result["rank1-wrote"] = sorted(str(p) for p in (out / "rank1").rglob("*"))
        distributed.destroy()
    except BaseException:  # noqa: BLE001 - reported to the test through the result file
        result["crash"] = traceback.format_exc()
    torch.save(result, out / f"result{rank}.pt")
