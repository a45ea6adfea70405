"""Hessian probes: one operator, Lanczos eigenpairs, trace estimators and spectral density.

Public API::

    HessianOperator                      # H @ v, H @ V, export to scipy
    lanczos, hessian_eigenvalues, layer_eigenvalues, EigenResult
    hutchinson_trace, hutchpp_trace, xtrace, hessian_trace, TraceResult
    slq_density, spectral_density, DensityResult
    save_vectors, load_vectors
    probe_over_training
"""

from __future__ import annotations

from .density import DensityResult, broaden, slq_density, spectral_density
from .lanczos import EigenResult, hessian_eigenvalues, lanczos, layer_eigenvalues
from .operator import BACKENDS, HessianOperator, clear_backend_cache
from .over_training import probe_over_training, run_checkpoints
from .trace import TraceResult, hessian_trace, hutchinson_trace, hutchpp_trace, xtrace
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
