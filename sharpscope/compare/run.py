"""The orchestrator of :func:`compare`: check everything, then probe, tabulate and write.

Every input and setting is validated, and the report folder locked, before anything
in it is replaced; then each probe runs (or is read from the cache) on each
checkpoint, and the report is assembled from the numbers.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, SharpscopeError
from ..report.format import FigureOptions
from ..runtime.batches import sample_count
from ..runtime.cache import Damaged
from ..runtime.distributed import current, is_main
from ..runtime.files import atomic_write_json, check_writable, folder_lock
from ..runtime.progress import progress
from . import probes as P
from .cache import (
    cached,
    check_settings_file,
    claim,
    clear_report,
    grid_folders,
    schemas,
    validator,
)
from .directions import directions_for, shared_directions
from .group_stats import group_statistics
from .groups import group_spec, resolve_groups
from .inputs import file_fingerprint, resolve_inputs, run_fingerprint, unique_labels
from .report_object import ComparisonReport, environment
from .settings import REPORT_FORMAT, SETTINGS_FILE, CompareSettings, choose_probes
from .tables import build_tables, comparisons

__all__ = ["compare"]


def compare(
    checkpoints: Sequence[str | Path] | Mapping[str, Sequence[str | Path]],
    *,
    out: str | Path,
    samples: int | None = 4096,
    batch_size: int = 512,
    top_k: int = 5,
    rho: float = 0.05,
    range1d: str | Sequence[float] = (-1.0, 1.0, 51),
    range2d: str | Sequence[float] = (-1.0, 1.0, 25),
    directions_count: int = 10,
    seed: int = 0,
    mode: str = "eval",
    trace_probes: int = 100,
    density_runs: int = 3,
    density_iters: int = 80,
    worst_steps: int = 20,
    worst_restarts: int = 2,
    average_draws: int = 64,
    plane_range: str | Sequence[float] | None = None,
    interp_range: str | Sequence[float] = (-0.5, 1.5, 41),
    allow_mismatch: bool = False,
    force: bool = False,
    device: str = "auto",
    quiet: bool = False,
    probes: Sequence[str] | None = None,
    model: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    data: str | None = None,
    loss: str | None = None,
    normalize: bool | str | None = None,
    formats: str | Sequence[str] = ("png", "pdf"),
    color_scale: str = "rise",
) -> ComparisonReport:
    """Compare the minima of several checkpoints with every sharpscope probe.

    Every probe runs on the same seeded subset of the training split, in the same
    model ``mode``, with the same seed; the 1D and 2D slices cut every model along
    the SAME random directions (drawn once, saved to ``out/directions.pt``, and
    filter-normalised against each model's own weights, Li et al. 2018). Numbers
    are cached per checkpoint in ``out/cache`` and grids resume, so calling again
    computes only what is missing.

    Args:
        checkpoints: checkpoint files or run folders (a run folder stands for its
            ``final.pt`` and, for ``lambda_max`` over training, its ``epoch_XXX.pt``),
            or groups of runs (seeds, see :mod:`.groups` and :mod:`.group_stats`):
            ``{"sgd": [...], ...}``, ``LABEL=GLOB`` strings or folders of run folders.
        out: the report folder.
        samples ... interp_range: the probes' settings, see :class:`CompareSettings`.
        allow_mismatch: compare checkpoints of different architectures or data anyway.
        force: discard what an earlier call wrote in ``out`` and recompute everything.
        device: ``auto``, ``cpu``, ``cuda``...
        quiet: no progress bar.
        probes: the probes to run (default: all of :data:`PROBES`).
        model, model_kwargs, data, loss, normalize: how every checkpoint is loaded, as
            in :func:`~sharpscope.problem.load_problem` (default: each checkpoint's own;
            a plain state dict needs ``model`` and ``data``); part of the settings.
        formats, color_scale: the figures' file formats and the colour scale of the 2D
            panels (:class:`~sharpscope.report.FigureOptions`); they change no number.

    Returns the :class:`ComparisonReport` (also written to ``out``). Raises
    :class:`SharpscopeError` for no checkpoints, missing files, checkpoints that are not
    comparable, bad settings, a report in ``out`` made with other settings (no ``force``).
    """
    given = locals()  # every keyword, named as the settings' fields
    chosen = choose_probes(probes)
    settings = CompareSettings(**{f.name: given[f.name] for f in fields(CompareSettings)})
    figures = FigureOptions(formats=formats, color_scale=color_scale)
    spec = group_spec(checkpoints)
    inputs, groups = (
        resolve_groups(spec) if spec is not None else (resolve_inputs(checkpoints), None)
    )
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SharpscopeError(f"--out {out} is a file, not a folder")
    check_writable(out / "summary.json", what="report")
    created = not out.exists()
    try:
        # one compare per report folder at a time: a second one would delete the first's caches
        with folder_lock(out, command="compare"):
            return _compare_locked(
                inputs,
                out=out,
                settings=settings.to_dict(),
                load=settings.problem_options(),
                figures=figures,
                chosen=chosen,
                groups=groups,
                allow_mismatch=allow_mismatch,
                force=force,
                device=device,
                quiet=quiet,
            )
    finally:
        if created and is_main():
            with contextlib.suppress(OSError):
                out.rmdir()  # only succeeds when a failed call wrote nothing


@dataclass
class _Job:
    """Everything the probes of one :func:`compare` call share."""

    out: Path
    settings: dict[str, Any]
    chosen: list[str]
    inputs: list[dict[str, Any]]
    device: Any
    problems: list[Any] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    comparable: bool = True
    batches: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    runs: dict[str, Path | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    directions: Any = None
    directions_fp: str = ""
    resolved: dict[str, list] = field(default_factory=dict)
    group_index: dict[str, list[int]] | None = None  # group -> indices into inputs
    load: dict[str, Any] = field(default_factory=dict)  # load_problem's keywords
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> member labels


def _on_main(fn: Any) -> Any:
    """``fn()`` on rank 0 only (its result shared) in distributed runs, else ``fn()``."""
    ctx = current()
    return ctx.run_on_main(fn) if ctx is not None else fn()


def _compare_locked(
    inputs: list[dict[str, Any]],
    *,
    out: Path,
    settings: dict[str, Any],
    load: dict[str, Any],
    figures: FigureOptions,
    chosen: list[str],
    groups: dict[str, list[int]] | None = None,
    allow_mismatch: bool,
    force: bool,
    device: str,
    quiet: bool,
) -> ComparisonReport:
    """:func:`compare` once the report folder is locked: validate everything, then write."""
    from ..report import write_report
    from ..runtime.device import resolve_device

    if not force:
        _on_main(lambda: check_settings_file(out, settings))
    job = _Job(out, settings, chosen, inputs, resolve_device(device), group_index=groups, load=load)
    _load_problems(job, allow_mismatch=allow_mismatch)
    if force:  # everything is validated: only now is the old report replaced
        _on_main(lambda: clear_report(out))
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / SETTINGS_FILE, {"format": REPORT_FORMAT, "settings": settings})
    shared_directions(job)
    tasks = _plan(job)
    details, pairs, reused = _run_tasks(job, tasks, quiet=quiet)
    report = _assemble(job, details, pairs)
    report.settings["reused_probes"] = int(reused)
    report.settings["computed_probes"] = len(tasks) - int(reused)
    if is_main():  # distributed runs: rank 0 draws and writes the report
        write_report(report, figures)
    return report


def _load_problems(job: _Job, *, allow_mismatch: bool) -> None:
    """Load and check every input (before anything in the folder is replaced)."""
    from ..problem import check_comparable, load_problem

    s = job.settings
    job.problems = [
        load_problem(rec["checkpoint"], device=job.device, **job.load) for rec in job.inputs
    ]
    job.labels = unique_labels([rec["name"] for rec in job.inputs])
    for p, label in zip(job.problems, job.labels, strict=True):
        p.label = label
    if job.group_index is not None:
        job.groups = {g: [job.labels[i] for i in idx] for g, idx in job.group_index.items()}
        _check_groups(job, allow_mismatch=allow_mismatch)
    if len(job.problems) < 2:
        job.notes.append(
            "only one checkpoint: its numbers are reported, but nothing is marked flattest "
            "(compare needs at least 2 checkpoints for that)"
        )
        warnings.warn(job.notes[-1], stacklevel=4)
    try:
        check_comparable(job.problems, allow_mismatch=False)
    except CheckpointError:
        if not allow_mismatch:
            raise
        job.comparable = False
        job.notes.append(
            "the checkpoints differ in architecture or data (--allow-mismatch): numbers are "
            "measured on each model's own data and may not be comparable"
        )
    for p, rec in zip(job.problems, job.inputs, strict=True):
        job.batches[p.label] = p.batches(
            "train", s["batch_size"], samples=s["samples"], seed=s["seed"]
        )
        job.fingerprints[p.label] = file_fingerprint(Path(rec["checkpoint"]))
        job.runs[p.label] = rec["run"]


def _check_groups(job: _Job, *, allow_mismatch: bool) -> None:
    """Refuse a group whose members differ in architecture or data (unless allowed)."""
    from ..problem import check_comparable

    for group, idx in (job.group_index or {}).items():
        try:
            check_comparable([job.problems[i] for i in idx], allow_mismatch=False)
        except CheckpointError as exc:
            if not allow_mismatch:
                raise CheckpointError(
                    f"group {group!r} mixes architectures or data ({exc}): a group holds runs "
                    "of one setup (seeds); use --allow-mismatch to compare anyway"
                ) from None
            job.notes.append(f"group {group!r} mixes architectures or data (--allow-mismatch)")


def _plan(job: _Job) -> list[tuple[str, Any]]:
    """``(probe, problem)`` per model and probe, then ``("interpolation", (a, b))`` pairs and
    ``("over_training", problem)`` for run folders."""
    chosen, problems = job.chosen, job.problems
    ends = list(range(len(problems)))
    if job.group_index is not None:  # groups: between the first runs of the groups
        ends = [idx[0] for idx in job.group_index.values()]
    pairs = (
        list(itertools.combinations(ends, 2))
        if "interpolation" in chosen and job.comparable
        else []
    )
    if "interpolation" in chosen and not job.comparable and len(problems) > 1:
        job.notes.append("interpolation paths skipped: the checkpoints have different parameters")
    if "over_training" in chosen and not any(job.runs.values()):
        job.notes.append(
            "lambda_max over training skipped: give run folders (with epoch_XXX.pt) instead of "
            "checkpoint files to see it"
        )
    per_model = [p for p in chosen if p not in ("interpolation", "over_training")]
    tasks: list[tuple[str, Any]] = [(probe, p) for p in problems for probe in per_model]
    tasks += [("interpolation", (problems[i], problems[j])) for i, j in pairs]
    tasks += [
        ("over_training", p) for p in problems if "over_training" in chosen and job.runs[p.label]
    ]
    return tasks


def _run_tasks(
    job: _Job, tasks: list[tuple[str, Any]], *, quiet: bool
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], int]:
    """Every task's numbers (from the cache where it matches): per label, pairs, reused."""
    details: dict[str, dict[str, Any]] = {p.label: {} for p in job.problems}
    pairs: list[dict[str, Any]] = []
    reused = 0
    bar = progress(tasks, desc="compare", total=len(tasks), quiet=quiet, unit="probe")
    for probe, target in bar:
        if hasattr(bar, "set_postfix_str"):
            name = target.label if probe != "interpolation" else "-".join(t.label for t in target)
            bar.set_postfix_str(f"{probe} {name}")
        if probe == "interpolation":
            res, hit = _run_pair(job, *target)
            pairs.append(res)
        else:
            res, hit = _run_probe(job, probe, target)
            details[target.label][probe] = res
        reused += hit
    if hasattr(bar, "close"):
        bar.close()
    return details, pairs, reused


def _run_pair(job: _Job, a: Any, b: Any) -> tuple[dict[str, Any], bool]:
    """The interpolation path from ``a`` to ``b`` (cached under ``cache/pairs/A__B``)."""
    s, fa, fb = job.settings, job.fingerprints[a.label], job.fingerprints[b.label]
    keys = ("samples", "batch_size", "seed", "mode", "interp_range", "problem")
    key = {"probe": "interpolation", "a": fa, "b": fb, **{k: s[k] for k in keys if k in s}}
    sub = job.out / "cache" / "pairs" / f"{a.label}__{b.label}"
    claim(sub, {"a": fa, "b": fb})

    def same_pair(r: dict[str, Any]) -> None:
        if (r["a"], r["b"]) != (a.label, b.label):
            raise Damaged("interpolation: the labels of the pair differ")

    return cached(
        sub / "interpolation.json",
        key,
        lambda: P.probe_interpolation(a, b, job.batches[a.label], s, sub),
        validate=validator("interpolation", schemas(s)["interpolation"], same_pair),
        grids=[sub],
    )


def _compute(job: _Job, probe: str, p: Any, folder: Path) -> Any:
    """The function that computes ``probe`` on problem ``p`` (looked up in :mod:`.probes`)."""
    s, batches = job.settings, job.batches[p.label]
    if probe == "metrics":
        return lambda: P.probe_metrics(p, batches, s["mode"], s["batch_size"])
    if probe in ("slice1d", "slice2d"):
        fn = P.probe_slice1d if probe == "slice1d" else P.probe_slice2d
        return lambda: fn(p, batches, job.resolved[p.label], s, folder / probe)
    if probe == "plane":
        return lambda: P.probe_plane(p, batches, s, folder / "plane")
    if probe == "over_training":
        return lambda: P.probe_over_training(job.runs[p.label], s, str(job.device), job.load)
    fn = {
        "eigen": P.probe_eigen,
        "trace": P.probe_trace,
        "density": P.probe_density,
        "sharpness": P.probe_sharpness,
    }[probe]
    return lambda: fn(p, batches, s)


def _run_probe(job: _Job, probe: str, p: Any) -> tuple[dict[str, Any], bool]:
    """One probe on one checkpoint (cached under ``cache/<label>/<probe>.json``)."""
    label, folder = p.label, job.out / "cache" / p.label
    claim(folder, {"checkpoint": job.fingerprints[label]})
    key = {"probe": probe, "checkpoint": job.fingerprints[label], "settings": job.settings}
    if probe == "over_training":
        key["run"] = run_fingerprint(job.runs[label])
    if probe in ("slice1d", "slice2d"):
        key["directions"] = job.directions_fp  # other shared directions: other slices
        if label not in job.resolved:
            job.resolved[label] = directions_for(job, p)
    drawn = probe in ("slice2d", "plane")
    res, hit = cached(
        folder / f"{probe}.json",
        key,
        _compute(job, probe, p, folder),
        validate=validator(probe, schemas(job.settings)[probe]),
        grids=grid_folders(probe, folder),
        drawn=[folder / probe] if drawn else [],
    )
    if drawn:
        res["surface_dir"] = str(folder / probe)  # never a path read from the cache
    return res, hit


def _assemble(
    job: _Job, details: dict[str, dict[str, Any]], pairs: list[dict[str, Any]]
) -> ComparisonReport:
    """The report object of the numbers (not yet written)."""
    tables = build_tables(job.labels, details, pairs)
    for label, rec in zip(job.labels, job.inputs, strict=True):
        details[label]["checkpoint"] = str(rec["checkpoint"])
    report = ComparisonReport(
        out=job.out,
        labels=job.labels,
        checkpoints=[str(rec["checkpoint"]) for rec in job.inputs],
        tables=tables,
        comparisons=comparisons(tables),
        details={**details, "pairs": pairs},
        settings={**job.settings, "probes": job.chosen, "device": str(job.device)},
        notes=list(dict.fromkeys(job.notes)),
        environment=environment(job.device),
    )
    batches = job.batches[job.labels[0]]
    report.settings["probe_samples"] = sample_count(batches)  # any batch structure
    if job.group_index is not None:
        report.groups = job.groups
        report.group_stats = group_statistics(tables, job.groups, seed=job.settings["seed"])
    return report
