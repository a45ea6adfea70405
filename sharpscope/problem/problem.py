"""One probing problem: a model, its loss, its data and where they came from.

Every probe command starts here: :func:`load_problem` reads a checkpoint safely,
rebuilds the network, reloads the very data (and normalisation) it was trained on,
and returns a :class:`Problem`. In a notebook, build a :class:`Problem` directly
from any ``nn.Module`` and tensors, or skip it and pass batches to the probes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..runtime.device import resolve_device
from ..runtime.sanitize import printable
from .checkpoint import Checkpoint, load_checkpoint, load_state_dict_strict
from .data import DataSpec, DataSplits, load_data
from .losses import LossFn, get_loss
from .models import build_model

__all__ = ["Problem", "load_problem", "check_comparable"]


@dataclass
class Problem:
    """A model with its loss function and data, ready to probe."""

    model: nn.Module
    loss_fn: LossFn
    data: DataSplits
    loss_name: str = "cross_entropy"
    checkpoint: Checkpoint | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    label: str = "model"

    def batches(
        self,
        split: str = "train",
        batch_size: int = 512,
        *,
        samples: int | None = None,
        seed: int = 0,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The chosen split (seeded subset of ``samples``) in batches on the problem's device."""
        return self.data.batches(split, batch_size, samples=samples, seed=seed, device=self.device)

    def describe(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "checkpoint": str(self.checkpoint.path)
            if self.checkpoint and self.checkpoint.path
            else None,
            "model": self.checkpoint.model if self.checkpoint else type(self.model).__name__,
            "data": self.data.spec.to_dict(),
            "loss": self.loss_name,
            "device": str(self.device),
        }


def load_problem(
    path: str | Path,
    *,
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    data: str | None = None,
    normalize: bool | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
) -> Problem:
    """Load a checkpoint (sharpscope format or plain state dict) into a :class:`Problem`.

    Args:
        path: the checkpoint file.
        model, model_kwargs: override (or, for a plain state dict, supply) the model spec.
        data: override (or supply) the data spec; the checkpoint's subset and
            normalisation options are kept.
        normalize: override the data normalisation option.
        device: ``auto``, ``cpu``, ``cuda``...
        dtype: parameter and input dtype (``torch.float64`` for exact checks).

    Nothing read from the file is imported or called: a model the checkpoint names by
    import path is refused (:class:`~sharpscope.errors.ModelSpecError`) unless ``model``
    names it, and its loss and data must be built-in names.
    """
    dev = resolve_device(device)
    ck = load_checkpoint(path, model=model, model_kwargs=model_kwargs, data=data)
    ck.check_model()  # before any data is read: an import path must come from the caller
    loss_fn = get_loss(ck.loss)
    dspec = ck.data_spec
    if normalize is not None:
        dspec = DataSpec(dspec.spec, dspec.samples, dspec.seed, normalize)
    splits = load_data(dspec)
    shape = ck.model.get("input_shape")
    classes = ck.model.get("num_classes")
    if shape is not None and tuple(shape) != splits.input_shape:
        raise CheckpointError(
            f"{path}: the model was built for inputs of shape {printable(list(shape))} but data "
            f"'{printable(dspec.spec)}' has shape {list(splits.input_shape)}"
        )
    if classes is not None and splits.num_classes > int(classes):
        raise CheckpointError(
            f"{path}: the model has {printable(classes)} outputs but data "
            f"'{printable(dspec.spec)}' has {splits.num_classes} classes"
        )
    net = build_model(
        ck.model_spec,
        input_shape=splits.input_shape,
        num_classes=int(classes) if classes is not None else splits.num_classes,
    )
    load_state_dict_strict(net, ck.state_dict, where=str(path))
    net = net.to(device=dev, dtype=dtype)
    if dtype != torch.float32 and splits.x_train.is_floating_point():  # token ids stay ids
        splits.x_train, splits.x_test = splits.x_train.to(dtype), splits.x_test.to(dtype)
    ck.model.setdefault("input_shape", list(splits.input_shape))
    ck.model.setdefault("num_classes", splits.num_classes)
    return Problem(
        model=net,
        loss_fn=loss_fn,
        data=splits,
        loss_name=ck.loss,
        checkpoint=ck,
        device=dev,
        label=Path(path).stem
        if Path(path).stem not in ("final", "last")
        else Path(path).parent.name or Path(path).stem,
    )


def check_comparable(problems: list[Problem], *, allow_mismatch: bool = False) -> None:
    """Raise unless every problem has the same architecture and data (skipped with ``allow_mismatch``)."""
    if allow_mismatch or len(problems) < 2:
        return
    first = problems[0]
    for p in problems[1:]:
        a = first.checkpoint.model if first.checkpoint else None
        b = p.checkpoint.model if p.checkpoint else None
        if (
            a is not None
            and b is not None
            and (a.get("name"), a.get("kwargs")) != (b.get("name"), b.get("kwargs"))
        ):
            raise CheckpointError(
                f"checkpoints are not comparable: {first.label} is "
                f"{printable(a.get('name'))} {printable(a.get('kwargs'))}, {p.label} is "
                f"{printable(b.get('name'))} {printable(b.get('kwargs'))} "
                "(use --allow-mismatch to compare anyway)"
            )
        sa, sb = first.model.state_dict(), p.model.state_dict()
        shapes_a = {k: tuple(v.shape) for k, v in sa.items()}
        shapes_b = {k: tuple(v.shape) for k, v in sb.items()}
        if shapes_a != shapes_b:
            raise CheckpointError(
                f"checkpoints are not comparable: {first.label} and {p.label} have different parameter shapes "
                "(use --allow-mismatch to compare anyway)"
            )
        if first.data.spec.spec != p.data.spec.spec:
            raise CheckpointError(
                f"checkpoints are not comparable: {first.label} was trained on "
                f"'{printable(first.data.spec.spec)}', {p.label} on '{printable(p.data.spec.spec)}' "
                "(use --allow-mismatch to compare anyway)"
            )
