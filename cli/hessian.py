"""``sharpscope eigen | trace | esd``: Hessian eigenvalues, trace and spectral density.

Thin layers over :mod:`sharpscope.hessian.probe`; the library (and torch) is imported
inside each command, so ``--help`` starts without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import (
    BackendOpt,
    BatchOnlyOpt,
    BatchSizeOpt,
    CheckDeterminismOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LossOpt,
    ModelKwargsOpt,
    ModelOpt,
    ModeOpt,
    NormalizeOpt,
    ParamsOpt,
    QuietOpt,
    SeedOpt,
    check_outputs,
    distributed_setup,
    emit_json,
    handles_errors,
    parse_bytes,
    problem_options,
)
from ._common import ProbeSamplesOpt as SamplesOpt

PathArg = Annotated[
    Path,
    typer.Argument(
        help="A checkpoint file, or (eigen, trace) a run folder of epoch_XXX.pt checkpoints to probe every epoch."
    ),
]
PlotOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--plot",
        help="Figure file (.png/.pdf/.svg): eigen, one checkpoint: a stem plot of its "
        "eigenvalues; run folders: the value over training (default RUN/probes/<command>.png).",
    ),
]
CompareOpt = Annotated[
    bool,
    typer.Option(
        "--compare-pyhessian",
        help="Also run PyHessian on the same model and data; print both and their times.",
    ),
]
TopKOpt = Annotated[
    int, typer.Option("--top-k", "-k", help="Eigenpairs wanted (per end with --which both).")
]
WhichOpt = Annotated[
    str, typer.Option("--which", help="largest, smallest (most negative) or both.")
]
PerLayerOpt = Annotated[
    bool, typer.Option("--per-layer", help="Also the spectrum of each layer's block.")
]
TolOpt = Annotated[
    float,
    typer.Option(
        "--tol",
        help="True relative residual ||Hv - lambda v|| / |lambda| of the returned vectors; "
        "tol >= 1e-4 also stops when the Ritz values settle (see --stop).",
    ),
]
StopOpt = Annotated[
    str,
    typer.Option(
        "--stop",
        help="When Lanczos stops: residual (every residual below --tol), value (that, or the "
        "Ritz values settled with small residuals), auto (value for --tol >= 1e-4).",
    ),
]
MaxProductsOpt = Annotated[
    Optional[int], typer.Option("--max-products", help="Cap on Lanczos products.")
]
MaxMemoryOpt = Annotated[
    Optional[str],
    typer.Option(
        "--max-memory",
        help="Memory the vectors of one forward-backend pass may use: bytes or 512M/2G "
        "(default auto: half the free memory of the device; none: no limit).",
        show_default=False,
    ),
]
SaveVectorsOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--save-vectors",
        help="Save the eigenvectors (sharpscope-vectors file) for landscape directions.",
    ),
]
MethodOpt = Annotated[
    Optional[str],
    typer.Option(
        "--method",
        help="hutchinson, hutchpp (Hutch++) or xtrace (XTrace, exchangeable). "
        "[default: hutchinson; xtrace with --rel-stderr]",
        show_default=False,
    ),
]
ProbesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--probes",
        help="Hessian-vector products to spend (with --rel-stderr: the most to spend). "
        "[default: 100; 2000 with --rel-stderr]",
        show_default=False,
    ),
]
RelStderrOpt = Annotated[
    Optional[float],
    typer.Option(
        "--rel-stderr",
        help="Run to a stated standard error: add products until it is at most this fraction "
        "of the trace (e.g. 0.02); may compute the trace exactly when that is cheaper.",
    ),
]


def _stdout_json(json_out: Path | None) -> bool:
    return json_out is not None and str(json_out) == "-"


def _over_training_table(out: dict[str, Any], key: str) -> str:
    lines = [f"{'epoch':>6}  {'lr':>10}  {key:>14}  {'2/lr':>10}", "-" * 46]
    for r in out["epochs"]:
        lr = r.get("lr")
        value = max(r["eigenvalues"]) if key == "lambda_max" else r["trace"]
        lines.append(
            f"{r['epoch']:>6}  {lr if lr is not None else float('nan'):>10.4g}  {value:>14.6g}  "
            f"{(2 / lr) if lr else float('nan'):>10.4g}"
        )
    lines.append(f"{out['computed']} epochs probed, {out['reused']} reused from {out['cache']}")
    if out.get("plot"):
        lines.append(f"plot: {out['plot']}")
    return "\n".join(lines)


def _print_eigen(out: dict[str, Any]) -> None:
    if "epochs" in out:
        typer.echo(_over_training_table(out, "lambda_max"))
        return
    lines = [f"{'#':>3}  {'eigenvalue':>14}  {'residual':>10}", "-" * 31]
    for i, (lam, res) in enumerate(zip(out["eigenvalues"], out["residuals"], strict=True), 1):
        lines.append(f"{i:>3}  {lam:>14.7g}  {res:>10.2e}")
    if out.get("ratio") is not None:
        lines.append(f"|lambda_min| / lambda_max = {out['ratio']:.4g}")
    lines.append(
        f"{out['hvp_count']} Hessian-vector products ({out['backend']}, block {out['block_size']}), "
        f"{out['seconds']:.2f} s, {out['samples']} samples, {out['mode']} mode, {out['device']}"
        + ("" if out["converged"] else f"; NOT converged to tol {out['tol']:g}")
    )
    lines.append(f"stopped on {out.get('stopped_on') or 'unknown'}")
    for name, layer in (out.get("layers") or {}).items():
        lines.append(f"layer {name}: " + ", ".join(f"{v:.5g}" for v in layer["eigenvalues"]))
    if "pyhessian" in out:
        ph = out["pyhessian"]
        lines.append(
            f"PyHessian: {', '.join(f'{v:.7g}' for v in ph['eigenvalues'])} "
            f"({ph['hvp_count']} products, {ph['seconds']:.2f} s) vs sharpscope {out['seconds']:.2f} s: "
            f"{ph['seconds'] / max(out['seconds'], 1e-9):.1f}x"
        )
    if out.get("vectors_file"):
        lines.append(f"eigenvectors saved to {out['vectors_file']}")
    if out.get("plot"):
        lines.append(f"plot: {out['plot']}")
    typer.echo("\n".join(lines))


@handles_errors
def eigen(
    checkpoint: PathArg,
    top_k: TopKOpt = 5,
    which: WhichOpt = "largest",
    samples: SamplesOpt = 4096,
    batch_only: BatchOnlyOpt = False,
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    params: ParamsOpt = None,
    per_layer: PerLayerOpt = False,
    tol: TolOpt = 1e-3,
    stop: StopOpt = "auto",
    max_products: MaxProductsOpt = None,
    max_memory: MaxMemoryOpt = None,
    check_determinism: CheckDeterminismOpt = True,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    save_vectors: SaveVectorsOpt = None,
    compare_pyhessian: CompareOpt = False,
    plot: PlotOpt = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Top (or bottom) Hessian eigenvalues by Lanczos, with residuals and the product count."""
    check_outputs(files={"--save-vectors": save_vectors, "--plot": plot})
    memory = parse_bytes(max_memory)
    device, quiet = distributed_setup(device, quiet)
    from sharpscope.hessian.probe import probe_eigen

    out = probe_eigen(
        checkpoint,
        k=top_k,
        which=which,
        samples=samples,
        batch_only=batch_only,
        batch_size=batch_size,
        mode=mode,
        params=params,
        per_layer=per_layer,
        tol=tol,
        stop=stop,
        max_products=max_products,
        max_memory=memory,
        check_determinism=check_determinism,
        backend=backend,
        device=device,
        seed=seed,
        save_vectors_to=save_vectors,
        compare_pyhessian=compare_pyhessian,
        plot=plot,
        quiet=quiet,
        **problem_options(
            model=model, model_kwargs=model_kwargs, data=data, loss=loss, normalize=normalize
        ),
    )
    emit_json(json_out, out)
    _note_mode(out, quiet)
    if not (quiet or _stdout_json(json_out)):
        _print_eigen(out)


