"""Checkpoint-level probes behind ``sharpscope eigen | trace | esd`` (one call each).

Each function takes a checkpoint file (or, for ``eigen``/``trace``, a run folder of
``epoch_XXX.pt`` checkpoints), loads the model and its training data, runs the
estimator and returns a JSON-ready record.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import SharpscopeError
from .lanczos import _check_args, hessian_eigenvalues, layer_eigenvalues
from .over_training import probe_over_training, problem_batches
from .trace import TRACE_METHODS, hessian_trace

__all__ = ["probe_eigen", "probe_trace", "probe_esd"]


def _check_common(*, mode: str, backend: str, samples: int | None, batch_size: int) -> None:
    from .operator import BACKENDS

    if mode not in ("eval", "train"):
        raise SharpscopeError(f"--mode must be eval or train, got {mode!r}")
    if backend not in BACKENDS:
        raise SharpscopeError(f"--backend must be auto, forward or double, got {backend!r}")
    if samples is not None and samples < 0:
        raise SharpscopeError(f"--samples must be at least 0 (0 = the whole split), got {samples}")
    if batch_size < 1:
        raise SharpscopeError(f"--batch-size must be at least 1, got {batch_size}")


def _load(
    path: Path, *, model: str | None, model_kwargs: dict | None, data: str | None, device: str
) -> Any:
    from ..problem import load_problem

    if not Path(path).exists():
        raise SharpscopeError(f"no such file: {path}")
    return load_problem(path, model=model, model_kwargs=model_kwargs, data=data, device=device)


def _run_folder(
    path: Path, what: str, settings: dict[str, Any], *, plot: Any, **load: Any
) -> dict[str, Any]:
    """Probe every epoch checkpoint of a run folder (cached in ``RUN/probes/``)."""
    plot = plot if plot is not None else path / "probes" / f"{what}.png"
    return probe_over_training(path, what=what, settings=settings, plot=plot, **load)


def probe_eigen(
    path: str | Path,
    *,
    k: int = 5,
    which: str = "largest",
    samples: int | None = 4096,
    batch_only: bool = False,
    batch_size: int = 512,
    mode: str = "eval",
    params: str | None = None,
    per_layer: bool = False,
    tol: float = 1e-3,
    max_products: int | None = None,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    save_vectors_to: str | Path | None = None,
    compare_pyhessian: bool = False,
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    plot: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Top/bottom Hessian eigenvalues of a checkpoint (or of every epoch of a run folder)."""
    _check_args(k, which, tol)
    _check_common(mode=mode, backend=backend, samples=samples, batch_size=batch_size)
    path = Path(path)
    if path.is_dir():
        if save_vectors_to is not None or per_layer or compare_pyhessian:
            raise SharpscopeError(
                "--save-vectors, --per-layer and --compare-pyhessian need one checkpoint file, "
                f"not the run folder {path}"
            )
        settings = dict(
            k=k,
            which=which,
            tol=tol,
            samples=samples,
            batch_size=batch_size,
            batch_only=batch_only,
            mode=mode,
            params=params,
            backend=backend,
            seed=seed,
        )
        return _run_folder(
            path, "eigen", settings, plot=plot, device=device, model=model,
            model_kwargs=model_kwargs, data=data, quiet=quiet,
        )  # fmt: skip
    problem = _load(path, model=model, model_kwargs=model_kwargs, data=data, device=device)
    batches = problem_batches(
        problem, samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed
    )
    kw = dict(
        which=which, mode=mode, tol=tol, max_products=max_products, backend=backend, seed=seed
    )
    res = hessian_eigenvalues(
        problem.model,
        problem.loss_fn,
        batches,
        k=k,
        params=params,
        return_vectors=save_vectors_to is not None,
        quiet=quiet,
        **kw,
    )
    out: dict[str, Any] = {"checkpoint": str(path), **res.to_dict()}
    if per_layer:
        layers = layer_eigenvalues(
            problem.model, problem.loss_fn, batches, k=k, params=params, quiet=quiet, **kw
        )
        out["layers"] = {name: r.to_dict() for name, r in layers.items()}
    if save_vectors_to is not None:
        from .vectors import save_vectors

        save_vectors(
            save_vectors_to,
            vectors=res.vectors(),
            eigenvalues=res.eigenvalues,
            which=which,
            source=str(path),
            mode=mode,
            samples=res.samples,
        )
        out["vectors_file"] = str(save_vectors_to)
    if compare_pyhessian:
        from .pyhessian_compat import pyhessian_eigenvalues

        ph = pyhessian_eigenvalues(problem.model, problem.loss_fn, batches, k=k, tol=tol)
        out["pyhessian"] = {
            **ph,
            "note": "power iteration with deflation, eval mode, largest eigenvalues",
        }
    return out


