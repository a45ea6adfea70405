"""``sharpscope eigen | trace | esd``: Hessian eigenvalues, trace and spectral density."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import (
    BatchSizeOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    ModelKwargsOpt,
    ModelOpt,
    ModeOpt,
    QuietOpt,
    SeedOpt,
    check_outputs,
    distributed_setup,
    emit_json,
    handles_errors,
    parse_json_dict,
)

PathArg = Annotated[
    Path,
    typer.Argument(
        help="A checkpoint file, or (eigen, trace) a run folder of epoch_XXX.pt checkpoints to probe every epoch."
    ),
]
SamplesOpt = Annotated[
    int,
    typer.Option(
        "--samples",
        help="Seeded subset of this many training samples (0: the whole training split).",
    ),
]
BatchOnlyOpt = Annotated[
    bool, typer.Option("--batch-only", help="Use only one batch of --batch-size samples.")
]
ParamsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--params", help="Regular expression selecting parameters by name (default: all trainable)."
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Hessian-vector products: auto (time both), forward (forward-over-reverse), double.",
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


def register(app: typer.Typer) -> None:
    @app.command("eigen")
    @handles_errors
    def eigen(
        checkpoint: PathArg,
        top_k: Annotated[
            int,
            typer.Option("--top-k", "-k", help="Eigenpairs wanted (per end with --which both)."),
        ] = 5,
        which: Annotated[
            str, typer.Option("--which", help="largest, smallest (most negative) or both.")
        ] = "largest",
        samples: SamplesOpt = 4096,
        batch_only: BatchOnlyOpt = False,
        batch_size: BatchSizeOpt = 512,
        mode: ModeOpt = "eval",
        params: ParamsOpt = None,
        per_layer: Annotated[
            bool, typer.Option("--per-layer", help="Also the spectrum of each layer's block.")
        ] = False,
        tol: Annotated[
            float, typer.Option("--tol", help="Relative residual tolerance ||Hv - lv|| / |l|.")
        ] = 1e-3,
        max_products: Annotated[
            Optional[int], typer.Option("--max-products", help="Cap on Lanczos products.")
        ] = None,
        backend: BackendOpt = "auto",
        device: DeviceOpt = "auto",
        save_vectors: Annotated[
            Optional[Path],
            typer.Option(
                "--save-vectors",
                help="Save the eigenvectors (sharpscope-vectors file) for landscape directions.",
            ),
        ] = None,
        compare_pyhessian: CompareOpt = False,
        plot: PlotOpt = None,
        model: ModelOpt = None,
        model_kwargs: ModelKwargsOpt = None,
        data: DataOpt = None,
        seed: SeedOpt = 0,
        json_out: JsonOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Top (or bottom) Hessian eigenvalues by Lanczos, with residuals and the product count."""
        check_outputs(files={"--save-vectors": save_vectors, "--plot": plot})
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
            max_products=max_products,
            backend=backend,
            device=device,
            seed=seed,
            save_vectors_to=save_vectors,
            compare_pyhessian=compare_pyhessian,
            model=model,
            model_kwargs=parse_json_dict(model_kwargs) or None,
            data=data,
            plot=plot,
            quiet=quiet,
        )
        emit_json(json_out, out)
        if quiet or _stdout_json(json_out):
            return
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

    @app.command("trace")
    @handles_errors
    def trace(
        checkpoint: PathArg,
        method: Annotated[
            str, typer.Option("--method", help="hutchinson or hutchpp (Hutch++).")
        ] = "hutchinson",
        probes: Annotated[
            int, typer.Option("--probes", help="Hessian-vector products to spend.")
        ] = 100,
        samples: SamplesOpt = 4096,
        batch_only: BatchOnlyOpt = False,
        batch_size: BatchSizeOpt = 512,
        mode: ModeOpt = "eval",
        params: ParamsOpt = None,
        backend: BackendOpt = "auto",
        device: DeviceOpt = "auto",
        compare_pyhessian: CompareOpt = False,
        plot: PlotOpt = None,
        model: ModelOpt = None,
        model_kwargs: ModelKwargsOpt = None,
        data: DataOpt = None,
        seed: SeedOpt = 0,
        json_out: JsonOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Hessian trace (with standard error) and tr(H^2) by Hutchinson or Hutch++."""
        check_outputs(files={"--plot": plot})
        device, quiet = distributed_setup(device, quiet)
        from sharpscope.hessian.probe import probe_trace

        out = probe_trace(
            checkpoint,
            method=method,
            probes=probes,
            samples=samples,
            batch_only=batch_only,
            batch_size=batch_size,
            mode=mode,
            params=params,
            backend=backend,
            device=device,
            seed=seed,
            compare_pyhessian=compare_pyhessian,
            model=model,
            model_kwargs=parse_json_dict(model_kwargs) or None,
            data=data,
            plot=plot,
            quiet=quiet,
        )
        emit_json(json_out, out)
        if quiet or _stdout_json(json_out):
            return
        if "epochs" in out:
            typer.echo(_over_training_table(out, "trace"))
            return
        lines = [
            f"trace      {out['trace']:.7g} +- {out['stderr']:.2g} (standard error, {out['method']})",
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

    @app.command("esd")
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
            model=model,
            model_kwargs=parse_json_dict(model_kwargs) or None,
            data=data,
            quiet=quiet,
        )
        emit_json(json_out, out)
        if quiet or _stdout_json(json_out):
            return
        lines = [
            f"spectrum   [{out['lambda_min']:.5g}, {out['lambda_max']:.5g}]",
            f"trace      ~{out['trace_estimate']:.5g} (SLQ)",
            f"{out['hvp_count']} Hessian-vector products ({out['backend']}), {out['seconds']:.2f} s, "
            f"{out['runs']} runs x {out['iters']} steps, {out['samples']} samples, {out['mode']} mode",
        ]
        for key in ("plot", "html"):
            if out.get(key):
                lines.append(f"{key}: {out[key]}")
        typer.echo("\n".join(lines))
