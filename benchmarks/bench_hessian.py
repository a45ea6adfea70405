"""sharpscope's Hessian engine against PyHessian, on the same model, data and device.

Measures, in one run: the cost of one Hessian-vector product per backend (in units of
one gradient computation), top-1 / top-5 eigenvalues and the trace by PyHessian (its
defaults: power iteration and Hutchinson with tol 1e-3) and by sharpscope (Lanczos,
tol 1e-3; Hutchinson with as many probes as PyHessian used), each eigenvalue's error
against a tight reference (single-vector Lanczos, 150 products), time ratios and
product counts. Writes ``benchmarks/results/hessian-<device>.json``.

    python benchmarks/bench_hessian.py --device cuda          # ResNet-20, 1024 samples
    python benchmarks/bench_hessian.py --device cpu           # ResNet-20, 256 samples
    python benchmarks/bench_hessian.py --device cpu --quick   # 64 samples, 60-product reference
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from sharpscope.hessian import HessianOperator, lanczos
from sharpscope.hessian.pyhessian_compat import pyhessian_eigenvalues, pyhessian_trace
from sharpscope.hessian.trace import hutchinson_trace, hutchpp_trace
from sharpscope.models import build_model
from sharpscope.utils import resolve_device


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _clock(fn, dev, repeats=3):
    fn()
    _sync(dev)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--quick", action="store_true", help="small run (64 samples, 60-product reference)"
    )
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument(
        "--train-steps", type=int, default=None, help="brief SGD on the synthetic data first"
    )
    ap.add_argument("--reference-products", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    n = args.samples or (64 if args.quick else (1024 if dev.type == "cuda" else 256))
    ref_products = args.reference_products or (60 if args.quick else 150)
    steps = args.train_steps if args.train_steps is not None else (3 if args.quick else 10)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (n,), generator=g).to(dev)
    model = build_model(args.model, input_shape=(3, 32, 32), num_classes=10).to(dev)
    loss_fn = torch.nn.functional.cross_entropy
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    model.eval()
    opt.zero_grad(set_to_none=True)
    batch = [(x, y)]
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.model} ({params:,} parameters), {n} samples, device {dev}, torch {torch.__version__}"
    )

    def gradient():
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()

    t_grad = _clock(gradient, dev)
    model.zero_grad(set_to_none=True)
    costs = {}
    for backend, block in (("double", 1), ("forward", 1), ("forward", 8)):
        op = HessianOperator(model, loss_fn, batch, backend=backend, block_size=block)
        V = torch.randn(op.dim, block, device=dev)
        t = _clock(lambda op=op, V=V: op.matmat(V), dev, repeats=2) / block
        key = (
            f"{backend}"
            + (f" (vmap block {block})" if block > 1 else "")
            + (" (retained graph)" if backend == "double" else "")
        )
        costs[key] = t / t_grad
        op.release()
    op = HessianOperator(model, loss_fn, batch, backend="double")
    costs["double (from scratch)"] = (
        _clock(
            lambda: op._double_products(
                op._gradient_graph(x, y), torch.randn(1, op.dim, device=dev), retain=False
            ),
            dev,
            repeats=2,
        )
        / t_grad
    )
    print(
        f"one gradient: {t_grad * 1e3:.1f} ms; HVP cost in gradients: "
        + ", ".join(f"{k} {v:.2f}" for k, v in costs.items())
    )

    # sharpscope with the auto-chosen backend (timing included in the totals)
    t0 = time.perf_counter()
    op = HessianOperator(model, loss_fn, batch, backend="auto")
    t_choose = time.perf_counter() - t0
    print(
        f"auto backend: {op.backend} (block {op.block_size}), chosen in {t_choose:.2f} s: {op.timings}"
    )
    res = {}
    for k in (1, 5):
        _sync(dev)
        t0 = time.perf_counter()
        r = lanczos(op, k=k, tol=1e-3, seed=k)
        _sync(dev)
        res[k] = (r, time.perf_counter() - t0)
    # tight reference: single-vector Lanczos, ref_products products
    t0 = time.perf_counter()
    ref = lanczos(
        op, k=5, tol=1e-12, max_products=ref_products, block_size=1, seed=123, check=False
    )
    t_ref = time.perf_counter() - t0
    reference = ref.eigenvalues.tolist()
    print(
        f"reference ({ref.lanczos_products} products, {t_ref:.1f} s): {', '.join(f'{v:.6g}' for v in reference)}"
    )

    rows, record = [], {}
    for k in (1, 5):
        ph = pyhessian_eigenvalues(model, loss_fn, batch, k=k, tol=1e-3)
        ours, secs = res[k]
        ph_err = max(
            abs(a - b) / abs(b)
            for a, b in zip(sorted(ph["eigenvalues"], reverse=True), reference[:k], strict=False)
        )
        our_err = max(
            abs(a - b) / abs(b)
            for a, b in zip(ours.eigenvalues.tolist(), reference[:k], strict=True)
        )
        rows.append(
            (f"top-{k}", ph["seconds"], ph["hvp_count"], ph_err, secs, ours.hvp_count, our_err)
        )
        record[f"top{k}"] = {
            "pyhessian": {**ph, "max_rel_error": ph_err},
            "sharpscope": {**ours.to_dict(), "seconds": secs, "max_rel_error": our_err},
            "speedup": ph["seconds"] / secs,
        }
    ph = pyhessian_trace(model, loss_fn, batch)
    t0 = time.perf_counter()
    tr = hutchinson_trace(op, probes=max(2, ph["probes"]), seed=0)
    t_tr = time.perf_counter() - t0
    t0 = time.perf_counter()
    trpp = hutchpp_trace(op, probes=max(3, ph["probes"]), seed=0)
    t_trpp = time.perf_counter() - t0
    rows.append(
        ("trace", ph["seconds"], ph["hvp_count"], float("nan"), t_tr, tr.hvp_count, float("nan"))
    )
    record["trace"] = {
        "pyhessian": ph,
        "sharpscope_hutchinson": {**tr.to_dict(), "seconds": t_tr},
        "sharpscope_hutchpp": {**trpp.to_dict(), "seconds": t_trpp},
        "speedup": ph["seconds"] / t_tr,
    }
    for rec in record.values():
        for key in ("sharpscope_hutchinson", "sharpscope_hutchpp"):
            rec.get(key, {}).pop("probe_values", None)

    print(
        f"\n{'task':<8} {'PyHessian s':>11} {'hvp':>5} {'max rel err':>11} | {'sharpscope s':>12} {'hvp':>5} "
        f"{'max rel err':>11} | {'speedup':>7}"
    )
    for name, pt, ph_n, pe, st, sn, se in rows:
        print(
            f"{name:<8} {pt:>11.2f} {ph_n:>5} {pe:>11.1e} | {st:>12.2f} {sn:>5} {se:>11.1e} | {pt / st:>6.1f}x"
        )
    print(
        f"trace: PyHessian {ph['trace']:.5g} ({ph['probes']} probes); sharpscope Hutchinson {tr.trace:.5g} "
        f"+- {tr.stderr:.2g}, Hutch++ {trpp.trace:.5g} +- {trpp.stderr:.2g}"
    )

    out = {
        "benchmark": "hessian",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "parameters": params,
        "samples": n,
        "train_steps": steps,
        "quick": args.quick,
        "gradient_seconds": t_grad,
        "hvp_cost_in_gradients": costs,
        "auto_backend": {
            "backend": op.backend,
            "block": op.block_size,
            "timings": op.timings,
            "seconds": t_choose,
        },
        "reference": {"eigenvalues": reference, "products": ref.lanczos_products, "seconds": t_ref},
        **record,
    }
    path = Path(
        args.out
        or Path(__file__).parent
        / "results"
        / f"hessian-{dev.type}{'-quick' if args.quick else ''}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
