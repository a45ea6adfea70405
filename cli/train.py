"""``sharpscope train``: train with SGD, SAM, ASAM or XSAM and write checkpoints for the probes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import (
    BatchSizeOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    check_outputs,
    distributed_setup,
    emit_json,
    fail,
    handles_errors,
    parse_json_dict,
)

# ----------------------------------------------------------------------------- options
OutOpt = Annotated[
    Path,
    typer.Option("--out", help="Run folder: epoch_XXX.pt, last.pt, final.pt, metrics.jsonl."),
]
ModelOpt = Annotated[
    str, typer.Option("--model", help="mlp, cnn, resnet20/32/56, vgg11 or 'pkg.mod:fn'.")
]
ModelKwargsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model-kwargs", help="Model keyword arguments as JSON, e.g. '{\"batchnorm\": true}'."
    ),
]
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="digits, synthetic, mnist:DIR, cifar10:DIR, cifar100:DIR, tensors:FILE, folder:DIR, "
        "text, textfile:PATH or 'package.module:factory[?key=value&...]' returning "
        "(train, test).",
    ),
]
SamplesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--samples",
        help="Train on a seeded subset of this many training samples "
        "(default or 0: all, as in the probes).",
    ),
]
LossOpt = Annotated[
    str,
    typer.Option(
        "--loss",
        help="Loss: cross_entropy, sequence_cross_entropy, mse, or 'package.module:fn' with "
        "fn(output, batch) -> mean loss (recorded by name; probes import it only when given "
        "--loss again).",
    ),
]
NormalizeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--normalize",
        help="Input normalisation: none (the data as stored), standard (per channel, from the "
        "training split), MEAN,STD or per-channel M1,M2,../S1,S2,.. Default: standard "
        "(or the spec's ?normalize=); batches from a data factory are never normalised.",
    ),
]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="sgd, sam, asam or xsam.")]
BaseOpt = Annotated[str, typer.Option("--base", help="Base optimizer: sgd or adamw.")]
LrOpt = Annotated[float, typer.Option("--lr", help="Peak learning rate.")]
MomentumOpt = Annotated[float, typer.Option("--momentum", help="SGD momentum (base sgd only).")]
WeightDecayOpt = Annotated[float, typer.Option("--weight-decay", help="Weight decay.")]
NesterovOpt = Annotated[bool, typer.Option("--nesterov/--no-nesterov", help="Nesterov momentum.")]
RhoOpt = Annotated[
    float, typer.Option("--rho", help="SAM/ASAM/XSAM ascent radius (> 0; for rho 0 use sgd).")
]
EtaOpt = Annotated[float, typer.Option("--eta", help="ASAM: T = |w| + eta.")]
StepsOpt = Annotated[int, typer.Option("--steps", help="XSAM: ascent steps k (each rho/k long).")]
AlphaOpt = Annotated[
    str,
    typer.Option(
        "--alpha", help="XSAM: a fixed alpha (1 = SAM) or 'dynamic' (searched once per epoch)."
    ),
]
RhoMaxOpt = Annotated[
    Optional[float],
    typer.Option("--rho-max", help="XSAM: radius of the alpha search (default 2 * rho)."),
]
AlphaMaxOpt = Annotated[float, typer.Option("--alpha-max", help="XSAM: largest alpha searched.")]
AlphaStepOpt = Annotated[float, typer.Option("--alpha-step", help="XSAM: alpha grid spacing.")]
SearchEveryOpt = Annotated[
    Optional[int],
    typer.Option(
        "--search-every", help="XSAM: search alpha every N steps instead of once per epoch."
    ),
]
BnPolicyOpt = Annotated[
    str,
    typer.Option(
        "--bn-policy",
        help="clean: BatchNorm statistics from the clean pass only; all: every pass.",
    ),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Epochs.")]
ScheduleOpt = Annotated[str, typer.Option("--schedule", help="constant, cosine or step.")]
WarmupOpt = Annotated[int, typer.Option("--warmup-epochs", help="Linear warm-up epochs.")]
MilestonesOpt = Annotated[
    Optional[str],
    typer.Option(
        "--milestones",
        help="step schedule: epochs where lr *= gamma, e.g. 100,150 (default: 50% and 75%).",
    ),
]
GammaOpt = Annotated[float, typer.Option("--gamma", help="step schedule: decay factor.")]
Bf16Opt = Annotated[bool, typer.Option("--bf16", help="bfloat16 autocast for the forward passes.")]
SaveEveryOpt = Annotated[
    int,
    typer.Option("--save-every", help="Write epoch_XXX.pt every N epochs (0: only epoch_000.pt)."),
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (default 0).")]
SeedsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--seeds",
        help="Train once per seed, e.g. 0,1,2, into --out/seed0/, seed1/, ... "
        "(each a resumable run folder; not with --seed).",
    ),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing run in --out.")]
PerturbationOpt = Annotated[
    str,
    typer.Option(
        "--perturbation",
        help="torchrun runs, SAM/ASAM/XSAM: per-rank (each rank ascends on its own shard, "
        "Foret et al.) or global (all-reduced gradient before the ascent).",
    ),
]


# ----------------------------------------------------------------------------- parsing
def _parse_alpha(text: str) -> float | None:
    if text.strip().lower() == "dynamic":
        return None
    try:
        return float(text)
    except ValueError:
        fail(f"--alpha must be a number or 'dynamic', got {text!r}")


def _parse_milestones(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(m) for m in text.replace(" ", "").split(",") if m]
    except ValueError:
        fail(
            f"--milestones must be whole epoch numbers separated by commas, e.g. 100,150; got {text!r}"
        )


def _parse_seeds(text: str | None, seed: int | None) -> list[int] | None:
    if text is None:
        return None
    if seed is not None:
        fail("--seed and --seeds are exclusive: give one seed with --seed or several with --seeds")
    try:
        return [int(k) for k in text.replace(" ", "").split(",") if k]
    except ValueError:
        fail(f"--seeds must be whole numbers separated by commas, e.g. 0,1,2; got {text!r}")


def _library_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """The keywords of :func:`sharpscope.training.train` from the command's options: the
    options that need parsing are parsed, those that are not the library's are dropped."""
    kw = {k: v for k, v in options.items() if k not in ("json_out", "seeds")}
    kw["seed"] = 0 if options["seed"] is None else options["seed"]
    kw["model_kwargs"] = parse_json_dict(options["model_kwargs"])
    kw["alpha"] = _parse_alpha(options["alpha"])
    kw["milestones"] = _parse_milestones(options["milestones"])
    return kw


