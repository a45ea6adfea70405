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
from ..utils import atomic_write_json, progress, read_json

__all__ = ["run_checkpoints", "probe_over_training", "problem_batches", "checkpoint_lr"]

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


def problem_batches(
    problem: Any,
    *,
    samples: int | None = 4096,
    batch_size: int = 512,
    batch_only: bool = False,
    seed: int = 0,
) -> list[tuple[Any, Any]]:
    """The probe data of a :class:`~sharpscope.problem.Problem`: a seeded subset of the
    training split in batches, or only its first batch (``batch_only``)."""
    if batch_size < 1:
        raise SharpscopeError(f"--batch-size must be at least 1, got {batch_size}")
    if samples is not None and samples < 0:
        raise SharpscopeError(f"--samples must be at least 0 (0 = the whole split), got {samples}")
    n = None if not samples else int(samples)
    if batch_only:
        n = min(batch_size, n) if n else batch_size
    batches = problem.batches("train", batch_size, samples=n, seed=seed)
    return batches[:1] if batch_only else batches


def probe_over_training(
    run_dir: str | Path,
    *,
    what: str = "eigen",
    settings: dict[str, Any] | None = None,
    device: str = "auto",
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    cache: bool = True,
    quiet: bool = True,
    plot: str | Path | None = None,
) -> dict[str, Any]:
    """Probe every epoch checkpoint of ``run_dir``; return ``{"epochs": [...], "settings", "cache"}``.

    ``what`` is ``"eigen"`` (settings: ``k, which, tol, samples, batch_size, batch_only,
    mode, params, backend, seed``) or ``"trace"`` (``method, probes`` instead of
    ``k, which, tol``). Each epoch's record holds the probe's numbers plus ``epoch``,
    ``file`` and ``lr``; records come from the cache when the settings match.
    """
    from ..problem import load_problem
    from .lanczos import hessian_eigenvalues
    from .trace import hessian_trace

    if what not in ("eigen", "trace"):
        raise SharpscopeError(f"what must be eigen or trace, got {what!r}")
    settings = dict(settings or {})
    run_dir = Path(run_dir)
    checkpoints = run_checkpoints(run_dir)
    cache_path = run_dir / "probes" / f"{what}.json"

    def cached() -> dict[str, Any]:
        if cache and cache_path.is_file():
            try:
                old = read_json(cache_path)
            except SharpscopeError:
                old = {}
            if isinstance(old, dict) and old.get("settings") == _jsonable(settings):
                return dict(old.get("epochs") or {})
        return {}

    from ..distributed import current

    ctx = current()  # distributed: rank 0 reads the cache, every rank skips the same epochs
    stored: dict[str, Any] = ctx.run_on_main(cached) if ctx is not None else cached()
    reused = 0
    for epoch, path in progress(
        checkpoints, desc=f"{what} over training", quiet=quiet, unit="epoch"
    ):
        key = str(epoch)
        if (
            key in stored
            and stored[key].get("file") == path.name
            and stored[key].get("fingerprint") == _fingerprint(path)
        ):
            reused += 1
            continue
        problem = load_problem(
            path, model=model, model_kwargs=model_kwargs, data=data, device=device
        )
        batches = problem_batches(
            problem,
            samples=settings.get("samples", 4096),
            batch_size=settings.get("batch_size", 512),
            batch_only=settings.get("batch_only", False),
            seed=settings.get("seed", 0),
        )
        common = dict(
            params=settings.get("params"),
            mode=settings.get("mode", "eval"),
            backend=settings.get("backend", "auto"),
            seed=settings.get("seed", 0),
            quiet=True,
        )
        if what == "eigen":
            res = hessian_eigenvalues(
                problem.model,
                problem.loss_fn,
                batches,
                k=settings.get("k", 1),
                which=settings.get("which", "largest"),
                tol=settings.get("tol", 1e-3),
                **common,
            ).to_dict()
        else:
            res = hessian_trace(
                problem.model,
                problem.loss_fn,
                batches,
                method=settings.get("method", "hutchinson"),
                probes=settings.get("probes", 100),
                **common,
            ).to_dict()
            res.pop("probe_values", None)
        res.update(
            epoch=epoch,
            file=path.name,
            fingerprint=_fingerprint(path),
            lr=checkpoint_lr(problem.checkpoint),
        )
        stored[key] = res
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
        from .plots import plot_over_training

        epochs = [r["epoch"] for r in records]
        lrs = [r.get("lr") for r in records]
        if what == "eigen":
            values = [max(r["eigenvalues"]) for r in records]
            plot_over_training(
                epochs,
                values,
                plot,
                lrs=lrs,
                label="lambda_max",
                title=f"Top Hessian eigenvalue over training ({run_dir.name})",
            )
        else:
            values = [r["trace"] for r in records]
            plot_over_training(
                epochs,
                values,
                plot,
                lrs=None,
                label="trace",
                title=f"Hessian trace over training ({run_dir.name})",
            )
        out["plot"] = str(plot)
    return out


def _jsonable(obj: Any) -> Any:
    import json

    from ..utils import to_jsonable

    return json.loads(json.dumps(to_jsonable(obj)))
