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
from .inputs import check_finite_problem, probe_inputs
from .lanczos import STOPS, _check_args, hessian_eigenvalues, layer_eigenvalues
from .over_training import check_probe_cache, probe_over_training
from .trace import ADAPTIVE_METHODS, TRACE_METHODS, hessian_trace

__all__ = ["probe_eigen", "probe_trace", "probe_esd", "check_probe_cache", "check_finite_problem"]

_FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


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


def _check_plot_path(plot: Any) -> None:
    if plot is not None and Path(plot).suffix.lower() not in _FIGURE_SUFFIXES:
        raise SharpscopeError(f"--plot must end in .png, .pdf or .svg, got {plot}")


def _run_folder(
    path: Path, what: str, settings: dict[str, Any], *, plot: Any, **load: Any
) -> dict[str, Any]:
    """Probe every epoch checkpoint of a run folder (cached in ``RUN/probes/``).

    Holds the lock of ``RUN/probes`` for the whole probe, so that two commands never
    write the same cache (the second gets one error naming the first). A damaged cache
    gets one notice and is removed under the lock: it is a miss and is recomputed.
    """
    from ..runtime.cache import cache_notice, load_cache_json
    from ..runtime.distributed import is_main
    from ..runtime.files import folder_lock

    _check_plot_path(plot)
    plot = plot if plot is not None else path / "probes" / f"{what}.png"
    if not path.is_dir():
        raise SharpscopeError(f"no such run folder: {path}")
    with folder_lock(path / "probes", command=f"sharpscope {what} {path}"):
        cache_path = path / "probes" / f"{what}.json"
        if is_main():
            _, reason = load_cache_json(cache_path, check_probe_cache(what))
            if reason is not None:
                cache_notice(cache_path, reason)
                cache_path.unlink()
        return probe_over_training(path, what=what, settings=settings, plot=plot, **load)


def _mode_note(out: dict[str, Any], model: Any, mode: str) -> dict[str, Any]:
    """Add ``mode_note`` (:data:`~sharpscope.hessian.reprs.MODE_NOTE`) to a train-mode
    probe of a model with BatchNorm, whose Hessian then differs from the eval one."""
    from torch.nn.modules.batchnorm import _BatchNorm

    from .reprs import MODE_NOTE

    if mode == "train" and any(isinstance(m, _BatchNorm) for m in model.modules()):
        out["mode_note"] = MODE_NOTE
    return out


