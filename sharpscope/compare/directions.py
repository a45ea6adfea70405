"""The shared random directions of a comparison: drawn once, re-normalised per model."""

from __future__ import annotations

from typing import Any

from ..errors import SharpscopeError
from .cache import directions_fingerprint, load_shared_directions

__all__ = ["directions_for", "draw_directions", "shared_directions"]


def _on_main(fn: Any) -> Any:
    """``fn()`` on rank 0 only (its result shared) in distributed runs, else ``fn()``."""
    from ..runtime.distributed import current

    ctx = current()
    return ctx.run_on_main(fn) if ctx is not None else fn()


def draw_directions(model: Any, job: Any) -> Any:
    from ..landscape.directions import random_directions

    need = max(job.settings["directions_count"], 2)
    seed = job.settings["seed"]
    return random_directions(model, count=need, seed=seed, norm="filter", ignore="biasbn")


def shared_directions(job: Any) -> None:
    """The shared directions: drawn once from the first model (or reloaded), re-normalised
    per model."""
    need = max(job.settings["directions_count"], 2)
    dir_path = job.out / "directions.pt"
    model = job.problems[0].model
    dirs = _on_main(lambda: load_shared_directions(dir_path, model, need, job.settings["seed"]))
    if dirs is None:
        dirs = draw_directions(model, job)
        dirs.save(dir_path)
    job.directions = dirs
    job.directions_fp = directions_fingerprint(dirs, need)


def directions_for(job: Any, problem: Any) -> list:
    """The shared directions resolved against ``problem``'s model (its own if they don't fit)."""
    try:
        return job.directions.resolve(problem.model)
    except SharpscopeError:
        job.notes.append(
            f"{problem.label}: the shared directions do not fit this model, so it was "
            "cut along its own random directions (same seed)"
        )
        return draw_directions(problem.model, job).resolve(problem.model)
