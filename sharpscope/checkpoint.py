"""The sharpscope checkpoint format, and safe loading of any checkpoint.

A sharpscope checkpoint is one ``torch.save`` file holding only plain data
(tensors, dicts, lists, strings, numbers), so it loads with
``torch.load(weights_only=True)``: nothing in a file a stranger sends can run code.

Keys: ``format`` (``"sharpscope-checkpoint"``), ``format_version``, ``model``
(``{"name", "kwargs", "input_shape", "num_classes"}``), ``data`` (``{"spec",
"samples", "seed", "normalize"}``), ``loss``, ``state_dict``, ``optimizer``
(``{"name", "hparams"}``), ``seed``, ``metrics`` (one dict per epoch), ``versions``
(``sharpscope``, ``torch``), ``extra`` (free-form plain data, e.g. XSAM's alpha
history), and optionally ``resume`` (optimizer/scheduler/RNG state for ``--resume``).

A plain ``state_dict`` file, as other tools save, is accepted too when the
model and data are named by the caller.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .data import DataSpec
from .errors import CheckpointError
from .models import ModelSpec, build_model
from .utils import atomic_torch_save

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_state_dict_strict",
    "state_dict_mismatch",
]

FORMAT = "sharpscope-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: metadata plus the state dict. Build the model with :meth:`build_model`."""

    path: Path | None
    model: dict[str, Any]
    data: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    loss: str = "cross_entropy"
    optimizer: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    resume: dict[str, Any] | None = None
    plain_state_dict: bool = False

    @property
    def model_spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.model)

    @property
    def data_spec(self) -> DataSpec:
        return DataSpec.from_dict(self.data)

    @property
    def final_metrics(self) -> dict[str, Any]:
        return dict(self.metrics[-1]) if self.metrics else {}

    def build_model(self, *, device: torch.device | str = "cpu") -> nn.Module:
        """Rebuild the network and load the weights (strictly; mismatches are named)."""
        shape = self.model.get("input_shape")
        classes = self.model.get("num_classes")
        if shape is None or classes is None:
            raise CheckpointError(
                f"{self.path or 'checkpoint'}: the model's input shape and classes are unknown; pass --data"
            )
        model = build_model(self.model_spec, input_shape=tuple(shape), num_classes=int(classes))
        load_state_dict_strict(model, self.state_dict, where=str(self.path or "checkpoint"))
        return model.to(device)

    def summary(self) -> dict[str, Any]:
        n_params = sum(int(t.numel()) for k, t in self.state_dict.items()
                       if isinstance(t, torch.Tensor) and t.is_floating_point() and not _is_buffer_name(k))
        return {
            "path": str(self.path) if self.path else None,
            "format_version": None if self.plain_state_dict else FORMAT_VERSION,
            "plain_state_dict": self.plain_state_dict,
            "model": self.model,
            "parameters": n_params,
            "data": self.data,
            "loss": self.loss,
            "optimizer": self.optimizer,
            "seed": self.seed,
            "epochs": len(self.metrics),
            "final_metrics": self.final_metrics,
            "versions": self.versions,
        }


