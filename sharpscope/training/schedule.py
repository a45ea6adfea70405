"""The learning-rate schedule of a run: a multiplier of the base rate per optimizer step."""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "lr_factor"]

SCHEDULES = ("constant", "cosine", "step")


def lr_factor(
    step: int,
    *,
    total_steps: int,
    steps_per_epoch: int,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    milestones: list[int] | None = None,
    gamma: float = 0.1,
) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    ``warmup_steps`` of linear warm-up, then ``constant``, ``cosine`` (to 0 at
    ``total_steps``) or ``step`` (times ``gamma`` at each epoch in ``milestones``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
    epoch = step // max(1, steps_per_epoch)
    return gamma ** sum(1 for m in (milestones or []) if epoch >= m)
