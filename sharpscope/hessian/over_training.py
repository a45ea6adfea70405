"""Curvature over training: probe every ``epoch_XXX.pt`` checkpoint of a run folder.

Results are cached per epoch in ``RUN/probes/<what>.json`` (written atomically after
each epoch), so an interrupted or repeated call only probes the epochs not done
yet with the same settings. Plots set ``lambda_max`` against the edge-of-stability
line ``2 / lr`` of gradient descent (Cohen et al. 2021).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..errors import SharpscopeError
from ..runtime.cache import is_int, is_number
from ..runtime.files import atomic_write_json
from ..runtime.progress import progress
from .inputs import probe_inputs, problem_batches

__all__ = [
    "run_checkpoints",
    "probe_over_training",
    "problem_batches",
    "checkpoint_lr",
    "check_probe_cache",
]

_EPOCH = re.compile(r"^epoch_(\d+)\.pt$")


def run_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the ``epoch_XXX.pt`` files of a run folder, by epoch."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SharpscopeError(f"no such run folder: {run_dir}")
    found = sorted((int(m.group(1)), p) for p in run_dir.iterdir() if (m := _EPOCH.match(p.name)))
    if not found:
        raise SharpscopeError(f"{run_dir} holds no epoch_XXX.pt checkpoints")
    missing = _missing_epochs(run_dir, [e for e, _ in found])
    if missing:
        names = ", ".join(f"epoch_{e:03d}.pt" for e in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SharpscopeError(
            f"{run_dir} is missing {names}{more} of its trajectory: resume the run "
            "(sharpscope train --resume with the same settings) to write it again"
        )
    return found


def _missing_epochs(run_dir: Path, epochs: list[int]) -> list[int]:
    """Epoch files a run should hold but does not: the epochs are written every
    ``save_every`` epochs (the greatest common divisor of the epochs found) from 0 up to
    the last epoch that ``metrics.jsonl`` records."""
    every = 0
    for e in epochs:
        every = math.gcd(every, e)
    last = max(epochs)
    done = _epochs_done(run_dir)
    if every and done is not None and done > last:
        last = done - done % every
    expected = range(0, last + 1, every) if every else [0]
    have = set(epochs)
    return [e for e in expected if e not in have]


def _epochs_done(run_dir: Path) -> int | None:
    """How many epochs ``metrics.jsonl`` records (written after each epoch's checkpoints)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    epochs = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int):
            epochs.append(rec["epoch"])
    return max(epochs, default=0)


def _fingerprint(path: Path) -> list[int]:
    """Size and modification time: a checkpoint replaced under the same name is probed again."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def checkpoint_lr(ck: Any) -> float | None:
    """The learning rate of a checkpoint's last epoch (``metrics[-1]["lr"]``, else the optimizer's)."""
    for entry in reversed(ck.metrics or []):
        if isinstance(entry, dict) and isinstance(entry.get("lr"), (int, float)):
            return float(entry["lr"])
    lr = (ck.optimizer or {}).get("hparams", {}).get("lr")
    return float(lr) if isinstance(lr, (int, float)) else None


def check_probe_cache(what: str) -> Any:
    """The schema check of ``RUN/probes/<what>.json`` for :func:`sharpscope.runtime.cache.load_cache_json`.

    Checks the type of every field that the run-folder probes, their table and their plot
    use: ``settings`` an object; ``epochs`` an object of ``"<epoch>": record``; each record
    with ``epoch`` (an int equal to its key), ``file`` (a string), ``lr`` (a number or
    null) and ``eigenvalues`` (a non-empty list of numbers) or ``trace`` (a number).
    """

    def check(obj: dict[str, Any]) -> str | None:
        if not isinstance(obj.get("settings"), dict):
            return "settings is not an object"
        epochs = obj.get("epochs")
        if not isinstance(epochs, dict):
            return "epochs is not an object"
        for key, rec in epochs.items():
            reason = _check_record(what, key, rec)
            if reason is not None:
                return reason
        return None

    return check


def _check_record(what: str, key: str, rec: Any) -> str | None:
    where = f"epochs[{key[:20]!r}]"
    if not (key.isascii() and key.isdigit() and len(key) <= 9):
        return f"{where}: the key is not an epoch number"
    if not isinstance(rec, dict):
        return f"{where} is a {type(rec).__name__}, not an object"
    if not is_int(rec.get("epoch")) or rec["epoch"] != int(key):
        return f"{where}.epoch is not {int(key)}"
    if not isinstance(rec.get("file"), str):
        return f"{where}.file is not a string"
    if rec.get("lr") is not None and not is_number(rec["lr"]):
        return f"{where}.lr is not a number"
    if what == "eigen":
        eigs = rec.get("eigenvalues")
        if not isinstance(eigs, list) or not eigs or not all(map(is_number, eigs)):
            return f"{where}.eigenvalues is not a list of numbers"
    elif not is_number(rec.get("trace")):
        return f"{where}.trace is not a number"
    return None


def probe_over_training(
    run_dir: str | Path,
    *,
    what: str = "eigen",
    settings: dict[str, Any] | None = None,
    device: str = "auto",
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: str | None = None,
    cache: bool = True,
    quiet: bool = True,
    plot: str | Path | None = None,
    check_determinism: bool = True,
    max_memory: int | str | None = "auto",
) -> dict[str, Any]:
    """Probe every epoch checkpoint of ``run_dir``; return ``{"epochs": [...], "settings", "cache"}``.

    ``what`` is ``"eigen"`` (settings: ``k, which, tol, samples, batch_size, batch_only,
    mode, params, backend, seed`` and ``stop`` when not ``"auto"``) or ``"trace"``
    (``method, probes`` and ``rel_stderr`` when set, instead of ``k, which, tol``).
    Each epoch's record holds the
    probe's numbers plus ``epoch``, ``file`` and ``lr``; records come from the cache when
    the settings match (a damaged cache gets a one-line notice and is recomputed).
    ``check_determinism`` and ``max_memory`` (as in :func:`hessian_eigenvalues`) do not
    change the numbers and are not part of the settings. Every epoch's weights and loss
    are checked to be finite before its Hessian work. ``loss`` and ``normalize`` (as in
    :func:`~sharpscope.problem.load_problem`) apply to every epoch and, when given, are
    part of the cached settings.
    """
    if what not in ("eigen", "trace"):
        raise SharpscopeError(f"what must be eigen or trace, got {what!r}")
    settings = dict(settings or {})
    settings.update({k: v for k, v in (("loss", loss), ("normalize", normalize)) if v is not None})
    run_dir = Path(run_dir)
    checkpoints = run_checkpoints(run_dir)
    cache_path = run_dir / "probes" / f"{what}.json"
    load = dict(
        model=model,
        model_kwargs=model_kwargs,
        data=data,
        loss=loss,
        normalize=normalize,
        device=device,
    )
    extra = dict(check_determinism=check_determinism, max_memory=max_memory)

    from ..runtime.distributed import current

    ctx = current()  # distributed: rank 0 reads the cache, every rank skips the same epochs

    def read() -> dict[str, Any]:
        return _cached_epochs(cache_path, what, settings) if cache else {}

    stored: dict[str, Any] = ctx.run_on_main(read) if ctx is not None else read()
    reused = 0
    for epoch, path in progress(
        checkpoints, desc=f"{what} over training", quiet=quiet, unit="epoch"
    ):
        key = str(epoch)
        rec = stored.get(key)
        if rec and rec.get("file") == path.name and rec.get("fingerprint") == _fingerprint(path):
            reused += 1
            continue
        stored[key] = _probe_epoch(epoch, path, what, settings, load, extra)
        if cache:
            atomic_write_json(cache_path, {"settings": settings, "epochs": stored})
    records = [stored[str(e)] for e, _ in checkpoints]
    out = {
        "run": str(run_dir),
        "what": what,
        "settings": settings,
        "epochs": records,
        "cache": str(cache_path) if cache else None,
        "reused": reused,
        "computed": len(records) - reused,
    }
    if plot is not None:
        _plot(records, what, plot, run_dir.name)
        out["plot"] = str(plot)
    return out


def _cached_epochs(cache_path: Path, what: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The cached records when the cache is valid and has the same settings, else ``{}``."""
    from ..runtime.cache import read_cache_json

    old = read_cache_json(cache_path, check_probe_cache(what))
    if old is not None and old.get("settings") == _jsonable(settings):
        return dict(old["epochs"])
    return {}


