"""Several seeds of one run (issue 13): ``out/seed0/``, ``out/seed1/``, ... each a normal,
resumable run folder written by :func:`~sharpscope.training.train` under its own lock."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import SharpscopeError
from ..optim.base import check_number
from ..problem.checkpoint import load_checkpoint
from ..problem.data import BatchSplits, DataSplits, load_data
from .loop import _model_spec, train
from .result import TrainResult
from .resume import settings_diff
from .settings import TrainSettings

__all__ = ["seed_folder", "train_seeds"]

_SETTINGS_FIELDS = {f.name for f in dataclasses.fields(TrainSettings) if f.init} - {
    "model",
    "data",
    "world_size",
}


def seed_folder(out: str | Path, seed: int) -> Path:
    """The run folder of ``seed`` in ``out``: ``out/seed{seed}``."""
    return Path(out).expanduser() / f"seed{seed}"


def train_seeds(
    *,
    seeds: list[int],
    out: str | Path,
    resume: bool = False,
    force: bool = False,
    **train_kwargs: Any,
) -> list[TrainResult]:
    """Train the same run once per seed into ``out/seed{k}/`` (one result per seed, in order).

    Each seed's folder is exactly what ``train(seed=k, out=out/seed{k})`` writes, bit for bit.
    ``train_kwargs`` are :func:`~sharpscope.training.train`'s (without ``seed``). Every
    seed's settings and folder are checked before the first run starts. ``force`` replaces
    each seed's old run; ``resume`` continues each seed's unfinished run, starts the seeds
    that have none yet and keeps the finished ones (their settings must match; their
    result is read from ``final.pt``).
    """
    if "seed" in train_kwargs:
        raise SharpscopeError("seed= and seeds= are exclusive: give the seeds as seeds=[...]")
    seeds = _check_seeds(seeds)
    settings = {k: v for k, v in train_kwargs.items() if k in _SETTINGS_FIELDS}
    checked = [TrainSettings(**settings, seed=k) for k in seeds]
    epochs = checked[0].epochs
    data = train_kwargs.pop("data", "digits")
    if not isinstance(data, (DataSplits, BatchSplits)):  # loaded once: the same data each seed
        normalize = train_kwargs.pop("normalize", None)
        norm = {} if normalize is None else {"normalize": normalize}
        data = load_data(data, samples=checked[0].samples, **norm)
        train_kwargs.pop("samples", None)
        settings.pop("samples", None)
    plans = {
        k: _plan(seed_folder(out, k), resume=resume, force=force, epochs=epochs) for k in seeds
    }
    results = []
    for k in seeds:
        folder = seed_folder(out, k)
        if plans[k] == "finished":
            results.append(_finished(folder, settings, train_kwargs, data, seed=k))
        else:
            kw = {**train_kwargs, "resume": plans[k] == "resume", "force": force}
            results.append(train(**kw, data=data, seed=k, out=folder))
    return results


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise SharpscopeError(f"seeds must be a list of whole numbers, got {seeds!r}")
    seeds = [int(check_number("seed", k, integer=True)) for k in seeds]
    if not seeds:
        raise SharpscopeError("seeds is empty: give at least one seed")
    repeated = sorted({k for k in seeds if seeds.count(k) > 1})
    if repeated:
        raise SharpscopeError(f"seeds repeat {', '.join(map(str, repeated))}: give each seed once")
    return seeds


def _plan(folder: Path, *, resume: bool, force: bool, epochs: int) -> str:
    """``new``, ``resume`` or ``finished`` for one seed's folder; refuses to clobber a run."""
    last, final = folder / "last.pt", folder / "final.pt"
    if not resume:
        if not force and (final.exists() or last.exists()):
            what = "a finished run (final.pt)" if final.exists() else "an unfinished run (last.pt)"
            raise SharpscopeError(
                f"{folder} holds {what}: use --resume to continue the seeds' runs, --force "
                "to start them over or --out to choose another folder"
            )
        return "new"
    if not last.exists():
        return "new"
    ck = load_checkpoint(last)
    done = int((ck.resume or {}).get("epoch", -1))
    return "finished" if final.exists() and done >= epochs else "resume"


def _finished(
    folder: Path,
    settings: dict[str, Any],
    train_kwargs: dict[str, Any],
    data: DataSplits,
    *,
    seed: int,
) -> TrainResult:
    """The result of a seed whose run is already finished, after checking its settings."""
    from ..runtime.distributed import current

    ctx = current()
    now = TrainSettings(
        **settings,
        seed=seed,
        model=_model_spec(train_kwargs.get("model", "mlp"), train_kwargs.get("model_kwargs")),
        data=data.spec,
        world_size=None if ctx is None else ctx.world_size,
    )
    saved = load_checkpoint(folder / "last.pt").resume.get("settings", {})
    diff = settings_diff(saved, now.to_dict())
    if diff:
        raise SharpscopeError(f"cannot resume {folder}: settings differ: {'; '.join(diff)}")
    final = load_checkpoint(folder / "final.pt")
    metrics = [dict(m) for m in final.metrics]
    return TrainResult(
        out=folder,
        optimizer=now.optimizer,
        hparams=now.hparams,
        epochs=len(metrics),
        metrics=metrics,
        seconds=0.0,
        resumed_from=len(metrics),
        alpha_history=[dict(h) for h in final.extra.get("alpha_history", [])],
    )
