"""``sharpscope compare | demo``: put SGD, SAM and XSAM minima side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import (
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LossOpt,
    ModelKwargsOpt,
    ModelOpt,
    ModeOpt,
    NormalizeOpt,
    QuietOpt,
    SeedOpt,
    distributed_setup,
    emit_json,
    handles_errors,
    parse_json_dict,
)

CheckpointsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Checkpoints or run folders (a run folder: its final.pt, and its "
        "epoch_XXX.pt for lambda_max over training), or groups of runs (seeds): "
        "LABEL=GLOB (sgd=runs/sgd-s*/) or a folder of run folders (runs/sam/ holding "
        "seed0/ seed1/ ...); groups get mean and 95% CI per measure and a verdict per pair."
    ),
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", help="Training samples in the probe subset (0: all).")
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Samples per pass.")]
TopKOpt = Annotated[int, typer.Option("--top-k", help="Hessian eigenvalues.")]
RhoOpt = Annotated[
    float, typer.Option("--rho", help="Radius of the sharpness ball and XSAM plane.")
]
Range1dOpt = Annotated[
    str, typer.Option("--range", help="1D slices START:STOP:NUM (0 must be a point).")
]
Range2dOpt = Annotated[
    str, typer.Option("--range2d", help="2D slice START:STOP:NUM for both axes.")
]
DirectionsCountOpt = Annotated[
    int, typer.Option("--directions-count", help="Random directions of the 1D slices.")
]
TraceProbesOpt = Annotated[
    int, typer.Option("--trace-probes", help="Hutchinson probes of the trace.")
]
ProbesOpt = Annotated[
    Optional[str],
    typer.Option(
        "--probes",
        help="Comma-separated subset of: metrics, eigen, trace, density, sharpness, "
        "slice1d, slice2d, plane, interpolation, over_training (default: all).",
    ),
]
AllowMismatchOpt = Annotated[
    bool,
    typer.Option(
        "--allow-mismatch", help="Compare checkpoints of different models or data anyway."
    ),
]
CompareForceOpt = Annotated[
    bool, typer.Option("--force", help="Replace a report in --out made with other settings.")
]
QuickOpt = Annotated[
    bool, typer.Option("--quick", help="CI-sized settings: seconds instead of minutes.")
]
FiguresDirOpt = Annotated[
    Optional[Path], typer.Option("--figures-dir", help="Copy the README figures into this folder.")
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="Figure file formats, comma-separated: png, pdf, svg (PNG is always written).",
    ),
]
ColorScaleOpt = Annotated[
    str,
    typer.Option(
        "--color-scale",
        help="2D panels: rise (one log scale of each model's rise above its own minimum), "
        "panel (each panel its own log scale) or shared (one linear scale of the loss).",
    ),
]
TaskOpt = Annotated[
    str,
    typer.Option(
        "--task",
        help="image: SGD, SAM, XSAM on digits (MLP); text: AdamW, SAM, XSAM on the bundled "
        "corpus (small Transformer, warmup + cosine).",
    ),
]
DemoForceOpt = Annotated[bool, typer.Option("--force", help="Retrain and recompute everything.")]


def _print_report(report, *, json_out: Path | None, quiet: bool) -> None:
    from sharpscope.report import summary_tables

    emit_json(json_out, report.to_dict())
    if quiet or (json_out is not None and str(json_out) == "-"):
        return
    typer.echo(summary_tables(report))
    done = report.settings.get("computed_probes", 0)
    reused = report.settings.get("reused_probes", 0)
    typer.echo(f"\n{done} probe(s) computed, {reused} reused from {report.out / 'cache'}")
    typer.echo(f"report: {report.html_path}")


@handles_errors
def compare_cmd(
    checkpoints: CheckpointsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("report"),
    samples: SamplesOpt = 4096,
    batch_size: BatchSizeOpt = 512,
    top_k: TopKOpt = 5,
    rho: RhoOpt = 0.05,
    range1d: Range1dOpt = "-1:1:51",
    range2d: Range2dOpt = "-1:1:25",
    directions_count: DirectionsCountOpt = 10,
    trace_probes: TraceProbesOpt = 100,
    probes: ProbesOpt = None,
    seed: SeedOpt = 0,
    mode: ModeOpt = "eval",
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    figure_format: FormatOpt = "png,pdf",
    color_scale: ColorScaleOpt = "rise",
    allow_mismatch: AllowMismatchOpt = False,
    force: CompareForceOpt = False,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Compare minima: Hessian, sharpness, slices, planes, interpolation; writes a report."""
    device, quiet = distributed_setup(device, quiet)
    import warnings

    from sharpscope.compare import compare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        report = compare(
            checkpoints,
            out=out,
            samples=samples or None,
            batch_size=batch_size,
            top_k=top_k,
            rho=rho,
            range1d=range1d,
            range2d=range2d,
            directions_count=directions_count,
            trace_probes=trace_probes,
            seed=seed,
            mode=mode,
            allow_mismatch=allow_mismatch,
            force=force,
            device=device,
            quiet=quiet,
            probes=probes.split(",") if probes is not None else None,
            model=model,
            model_kwargs=parse_json_dict(model_kwargs) or None,
            data=data,
            loss=loss,
            normalize=normalize,
            formats=figure_format,
            color_scale=color_scale,
        )
    for note in report.notes:
        typer.echo(f"warning: {note}", err=True)
    _print_report(report, json_out=json_out, quiet=quiet)


@handles_errors
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder.")] = Path("runs/demo"),
    task: TaskOpt = "image",
    quick: QuickOpt = False,
    figure_format: FormatOpt = "png,pdf",
    color_scale: ColorScaleOpt = "rise",
    figures_dir: FiguresDirOpt = None,
    force: DemoForceOpt = False,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train SGD, SAM and XSAM (several seeds each) on digits, or (--task text) AdamW, SAM
    and XSAM on the bundled text corpus, and compare their minima."""
    from sharpscope.demo import run_demo

    report = run_demo(
        out=out,
        task=task,
        quick=quick,
        device=device,
        quiet=quiet,
        figures_dir=figures_dir,
        force=force,
        formats=figure_format,
        color_scale=color_scale,
    )
    for note in report.notes:
        typer.echo(f"warning: {note}", err=True)
    if not quiet and not (json_out is not None and str(json_out) == "-"):
        runs = report.settings["demo"]["runs"]
        typer.echo("runs: " + ", ".join(f"{k} {v}" for k, v in runs.items()))
        if report.settings["demo"].get("figures"):
            typer.echo(f"figures copied to {figures_dir}")
    _print_report(report, json_out=json_out, quiet=quiet)


def register(app: typer.Typer) -> None:
    """Add ``compare`` and ``demo`` to the application."""
    app.command("compare")(compare_cmd)
    app.command("demo")(demo_cmd)
