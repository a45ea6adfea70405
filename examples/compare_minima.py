"""Compare an SGD minimum with a SAM minimum: which is flatter, by which measure?

Trains two small MLPs on the bundled digits data (SGD and SAM, same seed), then
runs every sharpscope probe on both with the same data and directions and writes
a report folder (summary.md, summary.json, figures, report.html).

    python examples/compare_minima.py          # about a minute on a laptop CPU
    SHARPSCOPE_QUICK=1 python examples/compare_minima.py   # seconds
"""

from __future__ import annotations

import os
from pathlib import Path

from sharpscope.compare import compare
from sharpscope.train import train

QUICK = bool(os.environ.get("SHARPSCOPE_QUICK"))
root = Path("runs/compare_minima")
epochs = 2 if QUICK else 15

runs = []
for optimizer in ("sgd", "sam"):
    out = root / optimizer
    if not (out / "final.pt").is_file():
        train(
            model="mlp",
            data="digits",
            optimizer=optimizer,
            out=out,
            epochs=epochs,
            batch_size=64,
            lr=0.1,
            rho=0.05,
            quiet=True,
        )
    # a run folder also gives lambda_max over training (its epoch_XXX.pt); a file does not
    runs.append(out / "final.pt" if QUICK else out)

settings = dict(
    samples=128,
    top_k=2,
    trace_probes=6,
    density_iters=6,
    density_runs=1,
    range1d=(-1, 1, 5),
    range2d=(-1, 1, 3),
    directions_count=2,
    worst_steps=2,
    worst_restarts=0,
    average_draws=4,
    plane_range=(-0.2, 0.2, 3),
    interp_range=(-0.5, 1.5, 5),
)
if not QUICK:
    settings.update(
        samples=None,
        top_k=5,
        trace_probes=50,
        density_iters=40,
        range1d=(-1, 1, 31),
        range2d=(-1, 1, 15),
        directions_count=8,
        worst_steps=15,
        average_draws=32,
    )
report = compare(runs, out=root / "report", quiet=True, **settings)

print(report.markdown().split("## Versus")[0])
for measure in ("lambda_max", "trace", "worst", "average", "rise_2d"):
    sgd, sam = report.value("sgd", measure), report.value("sam", measure)
    print(f"{measure:>12}: sgd {sgd:.4g}  sam {sam:.4g}  flattest: {report.flattest(measure)}")

# the report agrees with itself: the flattest checkpoint has the lowest value
for measure in ("lambda_max", "trace", "worst"):
    values = {label: report.value(label, measure) for label in report.labels}
    assert report.flattest(measure) == [min(values, key=values.get)]
assert (report.out / "report.html").is_file() and (report.out / "summary.json").is_file()
print(f"report: {report.html_path}")
