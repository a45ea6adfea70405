"""The sharpscope checkpoint format, and safe loading of any checkpoint.

A sharpscope checkpoint is one ``torch.save`` file holding only plain data
(tensors, dicts, lists, strings, numbers), so it loads with
``torch.load(weights_only=True)``: nothing in a file a stranger sends can run code.

Keys: ``format`` (``"sharpscope-checkpoint"``), ``format_version``, ``model``
(``{"name", "kwargs", "input_shape", "num_classes"}``), ``data`` (``{"spec",
"samples", "seed", "normalize"}``, since 0.2 also ``mean``/``std``, the statistics the
inputs were standardised with, and ``resolved``, the spec with an absolute path), ``loss``, ``state_dict``, ``optimizer``
(``{"name", "hparams"}``), ``seed``, ``metrics`` (one dict per epoch), ``versions``
(``sharpscope``, ``torch``), ``extra`` (free-form plain data, e.g. XSAM's alpha
history), and optionally ``resume`` (optimizer/scheduler/RNG state for ``--resume``).

A plain ``state_dict`` file, as other tools save, is accepted too when the
model and data are named by the caller.

Nothing read from a checkpoint is ever imported or called: the stored model name
resolves only to a built-in (:data:`sharpscope.problem.models.MODELS`); a model stored by
import path is rebuilt only when the caller names that path (``model=``/``--model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import CheckpointError
from ..runtime.files import atomic_torch_save, safe_torch_load
from ..runtime.sanitize import printable
from .data.spec import DataSpec
from .models import ModelSpec, build_model, check_model_source

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_state_dict_strict",
    "state_dict_mismatch",
    "safe_torch_load",
    "to_plain_data",
]

FORMAT = "sharpscope-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: metadata plus the state dict. Build the model with :meth:`build_model`.

    ``model_from_caller`` says the model name was given by the caller (``load_checkpoint(model=...)``),
    not read from the file: only then may it be an import path that :meth:`build_model` imports.
    """

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
    model_from_caller: bool = False

    @property
    def model_spec(self) -> ModelSpec:
        """The model spec; read from the file it carries ``source`` so it never imports."""
        source = None if self.model_from_caller else str(self.path or "the checkpoint")
        return ModelSpec.from_dict(self.model, source=source)

    @property
    def data_spec(self) -> DataSpec:
        return DataSpec.from_dict(self.data)

    def check_model(self) -> None:
        """Raise :class:`ModelSpecError` now if the model could not be rebuilt safely.

        A model named by import path in the file (not by the caller) is refused here,
        before any data is loaded.
        """
        check_model_source(self.model_spec)

    @property
    def final_metrics(self) -> dict[str, Any]:
        return dict(self.metrics[-1]) if self.metrics else {}

    def build_model(self, *, device: torch.device | str = "cpu") -> nn.Module:
        """Rebuild the network and load the weights (strictly; mismatches are named).

        A model the file names by import path is refused (:class:`ModelSpecError`), never
        imported, unless the caller named it (``load_checkpoint(path, model=...)``).
        """
        spec = self.model_spec
        check_model_source(spec)
        shape = self.model.get("input_shape")
        classes = self.model.get("num_classes")
        if shape is None or classes is None:
            raise CheckpointError(
                f"{self.path or 'checkpoint'}: the model's input shape and classes are unknown; pass --data"
            )
        model = build_model(spec, input_shape=tuple(shape), num_classes=int(classes))
        load_state_dict_strict(model, self.state_dict, where=str(self.path or "checkpoint"))
        return model.to(device)

    def summary(self) -> dict[str, Any]:
        n_params = sum(
            int(t.numel())
            for k, t in self.state_dict.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not _is_buffer_name(k)
        )
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


_PLAIN_SCALARS = (type(None), bool, int, float, str)
_TORCH_PLAIN = (torch.dtype, torch.device, torch.Size)


