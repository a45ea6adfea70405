"""``synthetic[:k=v,..]``: procedural Gaussian class clusters."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import DataError
from .arrays import _as_tensors


def _parse_options(arg: str, defaults: dict[str, Any], where: str) -> dict[str, Any]:
    opts = dict(defaults)
    if not arg:
        return opts
    for item in arg.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in defaults:
            raise DataError(
                f"{where}: bad option {item!r}; options are {', '.join(f'{k}=...' for k in defaults)}"
            )
        try:
            if key == "shape":
                opts[key] = tuple(int(v) for v in value.lower().split("x"))
            else:
                opts[key] = type(defaults[key])(value)
        except ValueError as exc:
            raise DataError(f"{where}: bad value for {key}: {value!r}") from exc
    return opts


def _load_synthetic(arg: str) -> tuple[torch.Tensor, ...]:
    opts = _parse_options(
        arg,
        {"train": 512, "test": 128, "classes": 10, "shape": (1, 8, 8), "seed": 0, "noise": 1.0},
        "synthetic",
    )
    for key, ok, rule in (
        ("train", opts["train"] >= 1, "at least 1"),
        ("test", opts["test"] >= 0, "at least 0"),
        ("classes", opts["classes"] >= 2, "at least 2"),
        ("shape", all(s >= 1 for s in opts["shape"]), "positive sizes like 1x8x8"),
        ("noise", opts["noise"] >= 0, "at least 0"),
    ):
        if not ok:
            value = "x".join(map(str, opts[key])) if key == "shape" else opts[key]
            raise DataError(f"synthetic: {key}={value} is invalid; it must be {rule}")
    g = torch.Generator().manual_seed(opts["seed"])
    dim = int(np.prod(opts["shape"]))
    centers = torch.randn(opts["classes"], dim, generator=g) * 1.5

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, opts["classes"], (n,), generator=g)
        x = centers[y] + opts["noise"] * torch.randn(n, dim, generator=g)
        return x.reshape(n, *opts["shape"]), y

    xtr, ytr = draw(opts["train"])
    xte, yte = draw(opts["test"])
    return (*_as_tensors(xtr, ytr, xte, yte, where="synthetic"), opts["classes"])
