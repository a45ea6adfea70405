"""Sharpness of a minimum, measured the same way for every checkpoint.

Four measures behind one function, :func:`sharpness`, so that checkpoints trained
with SGD, SAM or XSAM are compared on the same data, model mode and radius:

* ``worst``: worst-case sharpness ``max_{||delta|| <= rho} L(theta + delta) - L(theta)``
  (Keskar et al. 2017, "On Large-Batch Training for Deep Learning: Generalization Gap
  and Sharp Minima"), in an l2 or l-infinity ball, plain or adaptive (Kwon et al. 2021,
  ASAM; Andriushchenko et al. 2023, "A Modern Look at the Relationship between
  Sharpness and Generalization"), solved by projected gradient ascent
  (:mod:`~sharpscope.sharpness.worst`);
* ``average``: average-case sharpness ``E[L(theta + delta)] - L(theta)`` under random
  noise, by Monte Carlo with a standard error (:mod:`~sharpscope.sharpness.average`);
* ``lambda_max`` and ``trace``: the top Hessian eigenvalue and the Hessian trace
  (from :mod:`sharpscope.hessian`), with their second-order predictions of the two
  measures above (``rho^2 lambda_max / 2`` and ``rho^2 tr(H) / 2``)
  (:mod:`~sharpscope.sharpness.hessian_based`).

XSAM's v0-v1 plane (:func:`xsam_plane`, :mod:`~sharpscope.sharpness.plane`) measures
where the worst point of the ball lies relative to SAM's and XSAM's directions.

The loss over several batches is the sample-weighted mean of the batch losses, as
in every sharpscope probe; the caller's model is left exactly as it was.

Modules, in pipeline order: ``result`` (:class:`SharpnessResult`), ``objective``
(the loss over fixed batches, shared checks), ``ball`` (projection and ascent
geometry), ``worst``, ``average``, ``hessian_based``, ``registry``
(:data:`SHARPNESS_MEASURES`, :func:`sharpness`), ``probe`` (:func:`probe_sharpness`),
``plane_settings``, ``plane_steps``, ``plane`` (:func:`xsam_plane`), ``plots``
(:func:`plot_plane`, :func:`plane_figure_html`), ``plane_probe`` (:func:`probe_plane`).
"""

from __future__ import annotations

from .average import average_case_sharpness
from .ball import _ascent_direction, _project, _surface_point
from .hessian_based import hessian_sharpness
from .objective import (
    NORMS,
    Batch,
    _as_batches,
    _base_settings,
    _check_settings,
    _names,
    _Objective,
    _random_like,
)
from .plane import PlaneResult, xsam_plane
from .plane_probe import probe_plane
from .plane_settings import PlaneSettings
from .plane_steps import plane_basis
from .plots import plane_figure_html, plot_plane
from .probe import probe_sharpness
from .registry import SHARPNESS_MEASURES, _measure, sharpness
from .result import SharpnessResult
from .worst import _Ascent, _pga, worst_case_sharpness

__all__ = [
    "SHARPNESS_MEASURES",
    "NORMS",
    "SharpnessResult",
    "sharpness",
    "worst_case_sharpness",
    "average_case_sharpness",
    "hessian_sharpness",
    "probe_sharpness",
    "PlaneResult",
    "PlaneSettings",
    "xsam_plane",
    "plane_basis",
    "plot_plane",
    "plane_figure_html",
    "probe_plane",
]

# the private names of 0.1's ``sharpscope.sharpness`` module, still importable from here
_PRIVATE = (
    Batch,
    _as_batches,
    _Objective,
    _check_settings,
    _names,
    _random_like,
    _project,
    _ascent_direction,
    _surface_point,
    _Ascent,
    _pga,
    _base_settings,
    _measure,
)
