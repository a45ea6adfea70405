"""One function per probe of :func:`~sharpscope.compare.compare`: its JSON-ready numbers.

Each takes a loaded problem, the shared probe batches and the settings dict
(:meth:`CompareSettings.to_dict`) and returns what ``cache/<label>/<probe>.json`` holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..runtime.functional import preserved, probe_mode

__all__ = [
    "probe_metrics",
    "probe_eigen",
    "probe_trace",
    "probe_density",
    "probe_sharpness",
    "probe_slice1d",
    "probe_slice2d",
    "probe_plane",
    "probe_interpolation",
    "probe_over_training",
]


def probe_metrics(problem: Any, batches: list, mode: str, batch_size: int) -> dict[str, Any]:
    from ..landscape.grid import evaluate_point

    model = problem.model
    test = problem.batches("test", batch_size)
    with preserved(model), probe_mode(model, mode):
        train_loss, train_acc = evaluate_point(model, problem.loss_fn, batches)
        test_loss, test_acc = evaluate_point(model, problem.loss_fn, test) if test else (None, None)
    ck = problem.checkpoint
    logged = dict(ck.final_metrics) if ck is not None else {}
    token = logged.get("perplexity") is not None  # a token model (training logged it)
    return {
        "test_perplexity": _exp(test_loss) if token else None,
        "logged_perplexity": logged.get("perplexity"),
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "logged": logged,
        "logged_test_acc": logged.get("test_acc"),
        "epochs": len(ck.metrics) if ck is not None else None,
        "optimizer": (ck.optimizer or {}).get("name") if ck is not None else None,
        "hparams": (ck.optimizer or {}).get("hparams") if ck is not None else None,
    }


def _exp(value: float | None) -> float | None:
    """``exp(value)``; ``None`` when missing, not finite or too large to represent."""
    if value is None or not np.isfinite(value) or value > 700:
        return None
    return float(np.exp(value))


def probe_eigen(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from ..hessian import hessian_eigenvalues

    res = hessian_eigenvalues(
        problem.model, problem.loss_fn, batches, k=s["top_k"], mode=s["mode"], seed=s["seed"]
    ).to_dict()
    res["lambda_max"] = max(res["eigenvalues"])
    return res


def probe_trace(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from ..hessian import hessian_trace

    res = hessian_trace(
        problem.model,
        problem.loss_fn,
        batches,
        probes=s["trace_probes"],
        mode=s["mode"],
        seed=s["seed"],
    ).to_dict()
    res.pop("probe_values", None)
    return res


def probe_density(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from ..hessian import spectral_density

    res = spectral_density(
        problem.model,
        problem.loss_fn,
        batches,
        runs=s["density_runs"],
        iters=s["density_iters"],
        grid_points=400,
        mode=s["mode"],
        seed=s["seed"],
    ).to_dict()
    res.pop("nodes", None)
    res.pop("weights", None)
    return res


def probe_sharpness(problem: Any, batches: list, s: dict[str, Any]) -> dict[str, Any]:
    from ..sharpness import sharpness

    common = dict(rho=s["rho"], mode=s["mode"], seed=s["seed"])
    worst = sharpness(
        problem.model,
        problem.loss_fn,
        batches,
        measure="worst",
        steps=s["worst_steps"],
        restarts=s["worst_restarts"],
        **common,
    ).to_dict()
    average = sharpness(
        problem.model,
        problem.loss_fn,
        batches,
        measure="average",
        samples=s["average_draws"],
        **common,
    ).to_dict()
    return {"worst": worst, "average": average}


def _axis(r: Sequence[float]) -> np.ndarray:
    return np.linspace(float(r[0]), float(r[1]), int(r[2]))


def probe_slice1d(
    problem: Any, batches: list, dirs: list, s: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    from ..landscape.multi import evaluate_slices_1d

    axis = _axis(s["range1d"])
    sset = evaluate_slices_1d(
        problem.model,
        problem.loss_fn,
        batches,
        dirs[: s["directions_count"]],
        axis,
        out_dir=out_dir,
        mode=s["mode"],
        quiet=True,
        force=True,
        metadata={"label": problem.label},
    )
    summary = sset.summary()
    med = sset.median
    center = summary["center_loss"]
    ends = [v for v in (med[0], med[-1]) if np.isfinite(v)]
    return {
        **summary,
        "rise_1d": float(np.mean(ends)) - center if ends and center is not None else None,
        "x": sset.x.tolist(),
        "loss": sset.loss.tolist(),
        "accuracy": sset.accuracy.tolist(),
        "median": med.tolist(),
        "q10": sset.q10.tolist(),
        "q90": sset.q90.tolist(),
        "median_accuracy": sset.median_accuracy.tolist(),
    }


def probe_slice2d(
    problem: Any, batches: list, dirs: list, s: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    from ..landscape.grid import evaluate_grid

    axis = _axis(s["range2d"])
    surf = evaluate_grid(
        problem.model,
        problem.loss_fn,
        batches,
        dirs[:2],
        [axis, axis],
        out_dir=out_dir,
        mode=s["mode"],
        quiet=True,
        force=True,
        metadata={"label": problem.label, "command": "compare"},
    )
    summary = surf.summary()
    finite = np.isfinite(surf.loss)
    center = summary["center_loss"]
    summary["rise_2d"] = (
        float(surf.loss[finite].mean()) - center if finite.any() and center is not None else None
    )
    summary["surface_dir"] = str(out_dir)
    return summary


def probe_plane(problem: Any, batches: list, s: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    from ..sharpness.plane import xsam_plane

    res = xsam_plane(
        problem.model,
        problem.loss_fn,
        batches,
        rho=s["rho"],
        grid=tuple(s["plane_range"]),
        mode=s["mode"],
        worst_steps=s["worst_steps"],
        restarts=s["worst_restarts"],
        seed=s["seed"],
        out_dir=out_dir,
        quiet=True,
    )
    rec = res.to_dict(arrays=True)
    rec["surface_dir"] = str(out_dir)
    return rec


def probe_interpolation(
    a: Any, b: Any, batches: list, s: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    from ..landscape.api import float_state
    from ..landscape.grid import evaluate_grid

    sa, sb = float_state(a.model), float_state(b.model)
    direction = {n: sb[n].to(t.device, t.dtype) - t for n, t in sa.items()}
    axis = _axis(s["interp_range"])
    surf = evaluate_grid(
        a.model,
        a.loss_fn,
        batches,
        [direction],
        [axis],
        center=sa,
        mode=s["mode"],
        out_dir=out_dir,
        quiet=True,
        force=True,
        metadata={"command": "compare", "a": a.label, "b": b.label},
    )
    loss = surf.loss
    names = {n for n, _ in a.model.named_parameters()}
    distance = float(
        torch.sqrt(sum((d.double() ** 2).sum() for n, d in direction.items() if n in names))
    )

    def at(t: float) -> float | None:
        hit = np.flatnonzero(np.abs(axis - t) <= 1e-9)
        return float(loss[hit[0]]) if len(hit) else None

    la, lb = at(0.0), at(1.0)
    inside = (axis >= -1e-12) & (axis <= 1 + 1e-12) & np.isfinite(loss)
    barrier = None
    if la is not None and lb is not None and inside.any():
        line = (1 - axis[inside]) * la + axis[inside] * lb
        barrier = float(np.max(loss[inside] - line))
    mid = at(0.5)
    if mid is None and inside.any():
        mid = float(np.interp(0.5, axis[inside], loss[inside]))
    return {
        "a": a.label,
        "b": b.label,
        "t": axis.tolist(),
        "loss": loss.tolist(),
        "accuracy": surf.accuracy.tolist(),
        "loss_a": la,
        "loss_b": lb,
        "loss_mid": mid,
        "barrier": barrier,
        "distance": distance,
    }


def probe_over_training(
    run: Path, s: dict[str, Any], device: str, load: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``lambda_max`` of every epoch checkpoint of ``run``; ``load``: how each is loaded
    (:func:`~sharpscope.problem.load_problem`'s keywords)."""
    from ..hessian import probe_over_training as hessian_over_training

    settings = dict(
        k=1,
        which="largest",
        tol=1e-3,
        samples=s["samples"],
        batch_size=s["batch_size"],
        batch_only=False,
        mode=s["mode"],
        params=None,
        backend="auto",
        seed=s["seed"],
    )
    res = hessian_over_training(
        run, what="eigen", settings=settings, device=device, quiet=True, **(load or {})
    )
    epochs = [int(r["epoch"]) for r in res["epochs"]]
    lam = [float(max(r["eigenvalues"])) for r in res["epochs"]]
    lrs = [r.get("lr") for r in res["epochs"]]
    return {"run": str(run), "epochs": epochs, "lambda_max": lam, "lr": lrs}
