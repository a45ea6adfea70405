"""One keyword-only function per command: slice, interpolate, trajectory.

Each takes loaded :class:`~sharpscope.problem.Problem` objects, computes (resumably,
into ``out``), writes the plots and returns a plain summary dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SharpscopeError
from ..problem import Problem, check_comparable
from ..runtime.figstyle import direction_label, parse_formats, title_for
from ..runtime.files import atomic_write_json
from .grid import evaluate_grid
from .plots import Levels, plot_1d, plot_surface_html, plot_trajectory
from .resume import locks_output
from .slicing import _axis, slice_problem
from .surface import Surface, grid_axis
from .trajectory import load_trajectory, pca_directions

__all__ = ["slice_problem", "interpolate_problems", "trajectory_problem", "float_state"]


def float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and floating-point buffers (BatchNorm running mean/var) by name, detached."""
    out = {n: p.detach() for n, p in model.named_parameters()}
    out.update({n: b.detach() for n, b in model.named_buffers() if b.is_floating_point()})
    return out


@locks_output("interpolate")
def interpolate_problems(
    a: Problem,
    b: Problem,
    *,
    xrange: str = "-0.5:1.5:41",
    split: str = "train",
    samples: int | None = None,
    batch_size: int = 512,
    mode: str = "eval",
    method: str = "auto",
    log: bool = False,
    out: str | Path,
    html: bool = False,
    quiet: bool = False,
    force: bool = False,
    recompute_bn: bool = False,
    allow_mismatch: bool = False,
    formats: Sequence[str] = ("png",),
) -> dict[str, Any]:
    """The 1D path ``(1 - t) theta_a + t theta_b`` (Goodfellow et al. 2015; Li et al. 2018, section 3).

    Parameters AND floating-point buffers (BatchNorm running mean and variance) are
    interpolated, so at ``t = 0`` and ``t = 1`` the model is exactly checkpoint a and b
    (in eval mode the running statistics are part of the function); integer buffers
    (``num_batches_tracked``) are a's. The data is a's. The figure marks the loss
    barrier between ``t = 0`` and ``t = 1`` and is written once per entry of ``formats``.
    """
    formats = parse_formats(formats)
    check_comparable([a, b], allow_mismatch=allow_mismatch)
    sa, direction = _difference(a, b)
    axis = _axis(xrange, "--range")
    batches = a.batches(split, batch_size, samples=samples, seed=0)
    meta = {
        "command": "interpolate",
        "a": a.describe().get("checkpoint"),
        "b": b.describe().get("checkpoint"),
        "split": split,
        "samples": int(sum(len(x[1]) for x in batches)),
        "buffers": "floating buffers interpolated, integer buffers from a",
    }
    out = Path(out)
    surface = evaluate_grid(
        a.model,
        a.loss_fn,
        batches,
        [direction],
        [axis],
        center=sa,
        mode=mode,
        method=method,
        out_dir=out,
        quiet=quiet,
        metadata=meta,
        force=force,
        recompute_bn=recompute_bn,
    )
    title = f"{title_for(_name(a), mode)} to {title_for(_name(b))}"
    files = _interpolation_figures(surface, out, title, _name(a), log, html, formats)
    params = dict(a.model.named_parameters())
    summary = {
        **meta,
        **surface.summary(),
        "method": surface.meta.get("method"),
        "elapsed_s": surface.meta.get("elapsed_s"),
        "distance": float(
            torch.sqrt(sum((d.double() ** 2).sum() for n, d in direction.items() if n in params))
        ),
    }
    for t_val, key in ((0.0, "loss_a"), (1.0, "loss_b")):
        hit = np.flatnonzero(np.abs(axis - t_val) <= 1e-12)
        summary[key] = float(surface.loss[hit[0]]) if len(hit) else None
        summary[key.replace("loss", "accuracy")] = (
            float(surface.accuracy[hit[0]]) if len(hit) else None
        )
    summary["out"] = str(out)
    summary["files"] = [str(f) for f in files]
    return summary


def _difference(a: Problem, b: Problem) -> tuple[dict, dict]:
    """a's floating state and ``b - a`` for every entry, after checking they match."""
    sa, sb = float_state(a.model), float_state(b.model)
    for n, t in sa.items():
        if n not in sb or sb[n].shape != t.shape:
            got = list(sb[n].shape) if n in sb else "missing"
            raise SharpscopeError(
                f"checkpoints do not match: {n!r} is {list(t.shape)} in {a.label} and {got} "
                f"in {b.label}"
            )
    return sa, {n: sb[n].to(t.device, t.dtype) - t for n, t in sa.items()}


def _interpolation_figures(
    surface: Surface,
    out: Path,
    title: str,
    name: str,
    log: bool,
    html: bool,
    formats: Sequence[str],
) -> list[Path]:
    """``slice1d.<format>`` with the barrier marked, and ``surface.html`` if asked."""
    xlabel = "t  (0 = a, 1 = b)"
    plot_1d(
        [surface],
        out / "slice1d",
        log=log,
        labels=["interpolation"],
        title=title,
        xlabel=xlabel,
        barrier_between=(0.0, 1.0),
        formats=formats,
    )
    files = [out / "surface.npz", out / "meta.json"] + [out / f"slice1d.{f}" for f in formats]
    if html:
        files.append(
            plot_surface_html(
                surface, out / "surface.html", log=log, title=title, labels=[name], xlabel=xlabel
            )
        )
    return files