def to_plain_data(obj: Any, *, where: str = "value") -> Any:
    """``obj`` as plain data that ``torch.load(weights_only=True)`` accepts.

    NumPy scalars become Python numbers, NumPy arrays tensors, paths strings,
    tensors are detached and moved to the CPU; dict keys must be strings or
    integers. Anything else (a function, a class instance) is a
    :class:`CheckpointError` naming where it was, so a checkpoint that could not be
    loaded safely is never written.
    """
    if type(obj) in _PLAIN_SCALARS or isinstance(obj, _TORCH_PLAIN):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise CheckpointError(
                f"cannot save {where}: a NumPy array of Python objects is not plain data"
            )
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, np.generic):
                k = k.item()
            if type(k) not in (str, int):
                raise CheckpointError(
                    f"cannot save {where}: key {k!r} is a {type(k).__name__}; use strings or integers"
                )
            out[k] = to_plain_data(v, where=f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        items = [to_plain_data(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise CheckpointError(
        f"cannot save {where}: a {type(obj).__name__} is not plain data (use tensors, numbers, strings, "
        "lists and dicts) so the checkpoint could not be loaded safely"
    )


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    model_spec: ModelSpec | dict[str, Any],
    input_shape: tuple[int, ...] | list[int],
    num_classes: int,
    data_spec: DataSpec | dict[str, Any] | str,
    loss: str = "cross_entropy",
    optimizer: dict[str, Any] | None = None,
    seed: int | None = None,
    metrics: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
) -> Path:
    """Write a sharpscope checkpoint atomically (temporary file, then rename).

    ``optimizer``, ``metrics``, ``extra`` and ``resume`` are stored through
    :func:`to_plain_data` (NumPy values become numbers/tensors); anything that is not
    plain data raises :class:`CheckpointError` before the file is touched, so every
    checkpoint written here loads with ``torch.load(weights_only=True)``.

    Example:
        >>> net = build_model("mlp", input_shape=(1, 8, 8), num_classes=10)
        >>> import tempfile, os
        >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "final.pt"), model=net,
        ...     model_spec=ModelSpec("mlp"), input_shape=(1, 8, 8), num_classes=10, data_spec="digits",
        ...     metrics=[{"epoch": 1, "train_loss": 0.5}])
        >>> load_checkpoint(path).final_metrics
        {'epoch': 1, 'train_loss': 0.5}
    """
    spec = model_spec if isinstance(model_spec, ModelSpec) else ModelSpec.from_dict(model_spec)
    dspec = data_spec if isinstance(data_spec, DataSpec) else DataSpec.from_dict(data_spec)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": to_plain_data(
            {
                **spec.to_dict(),
                "input_shape": [int(s) for s in input_shape],
                "num_classes": int(num_classes),
            },
            where="model",
        ),
        "data": to_plain_data(dspec.checkpoint_dict(), where="data"),
        "loss": str(loss),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": to_plain_data(optimizer or {}, where="optimizer"),
        "seed": None if seed is None else int(seed),
        "metrics": to_plain_data(list(metrics or []), where="metrics"),
        "versions": {"sharpscope": str(__version__), "torch": str(torch.__version__)},
        "extra": to_plain_data(extra or {}, where="extra"),
    }
    if resume is not None:
        payload["resume"] = to_plain_data(resume, where="resume")
    path = Path(path)
    atomic_torch_save(payload, path)
    return path


def _torch_load(path: Path) -> Any:
    return safe_torch_load(path, error=CheckpointError, what="checkpoint")


