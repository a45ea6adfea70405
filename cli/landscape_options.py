"""Options and checks shared by ``sharpscope slice | interpolate | trajectory``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

SplitOpt = Annotated[str, typer.Option("--split", help="Data split to evaluate: train or test.")]
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method",
        help="auto (vmap over grid points on CUDA, one point at a time on CPU), vmap or loop.",
    ),
]
LogOpt = Annotated[bool, typer.Option("--log", help="Log-scale loss in the plots.")]
HtmlOpt = Annotated[
    bool, typer.Option("--html", help="Also write an interactive, self-contained surface.html.")
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Overwrite results in --out computed with other settings (default: resume or refuse).",
    ),
]
RecomputeBnOpt = Annotated[
    bool,
    typer.Option(
        "--recompute-bn",
        help="Re-estimate BatchNorm running statistics at every point (one extra pass each).",
    ),
]


# ----------------------------------------------------------------------------- slice options
DimsOpt = Annotated[int, typer.Option("--dims", help="1 (a curve) or 2 (a surface).")]
SliceRangeOpt = Annotated[
    str, typer.Option("--range", help="START:STOP:NUM along the first direction.")
]
SliceYRangeOpt = Annotated[
    Optional[str],
    typer.Option("--yrange", help="START:STOP:NUM along the second direction (default: --range)."),
]
NormOpt = Annotated[
    str, typer.Option("--norm", help="Random direction normalisation: filter, layer or none.")
]
IgnoreOpt = Annotated[
    str,
    typer.Option(
        "--ignore",
        help="biasbn: zero the direction on biases and BatchNorm parameters; none: keep them.",
    ),
]
DirectionsOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--directions",
        help="Reuse directions saved with --save-directions (re-normalised to this model).",
    ),
]
EigvecsOpt = Annotated[
    Optional[Path],
    typer.Option("--eigvecs", help="Hessian eigenvectors from 'sharpscope eigen --save-vectors'."),
]
AllowForeignVectorsOpt = Annotated[
    bool,
    typer.Option(
        "--allow-foreign-vectors",
        help="Slice along --eigvecs computed on other weights (recorded in meta.json and "
        "the plot title); without it they are refused.",
    ),
]
CountOpt = Annotated[
    int,
    typer.Option(
        "--directions-count",
        help="With --dims 1: cut N random directions, report median, band, curvature.",
    ),
]
OrthogonalOpt = Annotated[bool, typer.Option("--orthogonal", help="Orthogonalise d2 against d1.")]
SliceOutOpt = Annotated[
    Optional[Path],
    typer.Option("--out", help="Output folder (default: next to the checkpoint, NAME-sliceKd)."),
]
SaveDirectionsOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--save-directions", help="Save the directions to reuse them on other checkpoints."
    ),
]
ChunkSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        "--chunk-size",
        help="Grid points per saved chunk (default: from memory for vmap, about 5% "
        "of the grid for the loop).",
    ),
]


LevelsOpt = Annotated[
    str,
    typer.Option(
        "--levels",
        help="Contour levels: log (log-spaced rise above the minimum), li (Li et al.'s "
        "0.1, 0.6, ...), linear, or explicit values like 0.1,0.5,1.",
    ),
]
VminOpt = Annotated[
    Optional[float], typer.Option("--vmin", help="Lowest loss of the colour scale.")
]
VmaxOpt = Annotated[
    Optional[float], typer.Option("--vmax", help="Highest loss of the colour scale.")
]
FormatOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--format",
        help="Figure format: png, pdf or svg (repeat or comma-separate for several; default png).",
    ),
]


def _figure_options(
    levels: str | None, vmin: float | None, vmax: float | None, formats: list[str] | None
) -> dict[str, Any]:
    """The figure keywords of the library functions, checked before any work."""
    from sharpscope.landscape.plots import parse_levels
    from sharpscope.runtime.figstyle import parse_formats

    out: dict[str, Any] = {"formats": parse_formats(",".join(formats or ["png"]))}
    if levels is not None:
        out.update(levels=parse_levels(levels), vmin=vmin, vmax=vmax)
    return out
