"""The demo: train SGD, SAM and XSAM on the bundled digits data, several seeds each, and
compare their minima as groups (is SAM really flatter, over seeds?).

:func:`run_demo` is what ``sharpscope demo`` runs and what regenerates the README
figures (``sharpscope demo --figures-dir figures``). Every step resumes: finished
trainings are reused, unfinished ones continue from ``last.pt``, and the comparison
reuses its cached probes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .errors import SharpscopeError
from .problem.checkpoint import load_checkpoint
from .runtime.device import resolve_device
from .runtime.files import atomic_write_bytes, check_writable, folder_lock

__all__ = ["DEMO_OPTIMIZERS", "DEMO_TASKS", "demo_settings", "run_demo", "README_FIGURES"]

DEMO_OPTIMIZERS = ("sgd", "sam", "xsam")
DEMO_TASKS = ("image", "text")
# the text demo's groups: AdamW alone, and SAM and XSAM over an AdamW base
TEXT_OPTIMIZERS = {"adamw": "sgd", "sam": "sam", "xsam": "xsam"}

# figures copied to --figures-dir (the README shows these)
README_FIGURES = (
    "measures.png",
    "slices_1d.png",
    "slices_2d.png",
    "density.png",
    "planes.png",
    "lambda_max_over_training.png",
    "interpolation.png",
    "groups.png",
    "gap_correlation.png",
)


def _text_settings(quick: bool) -> dict[str, Any]:
    """The text demo: a small Transformer on the bundled corpus, AdamW, warmup + cosine."""
    train = {
        "model": "gpt",
        "model_kwargs": {"width": 32, "depth": 2, "heads": 4},
        "data": "text:context=32,windows=512,test_windows=256",
        "loss": "sequence_cross_entropy",
        "epochs": 4,
        "batch_size": 32,
        "lr": 3e-3,
        "momentum": 0.9,
        "weight_decay": 0.01,
        "base": "adamw",
        "schedule": "cosine",
        "warmup_epochs": 1,
        "rho": 0.05,
        "seeds": [0, 1],
        "save_every": 1,
    }
    comp = {
        "samples": 256,
        "batch_size": 128,
        "top_k": 3,
        "rho": 0.05,
        "range1d": (-1.0, 1.0, 21),
        "range2d": (-1.0, 1.0, 11),
        "directions_count": 4,
        "trace_probes": 30,
        "density_runs": 1,
        "density_iters": 30,
        "worst_steps": 10,
        "worst_restarts": 1,
        "average_draws": 16,
        "plane_range": (-0.25, 0.25, 11),
        "interp_range": (-0.5, 1.5, 21),
        "seed": 0,
    }
    if quick:
        train.update(
            model_kwargs={"width": 16, "depth": 1, "heads": 2},
            data="text:context=16,windows=64,test_windows=32",
            epochs=2,
        )
        comp.update(
            samples=32,
            batch_size=32,
            top_k=2,
            range1d=(-1.0, 1.0, 5),
            range2d=(-1.0, 1.0, 3),
            directions_count=2,
            trace_probes=4,
            density_iters=6,
            worst_steps=2,
            worst_restarts=0,
            average_draws=2,
            plane_range=(-0.1, 0.1, 3),
            interp_range=(-0.5, 1.5, 5),
        )
    return {"train": train, "compare": comp}


def demo_settings(quick: bool = False, task: str = "image") -> dict[str, Any]:
    """The training and comparison settings of the demo (``quick``: CI-sized, seconds;
    ``task``: ``image`` (digits, MLP) or ``text`` (the bundled corpus, a small GPT))."""
    if task not in DEMO_TASKS:
        raise SharpscopeError(f"unknown demo task {task!r}: choose from {', '.join(DEMO_TASKS)}")
    if task == "text":
        return _text_settings(quick)
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
        "seeds": [0, 1, 2],
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
        train.update(epochs=2, save_every=1, seeds=[0, 1])
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


def _seed_status(run: Path, optimizer: str, t: dict[str, Any], seed: int) -> str:
    """``reused``, ``resumed`` or ``trained`` for one seed's folder; refuses a different run."""
    final, last = run / "final.pt", run / "last.pt"
    if final.is_file():
        ck = load_checkpoint(final)
        hp = (ck.optimizer or {}).get("hparams", {})
        same = (
            (ck.optimizer or {}).get("name") == optimizer
            and len(ck.metrics) == t["epochs"]
            and ck.seed == seed
            and hp.get("lr") == t["lr"]
            and hp.get("base", "sgd") == t.get("base", "sgd")
            and (ck.model or {}).get("name") == t["model"]
            and (optimizer == "sgd" or hp.get("rho") == t["rho"])
        )
        if not same:
            raise SharpscopeError(
                f"{run} holds a different run ({(ck.optimizer or {}).get('name')} on "
                f"{(ck.model or {}).get('name')}, {len(ck.metrics)} epochs): use --force to "
                "retrain or another --out"
            )
        return "reused"
    return "resumed" if last.is_file() else "trained"


