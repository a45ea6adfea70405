"""XSAM's plane of a checkpoint, with its figures and JSON: :func:`probe_plane`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import SharpscopeError
from ..runtime.files import atomic_write_json, check_writable, folder_lock
from .plane import xsam_plane
from .plane_settings import _check_positive
from .plots import plane_figure_html, plot_plane

__all__ = ["probe_plane"]


def probe_plane(
    path: str | Path,
    *,
    rho: float,
    rho_max: float | None = None,
    steps: int = 1,
    alpha_max: float = 2.0,
    alpha_step: float = 0.1,
    grid_range: str = "-0.5:0.5:41",
    out_dir: str | Path | None = None,
    html: bool = False,
    samples: int | None = 2048,
    batch_size: int = 512,
    mode: str = "eval",
    worst_steps: int = 30,
    restarts: int = 2,
    params: str | None = None,
    seed: int = 0,
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: str | None = None,
    samples_notice: bool = False,
    device: str = "auto",
    quiet: bool = True,
) -> dict[str, Any]:
    """:func:`xsam_plane` of a checkpoint on a seeded subset of its training data.

    Writes ``plane.png``, ``plane.json``, the grid (``surface.npz``, ``meta.json``;
    an interrupted run resumes) and, with ``html``, ``plane.html`` to ``out_dir``
    (default ``plane-<checkpoint name>``). Returns the JSON data with the file paths
    under ``files``.
    """
    from ..problem import load_problem
    from ..runtime.ranges import parse_range

    start, stop, num = parse_range(grid_range, name="--range")
    if num < 2:
        raise SharpscopeError(f"invalid --range {grid_range!r}: the plane needs NUM >= 2 points")
    _check_positive("rho", rho)
    if samples is not None and samples < 0:
        raise SharpscopeError(f"samples must be 0 (all) or more, got {samples}")
    if batch_size < 1:
        raise SharpscopeError(f"batch size must be at least 1, got {batch_size}")
    path = Path(path)
    out = Path(out_dir) if out_dir is not None else Path(f"plane-{path.stem}")
    check_writable(out / "plane.json", what="output")
    with folder_lock(out, command="plane"):
        problem = load_problem(
            path, model=model, model_kwargs=model_kwargs, data=data, loss=loss,
            normalize=normalize, samples_notice=samples_notice, device=device,
        )  # fmt: skip
        batches = problem.batches("train", batch_size, samples=samples or None, seed=seed)
        result = xsam_plane(
            problem.model,
            problem.loss_fn,
            batches,
            rho=rho,
            rho_max=rho_max,
            steps=steps,
            alpha_max=alpha_max,
            alpha_step=alpha_step,
            grid=(start, stop, num),
            mode=mode,
            worst_steps=worst_steps,
            restarts=restarts,
            seed=seed,
            params=params,
            out_dir=out,
            quiet=quiet,
        )
        files = {
            "json": out / "plane.json",
            "png": out / "plane.png",
            "surface": out / "surface.npz",
        }
        plot_plane(
            result,
            files["png"],
            title=f"XSAM plane of {path.name}: rho={result.rho:g}, "
            f"rho_max={result.rho_max:g}, k={result.steps}, {result.settings['data_samples']} samples",
        )
        if html:
            files["html"] = out / "plane.html"
            plane_figure_html(result, files["html"], title=f"XSAM plane of {path.name}")
        record = result.to_dict()
        record.update(
            checkpoint=str(path),
            problem=problem.describe(),
            files={k: str(v) for k, v in files.items()},
        )
        atomic_write_json(files["json"], record)
    return record
