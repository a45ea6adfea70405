"""One probing problem: a model, its loss, its data and where they came from.

Every probe command starts here: :func:`load_problem` reads a checkpoint safely,
rebuilds the network, reloads the very data (and normalisation) it was trained on,
and returns a :class:`Problem`. In a notebook, build a :class:`Problem` directly
from any ``nn.Module`` and tensors, or skip it and pass batches to the probes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..runtime.batches import move_batch
from ..runtime.device import resolve_device
from ..runtime.sanitize import printable
from .checkpoint import Checkpoint, load_checkpoint, load_state_dict_strict
from .data import BatchSplits, DataSpec, DataSplits, data_path, load_data, with_path
from .data.normalization import parse_normalize
from .losses import LossFn, get_loss
from .models import build_model

__all__ = ["Problem", "load_problem", "check_comparable"]


@dataclass
class Problem:
    """A model with its loss function and data, ready to probe."""

    model: nn.Module
    loss_fn: LossFn
    data: DataSplits | BatchSplits
    loss_name: str = "cross_entropy"
    checkpoint: Checkpoint | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    label: str = "model"
    #: say in one line when ``samples`` exceeds the split (the user typed ``--samples``)
    samples_notice: bool = False

    def batches(
        self,
        split: str = "train",
        batch_size: int = 512,
        *,
        samples: int | None = None,
        seed: int = 0,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The chosen split (seeded subset of ``samples``) in batches on the problem's device.

        ``samples`` larger than the split uses all of it (with a one-line notice on stderr
        when :attr:`samples_notice` is set).
        """
        if samples is not None and self.samples_notice:
            have = self.data.count(split)
            if samples > have:
                print(
                    f"notice: --samples {samples} but the {split} split of "
                    f"{self.data.spec.spec} has {have} samples: using all {have}",
                    file=sys.stderr,
                )
        return self.data.batches(split, batch_size, samples=samples, seed=seed, device=self.device)

    def describe(self) -> dict[str, Any]:
        """Where the model, data and loss came from, and the normalisation applied (numbers
        included): what every probe's JSON and ``meta.json`` record."""
        norm = self.data.normalization_record() if isinstance(self.data, DataSplits) else None
        return {
            "label": self.label,
            "checkpoint": str(self.checkpoint.path)
            if self.checkpoint and self.checkpoint.path
            else None,
            "model": self.checkpoint.model if self.checkpoint else type(self.model).__name__,
            "data": self.data.spec.to_dict(),
            "normalization": norm if norm is not None else dict(self.data.normalization),
            "loss": self.loss_name,
            "device": str(self.device),
        }


def load_problem(
    path: str | Path,
    *,
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: bool | str | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    samples_notice: bool = False,
) -> Problem:
    """Load a checkpoint (sharpscope format or plain state dict) into a :class:`Problem`.

    Args:
        path: the checkpoint file.
        model, model_kwargs: override (or, for a plain state dict, supply) the model spec.
        data: override (or supply) the data spec, which may be a ``pkg.mod:factory``;
            the checkpoint's subset and normalisation options are kept.
        loss: override the loss: a built-in name or ``pkg.module:fn`` (``fn(output,
            batch) -> mean loss``).
        normalize: ``"none"``, ``"standard"``, ``"MEAN,STD"`` or ``"M1,../S1,.."``
            (:mod:`~sharpscope.problem.data.normalization`). Default: a sharpscope
            checkpoint's own (its stored statistics; a checkpoint older than 0.2 has them
            recomputed from its data, as before), the data as stored for a plain state dict.
        device: ``auto``, ``cpu``, ``cuda``...
        dtype: parameter and input dtype (``torch.float64`` for exact checks).
        samples_notice: :meth:`Problem.batches` says in one line when ``samples``
            exceeds the split (the command line sets it when ``--samples`` was typed).

    Nothing read from the file is imported or called: a model, data factory or loss the
    checkpoint names by import path is refused with one line saying to pass it
    explicitly (``model=``/``data=``/``loss=``). A data file the checkpoint names by a
    relative path is looked for at its absolute path when saved, then next to the
    checkpoint, then from the working directory.
    """
    dev = resolve_device(device)
    ck = load_checkpoint(path, model=model, model_kwargs=model_kwargs, data=data)
    ck.check_model()  # before any data is read: an import path must come from the caller
    loss_name = loss if loss is not None else ck.loss
    loss_fn = get_loss(loss_name, allow_import=loss is not None)
    dspec = ck.data_spec
    if normalize is not None:
        norm = parse_normalize(normalize)
        keep = norm is True and dspec.normalize is True
        dspec = DataSpec(
            dspec.spec, dspec.samples, dspec.seed, norm,
            mean=dspec.mean if keep else None, std=dspec.std if keep else None,
        )  # fmt: skip
    if data is None and not ck.plain_state_dict:
        dspec = _locate(dspec, ck.data.get("resolved"), Path(path).expanduser())
    splits = load_data(dspec, allow_import=data is not None)
    net = _build(ck, splits, dspec, path)
    net = net.to(device=dev, dtype=dtype)
    if isinstance(splits, BatchSplits) and dtype != torch.float32:
        splits.train = [move_batch(b, None, dtype) for b in splits.train]
        splits.test = [move_batch(b, None, dtype) for b in splits.test]
        splits.__post_init__()
    if isinstance(splits, DataSplits) and dtype != torch.float32:
        if splits.x_train.is_floating_point():  # token ids stay ids
            splits.x_train, splits.x_test = splits.x_train.to(dtype), splits.x_test.to(dtype)
    return Problem(
        model=net,
        loss_fn=loss_fn,
        data=splits,
        loss_name=str(loss_name),
        checkpoint=ck,
        device=dev,
        label=Path(path).stem
        if Path(path).stem not in ("final", "last")
        else Path(path).parent.name or Path(path).stem,
        samples_notice=samples_notice,
    )


