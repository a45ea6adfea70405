"""``sharpscope train``: train with SGD, SAM, ASAM or XSAM and write checkpoints for the probes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import (
    BatchSizeOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    SeedOpt,
    distributed_setup,
    emit_json,
    fail,
    handles_errors,
    parse_json_dict,
)


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


def register(app: typer.Typer) -> None:
    @app.command("train")
    @handles_errors
    def train_cmd(
        out: Annotated[
            Path,
            typer.Option(
                "--out", help="Run folder: epoch_XXX.pt, last.pt, final.pt, metrics.jsonl."
            ),
        ],
        model: Annotated[
            str, typer.Option("--model", help="mlp, cnn, resnet20/32/56, vgg11 or 'pkg.mod:fn'.")
        ] = "mlp",
        model_kwargs: Annotated[
            Optional[str],
            typer.Option(
                "--model-kwargs",
                help="Model keyword arguments as JSON, e.g. '{\"batchnorm\": true}'.",
            ),
        ] = None,
        data: Annotated[
            str,
            typer.Option(
                "--data",
                help="digits, synthetic, mnist:DIR, cifar10:DIR, cifar100:DIR, tensors:FILE, folder:DIR.",
            ),
        ] = "digits",
        samples: Annotated[
            Optional[int],
            typer.Option(
                "--samples",
                help="Train on a seeded subset of this many training samples "
                "(default or 0: all, as in the probes).",
            ),
        ] = None,
        optimizer: Annotated[
            str, typer.Option("--optimizer", help="sgd, sam, asam or xsam.")
        ] = "sgd",
        base: Annotated[str, typer.Option("--base", help="Base optimizer: sgd or adamw.")] = "sgd",
        lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 0.1,
        momentum: Annotated[
            float, typer.Option("--momentum", help="SGD momentum (base sgd only).")
        ] = 0.9,
        weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay.")] = 5e-4,
        nesterov: Annotated[
            bool, typer.Option("--nesterov/--no-nesterov", help="Nesterov momentum.")
        ] = False,
        rho: Annotated[
            float,
            typer.Option("--rho", help="SAM/ASAM/XSAM ascent radius (> 0; for rho 0 use sgd)."),
        ] = 0.05,
        eta: Annotated[float, typer.Option("--eta", help="ASAM: T = |w| + eta.")] = 0.01,
        steps: Annotated[
            int, typer.Option("--steps", help="XSAM: ascent steps k (each rho/k long).")
        ] = 1,
        alpha: Annotated[
            str,
            typer.Option(
                "--alpha",
                help="XSAM: a fixed alpha (1 = SAM) or 'dynamic' (searched once per epoch).",
            ),
        ] = "dynamic",
        rho_max: Annotated[
            Optional[float],
            typer.Option("--rho-max", help="XSAM: radius of the alpha search (default 2 * rho)."),
        ] = None,
        alpha_max: Annotated[
            float, typer.Option("--alpha-max", help="XSAM: largest alpha searched.")
        ] = 2.0,
        alpha_step: Annotated[
            float, typer.Option("--alpha-step", help="XSAM: alpha grid spacing.")
        ] = 0.1,
        search_every: Annotated[
            Optional[int],
            typer.Option(
                "--search-every", help="XSAM: search alpha every N steps instead of once per epoch."
            ),
        ] = None,
        bn_policy: Annotated[
            str,
            typer.Option(
                "--bn-policy",
                help="clean: BatchNorm statistics from the clean pass only; all: every pass.",
            ),
        ] = "clean",
        epochs: Annotated[int, typer.Option("--epochs", help="Epochs.")] = 10,
        batch_size: BatchSizeOpt = 128,
        schedule: Annotated[
            str, typer.Option("--schedule", help="constant, cosine or step.")
        ] = "cosine",
        warmup_epochs: Annotated[
            int, typer.Option("--warmup-epochs", help="Linear warm-up epochs.")
        ] = 0,
        milestones: Annotated[
            Optional[str],
            typer.Option(
                "--milestones",
                help="step schedule: epochs where lr *= gamma, e.g. 100,150 (default: 50% and 75%).",
            ),
        ] = None,
        gamma: Annotated[float, typer.Option("--gamma", help="step schedule: decay factor.")] = 0.1,
        seed: SeedOpt = 0,
        device: DeviceOpt = "auto",
        bf16: Annotated[
            bool, typer.Option("--bf16", help="bfloat16 autocast for the forward passes.")
        ] = False,
        save_every: Annotated[
            int,
            typer.Option(
                "--save-every", help="Write epoch_XXX.pt every N epochs (0: only epoch_000.pt)."
            ),
        ] = 1,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue the interrupted run in --out.")
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite an existing run in --out.")
        ] = False,
        perturbation: Annotated[
            str,
            typer.Option(
                "--perturbation",
                help="torchrun runs, SAM/ASAM/XSAM: per-rank (each rank ascends on its own shard, "
                "Foret et al.) or global (all-reduced gradient before the ascent).",
            ),
        ] = "per-rank",
        json_out: JsonOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Train a model with SGD, SAM, ASAM or XSAM; writes checkpoints every epoch and resumes."""
        device, quiet = distributed_setup(device, quiet)
        from sharpscope.train import train

        try:
            result = train(
                model=model,
                model_kwargs=parse_json_dict(model_kwargs),
                data=data,
                samples=samples,
                optimizer=optimizer,
                base=base,
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                nesterov=nesterov,
                rho=rho,
                eta=eta,
                steps=steps,
                alpha=_parse_alpha(alpha),
                rho_max=rho_max,
                alpha_max=alpha_max,
                alpha_step=alpha_step,
                search_every=search_every,
                bn_policy=bn_policy,
                epochs=epochs,
                batch_size=batch_size,
                schedule=schedule,
                warmup_epochs=warmup_epochs,
                milestones=_parse_milestones(milestones),
                gamma=gamma,
                seed=seed,
                device=device,
                bf16=bf16,
                save_every=save_every,
                out=out,
                resume=resume,
                force=force,
                quiet=quiet,
                perturbation=perturbation,
            )
        except KeyboardInterrupt:
            typer.echo(
                f"interrupted: {out / 'last.pt'} keeps the last finished epoch; "
                "run the same command with --resume to continue",
                err=True,
            )
            raise typer.Exit(130) from None
        summary = result.summary()
        emit_json(json_out, summary)
        if quiet or (json_out is not None and str(json_out) == "-"):
            return
        f = result.final
        alpha_txt = f", alpha {f['alpha']:g}" if f.get("alpha") is not None else ""
        test_txt = (
            "test: no test data"
            if f.get("test_loss") is None
            else f"test loss {f['test_loss']:.4f}, acc {f['test_acc']:.4f} "
            f"(best {summary['best_test_acc']:.4f})"
        )
        typer.echo(
            f"{result.optimizer}: {result.epochs} epochs in {result.seconds:.1f} s; "
            f"train loss {f['train_loss']:.4f}, acc {f['train_acc']:.4f}; {test_txt}{alpha_txt}\n"
            f"checkpoints in {result.out}: final.pt, last.pt, epoch_XXX.pt; metrics in metrics.jsonl"
        )