def _probe_epoch(
    epoch: int,
    path: Path,
    what: str,
    settings: dict[str, Any],
    load: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """One epoch's record: the probe's numbers plus ``epoch``, ``file``, ``fingerprint``, ``lr``."""
    from .lanczos import hessian_eigenvalues
    from .trace import hessian_trace

    mode = settings.get("mode", "eval")
    problem, batches = probe_inputs(
        path,
        samples=settings.get("samples", 4096),
        batch_size=settings.get("batch_size", 512),
        batch_only=settings.get("batch_only", False),
        seed=settings.get("seed", 0),
        mode=mode,
        **load,
    )
    common = dict(
        params=settings.get("params"),
        mode=mode,
        backend=settings.get("backend", "auto"),
        seed=settings.get("seed", 0),
        quiet=True,
        **extra,
    )
    if what == "eigen":
        res = hessian_eigenvalues(
            problem.model,
            problem.loss_fn,
            batches,
            k=settings.get("k", 1),
            which=settings.get("which", "largest"),
            tol=settings.get("tol", 1e-3),
            stop=settings.get("stop", "auto"),
            **common,
        ).to_dict()
    else:
        res = hessian_trace(
            problem.model,
            problem.loss_fn,
            batches,
            method=settings.get("method", "hutchinson"),
            probes=settings.get("probes", 100),
            rel_stderr=settings.get("rel_stderr"),
            **common,
        ).to_dict()
        res.pop("probe_values", None)
    res.update(
        epoch=epoch,
        file=path.name,
        fingerprint=_fingerprint(path),
        lr=checkpoint_lr(problem.checkpoint),
    )
    return res


def _plot(records: list[dict[str, Any]], what: str, plot: str | Path, run_name: str) -> None:
    """Draw the value over training (``lambda_max`` against ``2 / lr``) and close the figure."""
    import matplotlib.pyplot as plt

    from .plots import plot_over_training

    epochs = [r["epoch"] for r in records]
    if what == "eigen":
        fig = plot_over_training(
            epochs,
            [max(r["eigenvalues"]) for r in records],
            plot,
            lrs=[r.get("lr") for r in records],
            label="lambda_max",
            title=f"Top Hessian eigenvalue over training ({run_name})",
        )
    else:
        fig = plot_over_training(
            epochs,
            [r["trace"] for r in records],
            plot,
            lrs=None,
            label="trace",
            title=f"Hessian trace over training ({run_name})",
        )
    plt.close(fig)


def _jsonable(obj: Any) -> Any:
    from ..runtime.files import to_jsonable

    return json.loads(json.dumps(to_jsonable(obj)))
