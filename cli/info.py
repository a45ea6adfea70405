"""``sharpscope info``: what a checkpoint holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    DataOpt,
    JsonOpt,
    ModelKwargsOpt,
    ModelOpt,
    QuietOpt,
    emit_json,
    handles_errors,
    parse_json_dict,
)


def _format_metrics(metrics: dict) -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, (int, str)):
            parts.append(f"{key}={value}")
    return ", ".join(parts) or "none"


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
        json_out: JsonOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Print what a checkpoint holds: model, parameter count, data, optimizer, final metrics."""
        from sharpscope.checkpoint import load_checkpoint
        from sharpscope.data import load_data
        from sharpscope.errors import CheckpointError

        kwargs = parse_json_dict(model_kwargs) or None
        shape = classes = None
        if data is not None:
            splits = load_data(data)
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
        emit_json(json_out, summary)
        if quiet or (json_out is not None and str(json_out) == "-"):
            return
        opt = ck.optimizer
        hp = ", ".join(f"{k}={v}" for k, v in (opt.get("hparams") or {}).items())
        lines = [
            f"checkpoint   {checkpoint}" + ("  (plain state dict)" if ck.plain_state_dict else ""),
            f"model        {ck.model.get('name')} {ck.model.get('kwargs') or ''}".rstrip(),
            f"parameters   {summary['parameters']:,}",
            f"data         {ck.data.get('spec')}"
            + (f" (samples={ck.data['samples']})" if ck.data.get("samples") else ""),
            f"loss         {ck.loss}",
            f"optimizer    {opt.get('name', 'unknown')}" + (f" ({hp})" if hp else ""),
            f"seed         {ck.seed}",
            f"epochs       {len(ck.metrics)}",
            f"final        {_format_metrics(ck.final_metrics)}",
            f"versions     sharpscope {ck.versions.get('sharpscope', '?')}, torch {ck.versions.get('torch', '?')}"
            if ck.versions
            else "versions     unknown",
        ]
        typer.echo("\n".join(lines))
