"""``sharpscope plane | sharpness``: XSAM's v0-v1 plane and sharpness measures of a checkpoint."""

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
    SeedOpt,
    distributed_setup,
    emit_json,
    handles_errors,
    problem_options,
)

CheckpointArg = Annotated[
    Path, typer.Argument(help="A sharpscope checkpoint or a plain state dict.")
]
SamplesOpt = Annotated[
    int,
    typer.Option(
        "--samples", help="Seeded subset of this many training samples (0: the whole split)."
    ),
]
ParamsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--params", help="Regular expression selecting the parameters to perturb (default: all)."
    ),
]


def _to_stdout(json_out: Path | None) -> bool:
    return json_out is not None and str(json_out) == "-"


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _plane_report(out: dict[str, Any]) -> str:
    w = out["worst"]
    s = out["settings"]
    lines = [
        f"XSAM plane of {out['checkpoint']}  (rho={out['rho']:g}, rho_max={out['rho_max']:g}, k={out['k']}, "
        f"{s['data_samples']} samples, {s['mode']} mode)",
        f"  angle psi between v0 and v1   {out['psi_deg']:.2f} deg"
        + ("  (v0 || v1: e2 is a random direction)" if out["degenerate"] else ""),
        f"  loss at theta_0               {out['loss_theta0']:.6g}",
        f"  arc alpha=0 (v0)              {out['loss_alpha0']:.6g}",
        f"  arc alpha=1 (SAM)             {out['loss_sam']:.6g}   {_pct(out['capture_sam'])} of the worst-case rise",
        f"  arc alpha*={out['alpha_star']:<4.3g} (XSAM)       {out['loss_xsam']:.6g}   "
        f"{_pct(out['capture_xsam'])} of the worst-case rise",
        f"  worst point of the ball       {w['loss']:.6g}   {w['angle_to_plane_deg']:.1f} deg off the plane; "
        f"cos to SAM {w['cos_sam']:.3f}, to XSAM {w['cos_xsam']:.3f}",
        "wrote " + ", ".join(out["files"].values()),
    ]
    return "\n".join(lines)


_MEASURE_NAMES = {
    "worst": "worst-case sharpness",
    "average": "average-case sharpness",
    "lambda_max": "top Hessian eigenvalue",
    "trace": "Hessian trace",
}


def _sharpness_report(out: dict[str, Any]) -> str:
    s = out["settings"]
    geometry = f"{s['norm']}{', adaptive' if s['adaptive'] else ''}, rho={s['rho']:g}"
    if out["measure"] == "average":
        noise = "Gaussian noise, std" if s["norm"] == "l2" else "uniform noise in +-"
        geometry = f"{noise} {s['rho']:g} per weight{' times |theta|' if s['adaptive'] else ''}"
        if out.get("noise_norm") is not None:
            geometry += f", noise norm ~{out['noise_norm']:.3g}"
    value = f"{out['sharpness']:.6g}" + (
        f" +- {out['stderr']:.2g} (standard error)" if out.get("stderr") is not None else ""
    )
    lines = [f"{_MEASURE_NAMES[out['measure']]} ({geometry}): {value}"]
    if out.get("perturbed_loss") is not None:
        lines.append(f"  loss {out['loss']:.6g} -> {out['perturbed_loss']:.6g}")
    else:
        lines.append(f"  loss at theta {out['loss']:.6g}")
    for key, label in (
        ("second_order_worst", "rho^2 lambda_max / 2"),
        ("second_order_average", "rho^2 tr(H) / 2"),
    ):
        if key in out:
            lines.append(f"  {label} = {out[key]:.6g}")
    unit = {"worst": "gradient evaluations", "average": "loss evaluations"}.get(
        out["measure"], "Hessian-vector products"
    )
    lines.append(f"  {out['iterations']} {unit}, {s['data_samples']} samples, {s['mode']} mode")
    return "\n".join(lines)


def _warn_boundary(out: dict[str, Any]) -> None:
    """One ``warning:`` line on stderr when a search ended on its limit (also with --json -)."""
    from sharpscope.runtime.distributed import is_main

    if out.get("boundary_note") and is_main():
        typer.echo(f"warning: {out['boundary_note']}", err=True)


def _check_json(json_out: Path | None) -> None:
    """Fail before any work when the --json file cannot be written."""
    from sharpscope.runtime.files import check_writable

    if json_out is not None and str(json_out) != "-":
        check_writable(json_out, what="--json")