def _is_buffer_name(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def save_checkpoint(path: str | Path, *, model: nn.Module, model_spec: ModelSpec | dict[str, Any],
                    input_shape: tuple[int, ...] | list[int], num_classes: int,
                    data_spec: DataSpec | dict[str, Any] | str, loss: str = "cross_entropy",
                    optimizer: dict[str, Any] | None = None, seed: int | None = None,
                    metrics: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None,
                    resume: dict[str, Any] | None = None) -> Path:
    """Write a sharpscope checkpoint atomically (temporary file, then rename)."""
    spec = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_dict(model_spec)
    dspec = data_spec if isinstance(data_spec, DataSpec) else DataSpec.from_dict(data_spec)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {**spec.to_dict(), "input_shape": [int(s) for s in input_shape], "num_classes": int(num_classes)},
        "data": dspec.to_dict(),
        "loss": loss,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer or {},
        "seed": seed,
        "metrics": list(metrics or []),
        "versions": {"sharpscope": str(__version__), "torch": str(torch.__version__)},
        "extra": extra or {},
    }
    if resume is not None:
        payload["resume"] = resume
    path = Path(path)
    atomic_torch_save(payload, path)
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _torch_load(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"no such file: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = re.search(r"Unsupported global: GLOBAL ([\w.]+)|Unsupported operand \d+|[Uu]nsupported[^.\n]*", str(exc))
        detail = f" ({match.group(1) or match.group(0)})" if match else ""
        raise CheckpointError(
            f"{path}: refused to load: it holds pickled objects other than tensors and plain data{detail}; "
            "sharpscope never runs code from a checkpoint"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as exc:
        msg = _first_line(exc)
        if "Weights only load failed" in msg or "Unsupported global" in str(exc):
            raise CheckpointError(f"{path}: refused to load: it contains objects that are not plain data") from exc
        raise CheckpointError(f"{path} is not a readable torch checkpoint (truncated or corrupt?): {msg}") from exc


def _looks_like_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def load_checkpoint(path: str | Path, *, model: str | None = None, model_kwargs: dict[str, Any] | None = None,
                    data: str | None = None, input_shape: tuple[int, ...] | None = None,
                    num_classes: int | None = None) -> Checkpoint:
    """Load a sharpscope checkpoint, or a plain state dict when ``model`` and ``data`` are given.

    Only ``torch.load(weights_only=True)`` is used. ``model``/``data`` override the
    checkpoint's own specs (for a plain state dict they are required). Common wrappers
    (``{"state_dict": ...}``, ``{"model": ...}``, ``{"net": ...}``, a ``module.`` prefix
    from DataParallel) are unwrapped.
    """
    path = Path(path).expanduser()
    obj = _torch_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        version = obj.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format version {version} is newer than this sharpscope ({FORMAT_VERSION}); upgrade sharpscope"
            )
        ck = Checkpoint(
            path=path, model=dict(obj["model"]), data=dict(obj["data"]), state_dict=obj["state_dict"],
            loss=obj.get("loss", "cross_entropy"), optimizer=obj.get("optimizer") or {}, seed=obj.get("seed"),
            metrics=list(obj.get("metrics") or []), versions=obj.get("versions") or {},
            extra=obj.get("extra") or {}, resume=obj.get("resume"),
        )
        if model is not None:
            ck.model = {**ck.model, "name": model, "kwargs": dict(model_kwargs or {})}
        elif model_kwargs:
            ck.model = {**ck.model, "kwargs": {**ck.model.get("kwargs", {}), **model_kwargs}}
        if data is not None:
            ck.data = {**ck.data, "spec": data}
        return ck
    sd = obj
    if isinstance(obj, dict) and not _looks_like_state_dict(obj):
        for key in ("state_dict", "model_state_dict", "model", "net", "state"):
            if _looks_like_state_dict(obj.get(key)):
                sd = obj[key]
                break
    if not _looks_like_state_dict(sd):
        kind = type(obj).__name__
        raise CheckpointError(f"{path} is not a sharpscope checkpoint or a state dict (found a {kind})")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if model is None or (data is None and (input_shape is None or num_classes is None)):
        raise CheckpointError(f"{path} is a plain state dict: pass --model and --data to say what it holds")
    ck = Checkpoint(path=path, model={"name": model, "kwargs": dict(model_kwargs or {})},
                    data={"spec": data or "unknown", "samples": None, "seed": 0, "normalize": True},
                    state_dict=dict(sd), plain_state_dict=True)
    if input_shape is not None and num_classes is not None:
        ck.model.update(input_shape=list(input_shape), num_classes=int(num_classes))
    return ck


def state_dict_mismatch(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a model's state dict and ``state_dict``."""
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
    shapes = [f"{k} {list(state_dict[k].shape)} vs model {list(v.shape)}"
              for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if shapes:
        problems.append(f"shape differences: {'; '.join(shapes[:6])}{' ...' if len(shapes) > 6 else ''}")
    return problems


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], *, where: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``model``; any mismatch is one :class:`CheckpointError` naming it."""
    problems = state_dict_mismatch(model, state_dict)
    if problems:
        raise CheckpointError(f"{where} does not match the model: {' | '.join(problems)}")
    model.load_state_dict(state_dict, strict=True)