def _locate(dspec: DataSpec, resolved: Any, path: Path) -> DataSpec:
    """The checkpoint's data spec naming a file that exists: its absolute path when saved,
    else the same relative path next to the checkpoint, else as given (working directory)."""
    rel = data_path(dspec.spec)
    if rel is None:
        return dspec
    candidates = []
    if isinstance(resolved, str) and data_path(resolved) is not None:
        candidates.append(data_path(resolved))
    expanded = os.path.expanduser(rel)
    if not os.path.isabs(expanded):
        candidates += [expanded, str(path.parent / expanded)]
    for c in candidates:
        if os.path.exists(c):
            spec = dspec.spec if c == expanded else with_path(dspec.spec, c)
            return DataSpec(spec, dspec.samples, dspec.seed, dspec.normalize, dspec.mean, dspec.std)
    return dspec


def _build(ck: Checkpoint, splits: Any, dspec: DataSpec, path: str | Path) -> nn.Module:
    """The checkpoint's network for ``splits`` (shape and classes checked), weights loaded."""
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
    ck.model.setdefault("input_shape", list(splits.input_shape))
    ck.model.setdefault("num_classes", splits.num_classes)
    return net


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
        na, nb = _normalization(first), _normalization(p)
        if na != nb:
            raise CheckpointError(
                f"checkpoints are not comparable: {first.label} is probed with normalisation "
                f"{printable(na)}, {p.label} with {printable(nb)} "
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
        na, nb = _normalization(first), _normalization(p)
        if na != nb:
            raise CheckpointError(
                f"checkpoints are not comparable: {first.label} is probed with normalisation "
                f"{printable(na)}, {p.label} with {printable(nb)} "
                "(use --allow-mismatch to compare anyway)"
            )
        if first.data.spec.spec != p.data.spec.spec:
            raise CheckpointError(
                f"checkpoints are not comparable: {first.label} was trained on "
                f"'{printable(first.data.spec.spec)}', {p.label} on '{printable(p.data.spec.spec)}' "
                "(use --allow-mismatch to compare anyway)"
            )
        na, nb = _normalization(first), _normalization(p)
        if na != nb:
            raise CheckpointError(
                f"checkpoints are not comparable: {first.label} is probed with normalisation "
                f"{printable(na)}, {p.label} with {printable(nb)} "
                "(use --allow-mismatch to compare anyway)"
            )


def _normalization(problem: Problem) -> Any:
    """What a problem's inputs are normalised with (kind and numbers), for comparisons."""
    rec = problem.describe()["normalization"] or {}
    out: dict[str, Any] = {"mode": rec.get("mode", "none")}
    for key in ("mean", "std"):
        if rec.get(key) is not None:
            out[key] = [round(float(v), 6) for v in rec[key]]
    return out