@handles_errors
def plane(
    checkpoint: CheckpointArg,
    rho: Annotated[float, typer.Option("--rho", help="XSAM's ascent radius.")] = 0.05,
    rho_max: Annotated[
        Optional[float],
        typer.Option(
            "--rho-max",
            help="Radius of the slerp arc and of the worst-case ball (default 2 rho).",
        ),
    ] = None,
    steps: Annotated[
        int, typer.Option("--steps", "-k", help="Ascent steps k (each of length rho/k).")
    ] = 1,
    alpha_max: Annotated[
        float, typer.Option("--alpha-max", help="Largest alpha on the arc.")
    ] = 2.0,
    alpha_step: Annotated[
        float, typer.Option("--alpha-step", help="Spacing of the arc's alphas.")
    ] = 0.1,
    grid_range: Annotated[
        str,
        typer.Option(
            "--range", help="Plane grid START:STOP:NUM for both axes (parameter distances)."
        ),
    ] = "-0.5:0.5:41",
    out_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            "-o",
            help="Output folder (default plane-<checkpoint name>); resumes its grid.",
        ),
    ] = None,
    html: Annotated[
        bool, typer.Option("--html", help="Also write an interactive plane.html.")
    ] = False,
    worst_steps: Annotated[
        int,
        typer.Option(
            "--worst-steps", help="Ascent steps per start for the worst point of the ball."
        ),
    ] = 30,
    restarts: Annotated[
        int, typer.Option("--restarts", help="Random starts for the worst point.")
    ] = 2,
    samples: SamplesOpt = 2048,
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    params: ParamsOpt = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """XSAM's v0-v1 plane: loss contour, slerp arc, SAM's and XSAM's points, the worst point of the ball."""
    device, quiet = distributed_setup(device, quiet)
    _check_json(json_out)
    from sharpscope.sharpness.plane_probe import probe_plane

    out = probe_plane(
        checkpoint,
        rho=rho,
        rho_max=rho_max,
        steps=steps,
        alpha_max=alpha_max,
        alpha_step=alpha_step,
        grid_range=grid_range,
        out_dir=out_dir,
        html=html,
        samples=samples,
        batch_size=batch_size,
        mode=mode,
        worst_steps=worst_steps,
        restarts=restarts,
        params=params,
        seed=seed,
        device=device,
        **problem_options(
            model=model, model_kwargs=model_kwargs, data=data, loss=loss, normalize=normalize
        ),
        quiet=quiet or _to_stdout(json_out),
    )
    emit_json(json_out, out)
    if not (quiet or _to_stdout(json_out)):
        typer.echo(_plane_report(out))
    _warn_boundary(out)


@handles_errors
def sharpness_cmd(
    checkpoint: CheckpointArg,
    measure: Annotated[
        str, typer.Option("--measure", "-m", help="worst, average, lambda_max or trace.")
    ] = "worst",
    rho: Annotated[
        float,
        typer.Option(
            "--rho",
            help="Ball radius (worst), noise scale (average), or the radius of the "
            "second-order predictions (lambda_max, trace).",
        ),
    ] = 0.05,
    norm: Annotated[str, typer.Option("--norm", help="l2 or linf.")] = "l2",
    adaptive: Annotated[
        bool,
        typer.Option("--adaptive", help="Scale the perturbation element-wise by |theta| (ASAM)."),
    ] = False,
    steps: Annotated[int, typer.Option("--steps", help="Ascent steps per start (worst).")] = 20,
    restarts: Annotated[
        int,
        typer.Option("--restarts", help="Random starts besides the gradient start (worst)."),
    ] = 2,
    draws: Annotated[
        int, typer.Option("--draws", help="Noise draws (average) or Hutchinson probes (trace).")
    ] = 64,
    samples: SamplesOpt = 2048,
    split: Annotated[str, typer.Option("--split", help="Data split: train or test.")] = "train",
    batch_size: BatchSizeOpt = 512,
    mode: ModeOpt = "eval",
    params: ParamsOpt = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = None,
    loss: LossOpt = None,
    normalize: NormalizeOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Sharpness of a checkpoint: worst-case or average-case loss increase in a rho-ball, lambda_max, trace."""
    device, quiet = distributed_setup(device, quiet)
    _check_json(json_out)
    from sharpscope.sharpness.probe import probe_sharpness

    out = probe_sharpness(
        checkpoint,
        measure=measure,
        rho=rho,
        norm=norm,
        adaptive=adaptive,
        mode=mode,
        steps=steps,
        restarts=restarts,
        draws=draws,
        samples=samples,
        batch_size=batch_size,
        split=split,
        params=params,
        seed=seed,
        device=device,
        **problem_options(
            model=model, model_kwargs=model_kwargs, data=data, loss=loss, normalize=normalize
        ),
        quiet=quiet or _to_stdout(json_out),
    )
    emit_json(json_out, out)
    if not (quiet or _to_stdout(json_out)):
        typer.echo(_sharpness_report(out))
    _warn_boundary(out)


def register(app: typer.Typer) -> None:
    """Add ``plane`` and ``sharpness`` to the application."""
    app.command("plane")(plane)
    app.command("sharpness")(sharpness_cmd)
