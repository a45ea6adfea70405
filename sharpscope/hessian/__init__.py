"""Hessian probes: one operator, Lanczos eigenpairs, trace estimators and spectral density.

Public API::

    HessianOperator                      # H @ v, H @ V, export to scipy
    lanczos, hessian_eigenvalues, layer_eigenvalues, EigenResult
    hutchinson_trace, hutchpp_trace, xtrace, hessian_trace, TraceResult
    trace_to_stderr, exact_trace          # the trace to a stated standard error
    slq_density, spectral_density, DensityResult
    save_vectors, load_vectors
    probe_over_training
"""

from __future__ import annotations

from .density import DensityResult, broaden, slq_density, spectral_density
from .lanczos import EigenResult, hessian_eigenvalues, lanczos, layer_eigenvalues
from .operator import BACKENDS, HessianOperator, clear_backend_cache
from .over_training import probe_over_training, run_checkpoints
from .trace import (
    TraceResult,
    exact_trace,
    hessian_trace,
    hutchinson_trace,
    hutchpp_trace,
    trace_to_stderr,
    xtrace,
)
from .vectors import load_vectors, save_vectors

__all__ = [
    # operator
    "HessianOperator",
    "BACKENDS",
    "clear_backend_cache",
    # eigenvalues
    "EigenResult",
    "lanczos",
    "hessian_eigenvalues",
    "layer_eigenvalues",
    # trace
    "TraceResult",
    "hutchinson_trace",
    "hutchpp_trace",
    "xtrace",
    "hessian_trace",
    "trace_to_stderr",
    "exact_trace",
    # density
    "DensityResult",
    "slq_density",
    "spectral_density",
    "broaden",
    # files and runs
    "save_vectors",
    "load_vectors",
    "probe_over_training",
    "run_checkpoints",
]