def _old_layout(folder: Path) -> list[Path]:
    """The files of a single run directly in ``folder`` (the demo before seeds)."""
    names = ("final.pt", "last.pt", "metrics.jsonl")
    return [folder / n for n in names if (folder / n).is_file()] + sorted(folder.glob("epoch_*.pt"))


_TRAIN_KEYS = ("model", "data", "epochs", "batch_size", "lr", "momentum", "weight_decay")
_TRAIN_KEYS += ("schedule", "rho", "save_every", "model_kwargs", "loss", "base", "warmup_epochs")


def _group_status(folder: Path, optimizer: str, t: dict[str, Any], *, force: bool) -> list[str]:
    """Each seed's ``reused``/``resumed``/``trained``; refuses a folder holding another run
    (checked for every group before any training)."""
    from .training import seed_folder

    if _old_layout(folder) and not force:
        raise SharpscopeError(
            f"{folder} holds a different run (a single run, not seed folders): use --force to "
            "retrain or another --out"
        )
    return [
        "trained" if force else _seed_status(seed_folder(folder, k), optimizer, t, k)
        for k in t["seeds"]
    ]


def _train_group(
    folder: Path,
    optimizer: str,
    t: dict[str, Any],
    status: list[str],
    *,
    device: str,
    quiet: bool,
    force: bool,
) -> str:
    """Train every seed of one optimizer into ``folder/seed{k}`` (resuming, reusing)."""
    from .training import train_seeds

    for path in _old_layout(folder):  # --force: the old single run makes way for the seeds
        path.unlink()
    kwargs = {k: t[k] for k in _TRAIN_KEYS if k in t}
    train_seeds(
        seeds=list(t["seeds"]),
        out=folder,
        optimizer=optimizer,
        resume=not force,
        force=force,
        device=device,
        quiet=quiet,
        **kwargs,
    )
    words = sorted(set(status), key=status.index)
    if len(words) == 1:
        return words[0]
    return ", ".join(f"{w} {status.count(w)}" for w in words)


def run_demo(
    *,
    out: str | Path = "runs/demo",
    task: str = "image",
    quick: bool = False,
    device: str = "auto",
    quiet: bool = False,
    figures_dir: str | Path | None = None,
    force: bool = False,
    formats: str | tuple[str, ...] = ("png", "pdf"),
    color_scale: str = "rise",
) -> Any:
    """Train ``sgd``, ``sam`` and ``xsam`` on digits (MLP), several seeds each, and compare
    their minima as groups (a verdict per pair of optimizers and measure). With
    ``task="text"``: ``adamw``, ``sam`` and ``xsam`` (AdamW base, warmup + cosine) train
    the small Transformer (``gpt``) on the bundled text corpus; the report is the same.

    Args:
        out: the demo folder: ``out/sgd/seed0``, ``out/sgd/seed1``, ... (run folders with
            epoch checkpoints, one per seed) and ``out/report`` (the comparison).
        quick: CI-sized settings (2 seeds, 2 epochs, tiny probes): seconds, not minutes.
        device: ``auto``, ``cpu``, ``cuda``...
        quiet: no progress bars.
        figures_dir: copy the README figures (:data:`README_FIGURES`) here.
        force: retrain and recompute everything.
        task: ``image`` or ``text`` (see :func:`demo_settings`).
        formats, color_scale: the report's figures (:class:`~sharpscope.report.FigureOptions`).

    Returns:
        the :class:`~sharpscope.compare.ComparisonReport`; ``report.settings["demo"]``
        records what was trained or reused.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SharpscopeError(f"--out {out} is a file, not a folder")
    # every input is checked before anything is trained or replaced (--force retrains)
    resolve_device(device)
    settings = demo_settings(quick, task)
    from .report.format import FigureOptions

    FigureOptions(formats=formats, color_scale=color_scale)  # checked before any training
    for name in (*_groups(task), "report"):
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
                out,
                settings,
                task=task,
                quick=quick,
                device=device,
                quiet=quiet,
                figures_dir=figures_dir,
                force=force,
                figures={"formats": formats, "color_scale": color_scale},
            )
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only succeeds when a failed call wrote nothing


def _groups(task: str) -> dict[str, str]:
    """The demo's groups: folder name -> the optimizer it trains with."""
    return TEXT_OPTIMIZERS if task == "text" else {name: name for name in DEMO_OPTIMIZERS}


def _run_demo_locked(
    out: Path,
    settings: dict[str, Any],
    *,
    task: str,
    quick: bool,
    device: str,
    quiet: bool,
    figures_dir: str | Path | None,
    force: bool,
    figures: dict[str, Any],
) -> Any:
    from .compare import compare

    t, groups = settings["train"], _groups(task)
    checked = {name: _group_status(out / name, opt, t, force=force) for name, opt in groups.items()}
    status = {}
    for name, optimizer in groups.items():
        status[name] = _train_group(
            out / name, optimizer, t, checked[name], device=device, quiet=quiet, force=force
        )
    report = compare(
        {name: [out / name / f"seed{k}" for k in t["seeds"]] for name in groups},
        out=out / "report",
        device=device,
        quiet=quiet,
        force=force,
        **settings["compare"],
        **figures,
    )
    report.settings["demo"] = {"quick": quick, "task": task, "training": t, "runs": status}
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
