"""Grid engine vs the per-point loop of Li et al.'s loss-landscape code, same grid, model and data.

The reference (``plot_surface.crunch`` + ``net_plotter.set_weights``): for each grid
point, copy ``w + a d1 + b d2`` into the model's parameters BY POSITION, evaluate
every batch, move on. sharpscope: :func:`sharpscope.landscape.evaluate_grid` with
``method="auto"`` (vmap over chunks of points on CUDA, the loop on CPU); the vmap and
loop methods are timed too. Results must agree.

    python benchmarks/bench_landscape.py [--device cpu|cuda] [--quick]
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


def bench_case(name, model_name, kwargs, shape, samples, points, device, batch_size, repeats=2):
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
    }

    def timed(fn):
        best, out = float("inf"), None
        for _ in range(repeats):
            _sync(device)
            t = time.perf_counter()
            out = fn()
            _sync(device)
            best = min(best, time.perf_counter() - t)
        return best, out

    row["reference_s"], ref = timed(
        lambda: reference_loop(model, loss_fn, batches, d1, d2, axis, axis)
    )
    for method in ("auto", "loop", "vmap"):
        t, s = timed(
            lambda m=method: evaluate_grid(
                model, loss_fn, batches, [d1, d2], [axis, axis], method=m, quiet=True
            )
        )
        row[f"{method}_s"] = t
        row[f"{method}_max_rel_diff"] = float(np.max(np.abs(s.loss - ref) / np.abs(ref)))
        if method == "auto":
            row["auto_method"] = s.meta["method"]
            row["auto_chunk"] = s.meta["chunk_size"]
    row["speedup_auto"] = row["reference_s"] / row["auto_s"]
    row["speedup_vmap"] = row["reference_s"] / row["vmap_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="small grids and data (a smoke run)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    points = 5 if args.quick else (21 if cuda else 11)
    cases = [("small CNN", "cnn", {}, (3, 32, 32), 256 if args.quick else 2048)]
    cases.append(
        ("ResNet-20", "resnet20", {}, (3, 32, 32), 64 if args.quick else (2048 if cuda else 256))
    )
    rows = [
        bench_case(n, m, kw, shape, samples, points, device, 512 if cuda else 256)
        for n, m, kw, shape, samples in cases
    ]
    head = (
        f"{'case':<10} {'params':>8} {'N':>5} {'grid':>6} {'reference':>10} {'auto':>8} {'(method)':>9} "
        f"{'vmap':>8} {'loop':>8} {'auto x':>7} {'vmap x':>7} {'max rel diff':>12}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['case']:<10} {r['params']:>8} {r['samples']:>5} {r['grid']:>6} {r['reference_s']:>9.3f}s "
            f"{r['auto_s']:>7.3f}s {r['auto_method']:>9} {r['vmap_s']:>7.3f}s {r['loop_s']:>7.3f}s "
            f"{r['speedup_auto']:>6.2f}x {r['speedup_vmap']:>6.2f}x "
            f"{max(r['auto_max_rel_diff'], r['vmap_max_rel_diff']):>12.1e}"
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


if __name__ == "__main__":
    main()
