"""``sharpscope slice | interpolate | trajectory``: loss-landscape pictures around checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import (
    BatchSizeOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LossOpt,
    ModelKwargsOpt,
    ModelOpt,
    ModeOpt,
    NormalizeOpt,
    QuietOpt,
    SamplesOpt,
    SeedOpt,
    distributed_setup,
    emit_json,
    handles_errors,
    load_cli_problem,
)
from .landscape_options import (
    AllowForeignVectorsOpt,
    ChunkSizeOpt,
    CountOpt,
    DimsOpt,
    DirectionsOpt,
    EigvecsOpt,
    ForceOpt,
    FormatOpt,
    HtmlOpt,
    IgnoreOpt,
    LevelsOpt,
    LogOpt,
    MethodOpt,
    NormOpt,
    OrthogonalOpt,
    RecomputeBnOpt,
    SaveDirectionsOpt,
    SliceOutOpt,
    SliceRangeOpt,
    SliceYRangeOpt,
    SplitOpt,
    VmaxOpt,
    VminOpt,
    _figure_options,
)


def _print(summary: dict[str, Any], quiet: bool, json_out: Path | None, lines: list[str]) -> None:
    emit_json(json_out, summary)
    if quiet or (json_out is not None and str(json_out) == "-"):
        return
    typer.echo("\n".join(lines))


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


def _check_json(json_out: Path | None) -> None:
    """Fail before any work when the --json file cannot be written."""
    from sharpscope.runtime.files import check_writable

    if json_out is not None and str(json_out) != "-":
        check_writable(json_out, what="--json")


def slice_cmd(
    checkpoint: Annotated[
        Path, typer.Argument(help="A sharpscope checkpoint or a plain state dict.")
    ],
    dims: DimsOpt = 2,
    xrange: SliceRangeOpt = "-1:1:51",
    yrange: SliceYRangeOpt = None,
    norm: NormOpt = "filter",
    ignore: IgnoreOpt = "biasbn",
    directions: DirectionsOpt = None,
    eigvecs: EigvecsOpt = None,
    allow_foreign_vectors: AllowForeignVectorsOpt = False,
    count: CountOpt = 1,
    orthogonal: OrthogonalOpt = False,
    seed: SeedOpt = 0,
    split: SplitOpt = "train",
    samples: SamplesOpt = None,
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    method: MethodOpt = "auto",
    log: LogOpt = False,
    out: SliceOutOpt = None,
    html: HtmlOpt = False,
    save_directions: SaveDirectionsOpt = None,
    force: ForceOpt = False,
    recompute_bn: RecomputeBnOpt = False,
    chunk_size: ChunkSizeOpt = None,
    levels: LevelsOpt = "log",
    vmin: VminOpt = None,
    vmax: VmaxOpt = None,
    formats: FormatOpt = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Loss (and accuracy) on a 1D or 2D slice around a checkpoint, with plots (Li et al. 2018)."""
    device, quiet = distributed_setup(device, quiet)
    _check_json(json_out)
    from sharpscope.landscape.slicing import slice_problem
    from sharpscope.runtime.ranges import parse_range

    figure = _figure_options(levels, vmin, vmax, formats)
    parse_range(xrange, name="--range")
    if yrange is not None:
        parse_range(yrange, name="--yrange")
    problem = load_cli_problem(
        checkpoint,
        model=model,
        model_kwargs=model_kwargs,
        data=data,
        device=device,
        loss=loss,
        normalize=normalize,
    )
    s = slice_problem(
        problem,
        dims=dims,
        xrange=xrange,
        yrange=yrange,
        norm=norm,
        ignore=ignore,
        directions=directions,
        eigvecs=eigvecs,
        allow_foreign_vectors=allow_foreign_vectors,
        count=count,
        orthogonal=orthogonal,
        seed=seed,
        split=split,
        samples=samples,
        batch_size=batch_size,
        mode=mode,
        method=method,
        log=log,
        out=out or checkpoint.parent / f"{checkpoint.stem}-slice{dims}d",
        html=html,
        save_directions=save_directions,
        quiet=quiet,
        force=force,
        recompute_bn=recompute_bn,
        chunk_size=chunk_size,
        **figure,
    )
    _print(s, quiet, json_out, _slice_lines(s, dims, split, count))


def _slice_lines(s: dict[str, Any], dims: int, split: str, count: int) -> list[str]:
    lines = [
        f"slice        {dims}D, {s['directions']['kind']} directions, {s['samples']} {split} "
        f"samples, method {s.get('method')}",
        f"center loss  {_fmt(s.get('center_loss'))}   min loss {_fmt(s.get('min_loss'))}",
    ]
    if count > 1:
        lines.append(
            f"curvature    median {_fmt(s.get('curvature_fit_median'))} (fitted), "
            f"{_fmt(s.get('curvature_fd_median'))} (finite difference) over {count} directions"
        )
    if s.get("nonfinite_points"):
        lines.append(f"non-finite   {s['nonfinite_points']} point(s) (drawn as gaps)")
    lines.append(f"written      {s['out']}")
    return lines


