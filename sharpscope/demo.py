"""The demo: train SGD, SAM and XSAM on the bundled digits data and compare their minima.

:func:`run_demo` is what ``sharpscope demo`` runs and what regenerates the README
figures (``sharpscope demo --figures-dir figures``). Every step resumes: finished
trainings are reused, unfinished ones continue from ``last.pt``, and the comparison
reuses its cached probes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint
from .errors import SharpscopeError

__all__ = ["DEMO_OPTIMIZERS", "demo_settings", "run_demo", "README_FIGURES"]

DEMO_OPTIMIZERS = ("sgd", "sam", "xsam")

# figures copied to --figures-dir (the README shows these)
README_FIGURES = (
    "measures.png",
    "slices_1d.png",
    "slices_2d.png",
    "density.png",
    "planes.png",
    "lambda_max_over_training.png",
    "interpolation.png",
)


def demo_settings(quick: bool = False) -> dict[str, Any]:
    """The training and comparison settings of the demo (``quick``: CI-sized, seconds)."""
    train = {
        "model": "mlp",
        "data": "digits",
        "epochs": 20,
        "batch_size": 64,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "rho": 0.05,
        "seed": 0,
        "save_every": 1,
    }
    comp = {
        "samples": None,
        "top_k": 5,
        "rho": 0.05,
        "range1d": (-1.0, 1.0, 41),
        "range2d": (-1.0, 1.0, 25),
        "directions_count": 10,
        "trace_probes": 100,
        "density_runs": 3,
        "density_iters": 60,
        "worst_steps": 20,
        "worst_restarts": 2,
        "average_draws": 64,
        "plane_range": (-0.25, 0.25, 21),
        "interp_range": (-0.5, 1.5, 41),
        "seed": 0,
    }
    if quick:
        train.update(epochs=2, save_every=1)
        comp.update(
            samples=128,
            top_k=2,
            range1d=(-1.0, 1.0, 7),
            range2d=(-1.0, 1.0, 5),
            directions_count=2,
            trace_probes=6,
            density_runs=1,
            density_iters=8,
            worst_steps=2,
            worst_restarts=0,
            average_draws=4,
            plane_range=(-0.2, 0.2, 5),
            interp_range=(-0.5, 1.5, 5),
        )
    return {"train": train, "compare": comp}


def _train_run(
    run: Path, optimizer: str, t: dict[str, Any], *, device: str, quiet: bool, force: bool
) -> str:
    """Train one run unless a matching finished one is there; return what happened."""
    from .train import train

    kwargs = dict(
        model=t["model"],
        data=t["data"],
        optimizer=optimizer,
        out=run,
        epochs=t["epochs"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        momentum=t["momentum"],
        weight_decay=t["weight_decay"],
        schedule=t["schedule"],
        rho=t["rho"],
        seed=t["seed"],
        save_every=t["save_every"],
        device=device,
        quiet=quiet,
    )
    final, last = run / "final.pt", run / "last.pt"
    if force:
        train(**kwargs, force=True)
        return "trained"
    if final.is_file():
        ck = load_checkpoint(final)
        hp = (ck.optimizer or {}).get("hparams", {})
        same = (
            (ck.optimizer or {}).get("name") == optimizer
            and len(ck.metrics) == t["epochs"]
            and ck.seed == t["seed"]
            and hp.get("lr") == t["lr"]
            and (optimizer == "sgd" or hp.get("rho") == t["rho"])
        )
        if not same:
            raise SharpscopeError(
                f"{run} holds a different run ({(ck.optimizer or {}).get('name')}, "
                f"{len(ck.metrics)} epochs): use --force to retrain or another --out"
            )
        return "reused"
    if last.is_file():
        train(**kwargs, resume=True)
        return "resumed"
    train(**kwargs)
    return "trained"


def run_demo(
    *,
    out: str | Path = "runs/demo",
    quick: bool = False,
    device: str = "auto",
    quiet: bool = False,
    figures_dir: str | Path | None = None,
    force: bool = False,
) -> Any:
    """Train ``sgd``, ``sam`` and ``xsam`` on digits (MLP) and compare their minima.

    Args:
        out: the demo folder: ``out/sgd``, ``out/sam``, ``out/xsam`` (run folders with
            epoch checkpoints) and ``out/report`` (the comparison).
        quick: CI-sized settings (2 epochs, tiny probes): seconds instead of minutes.
        device: ``auto``, ``cpu``, ``cuda``...
        quiet: no progress bars.
        figures_dir: copy the README figures (:data:`README_FIGURES`) here.
        force: retrain and recompute everything.

    Returns:
        the :class:`~sharpscope.compare.ComparisonReport`; ``report.settings["demo"]``
        records what was trained or reused.
    """
    from .compare import compare

    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SharpscopeError(f"--out {out} is a file, not a folder")
    settings = demo_settings(quick)
    t = settings["train"]
    status = {}
    for name in DEMO_OPTIMIZERS:
        status[name] = _train_run(out / name, name, t, device=device, quiet=quiet, force=force)
    report = compare(
        [out / name for name in DEMO_OPTIMIZERS],
        out=out / "report",
        device=device,
        quiet=quiet,
        force=force,
        **settings["compare"],
    )
    report.settings["demo"] = {"quick": quick, "training": t, "runs": status}
    if figures_dir is not None:
        dest = Path(figures_dir).expanduser()
        dest.mkdir(parents=True, exist_ok=True)
        copied = []
        for name in README_FIGURES:
            src = out / "report" / "figures" / name
            if src.is_file():
                shutil.copyfile(src, dest / name)
                copied.append(str(dest / name))
        report.settings["demo"]["figures"] = copied
    return report