def probe_trace(
    path: str | Path,
    *,
    method: str = "hutchinson",
    probes: int = 100,
    samples: int | None = 4096,
    batch_only: bool = False,
    batch_size: int = 512,
    mode: str = "eval",
    params: str | None = None,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    compare_pyhessian: bool = False,
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    plot: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Hessian trace (Hutchinson or Hutch++) of a checkpoint or of every epoch of a run folder."""
    if method not in TRACE_METHODS:
        raise SharpscopeError(f"--method must be hutchinson or hutchpp, got {method!r}")
    if probes < (3 if method == "hutchpp" else 2):
        raise SharpscopeError(
            f"--probes must be at least {3 if method == 'hutchpp' else 2}, got {probes}"
        )
    _check_common(mode=mode, backend=backend, samples=samples, batch_size=batch_size)
    path = Path(path)
    if path.is_dir():
        if compare_pyhessian:
            raise SharpscopeError(
                f"--compare-pyhessian needs one checkpoint file, not the run folder {path}"
            )
        settings = dict(
            method=method,
            probes=probes,
            samples=samples,
            batch_size=batch_size,
            batch_only=batch_only,
            mode=mode,
            params=params,
            backend=backend,
            seed=seed,
        )
        return _run_folder(
            path, "trace", settings, plot=plot, device=device, model=model,
            model_kwargs=model_kwargs, data=data, quiet=quiet,
        )  # fmt: skip
    problem = _load(path, model=model, model_kwargs=model_kwargs, data=data, device=device)
    batches = problem_batches(
        problem, samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed
    )
    res = hessian_trace(
        problem.model,
        problem.loss_fn,
        batches,
        method=method,
        probes=probes,
        params=params,
        mode=mode,
        backend=backend,
        seed=seed,
        quiet=quiet,
    )
    out: dict[str, Any] = {"checkpoint": str(path), **res.to_dict()}
    if compare_pyhessian:
        from .pyhessian_compat import pyhessian_trace

        out["pyhessian"] = {
            **pyhessian_trace(problem.model, problem.loss_fn, batches),
            "note": "Hutchinson, stops when the running mean changes by < 1e-3",
        }
    return out


def probe_esd(
    path: str | Path,
    *,
    runs: int = 3,
    iters: int = 90,
    sigma: float | None = None,
    samples: int | None = 4096,
    batch_only: bool = False,
    batch_size: int = 512,
    mode: str = "eval",
    params: str | None = None,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    plot: str | Path | None = None,
    html: str | Path | None = None,
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Hessian spectral density (SLQ) of a checkpoint, optionally plotted (PNG/PDF) and as HTML."""
    from .density import spectral_density
    from .plots import density_html, plot_density

    if runs < 1 or iters < 2:
        raise SharpscopeError(
            f"--runs must be >= 1 and --iters >= 2, got runs={runs}, iters={iters}"
        )
    if sigma is not None and not sigma > 0:
        raise SharpscopeError(f"--sigma must be positive, got {sigma}")
    if plot is not None and Path(plot).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SharpscopeError(f"--plot must end in .png, .pdf or .svg, got {plot}")
    _check_common(mode=mode, backend=backend, samples=samples, batch_size=batch_size)
    t0 = time.perf_counter()
    problem = _load(Path(path), model=model, model_kwargs=model_kwargs, data=data, device=device)
    batches = problem_batches(
        problem, samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed
    )
    res = spectral_density(
        problem.model,
        problem.loss_fn,
        batches,
        runs=runs,
        iters=iters,
        sigma=sigma,
        params=params,
        mode=mode,
        backend=backend,
        seed=seed,
        quiet=quiet,
    )
    out: dict[str, Any] = {"checkpoint": str(path), **res.to_dict()}
    if plot is not None:
        import matplotlib.pyplot as plt

        plt.close(plot_density(res, plot, title=f"Hessian spectral density ({Path(path).name})"))
        out["plot"] = str(plot)
    if html is not None:
        density_html(res, html, title=f"Hessian spectral density ({Path(path).name})")
        out["html"] = str(html)
    out["total_seconds"] = time.perf_counter() - t0
    return out
