"""``slice``: a 1D or 2D slice (or several 1D slices) of the loss around one checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SharpscopeError
from ..problem import Problem
from ..runtime.batches import sample_count
from ..runtime.figstyle import direction_label, parse_formats, title_for
from ..runtime.files import check_writable
from ..runtime.ranges import parse_range
from .directions import random_directions
from .files import eigen_directions, load_directions
from .grid import evaluate_grid
from .multi import evaluate_slices_1d
from .plots import Levels, plot_1d, plot_surface_html, write_slice_plots
from .resume import locks_output
from .surface import Surface, grid_axis
from .vectors import Directions

__all__ = ["slice_problem"]


def _axis(text: str, name: str) -> np.ndarray:
    start, stop, num = parse_range(text, name=name)
    return grid_axis(start, stop, num)


@locks_output("slice")
def slice_problem(
    problem: Problem,
    *,
    dims: int = 2,
    xrange: str = "-1:1:51",
    yrange: str | None = None,
    norm: str = "filter",
    ignore: str = "biasbn",
    directions: str | Path | None = None,
    eigvecs: str | Path | None = None,
    count: int = 1,
    orthogonal: bool = False,
    seed: int = 0,
    split: str = "train",
    samples: int | None = None,
    batch_size: int = 512,
    mode: str = "eval",
    method: str = "auto",
    log: bool = False,
    out: str | Path,
    html: bool = False,
    save_directions: str | Path | None = None,
    quiet: bool = False,
    force: bool = False,
    recompute_bn: bool = False,
    chunk_size: int | None = None,
    levels: Levels | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    formats: Sequence[str] = ("png",),
    allow_foreign_vectors: bool = False,
) -> dict[str, Any]:
    """A 1D or 2D slice of the loss around a checkpoint (Li et al. 2018), written to ``out``.

    Directions come from ``directions`` (a saved directions file, re-normalised against
    this model with the file's recipe), ``eigvecs`` (Hessian eigenvectors, used as they
    are; eigenvectors of other weights are refused unless ``allow_foreign_vectors``, and
    then named as such) or a fresh seeded random draw with ``norm``/``ignore``/``orthogonal``. With
    ``count > 1`` (1D only) that many directions are cut and summarised.

    Figures: ``levels`` (``log``, the default, ``li``, ``linear`` or explicit levels),
    ``vmin``/``vmax`` set the contour levels and colour scale; each figure is written
    once per entry of ``formats`` (``png``, ``pdf``, ``svg``).
    """
    formats = parse_formats(formats)
    _check_slice_args(dims, count, directions, eigvecs, save_directions)
    axes = [_axis(xrange, "--range")]
    if dims == 2:
        axes.append(_axis(yrange or xrange, "--yrange"))
    dirs = _slice_directions(
        problem.model,
        needed=count if count > 1 else dims,
        directions=directions,
        eigvecs=eigvecs,
        seed=seed,
        norm=norm,
        ignore=ignore,
        orthogonal=orthogonal,
    )
    kind = f"{dirs.kind} directions"
    if eigvecs is not None:
        kind = _check_vectors_source(dirs, problem, eigvecs, allow_foreign_vectors, quiet)
    resolved = dirs.resolve(problem.model)
    if save_directions is not None:
        dirs.save(save_directions)
    batches = problem.batches(split, batch_size, samples=samples, seed=0)
    meta = _slice_meta(problem, dirs, len(resolved), split, batches, directions or eigvecs)
    out = Path(out)
    common = {
        "mode": mode,
        "method": method,
        "quiet": quiet,
        "force": force,
        "recompute_bn": recompute_bn,
        "chunk_size": chunk_size,
    }
    name = problem.describe().get("checkpoint") or problem.label
    figure = {
        "title": f"{title_for(name, mode)}\n{kind}",
        "xlabel": _axis_label(dirs, 1),
        "ylabel": _axis_label(dirs, 2),
        "levels": levels,
        "vmin": vmin,
        "vmax": vmax,
        "formats": formats,
        "log": log,
        "html": html,
    }
    run = _slice_many if count > 1 else _slice_one
    summary, files = run(problem, batches, resolved, axes, out, meta, common, figure)
    if save_directions is not None:
        files.append(Path(save_directions))
    summary["out"] = str(out)
    summary["files"] = [str(f) for f in files]
    return summary


def _check_slice_args(
    dims: int,
    count: int,
    directions: str | Path | None,
    eigvecs: str | Path | None,
    save_directions: str | Path | None,
) -> None:
    if dims not in (1, 2):
        raise SharpscopeError(f"--dims must be 1 or 2, got {dims}")
    if count < 1:
        raise SharpscopeError(f"--directions-count must be at least 1, got {count}")
    if count > 1 and dims != 1:
        raise SharpscopeError("--directions-count needs --dims 1 (several 1D slices)")
    if directions is not None and eigvecs is not None:
        raise SharpscopeError("give either --directions or --eigvecs, not both")
    if save_directions is not None:  # before the work, not after it
        check_writable(save_directions, what="--save-directions")


def _slice_directions(
    model: torch.nn.Module,
    *,
    needed: int,
    directions: str | Path | None,
    eigvecs: str | Path | None,
    seed: int,
    norm: str,
    ignore: str,
    orthogonal: bool,
) -> Directions:
    """``needed`` raw directions: from a directions file, eigenvectors, or a seeded draw."""
    if directions is not None:
        dirs = load_directions(directions)
        if len(dirs) < needed:
            raise SharpscopeError(
                f"{directions} holds {len(dirs)} direction(s) but {needed} are needed"
            )
        return dirs.subset(list(range(needed)))
    if eigvecs is not None:
        return eigen_directions(eigvecs, count=needed)
    return random_directions(
        model, count=needed, seed=seed, norm=norm, ignore=ignore, orthogonal=orthogonal
    )


def _check_vectors_source(
    dirs: Directions, problem: Problem, eigvecs: str | Path, allow_foreign: bool, quiet: bool
) -> str:
    """The title's name of eigenvector directions, after checking they belong to the
    probed weights (the file's ``source_fingerprint``): another checkpoint's are refused
    unless ``allow_foreign`` (then recorded in the meta as ``foreign``); a file without a
    fingerprint gets a one-line notice (unless ``quiet``)."""
    import sys

    from ..hessian.vectors import weights_fingerprint
    from ..runtime.sanitize import printable

    recorded = dirs.meta.get("source_fingerprint")
    source = printable(dirs.meta.get("source") or "an unknown checkpoint")
    if recorded is None:
        if quiet:
            return "eigen directions"
        print(
            f"notice: {eigvecs} does not record the weights its eigenvectors were computed on "
            "(written by an older sharpscope): their source cannot be checked",
            file=sys.stderr,
        )
        return "eigen directions"
    if recorded == weights_fingerprint(problem.model):
        return "eigen directions"
    name = problem.describe().get("checkpoint") or problem.label
    if not allow_foreign:
        raise SharpscopeError(
            f"{eigvecs} holds the eigenvectors of {source} ({printable(recorded)[:19]}...), not of "
            f"the weights of {name}: they are not its eigen directions (use "
            "--allow-foreign-vectors to slice along them anyway)"
        )
    dirs.meta["foreign"] = True
    return f"eigen directions of {Path(str(source)).name} (foreign vectors)"


def _slice_meta(
    problem: Problem,
    dirs: Directions,
    count: int,
    split: str,
    batches: list,
    source: str | Path | None,
) -> dict[str, Any]:
    return {
        "command": "slice",
        "checkpoint": problem.describe().get("checkpoint"),
        "label": problem.label,
        "split": split,
        "samples": sample_count(batches),
        "directions": {
            "kind": dirs.kind,
            "norm": dirs.norm,
            "ignore": dirs.ignore,
            "seed": dirs.seed,
            "orthogonal": dirs.orthogonal,
            "count": count,
            "source": str(source or "random"),
            **dirs.meta,
        },
    }


def _slice_many(
    problem: Problem,
    batches: list,
    resolved: list,
    axes: list[np.ndarray],
    out: Path,
    meta: dict[str, Any],
    common: dict[str, Any],
    figure: dict[str, Any],
) -> tuple[dict[str, Any], list[Path]]:
    """Several 1D slices: median curve, band and curvatures (``--directions-count``)."""
    sset = evaluate_slices_1d(
        problem.model,
        problem.loss_fn,
        batches,
        resolved,
        axes[0],
        out_dir=out,
        metadata=meta,
        **common,
    )
    fmts = figure["formats"]
    plot_1d(
        [sset],
        out / "slice1d",
        log=figure["log"],
        labels=[problem.label],
        title=figure["title"],
        xlabel=figure["xlabel"],
        formats=fmts,
    )
    files = [out / "surface.npz", out / "meta.json"] + [out / f"slice1d.{f}" for f in fmts]
    if figure["html"]:
        median = Surface(
            [sset.x], sset.median, sset.median_accuracy, np.ones_like(sset.median, dtype=bool)
        )
        files.append(
            plot_surface_html(
                [median],
                out / "surface.html",
                labels=[f"{problem.label} (median)"],
                log=figure["log"],
                title=figure["title"],
                xlabel=figure["xlabel"],
            )
        )
    summary = {
        **meta,
        **sset.summary(),
        "method": sset.meta.get("method"),
        "elapsed_s": sset.meta.get("elapsed_s"),
    }
    return summary, files


def _slice_one(
    problem: Problem,
    batches: list,
    resolved: list,
    axes: list[np.ndarray],
    out: Path,
    meta: dict[str, Any],
    common: dict[str, Any],
    figure: dict[str, Any],
) -> tuple[dict[str, Any], list[Path]]:
    """One 1D or 2D slice and its standard plots."""
    surface = evaluate_grid(
        problem.model,
        problem.loss_fn,
        batches,
        resolved,
        axes,
        out_dir=out,
        metadata=meta,
        **common,
    )
    files = [out / "surface.npz", out / "meta.json"] + write_slice_plots(surface, out, **figure)
    summary = {
        **meta,
        **surface.summary(),
        "method": surface.meta.get("method"),
        "elapsed_s": surface.meta.get("elapsed_s"),
    }
    return summary, files


def _axis_label(dirs: Directions, i: int) -> str:
    """``direction 1 (filter-normalised)``; eigenvectors are unit vectors, named as such."""
    if dirs.kind == "eigen":
        return f"Hessian eigenvector {i} (unit length)"
    return direction_label(i, dirs.norm)
