"""Put minima side by side: which one is flatter, by which measure, and by how much.

:func:`compare` runs every probe of sharpscope on several checkpoints with the same
data subset, model mode, seed and (filter-normalised, per-model re-scaled) random
directions, and writes a report folder:

* ``summary.json`` and ``summary.md``: one row per checkpoint, one column per
  measure, the flattest value marked (every flatness measure: lower = flatter);
* ``figures/*.png``: overlaid 1D slices, 2D contours on one colour scale, spectral
  densities, interpolation paths, XSAM planes, ``lambda_max`` over training;
* ``report.html``: one self-contained page (plotly inlined once, no network);
* ``directions.pt`` (the shared raw directions) and ``cache/`` (every probe's
  numbers per checkpoint, written atomically, and the resumable grids), so a
  repeated or interrupted call only computes what is missing.

The measures and what they answer:

* ``lambda_max``, ``trace``: the top eigenvalue and the trace of the Hessian of the
  training loss (Lanczos; Hutchinson with a standard error);
* ``worst``: worst-case sharpness ``max_{||d|| <= rho} L(theta + d) - L(theta)``
  (Keskar et al. 2017), ``average``: ``E L(theta + d) - L(theta)`` with
  ``d ~ N(0, rho^2 I)`` (Andriushchenko et al. 2023);
* ``curvature_1d``, ``rise_1d``, ``rise_2d``: from loss slices along random
  filter-normalised directions (Li et al. 2018), which are invariant to the
  layer-wise rescalings that change the Hessian measures without changing the
  function (Dinh et al. 2017, "Sharp Minima Can Generalize For Deep Nets").

The package, in pipeline order: :mod:`.settings` (:class:`CompareSettings`),
:mod:`.inputs` (checkpoints and run folders), :mod:`.cache` (the report folder's
caches), :mod:`.probes` (one function per probe), :mod:`.tables` (measures, tables,
comparisons), :mod:`.stats` (verdicts over seeds), :mod:`.report_object`
(:class:`ComparisonReport`) and :mod:`.run` (:func:`compare`).
"""

# ruff: noqa: F401  (re-exports: every name of the 0.1 module, private ones tests use)
from __future__ import annotations

from .cache import cached as _cached
from .cache import check_settings_file as _check_settings_file
from .cache import claim as _claim
from .cache import clear_report as _clear_report
from .cache import directions_fingerprint as _directions_fingerprint
from .cache import drop_damaged_grids as _drop_damaged_grids
from .cache import grid_folders as _grid_folders
from .cache import jsonable as _jsonable
from .cache import load_shared_directions as _load_shared_directions
from .cache import schemas as _schemas
from .cache import validator as _validator
from .inputs import file_fingerprint as _file_fingerprint
from .inputs import resolve_inputs, unique_labels
from .inputs import run_fingerprint as _run_fingerprint
from .probes import _axis
from .probes import probe_density as _probe_density
from .probes import probe_eigen as _probe_eigen
from .probes import probe_interpolation as _probe_interpolation
from .probes import probe_metrics as _probe_metrics
from .probes import probe_over_training as _probe_over_training
from .probes import probe_plane as _probe_plane
from .probes import probe_sharpness as _probe_sharpness
from .probes import probe_slice1d as _probe_slice1d
from .probes import probe_slice2d as _probe_slice2d
from .probes import probe_trace as _probe_trace
from .report_object import ComparisonReport
from .report_object import environment as _environment
from .run import _compare_locked, compare
from .settings import (
    PROBES,
    REPORT_FORMAT,
    SETTINGS_FILE,
    CompareSettings,
    _positive_int,
    _range,
    choose_probes,
)
from .tables import (
    INTERPOLATION_COLUMNS,
    MEASURES,
    PERFORMANCE_COLUMNS,
    PLANE_COLUMNS,
    Measure,
    _flattest,
)
from .tables import build_tables as _build_tables
from .tables import comparisons as _comparisons

__all__ = [
    "PROBES",
    "MEASURES",
    "Measure",
    "ComparisonReport",
    "CompareSettings",
    "compare",
    "resolve_inputs",
    "unique_labels",
]