# ----------------------------------------------------------------------------- command
@handles_errors
def train_cmd(
    out: OutOpt,
    model: ModelOpt = "mlp",
    model_kwargs: ModelKwargsOpt = None,
    data: DataOpt = "digits",
    samples: SamplesOpt = None,
    loss: LossOpt = "cross_entropy",
    normalize: NormalizeOpt = None,
    optimizer: OptimizerOpt = "sgd",
    base: BaseOpt = "sgd",
    lr: LrOpt = 0.1,
    momentum: MomentumOpt = 0.9,
    weight_decay: WeightDecayOpt = 5e-4,
    nesterov: NesterovOpt = False,
    rho: RhoOpt = 0.05,
    eta: EtaOpt = 0.01,
    steps: StepsOpt = 1,
    alpha: AlphaOpt = "dynamic",
    rho_max: RhoMaxOpt = None,
    alpha_max: AlphaMaxOpt = 2.0,
    alpha_step: AlphaStepOpt = 0.1,
    search_every: SearchEveryOpt = None,
    bn_policy: BnPolicyOpt = "clean",
    epochs: EpochsOpt = 10,
    batch_size: BatchSizeOpt = 128,
    schedule: ScheduleOpt = "cosine",
    warmup_epochs: WarmupOpt = 0,
    milestones: MilestonesOpt = None,
    gamma: GammaOpt = 0.1,
    seed: SeedOpt = None,
    seeds: SeedsOpt = None,
    device: DeviceOpt = "auto",
    bf16: Bf16Opt = False,
    save_every: SaveEveryOpt = 1,
    resume: ResumeOpt = False,
    force: ForceOpt = False,
    perturbation: PerturbationOpt = "per-rank",
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model with SGD, SAM, ASAM or XSAM; writes checkpoints every epoch and resumes."""
    options = dict(locals())
    check_outputs(folders={"--out": out})
    seed_list = _parse_seeds(seeds, seed)
    options["device"], options["quiet"] = distributed_setup(device, quiet)
    from sharpscope.training import train, train_seeds

    kw = _library_kwargs(options)
    try:
        if seed_list is None:
            results = [train(**kw)]
        else:
            del kw["seed"]
            results = train_seeds(seeds=seed_list, **kw)
    except KeyboardInterrupt:
        where = out / "last.pt" if seed_list is None else f"each run folder in {out}"
        typer.echo(
            f"interrupted: {where} keeps the last finished epoch; "
            "run the same command with --resume to continue",
            err=True,
        )
        raise typer.Exit(130) from None
    summaries = [r.summary() for r in results]
    if seed_list is None:
        emit_json(json_out, summaries[0])
    else:
        emit_json(json_out, {"out": str(out), "seeds": seed_list, "runs": summaries})
    if options["quiet"] or (json_out is not None and str(json_out) == "-"):
        return
    for k, result, summary in zip(seed_list or [None], results, summaries, strict=True):
        typer.echo(("" if k is None else f"seed {k}: ") + _summary_text(result, summary))


def _summary_text(result: Any, summary: dict[str, Any]) -> str:
    """The two lines printed after a run."""
    f = result.final
    alpha_txt = f", alpha {f['alpha']:g}" if f.get("alpha") is not None else ""
    if f.get("perplexity") is not None:
        alpha_txt = f", perplexity {f['perplexity']:.4g}{alpha_txt}"
    test_txt = (
        "test: no test data"
        if f.get("test_loss") is None
        else f"test loss {f['test_loss']:.4f}, acc {_acc(f['test_acc'])}"
        + ("" if summary["best_test_acc"] is None else f" (best {summary['best_test_acc']:.4f})")
    )
    return (
        f"{result.optimizer}: {result.epochs} epochs in {result.seconds:.1f} s; "
        f"train loss {f['train_loss']:.4f}, acc {_acc(f['train_acc'])}; {test_txt}{alpha_txt}\n"
        f"checkpoints in {result.out}: final.pt, last.pt, epoch_XXX.pt; metrics in metrics.jsonl"
    )


def _acc(value: float | None) -> str:
    """An accuracy, or ``n/a`` where the model's output is no class score."""
    return "n/a" if value is None else f"{value:.4f}"


def register(app: typer.Typer) -> None:
    """Add ``train`` to the application."""
    app.command("train")(train_cmd)
