"""Checkpoint-level probes behind ``sharpscope eigen | trace | esd`` (one call each).

Each function takes a checkpoint file (or, for ``eigen``/``trace``, a run folder of
``epoch_XXX.pt`` checkpoints), loads the model and its training data, runs the
estimator and returns a JSON-ready record.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..cache import cache_notice, is_int, is_number, load_cache_json
from ..errors import CheckpointError, NonFiniteLossError, SharpscopeError
from .lanczos import _check_args, hessian_eigenvalues, layer_eigenvalues
from .over_training import probe_over_training, problem_batches
from .trace import TRACE_METHODS, hessian_trace

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


def _load(
    path: Path, *, model: str | None, model_kwargs: dict | None, data: str | None, device: str
) -> Any:
    from ..problem import load_problem

    if not Path(path).exists():
        raise SharpscopeError(f"no such file: {path}")
    return load_problem(path, model=model, model_kwargs=model_kwargs, data=data, device=device)


def _check_plot_path(plot: Any) -> None:
    if plot is not None and Path(plot).suffix.lower() not in _FIGURE_SUFFIXES:
        raise SharpscopeError(f"--plot must end in .png, .pdf or .svg, got {plot}")


def check_probe_cache(what: str) -> Any:
    """The schema check of ``RUN/probes/<what>.json`` for :func:`sharpscope.cache.load_cache_json`.

    Checks the type of every field that the run-folder probes, their table and their plot
    use: ``settings`` an object; ``epochs`` an object of ``"<epoch>": record``; each record
    with ``epoch`` (an int equal to its key), ``file`` (a string), ``lr`` (a number or
    null) and ``eigenvalues`` (a non-empty list of numbers) or ``trace`` (a number).
    """

    def check(obj: dict[str, Any]) -> str | None:
        if not isinstance(obj.get("settings"), dict):
            return "settings is not an object"
        epochs = obj.get("epochs")
        if not isinstance(epochs, dict):
            return "epochs is not an object"
        for key, rec in epochs.items():
            where = f"epochs[{key[:20]!r}]"
            if not (key.isascii() and key.isdigit() and len(key) <= 9):
                return f"{where}: the key is not an epoch number"
            if not isinstance(rec, dict):
                return f"{where} is a {type(rec).__name__}, not an object"
            if not is_int(rec.get("epoch")) or rec["epoch"] != int(key):
                return f"{where}.epoch is not {int(key)}"
            if not isinstance(rec.get("file"), str):
                return f"{where}.file is not a string"
            if rec.get("lr") is not None and not is_number(rec["lr"]):
                return f"{where}.lr is not a number"
            if what == "eigen":
                eigs = rec.get("eigenvalues")
                if not isinstance(eigs, list) or not eigs or not all(map(is_number, eigs)):
                    return f"{where}.eigenvalues is not a list of numbers"
            elif not is_number(rec.get("trace")):
                return f"{where}.trace is not a number"
        return None

    return check


def _run_folder(
    path: Path, what: str, settings: dict[str, Any], *, plot: Any, **load: Any
) -> dict[str, Any]:
    """Probe every epoch checkpoint of a run folder (cached in ``RUN/probes/``).

    Holds the lock of ``RUN/probes`` for the whole probe, so that two commands never
    write the same cache (the second gets one error naming the first). A damaged cache
    gets one notice and is removed under the lock: it is a miss and is recomputed.
    """
    from ..distributed import is_main
    from ..utils import folder_lock

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


def check_finite_problem(
    problem: Any, path: Path, batches: Any = None, *, mode: str = "eval"
) -> None:
    """Refuse, before any Hessian work, a model whose weights or loss are not finite.

    A NaN or infinite parameter (or buffer, e.g. a BatchNorm running mean) makes every
    Hessian-vector product NaN, which later checks would misreport (as non-determinism,
    or as a failure to converge). ``batches``: also evaluate the loss at the centre (one
    forward pass, no gradients; skipped in a distributed run, where ranks see other data).
    """
    import torch

    from .._func import probe_mode
    from ..distributed import current

    count, first = 0, None
    for name, tensor in problem.model.state_dict().items():
        if torch.is_tensor(tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            bad = int((~torch.isfinite(tensor)).sum())
            if bad and first is None:
                first = name
            count += bad
    if count:
        raise CheckpointError(
            f"{path} has {count} non-finite parameter value{'s' if count != 1 else ''} "
            f"(first: {first}): its Hessian is undefined; probe an earlier checkpoint "
            "(the training probably diverged)"
        )
    if batches is None or current() is not None:
        return
    with torch.no_grad(), probe_mode(problem.model, mode):
        for i, (x, y) in enumerate(batches):
            loss = problem.loss_fn(problem.model(x), y)
            if not bool(torch.isfinite(loss).all()):
                raise NonFiniteLossError(
                    f"the loss of {path} at its own weights is {float(loss.sum())} on batch "
                    f"{i} of the probe data ({mode} mode): its Hessian is undefined; check "
                    "the data for NaN/inf values"
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
    _check_plot_path(plot)
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
    check_finite_problem(problem, path, batches, mode=mode)
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
    if plot is not None:
        from ..distributed import is_main
        from .plots import plot_spectrum

        if is_main():  # distributed runs: rank 0 writes the figure
            import matplotlib.pyplot as plt

            plt.close(
                plot_spectrum(
                    res.eigenvalues,
                    plot,
                    residuals=res.residuals,
                    title=f"Top Hessian eigenvalues ({path.name}, {res.samples} samples)",
                )
            )
        out["plot"] = str(plot)
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
    if plot is not None and not path.is_dir():
        raise SharpscopeError(
            f"--plot draws the trace over training and needs a run folder; {path} is one "
            "checkpoint, whose trace is one number (use 'sharpscope esd --plot' for its spectrum)"
        )
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
    check_finite_problem(problem, path, batches, mode=mode)
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
    _check_plot_path(plot)
    _check_common(mode=mode, backend=backend, samples=samples, batch_size=batch_size)
    t0 = time.perf_counter()
    problem = _load(Path(path), model=model, model_kwargs=model_kwargs, data=data, device=device)
    batches = problem_batches(
        problem, samples=samples, batch_size=batch_size, batch_only=batch_only, seed=seed
    )
    check_finite_problem(problem, Path(path), batches, mode=mode)
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
