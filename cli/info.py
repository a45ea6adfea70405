"""``sharpscope info``: what a checkpoint holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    DataOpt,
    JsonOpt,
    LossOpt,
    ModelKwargsOpt,
    ModelOpt,
    NormalizeOpt,
    QuietOpt,
    emit_json,
    handles_errors,
    parse_json_dict,
)


def _format_metrics(metrics: dict) -> str:
    from sharpscope.runtime.sanitize import printable

    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{printable(key)}={value:.4g}")
        elif isinstance(value, (int, str)):
            parts.append(f"{printable(key)}={printable(value)}")
    return ", ".join(parts) or "none"


def _stored_normalization(data: dict[str, Any], plain: bool) -> dict[str, Any]:
    """What a checkpoint's data entry says about the normalisation (nothing is loaded)."""
    norm = data.get("normalize", True)
    if plain or norm is False:
        return {"mode": "none"}
    if isinstance(norm, str):
        return {"mode": "fixed", "value": norm}
    if data.get("mean") is not None:
        return {
            "mode": "standard",
            "mean": list(data["mean"]),
            "std": list(data["std"]),
            "source": "stored in the checkpoint",
        }
    return {"mode": "standard", "source": "recomputed from the training split when loaded"}


def _normalization_text(norm: dict[str, Any]) -> str:
    def nums(v: Any) -> str:
        return ",".join(f"{float(x):.6g}" for x in v)

    text = str(norm.get("mode"))
    if "mean" in norm and norm["mean"] is not None:
        text += f" mean {nums(norm['mean'])} std {nums(norm['std'])}"
    if "value" in norm:
        text += f" {norm['value']}"
    for key in ("source", "note"):
        if norm.get(key):
            text += f" ({norm[key]})"
    return text


def _evaluate(
    checkpoint: Path, model: Any, kwargs: Any, data: Any, loss: Any, normalize: Any
) -> dict[str, Any]:
    """Load the problem and evaluate the mean loss on the training split."""
    import torch

    from sharpscope.problem import load_problem
    from sharpscope.runtime.batches import batch_weight, loss_on_batch

    problem = load_problem(
        checkpoint,
        model=model,
        model_kwargs=kwargs,
        data=data,
        loss=loss,
        normalize=normalize,
        device="cpu",
    )
    total = weight = 0.0
    problem.model.eval()
    with torch.no_grad():
        for batch in problem.batches("train", 512):
            w = batch_weight(batch, problem.loss_fn)
            total += w * float(loss_on_batch(problem.model, problem.loss_fn, batch))
            weight += w
    described = problem.describe()
    return {
        "loss": described["loss"],
        "normalization": described["normalization"],
        "train_loss": total / weight,
        "train_samples": problem.data.count("train"),
    }


def register(app: typer.Typer) -> None:
    @app.command("info")
    @handles_errors
    def info(
        checkpoint: Annotated[
            Path, typer.Argument(help="A sharpscope checkpoint or a plain state dict.")
        ],
        model: ModelOpt = None,
        model_kwargs: ModelKwargsOpt = None,
        data: DataOpt = None,
        loss: LossOpt = None,
        normalize: NormalizeOpt = None,
        json_out: JsonOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Print what a checkpoint holds: model, parameter count, data, optimizer, final metrics.

        Everything shown is read as data: a model named by import path is not imported
        (unless --model names it), and terminal control sequences are removed. With
        --data (a plain state dict) the model is also evaluated: the loss on the training
        split, with the normalisation applied stated.
        """
        from sharpscope.errors import CheckpointError
        from sharpscope.problem.checkpoint import load_checkpoint
        from sharpscope.problem.data import load_data
        from sharpscope.runtime.sanitize import printable

        kwargs = parse_json_dict(model_kwargs) or None
        shape = classes = None
        if data is not None:
            splits = load_data(data, normalize=False)
            shape, classes = splits.input_shape, splits.num_classes
        ck = load_checkpoint(
            checkpoint,
            model=model,
            model_kwargs=kwargs,
            data=data,
            input_shape=shape,
            num_classes=classes,
        )
        recorded = ck.model.get("input_shape")
        if shape is not None and recorded is not None and tuple(recorded) != tuple(shape):
            raise CheckpointError(
                f"{checkpoint}: the model was built for inputs of shape {list(recorded)} "
                f"but data '{data}' has shape {list(shape)}"
            )
        outputs = ck.model.get("num_classes")
        if classes is not None and outputs is not None and classes > int(outputs):
            raise CheckpointError(
                f"{checkpoint}: the model has {outputs} outputs but data '{data}' has {classes} classes"
            )
        if ck.plain_state_dict or model is not None or kwargs:
            ck.build_model()  # names missing/unexpected keys and shape differences
        summary = ck.summary()
        summary["normalization"] = _stored_normalization(ck.data, ck.plain_state_dict)
        if data is not None or loss is not None or normalize is not None:
            summary.update(_evaluate(checkpoint, model, kwargs, data, loss, normalize))
        emit_json(json_out, summary)
        if quiet or (json_out is not None and str(json_out) == "-"):
            return
        opt = ck.optimizer if isinstance(ck.optimizer, dict) else {}
        hparams = opt.get("hparams")
        hp = ", ".join(
            f"{k}={v}" for k, v in (hparams.items() if isinstance(hparams, dict) else ())
        )
        name = str(ck.model.get("name"))
        unimported = not ck.model_from_caller and ":" in name
        versions = ck.versions if isinstance(ck.versions, dict) else {}
        lines = [
            f"checkpoint   {checkpoint}" + ("  (plain state dict)" if ck.plain_state_dict else ""),
            f"model        {name} {ck.model.get('kwargs') or ''}".rstrip()
            + (
                "  (a factory named by import path: not imported; pass --model to use it)"
                if unimported
                else ""
            ),
            f"parameters   {summary['parameters']:,}",
            f"data         {ck.data.get('spec')}"
            + (f" (samples={ck.data['samples']})" if ck.data.get("samples") else ""),
            f"loss         {summary.get('loss', ck.loss)}",
            f"normalize    {_normalization_text(summary['normalization'])}",
            f"optimizer    {opt.get('name', 'unknown')}" + (f" ({hp})" if hp else ""),
            f"seed         {ck.seed}",
            f"epochs       {len(ck.metrics)}",
            f"final        {_format_metrics(ck.final_metrics)}",
            f"versions     sharpscope {versions.get('sharpscope', '?')}, torch {versions.get('torch', '?')}"
            if versions
            else "versions     unknown",
        ]
        if "train_loss" in summary:
            lines.append(
                f"train loss   {summary['train_loss']:.6g} at these weights "
                f"({summary['train_samples']} samples)"
            )
        # every value shown was read from the file: no escape sequence reaches the terminal
        typer.echo("\n".join(printable(line) for line in lines))
