"""Model registry: networks by name, adapting to the data's input shape and classes.

Built-in names: ``mlp``, ``cnn``, ``resnet20``, ``resnet32``, ``resnet56`` (the CIFAR
ResNets of He et al. 2016, with ``batchnorm=False`` and ``skip=False`` options as in
Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"), ``vgg11`` (the
CIFAR variant) and ``gpt`` (a small causal Transformer for the byte-level ``text`` and
``textfile`` data: ``input_shape=(context,)``, ``num_classes`` = the vocabulary). A user's own model is named by import path, ``"pkg.module:factory"``,
where ``factory(**kwargs)`` returns an :class:`torch.nn.Module`.

Nothing read from a file is ever imported or called: a :class:`ModelSpec` read from a
checkpoint carries its ``source`` and resolves only to a name in :data:`MODELS`; an
import path runs only when the caller names it (``--model pkg.mod:fn`` or a library call).

Example:
    >>> net = build_model("resnet20", input_shape=(3, 32, 32), num_classes=10)
    >>> sum(p.numel() for p in net.parameters())
    272474
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ...errors import ModelSpecError
from ...runtime.sanitize import printable
from .cnn import SmallCNN
from .gpt import gpt
from .mlp import MLP
from .resnet import BasicBlock, CifarResNet
from .vgg import VGG

__all__ = [
    "ModelSpec",
    "MODELS",
    "build_model",
    "check_model_source",
    "register_model",
    "count_parameters",
    "MLP",
    "SmallCNN",
    "BasicBlock",
    "CifarResNet",
    "VGG",
]


ModelFactory = Callable[..., nn.Module]

MODELS: dict[str, ModelFactory] = {
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet20": lambda input_shape, num_classes, **kw: CifarResNet(
        input_shape, num_classes, depth=20, **kw
    ),
    "resnet32": lambda input_shape, num_classes, **kw: CifarResNet(
        input_shape, num_classes, depth=32, **kw
    ),
    "resnet56": lambda input_shape, num_classes, **kw: CifarResNet(
        input_shape, num_classes, depth=56, **kw
    ),
    "vgg11": VGG,
    "gpt": gpt,
}

_KWARG_SOURCES: dict[str, Callable[..., Any]] = {
    "mlp": MLP.__init__,
    "cnn": SmallCNN.__init__,
    "resnet20": CifarResNet.__init__,
    "resnet32": CifarResNet.__init__,
    "resnet56": CifarResNet.__init__,
    "vgg11": VGG.__init__,
    "gpt": gpt,
}
# keyword arguments a registry entry sets itself (the ResNets' depth is in their name)
_FIXED_KWARGS: dict[str, frozenset[str]] = {
    "resnet20": frozenset({"depth"}),
    "resnet32": frozenset({"depth"}),
    "resnet56": frozenset({"depth"}),
}


def register_model(name: str, factory: ModelFactory) -> None:
    """Add ``factory(input_shape, num_classes, **kwargs) -> nn.Module`` under ``name``."""
    MODELS[name] = factory


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild a model: a registry name or ``module:function`` path, plus keyword arguments.

    ``source`` is the file the spec was read from (``None``: the caller named it). A spec
    with a source never imports: :func:`build_model` refuses its import path.
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None) -> ModelSpec:
        """The spec in ``d``; pass ``source`` (the file's name) when ``d`` was read from a file."""
        kwargs = d.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ModelSpecError(
                f"{printable(source or 'model spec')}: the model's kwargs are a "
                f"{type(kwargs).__name__}, not a dict"
            )
        return cls(name=str(d["name"]), kwargs=dict(kwargs), source=source)


def check_model_source(spec: ModelSpec) -> None:
    """Refuse a spec read from a file (``spec.source`` set) that names an import path.

    Only the caller may name a factory to import; a file may only name a model in
    :data:`MODELS`. Raises :class:`ModelSpecError` saying how to pass it on purpose.
    """
    if spec.source is not None and ":" in spec.name:
        name = printable(spec.name, limit=200)
        raise ModelSpecError(
            f"{printable(spec.source)} names the model factory {name!r} by import path; "
            f"sharpscope never imports a name read from a file: pass --model {name} "
            "if you trust it"
        )


def _check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    source = _KWARG_SOURCES.get(name)
    if source is None:
        return
    params = inspect.signature(source).parameters
    fixed = _FIXED_KWARGS.get(name, frozenset())
    allowed = {
        p for p, v in params.items() if v.kind == inspect.Parameter.KEYWORD_ONLY and p not in fixed
    }
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ModelSpecError(
            f"model {name!r} does not take {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}"
        )


def _import_factory(path: str) -> Callable[..., Any]:
    from ..imports import import_object

    return import_object(path, what="model", error=ModelSpecError)


def build_model(
    spec: str | ModelSpec, *, input_shape: Sequence[int], num_classes: int, **kwargs: Any
) -> nn.Module:
    """Build a model from a registry name or ``module:function`` path.

    Args:
        spec: a name in :data:`MODELS`, a ``"pkg.mod:factory"`` path, or a :class:`ModelSpec`.
        input_shape: shape of one input sample, e.g. ``(1, 8, 8)`` or ``(64,)``.
        num_classes: number of outputs.
        **kwargs: model keyword arguments (merged over the spec's own).

    A user factory is called as ``factory(**kwargs)``; if it accepts ``input_shape``
    or ``num_classes`` they are passed too. A :class:`ModelSpec` read from a file
    (``source`` set) resolves only to a name in :data:`MODELS`: its import path is
    refused (:func:`check_model_source`), never imported.
    """
    if isinstance(spec, ModelSpec):
        check_model_source(spec)
        name, kw = spec.name, {**spec.kwargs, **kwargs}
    else:
        name, kw = str(spec), dict(kwargs)
    if ":" in name:
        factory = _import_factory(name)
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        accepts_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key, value in (("input_shape", tuple(input_shape)), ("num_classes", int(num_classes))):
            if (key in params or accepts_any) and key not in kw:
                kw[key] = value
        try:
            model = factory(**kw)
        except TypeError as exc:
            raise ModelSpecError(f"model {name!r} rejected its arguments {kw}: {exc}") from exc
        except ModelSpecError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's factory failed; say where
            raise ModelSpecError(
                f"model {name!r} failed to build with {kw}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(model, nn.Module):
            raise ModelSpecError(f"{name!r} returned {type(model).__name__}, not a torch.nn.Module")
        return model
    if name not in MODELS:
        raise ModelSpecError(
            f"unknown model {name!r}: choose one of {', '.join(MODELS)} or give 'package.module:function'"
        )
    _check_kwargs(name, kw)
    try:
        return MODELS[name](tuple(input_shape), int(num_classes), **kw)
    except (TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, ModelSpecError):
            raise
        raise ModelSpecError(f"model {name!r} rejected its arguments {kw}: {exc}") from exc


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
