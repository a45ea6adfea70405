"""The settings of a comparison: validated once, written to ``settings.json``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SharpscopeError
from ..runtime.ranges import parse_range

__all__ = ["PROBES", "PROBLEM_OPTIONS", "CompareSettings", "choose_probes"]

PROBES = (
    "metrics",
    "eigen",
    "trace",
    "density",
    "sharpness",
    "slice1d",
    "slice2d",
    "plane",
    "interpolation",
    "over_training",
)
SETTINGS_FILE = "settings.json"
REPORT_FORMAT = "sharpscope-comparison"


def _range(value: Any, name: str, *, needs_zero: bool = True) -> tuple[float, float, int]:
    if isinstance(value, str):
        start, stop, num = parse_range(value, name=name)
    else:
        try:
            start, stop, num = value
        except (TypeError, ValueError) as exc:
            raise SharpscopeError(
                f"invalid {name} {value!r}: expected (start, stop, num) or 'START:STOP:NUM'"
            ) from exc
        start, stop, num = parse_range(f"{float(start)!r}:{float(stop)!r}:{num}", name=name)
    if num < 3:
        raise SharpscopeError(f"invalid {name} {value!r}: needs at least 3 points, got {num}")
    if needs_zero:
        axis = np.linspace(start, stop, num)
        if not (start < 0 < stop) or np.abs(axis).min() > 1e-12 * max(abs(start), abs(stop)):
            raise SharpscopeError(
                f"invalid {name} {value!r}: 0 (the minimum itself) must be a grid point, "
                "e.g. -1:1:51 (a symmetric range with an odd number of points)"
            )
    return float(start), float(stop), int(num)


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SharpscopeError(f"{name} must be a whole number of at least {low}, got {value!r}")
    return int(value)


def choose_probes(probes: Sequence[str] | None) -> list[str]:
    """The probes to run (default: all of :data:`PROBES`); an unknown name is an error."""
    chosen = list(PROBES) if probes is None else [str(p).strip() for p in probes if str(p).strip()]
    unknown = [p for p in chosen if p not in PROBES]
    if unknown or not chosen:
        raise SharpscopeError(
            f"unknown probe(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(PROBES)}"
        )
    return chosen


# (field, message name, lowest value) of the whole-number settings, in checking order
_COUNTS = (
    ("batch_size", "batch size", 1),
    ("top_k", "top_k", 1),
    ("directions_count", "directions_count", 1),
    ("seed", "seed", 0),
    ("trace_probes", "trace_probes", 2),
    ("density_runs", "density_runs", 1),
    ("density_iters", "density_iters", 2),
    ("worst_steps", "worst_steps", 1),
    ("worst_restarts", "worst_restarts", 0),
    ("average_draws", "average_draws", 2),
)


PROBLEM_OPTIONS = ("model", "model_kwargs", "data", "loss", "normalize")


def _check_problem_options(s: Any) -> None:
    """The loading options' types (their values are checked when the checkpoints load)."""
    for name in ("model", "data", "loss"):
        value = getattr(s, name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise SharpscopeError(f"{name} must be a name or 'package.module:name', got {value!r}")
    if s.model_kwargs is not None and not isinstance(s.model_kwargs, dict):
        raise SharpscopeError(
            f"model_kwargs must be a dict of keyword arguments, got {s.model_kwargs!r}"
        )
    if s.normalize is not None and not isinstance(s.normalize, (bool, str)):
        raise SharpscopeError(
            f"normalize must be none, standard, MEAN,STD or M1,../S1,.., got {s.normalize!r}"
        )
    if s.model_kwargs == {}:
        object.__setattr__(s, "model_kwargs", None)


@dataclass(frozen=True)
class CompareSettings:
    """Every setting that defines a comparison's numbers (validated on creation).

    Ranges are stored as ``(start, stop, num)`` tuples, counts as ``int``;
    :meth:`to_dict` is exactly what ``settings.json`` holds (and every probe's cache
    key), so report folders written before keep loading and resuming.

    Attributes:
        samples: training samples in the probe subset (``None``/0: the whole split).
        batch_size: samples per forward pass.
        top_k: Hessian eigenvalues per checkpoint.
        rho: radius of the worst-case ball, scale of the average-case noise and the
            XSAM plane's ascent radius.
        range1d: 1D slice coordinates ``(start, stop, num)`` or ``"START:STOP:NUM"``
            (0 must be a grid point).
        range2d: the same for both axes of the 2D slice.
        directions_count: random directions for the 1D slices (median and band).
        seed: seeds the data subset, the directions and every estimator.
        mode: ``eval`` or ``train`` (batch statistics, running stats frozen).
        trace_probes: Hutchinson probes; ``density_runs``, ``density_iters``: SLQ.
        worst_steps, worst_restarts: projected gradient ascent of the worst case.
        average_draws: noise draws of the average case.
        plane_range: XSAM plane grid (absolute distances; default ``+-5 rho``, 21 points).
        interp_range: coordinates ``t`` of the interpolation paths (0 = first, 1 = second).
        model, model_kwargs, data, loss, normalize: how every checkpoint is loaded
            (:func:`~sharpscope.problem.load_problem`'s keywords; ``None``: the
            checkpoint's own). They define the numbers, so they are part of the settings
            (and of every cache key) when given.
    """

    samples: int | None = 4096
    batch_size: int = 512
    top_k: int = 5
    rho: float = 0.05
    range1d: Any = (-1.0, 1.0, 51)
    range2d: Any = (-1.0, 1.0, 25)
    directions_count: int = 10
    seed: int = 0
    mode: str = "eval"
    trace_probes: int = 100
    density_runs: int = 3
    density_iters: int = 80
    worst_steps: int = 20
    worst_restarts: int = 2
    average_draws: int = 64
    plane_range: Any = None
    interp_range: Any = (-0.5, 1.5, 41)
    model: str | None = None
    model_kwargs: dict[str, Any] | None = None
    data: str | None = None
    loss: str | None = None
    normalize: bool | str | None = None

    def __post_init__(self) -> None:
        mode, samples, rho = self.mode, self.samples, self.rho
        _check_problem_options(self)
        if mode not in ("eval", "train"):
            raise SharpscopeError(f"mode must be eval or train, got {mode!r}")
        if samples is not None and (isinstance(samples, bool) or samples < 0):
            raise SharpscopeError(f"samples must be 0 (the whole split) or more, got {samples!r}")
        if not (isinstance(rho, (int, float)) and np.isfinite(rho) and rho > 0):
            raise SharpscopeError(f"rho must be a positive number, got {rho!r}")
        fixed: dict[str, Any] = {
            "samples": int(samples) if samples else None,
            "rho": float(rho),
            "range1d": _range(self.range1d, "--range"),
            "range2d": _range(self.range2d, "--range2d"),
            "plane_range": (
                _range(self.plane_range, "--plane-range")
                if self.plane_range is not None
                else (-5 * rho, 5 * rho, 21)
            ),
            "interp_range": _range(self.interp_range, "--interp-range", needs_zero=False),
        }
        for key, name, low in _COUNTS:
            fixed[key] = _positive_int(name, getattr(self, key), low=low)
        for key, value in fixed.items():
            object.__setattr__(self, key, value)

    def problem_options(self) -> dict[str, Any]:
        """The keywords of :func:`~sharpscope.problem.load_problem` that were given."""
        return {k: getattr(self, k) for k in PROBLEM_OPTIONS if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``settings.json`` (and every cache key) holds them.

        The loading options appear (under ``"problem"``) only when given, so a report
        folder written before they existed keeps matching its settings.
        """
        extra = {"problem": self.problem_options()} if self.problem_options() else {}
        return {
            "samples": self.samples,
            "batch_size": self.batch_size,
            "top_k": self.top_k,
            "rho": self.rho,
            "range1d": list(self.range1d),
            "range2d": list(self.range2d),
            "plane_range": list(self.plane_range),
            "interp_range": list(self.interp_range),
            "directions_count": self.directions_count,
            "seed": self.seed,
            "mode": self.mode,
            "trace_probes": self.trace_probes,
            "density_runs": self.density_runs,
            "density_iters": self.density_iters,
            "worst_steps": self.worst_steps,
            "worst_restarts": self.worst_restarts,
            "average_draws": self.average_draws,
            "directions": {"kind": "random", "norm": "filter", "ignore": "biasbn"},
            **extra,
        }
