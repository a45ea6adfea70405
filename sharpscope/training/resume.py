"""A run folder's files: RNG state as plain data, the settings check of a resume, what
``--force`` replaces (moved aside, restored on failure) and ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SharpscopeError
from ..problem.checkpoint import load_checkpoint
from ..runtime.files import atomic_write_text, to_jsonable

__all__ = [
    "RUN_DIRS",
    "RUN_FILES",
    "inspect_run_folder",
    "move_run_aside",
    "restore_run",
    "rng_state",
    "set_rng_state",
    "settings_diff",
    "to_cpu",
    "write_metrics",
]

RUN_FILES = ("last.pt", "final.pt", "metrics.jsonl")
RUN_DIRS = ("probes",)  # derived from the run's checkpoints: replaced with them


# ----------------------------------------------------------------------------- RNG state
def rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    """Every RNG a run draws from (torch, the shuffling generator, Python, NumPy, CUDA)."""
    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    """Undo :func:`rng_state`: every RNG continues where the saved run stopped."""
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_cpu(obj: Any) -> Any:
    """A copy of ``obj`` (nested dicts, lists, tuples) with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


# ----------------------------------------------------------------------------- resume checks
def settings_diff(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``"key SAVED (saved) vs NOW (now)"`` for every setting that differs."""

    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict) and k in ("hparams", "model", "data"):
                out.update(flat(v, "" if k == "hparams" else f"{k}."))
            else:
                out[prefix + k] = list(v) if isinstance(v, tuple) else v
        return out

    a, b = flat(saved), flat(now)
    return [
        f"{k} {a.get(k)!r} (saved) vs {b.get(k)!r} (now)"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def inspect_run_folder(
    out: Path, *, resume: bool, force: bool, epochs: int
) -> dict[str, Any] | None:
    """Refuse to clobber a run; with ``resume`` the saved ``{"resume", "metrics"}`` state."""
    last_path, final_path = out / "last.pt", out / "final.pt"
    if resume:
        if not last_path.exists():
            raise SharpscopeError(
                f"nothing to resume in {out}: no last.pt (start without --resume)"
            )
        ck = load_checkpoint(last_path)
        if not ck.resume:
            raise SharpscopeError(f"{last_path} holds no resume state; start again with --force")
        done = int(ck.resume["epoch"])
        if final_path.exists() and done >= epochs:
            raise SharpscopeError(
                f"the run in {out} is already finished ({done} epochs): nothing to resume; "
                "raise --epochs to continue it or use --force to start over"
            )
        return {"resume": ck.resume, "metrics": ck.metrics}
    if final_path.exists() and not force:
        raise SharpscopeError(
            f"{out} holds a finished run (final.pt): use --force to overwrite it "
            "or --out to choose another folder"
        )
    if last_path.exists() and not force:
        raise SharpscopeError(
            f"{out} holds an unfinished run (last.pt): use --resume to continue it "
            "or --force to start over"
        )
    return None


# ----------------------------------------------------------------------------- --force
def run_entries(out: Path) -> list[Path]:
    """The files and folders of a run in ``out`` (what ``force`` replaces)."""
    names = [*RUN_FILES, *RUN_DIRS]
    found = [out / n for n in names if (out / n).exists()]
    return found + sorted(out.glob("epoch_*.pt"))


def move_run_aside(out: Path) -> Path | None:
    """Move the old run's files into a hidden folder of ``out`` (same disk: renames only)."""
    entries = run_entries(out)
    if not entries:
        return None
    aside = out / f".sharpscope-old-run.{os.getpid()}"
    aside.mkdir()
    moved: list[Path] = []
    try:
        for p in entries:
            os.replace(p, aside / p.name)
            moved.append(p)
    except OSError as exc:
        for p in moved:
            os.replace(aside / p.name, p)
        aside.rmdir()
        raise SharpscopeError(f"cannot replace the run in {out}: {exc.strerror or exc}") from exc
    return aside


def restore_run(out: Path, aside: Path) -> None:
    """Undo :func:`move_run_aside`: drop what the new run wrote, put the old files back."""
    for p in run_entries(out):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for p in aside.iterdir():
        os.replace(p, out / p.name)
    aside.rmdir()


def drop_aside(aside: Path | None) -> None:
    """The new run has its first checkpoint: the old one goes."""
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def write_metrics(out: Path, metrics: list[dict[str, Any]]) -> None:
    """``metrics.jsonl``: one strict JSON object per line (NaN/Inf written as null)."""
    atomic_write_text(
        out / "metrics.jsonl",
        "".join(json.dumps(to_jsonable(m), allow_nan=False) + "\n" for m in metrics),
    )