# ----------------------------------------------------------------------------- interpolate
def interpolate_cmd(
    checkpoint_a: Annotated[Path, typer.Argument(help="Checkpoint a (t = 0).")],
    checkpoint_b: Annotated[Path, typer.Argument(help="Checkpoint b (t = 1).")],
    xrange: Annotated[
        str, typer.Option("--range", help="START:STOP:NUM values of t.")
    ] = "-0.5:1.5:41",
    split: SplitOpt = "train",
    samples: SamplesOpt = None,
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    method: MethodOpt = "auto",
    log: LogOpt = False,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Output folder (default: next to a, interp-A-B)."),
    ] = None,
    html: HtmlOpt = False,
    force: ForceOpt = False,
    recompute_bn: RecomputeBnOpt = False,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch", help="Interpolate checkpoints of different model specs or data."
        ),
    ] = False,
    formats: FormatOpt = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Loss along the straight line (1 - t) a + t b between two checkpoints (BN running stats too)."""
    device, quiet = distributed_setup(device, quiet)
    _check_json(json_out)
    from sharpscope.landscape.api import interpolate_problems
    from sharpscope.runtime.ranges import parse_range

    figure = _figure_options(None, None, None, formats)
    parse_range(xrange, name="--range")
    a = load_cli_problem(
        checkpoint_a,
        model=model,
        model_kwargs=model_kwargs,
        data=data,
        device=device,
        loss=loss,
        normalize=normalize,
    )
    b = load_cli_problem(
        checkpoint_b,
        model=model,
        model_kwargs=model_kwargs,
        data=data,
        device=device,
        loss=loss,
        normalize=normalize,
    )
    out = out or checkpoint_a.parent / f"interp-{checkpoint_a.stem}-{checkpoint_b.stem}"
    s = interpolate_problems(
        a,
        b,
        xrange=xrange,
        split=split,
        samples=samples,
        batch_size=batch_size,
        mode=mode,
        method=method,
        log=log,
        out=out,
        html=html,
        quiet=quiet,
        force=force,
        recompute_bn=recompute_bn,
        allow_mismatch=allow_mismatch,
        **figure,
    )
    lines = [
        f"interpolate  {checkpoint_a} -> {checkpoint_b}, distance {_fmt(s['distance'])}",
        f"loss         a {_fmt(s.get('loss_a'))}, b {_fmt(s.get('loss_b'))}, "
        f"max on path {_fmt(s.get('max_loss'))}",
        f"written      {s['out']}",
    ]
    _print(s, quiet, json_out, lines)


# ----------------------------------------------------------------------------- trajectory
def trajectory_cmd(
    run_dir: Annotated[
        Path,
        typer.Argument(help="A run folder from 'sharpscope train' (epoch_XXX.pt, final.pt)."),
    ],
    xrange: Annotated[
        Optional[str],
        typer.Option(
            "--range",
            help="START:STOP:NUM along PC 1 (default: the projected path plus a margin).",
        ),
    ] = None,
    yrange: Annotated[
        Optional[str],
        typer.Option(
            "--yrange",
            help="START:STOP:NUM along PC 2 (default: the projected path plus a margin).",
        ),
    ] = None,
    points: Annotated[
        int, typer.Option("--points", help="Grid points per axis for automatic ranges.")
    ] = 21,
    margin: Annotated[
        float,
        typer.Option("--margin", help="Automatic range margin, a fraction of the path's extent."),
    ] = 0.2,
    ignore: Annotated[
        str, typer.Option("--ignore", help="biasbn or none (as for slice).")
    ] = "biasbn",
    split: SplitOpt = "train",
    samples: SamplesOpt = None,
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    method: MethodOpt = "auto",
    log: LogOpt = False,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Output folder (default: RUN/trajectory).")
    ] = None,
    html: HtmlOpt = False,
    force: ForceOpt = False,
    levels: LevelsOpt = "log",
    vmin: VminOpt = None,
    vmax: VmaxOpt = None,
    formats: FormatOpt = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The training path projected on the PCA plane of its checkpoints, over the loss contour."""
    device, quiet = distributed_setup(device, quiet)
    _check_json(json_out)
    from sharpscope.landscape.api import trajectory_problem

    figure = _figure_options(levels, vmin, vmax, formats)
    final = _check_run_dir(run_dir, xrange, yrange)
    problem = load_cli_problem(
        final,
        model=model,
        model_kwargs=model_kwargs,
        data=data,
        device=device,
        loss=loss,
        normalize=normalize,
    )
    s = trajectory_problem(
        problem,
        run_dir,
        xrange=xrange,
        yrange=yrange,
        points=points,
        margin=margin,
        ignore=ignore,
        split=split,
        samples=samples,
        batch_size=batch_size,
        mode=mode,
        method=method,
        log=log,
        out=out or run_dir / "trajectory",
        html=html,
        quiet=quiet,
        force=force,
        **figure,
    )
    ev = s["explained_variance_ratio"]
    lines = [
        f"trajectory   {len(s['epochs'])} epochs, PCA explained variance {100 * ev[0]:.1f}% + "
        f"{100 * ev[1]:.1f}%",
        f"final loss   {_fmt(s.get('center_loss'))}",
        f"written      {s['out']}",
    ]
    _print(s, quiet, json_out, lines)


def _check_run_dir(run_dir: Path, xrange: str | None, yrange: str | None) -> Path:
    """The run's final.pt, after checking the ranges and the folder (before loading anything)."""
    from sharpscope.errors import SharpscopeError
    from sharpscope.runtime.ranges import parse_range

    for text, name in ((xrange, "--range"), (yrange, "--yrange")):
        if text is not None:
            parse_range(text, name=name)
    if not run_dir.is_dir():
        raise SharpscopeError(f"no such run folder: {run_dir}")
    final = run_dir / "final.pt"
    if not final.is_file():
        raise SharpscopeError(
            f"{run_dir} has no final.pt: is it a folder written by sharpscope train?"
        )
    return final


def register(app: typer.Typer) -> None:
    """Add ``slice``, ``interpolate`` and ``trajectory`` to the application."""
    app.command("slice")(handles_errors(slice_cmd))
    app.command("interpolate")(handles_errors(interpolate_cmd))
    app.command("trajectory")(handles_errors(trajectory_cmd))