def _name(problem: Problem) -> str:
    return str(problem.describe().get("checkpoint") or problem.label)


def _auto_range(values: np.ndarray, margin: float, num: int) -> np.ndarray:
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    span = hi - lo if hi > lo else 1.0
    return grid_axis(lo - margin * span, hi + margin * span, num)


@locks_output("trajectory")
def trajectory_problem(
    problem: Problem,
    run_dir: str | Path,
    *,
    xrange: str | None = None,
    yrange: str | None = None,
    points: int = 21,
    margin: float = 0.2,
    ignore: str = "biasbn",
    split: str = "train",
    samples: int | None = None,
    batch_size: int = 512,
    mode: str = "eval",
    method: str = "auto",
    log: bool = False,
    out: str | Path,
    html: bool = False,
    quiet: bool = False,
    force: bool = False,
    levels: Levels | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    formats: Sequence[str] = ("png",),
) -> dict[str, Any]:
    """The training path on the PCA plane of its checkpoints, over the loss contour (Li et al. 2018, section 7).

    ``problem`` is the run's ``final.pt``; the grid is centred there. Without
    ``xrange``/``yrange`` each axis spans the projected path (and 0) plus ``margin``
    of its extent on both sides, with ``points`` points. ``levels``, ``vmin``, ``vmax``
    and ``formats`` as for :func:`~sharpscope.landscape.slicing.slice_problem`.
    """
    formats = parse_formats(formats)
    if points < 2:
        raise SharpscopeError(f"--points must be at least 2, got {points}")
    if margin < 0:
        raise SharpscopeError(f"--margin must be >= 0, got {margin}")
    names = [n for n, p in problem.model.named_parameters() if p.requires_grad]
    traj = load_trajectory(run_dir, names=names)
    dirs, coords = pca_directions(traj, ignore=ignore)
    resolved = dirs.resolve(problem.model)
    center = {n: t.to(problem.device) for n, t in traj.final.items()}
    axes = [
        _axis(xrange, "--range") if xrange else _auto_range(coords[:, 0], margin, points),
        _axis(yrange, "--yrange") if yrange else _auto_range(coords[:, 1], margin, points),
    ]
    batches = problem.batches(split, batch_size, samples=samples, seed=0)
    ratio = dirs.meta["explained_variance_ratio"]
    meta = {
        "command": "trajectory",
        "run": str(run_dir),
        "split": split,
        "samples": int(sum(len(x[1]) for x in batches)),
        "epochs": traj.epochs,
        "explained_variance_ratio": ratio,
        "path": coords.tolist(),
        "ignore": ignore,
    }
    out = Path(out)
    surface = evaluate_grid(
        problem.model,
        problem.loss_fn,
        batches,
        resolved,
        axes,
        center=center,
        mode=mode,
        method=method,
        out_dir=out,
        quiet=quiet,
        metadata=meta,
        force=force,
    )
    dirs.save(out / "directions.pt")
    atomic_write_json(
        out / "trajectory.json",
        {"epochs": traj.epochs, "path": coords.tolist(), "explained_variance_ratio": ratio},
    )
    title = f"{title_for(Path(run_dir).name, mode)}\ntraining path on the PCA plane"
    figure = {"levels": levels, "vmin": vmin, "vmax": vmax, "formats": formats, "title": title}
    files = _trajectory_figures(
        surface, out, coords, traj.epochs, ratio, Path(run_dir).name, log, html, figure
    )
    summary = {
        **meta,
        **surface.summary(),
        "method": surface.meta.get("method"),
        "elapsed_s": surface.meta.get("elapsed_s"),
        "out": str(out),
        "files": [str(f) for f in files],
    }
    return summary


def _trajectory_figures(
    surface: Surface,
    out: Path,
    coords: np.ndarray,
    epochs: list[int],
    ratio: list[float],
    name: str,
    log: bool,
    html: bool,
    figure: dict[str, Any],
) -> list[Path]:
    """``trajectory.<format>`` (and ``surface.html``) beside the run's result files."""
    plot_trajectory(
        surface, coords, out / "trajectory", epochs=epochs, explained=ratio, log=log, **figure
    )
    formats = figure["formats"]
    files = [out / "surface.npz", out / "meta.json", out / "trajectory.json"]
    files += [out / "directions.pt"] + [out / f"trajectory.{f}" for f in formats]
    if html:
        labels = [direction_label(f"pc{i + 1}", None, explained=ratio[i]) for i in range(2)]
        kw = {k: v for k, v in figure.items() if k != "formats"}
        files.append(
            plot_surface_html(
                surface,
                out / "surface.html",
                labels=[name],
                xlabel=labels[0],
                ylabel=labels[1],
                **kw,
            )  # fmt: skip
        )
    return files