def _data_settings(
    *,
    samples: int | None,
    batch_size: int,
    batch_only: bool,
    mode: str,
    params: str | None,
    backend: str,
    seed: int,
) -> dict[str, Any]:
    """The probe-data and product settings that the run-folder caches of eigen and trace key on."""
    return dict(
        samples=samples,
        batch_size=batch_size,
        batch_only=batch_only,
        mode=mode,
        params=params,
        backend=backend,
        seed=seed,
    )


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
    stop: str = "auto",
    max_products: int | None = None,
    max_memory: int | str | None = "auto",
    check_determinism: bool = True,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    save_vectors_to: str | Path | None = None,
    compare_pyhessian: bool = False,
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: str | None = None,
    samples_notice: bool = False,
    plot: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Top/bottom Hessian eigenvalues of a checkpoint (or of every epoch of a run folder).

    Arguments as in :func:`~sharpscope.hessian.hessian_eigenvalues` (``stop``,
    ``max_memory``, ``check_determinism``) plus the probe data (``samples``,
    ``batch_size``, ``batch_only``, ``seed``) and the files to write.
    """
    _check_args(k, which, tol)
    if stop not in STOPS:
        raise SharpscopeError(f"--stop must be auto, residual or value, got {stop!r}")
    _check_common(mode=mode, backend=backend, samples=samples, batch_size=batch_size)
    _check_plot_path(plot)
    path = Path(path)
    load = dict(model=model, model_kwargs=model_kwargs, data=data, device=device)
    opts = dict(loss=loss, normalize=normalize, samples_notice=samples_notice)
    data_kw = dict(samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed)
    kw = dict(which=which, mode=mode, tol=tol, stop=stop, max_products=max_products,
              max_memory=max_memory, check_determinism=check_determinism, backend=backend,
              seed=seed)  # fmt: skip
    if path.is_dir():
        if save_vectors_to is not None or per_layer or compare_pyhessian:
            raise SharpscopeError(
                "--save-vectors, --per-layer and --compare-pyhessian need one checkpoint file, "
                f"not the run folder {path}"
            )
        load = dict(load, loss=loss, normalize=normalize)
        settings = dict(k=k, which=which, tol=tol, **_data_settings(
            mode=mode, params=params, backend=backend, **data_kw))  # fmt: skip
        if stop != "auto":  # the default keeps the caches written before --stop existed
            settings["stop"] = stop
        return _run_folder(path, "eigen", settings, plot=plot, quiet=quiet,
                           check_determinism=check_determinism, max_memory=max_memory,
                           **load)  # fmt: skip
    problem, batches = probe_inputs(path, mode=mode, **data_kw, **load, **opts)
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
    _mode_note(out, problem.model, mode)
    if per_layer:
        layers = layer_eigenvalues(
            problem.model, problem.loss_fn, batches, k=k, params=params, quiet=quiet, **kw
        )
        out["layers"] = {name: r.to_dict() for name, r in layers.items()}
    if save_vectors_to is not None:
        out["vectors_file"] = _save_vectors(save_vectors_to, res, problem, path, which, mode)
    if compare_pyhessian:
        from .pyhessian_compat import pyhessian_eigenvalues

        ph = pyhessian_eigenvalues(problem.model, problem.loss_fn, batches, k=k, tol=tol)
        out["pyhessian"] = {
            **ph,
            "note": "power iteration with deflation, eval mode, largest eigenvalues",
        }
    if plot is not None:
        _plot_spectrum(res, plot, path)
        out["plot"] = str(plot)
    return out


def _save_vectors(to: Any, res: Any, problem: Any, path: Path, which: str, mode: str) -> str:
    """Write the eigenvectors with their checkpoint's path and weights' fingerprint."""
    from .vectors import save_vectors, weights_fingerprint

    save_vectors(
        to,
        vectors=res.vectors(),
        eigenvalues=res.eigenvalues,
        which=which,
        source=str(path),
        mode=mode,
        samples=res.samples,
        fingerprint=weights_fingerprint(problem.model),
    )
    return str(to)


def _plot_spectrum(res: Any, plot: str | Path, path: Path) -> None:
    """A stem plot of one checkpoint's eigenvalues (rank 0 of a distributed run writes it)."""
    from ..runtime.distributed import is_main
    from .plots import plot_spectrum

    if is_main():
        import matplotlib.pyplot as plt

        plt.close(
            plot_spectrum(
                res.eigenvalues,
                plot,
                residuals=res.residuals,
                title=f"Top Hessian eigenvalues ({path.name}, {res.samples} samples)",
            )
        )