def _note_mode(out: dict[str, Any], quiet: bool) -> None:
    """The BatchNorm train-mode note, once, on stderr (the probe adds it only then)."""
    if out.get("mode_note") and not quiet:
        typer.echo(f"note: train mode: {out['mode_note']}", err=True)


def _target_note(out: dict[str, Any]) -> str:
    """``; target 2% reached`` (or not reached) for a trace run to a stated standard error."""
    target = out.get("target_rel_stderr")
    if target is None:
        return ""
    return f"; target {100 * target:.3g}% {'reached' if out.get('reached') else 'NOT reached'}"


def _print_trace(out: dict[str, Any]) -> None:
    if "epochs" in out:
        typer.echo(_over_training_table(out, "trace"))
        return
    lines = [
        f"trace      {out['trace']:.7g} +- {out['stderr']:.2g} (standard error, {out['method']})"
        + _target_note(out),
        f"tr(H^2)    {out['trace_h2']:.7g} +- {out['stderr_h2']:.2g}",
        f"{out['hvp_count']} Hessian-vector products ({out['backend']}), {out['seconds']:.2f} s, "
        f"{out['samples']} samples, {out['mode']} mode, {out['device']}",
    ]
    if "pyhessian" in out:
        ph = out["pyhessian"]
        lines.append(
            f"PyHessian: trace {ph['trace']:.7g} ({ph['hvp_count']} products, {ph['seconds']:.2f} s) "
            f"vs sharpscope {out['seconds']:.2f} s"
        )
    typer.echo("\n".join(lines))


