"""Where a run computes and how it is seeded."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..errors import SharpscopeError

__all__ = ["resolve_device", "seed_everything"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:1" | torch.device`` into a device.

    ``auto`` picks CUDA when it is available. Asking for CUDA on a machine
    without it is a :class:`SharpscopeError`.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SharpscopeError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SharpscopeError(f"device {device!r} requested but CUDA is not available here")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