def probe_trace(
    path: str | Path,
    *,
    method: str | None = None,
    probes: int | None = None,
    rel_stderr: float | None = None,
    samples: int | None = 4096,
    batch_only: bool = False,
    batch_size: int = 512,
    mode: str = "eval",
    params: str | None = None,
    check_determinism: bool = True,
    max_memory: int | str | None = "auto",
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    compare_pyhessian: bool = False,
    model: str | None = None,
    model_kwargs: dict | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: str | None = None,
    samples_notice: bool = False,
    plot: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Hessian trace (Hutchinson, Hutch++ or XTrace) of a checkpoint or of every epoch of a run folder.

    ``rel_stderr``: add products until the standard error is at most that fraction of
    the trace (:func:`~sharpscope.hessian.trace_to_stderr`); ``probes`` is then the most
    to spend (default 2000) and ``method`` defaults to ``"xtrace"`` (otherwise
    ``"hutchinson"`` with 100 probes).
    """
    method, probes = _trace_defaults(method, probes, rel_stderr)
    _check_common(mode=mode, backend=backend, samples=samples, batch_size=batch_size)
    path = Path(path)
    if plot is not None and not path.is_dir():
        raise SharpscopeError(
            f"--plot draws the trace over training and needs a run folder; {path} is one "
            "checkpoint, whose trace is one number (use 'sharpscope esd --plot' for its spectrum)"
        )
    load = dict(model=model, model_kwargs=model_kwargs, data=data, device=device)
    opts = dict(loss=loss, normalize=normalize, samples_notice=samples_notice)
    data_kw = dict(samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed)
    if path.is_dir():
        if compare_pyhessian:
            raise SharpscopeError(
                f"--compare-pyhessian needs one checkpoint file, not the run folder {path}"
            )
        load = dict(load, loss=loss, normalize=normalize)
        settings = dict(method=method, probes=probes, **_data_settings(
            mode=mode, params=params, backend=backend, **data_kw))  # fmt: skip
        if rel_stderr is not None:
            settings["rel_stderr"] = rel_stderr
        return _run_folder(path, "trace", settings, plot=plot, quiet=quiet,
                           check_determinism=check_determinism, max_memory=max_memory,
                           **load)  # fmt: skip
    problem, batches = probe_inputs(path, mode=mode, **data_kw, **load, **opts)
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
        check_determinism=check_determinism,
        max_memory=max_memory,
        rel_stderr=rel_stderr,
    )
    out: dict[str, Any] = {"checkpoint": str(path), **res.to_dict()}
    _mode_note(out, problem.model, mode)
    if compare_pyhessian:
        from .pyhessian_compat import pyhessian_trace

        if rel_stderr is None:
            ph = pyhessian_trace(problem.model, problem.loss_fn, batches)
            note = "Hutchinson, stops when the running mean changes by < 1e-3"
        else:
            ph = pyhessian_trace(problem.model, problem.loss_fn, batches,
                                 rel_stderr=rel_stderr, max_iter=probes)  # fmt: skip
            note = f"Hutchinson to the same standard error (at most {probes} probes)"
        out["pyhessian"] = {**ph, "note": note}
    return out


def _trace_defaults(
    method: str | None, probes: int | None, rel_stderr: float | None
) -> tuple[str, int]:
    """Check the trace settings; fill ``method`` and ``probes`` for a fixed count or a target."""
    import math

    if rel_stderr is not None:
        if not (isinstance(rel_stderr, (int, float)) and math.isfinite(rel_stderr)
                and 0 < rel_stderr < 1):  # fmt: skip
            raise SharpscopeError(
                f"--rel-stderr must be a fraction in (0, 1) such as 0.02, got {rel_stderr}"
            )
        method = method or "xtrace"
        probes = 2000 if probes is None else probes
        if method not in ADAPTIVE_METHODS:
            raise SharpscopeError(
                f"--rel-stderr works with --method xtrace or hutchinson, not {method} "
                "(Hutch++ splits its products in advance)"
            )
        if probes < 16:
            raise SharpscopeError(f"--probes (the most to spend) must be at least 16, got {probes}")
        return method, probes
    method = method or "hutchinson"
    probes = 100 if probes is None else probes
    if method not in TRACE_METHODS:
        raise SharpscopeError(f"--method must be hutchinson, hutchpp or xtrace, got {method!r}")
    least = {"hutchinson": 2, "hutchpp": 3, "xtrace": 4}[method]
    if probes < least:
        raise SharpscopeError(f"--probes must be at least {least}, got {probes}")
    return method, probes


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
    loss: str | None = None,
    normalize: str | None = None,
    samples_notice: bool = False,
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
    _check_plot_path(plot)
    _check_common(mode=mode, backend=backend, samples=samples, batch_size=batch_size)
    t0 = time.perf_counter()
    problem, batches = probe_inputs(
        Path(path), samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed,
        mode=mode, model=model, model_kwargs=model_kwargs, data=data, loss=loss,
        normalize=normalize, samples_notice=samples_notice, device=device,
    )  # fmt: skip
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
    _mode_note(out, problem.model, mode)
    title = f"Hessian spectral density ({Path(path).name})"
    if plot is not None:
        import matplotlib.pyplot as plt

        plt.close(plot_density(res, plot, title=title))
        out["plot"] = str(plot)
    if html is not None:
        density_html(res, html, title=title)
        out["html"] = str(html)
    out["total_seconds"] = time.perf_counter() - t0
    return out