def _check_payload(path: Path, obj: dict[str, Any]) -> None:
    """Name the first missing or malformed entry of a sharpscope checkpoint."""
    for key, kind in (("model", dict), ("data", dict), ("state_dict", dict)):
        if key not in obj:
            raise CheckpointError(f"{path}: damaged sharpscope checkpoint: no {key!r} entry")
        if not isinstance(obj[key], kind):
            raise CheckpointError(
                f"{path}: damaged sharpscope checkpoint: {key!r} is a {type(obj[key]).__name__}, not a {kind.__name__}"
            )
    if "name" not in obj["model"]:
        raise CheckpointError(f"{path}: damaged sharpscope checkpoint: the model entry has no name")
    bad = [k for k, v in obj["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: damaged sharpscope checkpoint: state_dict entry "
            f"{printable(repr(bad[0]), limit=120)} is not a tensor"
        )


def _looks_like_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def load_checkpoint(
    path: str | Path,
    *,
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    data: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> Checkpoint:
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
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise CheckpointError(
                f"{path}: invalid checkpoint format version {printable(repr(version), limit=80)}"
            )
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format version {version} is newer than this sharpscope "
                f"({FORMAT_VERSION}); upgrade sharpscope"
            )
        _check_payload(path, obj)
        ck = Checkpoint(
            path=path,
            model=dict(obj["model"]),
            data=dict(obj["data"]),
            state_dict=obj["state_dict"],
            loss=obj.get("loss", "cross_entropy"),
            optimizer=obj.get("optimizer") or {},
            seed=obj.get("seed"),
            metrics=list(obj.get("metrics") or []),
            versions=obj.get("versions") or {},
            extra=obj.get("extra") or {},
            resume=obj.get("resume"),
        )
        if model is not None:
            # The caller names the model, so it may be an import path. Naming the very
            # model the file stores keeps its stored kwargs unless new ones are given.
            stored = ck.model.get("kwargs") if ck.model.get("name") == model else None
            stored = stored if isinstance(stored, dict) else None
            kwargs = model_kwargs if model_kwargs is not None else stored
            ck.model = {**ck.model, "name": model, "kwargs": dict(kwargs or {})}
            ck.model_from_caller = True
        elif model_kwargs:
            ck.model = {**ck.model, "kwargs": {**ck.model.get("kwargs", {}), **model_kwargs}}
        if data is not None:
            ck.data = {k: v for k, v in ck.data.items() if k != "resolved"}
            ck.data["spec"] = data
        return ck
    sd = obj
    if isinstance(obj, dict) and not _looks_like_state_dict(obj):
        for key in ("state_dict", "model_state_dict", "model", "net", "state"):
            if _looks_like_state_dict(obj.get(key)):
                sd = obj[key]
                break
    if not _looks_like_state_dict(sd):
        kind = type(obj).__name__
        raise CheckpointError(
            f"{path} is not a sharpscope checkpoint or a state dict (found a {kind})"
        )
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if model is None or (data is None and (input_shape is None or num_classes is None)):
        raise CheckpointError(
            f"{path} is a plain state dict: pass --model and --data to say what it holds"
        )
    ck = Checkpoint(
        path=path,
        model={"name": model, "kwargs": dict(model_kwargs or {})},
        # a plain state dict: the data exactly as stored unless the caller says otherwise
        data={"spec": data or "unknown", "samples": None, "seed": 0, "normalize": False},
        state_dict=dict(sd),
        plain_state_dict=True,
        model_from_caller=True,
    )
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
        problems.append(
            f"missing keys: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
        )
    if unexpected:
        problems.append(
            f"unexpected keys: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}"
        )
    shapes = [
        f"{k} {list(state_dict[k].shape)} vs model {list(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if shapes:
        problems.append(
            f"shape differences: {'; '.join(shapes[:6])}{' ...' if len(shapes) > 6 else ''}"
        )
    return problems


def load_state_dict_strict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], *, where: str = "checkpoint"
) -> None:
    """Load ``state_dict`` into ``model``; any mismatch is one :class:`CheckpointError` naming it."""
    problems = state_dict_mismatch(model, state_dict)
    if problems:
        raise CheckpointError(f"{where} does not match the model: {' | '.join(problems)}")
    model.load_state_dict(state_dict, strict=True)