@handles_errors
def trace(
    checkpoint: PathArg,
    method: MethodOpt = None,
    probes: ProbesOpt = None,
    rel_stderr: RelStderrOpt = None,
    samples: SamplesOpt = 4096,
    batch_only: BatchOnlyOpt = False,
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    params: ParamsOpt = None,
    check_determinism: CheckDeterminismOpt = True,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    compare_pyhessian: CompareOpt = False,
    plot: PlotOpt = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Hessian trace (with standard error) and tr(H^2) by Hutchinson, Hutch++ or XTrace."""
    check_outputs(files={"--plot": plot})
    device, quiet = distributed_setup(device, quiet)
    from sharpscope.hessian.probe import probe_trace

    out = probe_trace(
        checkpoint,
        method=method,
        probes=probes,
        rel_stderr=rel_stderr,
        samples=samples,
        batch_only=batch_only,
        batch_size=batch_size,
        mode=mode,
        params=params,
        check_determinism=check_determinism,
        backend=backend,
        device=device,
        seed=seed,
        compare_pyhessian=compare_pyhessian,
        plot=plot,
        quiet=quiet,
        **problem_options(
            model=model, model_kwargs=model_kwargs, data=data, loss=loss, normalize=normalize
        ),
    )
    emit_json(json_out, out)
    _note_mode(out, quiet)
    if not (quiet or _stdout_json(json_out)):
        _print_trace(out)


@handles_errors
def esd(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint file.")],
    runs: Annotated[
        int, typer.Option("--runs", help="Independent SLQ runs (random start vectors).")
    ] = 3,
    iters: Annotated[int, typer.Option("--iters", help="Lanczos steps per run.")] = 90,
    sigma: Annotated[
        Optional[float],
        typer.Option(
            "--sigma", help="Gaussian broadening width (default: 1% of the spectral range)."
        ),
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Density figure (.png, .pdf or .svg).")
    ] = None,
    html: Annotated[
        Optional[Path], typer.Option("--html", help="Self-contained interactive plotly page.")
    ] = None,
    samples: SamplesOpt = 4096,
    batch_only: BatchOnlyOpt = False,
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    params: ParamsOpt = None,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Hessian eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019)."""
    check_outputs(files={"--plot": plot, "--html": html})
    device, quiet = distributed_setup(device, quiet)
    from sharpscope.hessian.probe import probe_esd

    out = probe_esd(
        checkpoint,
        runs=runs,
        iters=iters,
        sigma=sigma,
        samples=samples,
        batch_only=batch_only,
        batch_size=batch_size,
        mode=mode,
        params=params,
        backend=backend,
        device=device,
        seed=seed,
        plot=plot,
        html=html,
        quiet=quiet,
        **problem_options(
            model=model, model_kwargs=model_kwargs, data=data, loss=loss, normalize=normalize
        ),
    )
    emit_json(json_out, out)
    _note_mode(out, quiet)
    if quiet or _stdout_json(json_out):
        return
    se = out.get("trace_stderr")
    lines = [
        f"spectrum   [{out['lambda_min']:.5g}, {out['lambda_max']:.5g}]",
        f"trace      {out['trace_estimate']:.5g} +- {se:.2g} (SLQ, standard error over "
        f"{out['runs']} runs)"
        if se is not None
        else f"trace      {out['trace_estimate']:.5g} (SLQ; one run: no error bar)",
        f"{out['hvp_count']} Hessian-vector products ({out['backend']}), {out['seconds']:.2f} s, "
        f"{out['runs']} runs x {out['iters']} steps, {out['samples']} samples, {out['mode']} mode",
    ]
    for key in ("plot", "html"):
        if out.get(key):
            lines.append(f"{key}: {out[key]}")
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    """Add ``eigen``, ``trace`` and ``esd`` to the application."""
    app.command("eigen")(eigen)
    app.command("trace")(trace)
    app.command("esd")(esd)
