"""Grid engine vs the per-point loop of Li et al.'s loss-landscape code, same grid, model and data.

The reference (``plot_surface.crunch`` + ``net_plotter.set_weights``): for each grid
point, copy ``w + a d1 + b d2`` into the model's parameters BY POSITION, evaluate
every batch, move on. sharpscope: :func:`sharpscope.landscape.evaluate_grid` with
``method="auto"`` (vmap over chunks of points on CUDA; on the CPU the per-point loop,
channels-last for conv models, see ``sharpscope/landscape/fast.py``); other methods with
``--methods``. Rounds are interleaved (reference, then each method); the speed-up is the
median of the per-round ratios, with min-max. Results must agree to 1e-6 (relative), else
the script exits non-zero.

    python benchmarks/bench_landscape.py [--device cpu|cuda] [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sharpscope import build_model, get_loss
from sharpscope.landscape import evaluate_grid, random_directions
from sharpscope.utils import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_loop(model, loss_fn, batches, d1, d2, xs, ys):
    """Li et al.: set the weights (by position), evaluate over the data, next point."""
    weights = [p.detach().clone() for p in model.parameters()]
    dx = [d1[n] for n, _ in model.named_parameters()]
    dy = [d2[n] for n, _ in model.named_parameters()]
    losses = np.zeros((len(xs), len(ys)))
    model.eval()
    with torch.no_grad():
        for i, a in enumerate(xs):
            for j, b in enumerate(ys):
                for p, w, u, v in zip(model.parameters(), weights, dx, dy, strict=True):
                    p.data = w + float(a) * u + float(b) * v
                total, n = 0.0, 0
                for x, y in batches:
                    total += loss_fn(model(x), y).item() * len(y)
                    n += len(y)
                losses[i, j] = total / n
        for p, w in zip(model.parameters(), weights, strict=True):
            p.data = w
    return losses


def _median(values):
    return float(np.median(np.asarray(values, dtype=np.float64)))


def bench_case(
    name, model_name, kwargs, shape, samples, points, device, batch_size, methods, repeats, clock
):
    """Interleaved repeats (reference, then each method, per round): ratios per round."""
    torch.manual_seed(0)
    model = build_model(model_name, input_shape=shape, num_classes=10, **kwargs).to(device).eval()
    x = torch.randn(samples, *shape, device=device)
    y = torch.randint(0, 10, (samples,), device=device)
    batches = [
        (x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, samples, batch_size)
    ]
    loss_fn = get_loss("cross_entropy")
    d1, d2 = random_directions(model, count=2, seed=0).resolve(model)
    axis = np.linspace(-1, 1, points)
    row = {
        "case": name,
        "params": sum(p.numel() for p in model.parameters()),
        "samples": samples,
        "grid": f"{points}x{points}",
        "repeats": repeats,
    }

    def timed(fn):
        _sync(device)
        t = clock()
        out = fn()
        _sync(device)
        return clock() - t, out

    times = {k: [] for k in ("reference", *methods)}
    diffs = {m: 0.0 for m in methods}
    for _ in range(repeats):
        t, ref = timed(lambda: reference_loop(model, loss_fn, batches, d1, d2, axis, axis))
        times["reference"].append(t)
        for method in methods:
            t, s = timed(
                lambda m=method: evaluate_grid(
                    model, loss_fn, batches, [d1, d2], [axis, axis], method=m, quiet=True
                )
            )
            times[method].append(t)
            diff = float(np.max(np.abs(s.loss - ref) / np.abs(ref)))
            diffs[method] = max(diffs[method], diff)
            if method == "auto":
                row["auto_method"] = s.meta["method"]
                row["auto_chunk"] = s.meta["chunk_size"]
    row["reference_s"] = _median(times["reference"])
    for method in methods:
        ratios = [r / t for r, t in zip(times["reference"], times[method], strict=True)]
        row[f"{method}_s"] = _median(times[method])
        row[f"{method}_times_s"] = times[method]
        row[f"speedup_{method}"] = _median(ratios)
        row[f"speedup_{method}_min"] = min(ratios)
        row[f"speedup_{method}_max"] = max(ratios)
        row[f"{method}_max_rel_diff"] = diffs[method]
        row[f"{method}_equal_1e-6"] = diffs[method] <= 1e-6
    row["reference_times_s"] = times["reference"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="small grids and data (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated: auto,loop,vmap (default: auto on CPU, auto,vmap on CUDA)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="process: this process's CPU time (a guide on a shared, busy CPU; not for CUDA)",
    )
    args = parser.parse_args()
    clock = time.process_time if args.clock == "process" else time.perf_counter
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    methods = tuple((args.methods or ("auto,vmap" if cuda else "auto")).split(","))
    points = 5 if args.quick else (21 if cuda else 11)
    cases = [("small CNN", "cnn", {}, (3, 32, 32), 256 if args.quick else 2048)]
    cases.append(
        ("ResNet-20", "resnet20", {}, (3, 32, 32), 64 if args.quick else (2048 if cuda else 256))
    )
    rows = [
        bench_case(
            n,
            m,
            kw,
            shape,
            samples,
            points,
            device,
            512 if cuda else 256,
            methods,
            args.repeats,
            clock,
        )
        for n, m, kw, shape, samples in cases
    ]
    print(
        f"{'case':<10} {'params':>8} {'N':>5} {'grid':>6} {'reference':>10}  method  median x (min-max)  max rel diff"
    )
    ok = True
    for r in rows:
        for m in methods:
            ok = ok and r[f"{m}_equal_1e-6"]
            print(
                f"{r['case']:<10} {r['params']:>8} {r['samples']:>5} {r['grid']:>6} "
                f"{r['reference_s']:>9.3f}s  {m:<6} {r[f'{m}_s']:>7.3f}s {r[f'speedup_{m}']:>5.2f}x "
                f"({r[f'speedup_{m}_min']:.2f}-{r[f'speedup_{m}_max']:.2f})  {r[f'{m}_max_rel_diff']:.1e}"
            )
    record = {
        "benchmark": "landscape",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if cuda
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "clock": args.clock,
        "rows": rows,
    }
    out = (
        Path(__file__).parent
        / "results"
        / f"landscape-{device.type}{'-quick' if args.quick else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {out}")
    if not ok:
        raise SystemExit(
            "error: sharpscope's grid differs from the reference loop by more than 1e-6"
        )


if __name__ == "__main__":
    main()
