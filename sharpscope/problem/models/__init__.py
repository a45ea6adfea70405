"""Model registry: networks by name, adapting to the data's input shape and classes.

Built-in names: ``mlp``, ``cnn``, ``resnet20``, ``resnet32``, ``resnet56`` (the CIFAR
ResNets of He et al. 2016, with ``batchnorm=False`` and ``skip=False`` options as in
Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets") and ``vgg11`` (the
CIFAR variant). A user's own model is named by import path, ``"pkg.module:factory"``,
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

import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import ModelSpecError
from .sanitize import printable

__all__ = [
    "ModelSpec",
    "MODELS",
    "build_model",
    "check_model_source",
    "register_model",
    "count_parameters",
]


def _prod(shape: Sequence[int]) -> int:
    return int(math.prod(int(s) for s in shape))


def _image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 2:
        return (1, shape[0], shape[1])
    raise ModelSpecError(
        f"this model needs image inputs (C, H, W) but the data has shape {list(shape)}; use 'mlp'"
    )


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


def _activation(name: str) -> Callable[[], nn.Module]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ModelSpecError(
            f"unknown activation {name!r}: choose one of {', '.join(_ACTIVATIONS)}"
        ) from None


class MLP(nn.Module):
    """Fully connected network: flatten, ``len(hidden)`` hidden layers, linear head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        hidden: Sequence[int] = (128, 64),
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        act = _activation(activation)
        layers: list[nn.Module] = [nn.Flatten()]
        width = _prod(input_shape)
        for h in hidden:
            layers.append(nn.Linear(width, int(h)))
            if batchnorm:
                layers.append(nn.BatchNorm1d(int(h)))
            layers.append(act())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Small conv net: ``len(channels)`` conv(3x3)-[BN]-act-maxpool blocks, global average pool, linear head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        channels: Sequence[int] = (16, 32),
        activation: str = "relu",
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        c, h, w = _image_shape(input_shape)
        act = _activation(activation)
        layers: list[nn.Module] = []
        for ch in channels:
            layers.append(nn.Conv2d(c, int(ch), 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(int(ch)))
            layers.append(act())
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = int(ch)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, num_classes)
        self._in_shape = (c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """The two-conv residual block of the CIFAR ResNets.

    Where the shape changes the shortcut is a 1x1 convolution (+ BatchNorm), as in
    the ResNets of Li et al. 2018's loss-landscape code; ``skip=False`` removes it.
    """

    def __init__(
        self, in_planes: int, planes: int, stride: int, *, batchnorm: bool, skip: bool
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(planes) if batchnorm else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=not batchnorm)
        self.bn2 = nn.BatchNorm2d(planes) if batchnorm else nn.Identity()
        self.skip = skip
        self.shortcut: nn.Module = nn.Identity()
        if skip and (stride != 1 or in_planes != planes):
            layers: list[nn.Module] = [
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=not batchnorm)
            ]
            if batchnorm:
                layers.append(nn.BatchNorm2d(planes))
            self.shortcut = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + self.shortcut(x)
        return torch.relu(out)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016, section 4.2): widths 16, 32, 64."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        depth: int,
        batchnorm: bool = True,
        skip: bool = True,
        width: int = 16,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ModelSpecError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 56...), got {depth}")
        n = (depth - 2) // 6
        c, _, _ = _image_shape(input_shape)
        w = int(width)
        self.conv1 = nn.Conv2d(c, w, 3, padding=1, bias=not batchnorm)
        self.bn1 = nn.BatchNorm2d(w) if batchnorm else nn.Identity()
        blocks: list[nn.Module] = []
        in_planes = w
        for stage, planes in enumerate((w, 2 * w, 4 * w)):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, batchnorm=batchnorm, skip=skip))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return self.fc(torch.flatten(self.pool(out), 1))


_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(nn.Module):
    """VGG-11 for CIFAR (conv stack of Simonyan & Zisserman, one linear classifier).

    Max-pooling layers are dropped once the feature map is 1x1, so small inputs (8x8 digits) work.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        batchnorm: bool = True,
        width_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        c, h, w = _image_shape(input_shape)
        layers: list[nn.Module] = []
        for v in _VGG11:
            if v == "M":
                if min(h, w) >= 2:
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                continue
            out = max(1, int(round(int(v) * width_multiplier)))
            layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            c = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


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
}

_KWARG_SOURCES: dict[str, Callable[..., Any]] = {
    "mlp": MLP.__init__,
    "cnn": SmallCNN.__init__,
    "resnet20": CifarResNet.__init__,
    "resnet32": CifarResNet.__init__,
    "resnet56": CifarResNet.__init__,
    "vgg11": VGG.__init__,
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
    allowed = {
        p for p, v in params.items() if v.kind == inspect.Parameter.KEYWORD_ONLY and p != "depth"
    }
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ModelSpecError(
            f"model {name!r} does not take {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}"
        )


def _import_factory(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ModelSpecError(f"model import path {path!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelSpecError(
            f"cannot import module {module_name!r} for model {path!r}: {exc}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise ModelSpecError(
            f"importing module {module_name!r} for model {path!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelSpecError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelSpecError(f"{path!r} is not callable")
    return obj


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
