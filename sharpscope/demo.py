"""The demo: train SGD, SAM and XSAM on the bundled digits data and compare their minima.

:func:`run_demo` is what ``sharpscope demo`` runs and what regenerates the README
figures (``sharpscope demo --figures-dir figures``). Every step resumes: finished
trainings are reused, unfinished ones continue from ``last.pt``, and the comparison
reuses its cached probes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint
from .errors import SharpscopeError
from .utils import atomic_write_bytes, check_writable, folder_lock, resolve_device

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
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SharpscopeError(f"--out {out} is a file, not a folder")
    # every input is checked before anything is trained or replaced (--force retrains)
    resolve_device(device)
    for name in (*DEMO_OPTIMIZERS, "report"):
        if (out / name).exists() and not (out / name).is_dir():
            raise SharpscopeError(f"{out / name} is a file; the demo needs a folder there")
    check_writable(out / "report" / "summary.json", what="report")
    if figures_dir is not None:
        dest = Path(figures_dir).expanduser()
        if dest.exists() and not dest.is_dir():
            raise SharpscopeError(f"--figures-dir {dest} is a file, not a folder")
        check_writable(dest / README_FIGURES[0], what="figures")
    created = not out.exists()
    try:
        # one demo per folder at a time: two would train into the same run folders
        with folder_lock(out, command="demo"):
            return _run_demo_locked(
                out, quick=quick, device=device, quiet=quiet, figures_dir=figures_dir, force=force
            )
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only succeeds when a failed call wrote nothing


def _run_demo_locked(
    out: Path,
    *,
    quick: bool,
    device: str,
    quiet: bool,
    figures_dir: str | Path | None,
    force: bool,
) -> Any:
    from .compare import compare

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
        copied: list[str] = []
        for name in README_FIGURES:
            src = out / "report" / "figures" / name
            if src.is_file():
                atomic_write_bytes(dest / name, src.read_bytes())  # never a half-copied figure
                copied.append(str(dest / name))
        report.settings["demo"]["figures"] = copied
    return report
