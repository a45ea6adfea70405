"""sharpscope's Hessian engine against PyHessian, curvlinops and hessian-eigenthings.

Same model, batch and device for every tool. Cases: ResNet-20 on 256 CIFAR-shaped
samples, the small CNN, the MLP on digits. Each tool's answer is compared with a tight
reference (single-vector Lanczos to a true relative residual of 1e-9 on the same
operator; for the MLP also the dense Hessian). Each task runs ``--repeats`` times,
tools interleaved; the table gives the median time ratio to sharpscope with min-max,
product counts, peak memory (CUDA) and the error. Peers that are not installed
(``pip install .[bench]``) are skipped with the reason.

Tasks: ``top1``, ``top5`` (tol 1e-3), ``trace`` (a fixed count of products) and
``trace-se``: each tool runs until its standard error is at most ``--rel-stderr`` of its
estimate, scored against the exact trace (small models) or a 600-product XTrace.
Peak memory of a product against a gradient, per backend: ``bench_memory.py``.

    python benchmarks/bench_hessian.py --device cpu|cuda [--repeats 5] [--tasks trace-se]
    python benchmarks/bench_hessian.py --quick   # tiny smoke run (MLP and small CNN, 1 repeat)
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from sharpscope.hessian import HessianOperator, lanczos
from sharpscope.hessian.pyhessian_compat import pyhessian_eigenvalues, pyhessian_trace
from sharpscope.hessian.trace import (
    exact_trace,
    hutchinson_trace,
    hutchpp_trace,
    trace_to_stderr,
    xtrace,
)
from sharpscope.models import build_model
from sharpscope.utils import resolve_device

LOSS = torch.nn.functional.cross_entropy
LOSS_MODULE = torch.nn.CrossEntropyLoss()  # curvlinops needs a module with .reduction


def make_case(
    name: str,
    dev: torch.device,
    *,
    samples: int | None = None,
    quick: bool = False,
    steps: int | None = None,
):
    """``(model, [(x, y)])`` of one benchmark case, trained briefly (``steps``, default 10, 3
    when quick) so the Hessian is not random."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if name == "mlp-digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        n = samples or (128 if quick else 512)
        x = torch.tensor(d.data[:n], dtype=torch.float32) / 16.0
        y = torch.tensor(d.target[:n], dtype=torch.long)
        hidden = (16,) if quick else (32,)
        model = build_model("mlp", input_shape=(64,), num_classes=10, hidden=hidden)
    else:
        n = samples or (32 if quick else 256)
        x = torch.randn(n, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        model = build_model(
            "resnet20" if name == "resnet20" else "cnn", input_shape=(3, 32, 32), num_classes=10
        )
    model, x, y = model.to(dev), x.to(dev), y.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range((3 if quick else 10) if steps is None else steps):
        opt.zero_grad()
        LOSS(model(x), y).backward()
        opt.step()
    model.eval()
    opt.zero_grad(set_to_none=True)
    return model, [(x, y)]


def reference(model, batch, *, k: int = 5, max_products: int = 300) -> dict:
    """Tight top-k eigenvalues (true relative residual 1e-9 where float32 allows) and the
    products spent; the test checks it against a dense Hessian on the small case."""
    op = HessianOperator(model, LOSS, batch, backend="double")
    res = lanczos(
        op,
        k=k,
        tol=1e-9,
        stop="residual",
        block_size=1,
        max_products=min(op.dim, max_products),
        check_determinism=False,
        seed=12345,
    )
    op.release()
    return {"eigenvalues": res.eigenvalues.tolist(), "residuals": res.residuals.tolist()}


def _peak(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(dev)
    return None


def _timed(fn, dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    out = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0, _peak(dev)


def _rel_err(got, ref):
    got = sorted(got, reverse=True)
    return max(abs(a - b) / abs(b) for a, b in zip(got, ref, strict=False))


def tools_eigen(model, batch, k: int) -> dict:
    """``name -> callable`` returning ``(eigenvalues, products)`` or raising ImportError."""

    def sharpscope():
        r = lanczos(HessianOperator(model, LOSS, batch, backend="auto"), k=k, tol=1e-3, check=False)
        return r.eigenvalues.tolist(), r.hvp_count

    def pyhessian():
        r = pyhessian_eigenvalues(model, LOSS, batch, k=k, tol=1e-3)
        return list(r["eigenvalues"]), r["hvp_count"]

    def curvlinops():
        from curvlinops import HessianLinearOperator
        from scipy.sparse.linalg import eigsh

        params = [p for p in model.parameters() if p.requires_grad]
        H = HessianLinearOperator(model, LOSS_MODULE, params, batch, check_deterministic=False)
        count = [0]
        A = H.to_scipy()
        mv = A.matvec

        def counted(v):
            count[0] += 1
            return mv(v)

        A.matvec = counted
        vals = eigsh(A, k=k, which="LA", tol=1e-3, return_eigenvectors=False)
        return sorted(vals.tolist(), reverse=True), count[0]

    def eigenthings():
        # its lanczos runs a fixed number of steps (default 2k): a user doubles max_iter
        # until its own residual test passes; every product of every attempt is counted
        import hessian_eigenthings as he

        op = he.HessianOperator(model, batch, he.supervised_loss(LOSS))
        count, steps = 0, max(2 * k, 4)
        while True:
            steps = min(steps, op.size - 1)
            r = he.lanczos(op, k=k, max_iter=steps, tol=1e-3, which="LA", seed=0)
            count += r.iterations
            if bool(r.converged.all()) or steps >= min(op.size - 1, 400):
                return sorted(r.eigenvalues.tolist(), reverse=True), count
            steps *= 2

    return {
        "sharpscope": sharpscope,
        "pyhessian": pyhessian,
        "curvlinops": curvlinops,
        "hessian-eigenthings": eigenthings,
    }


def tools_trace(model, batch, probes: int) -> dict:
    def ours(fn):
        def run():
            op = HessianOperator(model, LOSS, batch, backend="auto")
            r = fn(op, probes=probes, check=False)
            return r.trace, r.hvp_count

        return run

    def pyhessian():
        r = pyhessian_trace(model, LOSS, batch)
        return r["trace"], r["hvp_count"]

    def curv(name):
        def run():
            import curvlinops
            from curvlinops import HessianLinearOperator

            params = [p for p in model.parameters() if p.requires_grad]
            H = HessianLinearOperator(model, LOSS_MODULE, params, batch, check_deterministic=False)
            return float(getattr(curvlinops, name)(H, probes)), probes

        return run

    def eigenthings(method):
        def run():
            import hessian_eigenthings as he

            op = he.HessianOperator(model, batch, he.supervised_loss(LOSS))
            return float(he.trace(op, num_matvecs=probes, method=method, seed=0).estimate), probes

        return run

    return {
        "sharpscope-hutchinson": ours(hutchinson_trace),
        "sharpscope-hutchpp": ours(hutchpp_trace),
        "sharpscope-xtrace": ours(xtrace),
        "pyhessian": pyhessian,
        "curvlinops-hutchinson": curv("hutchinson_trace"),
        "curvlinops-hutchpp": curv("hutchpp_trace"),
        "hessian-eigenthings-hutchinson": eigenthings("hutchinson"),
        "hessian-eigenthings-hutch++": eigenthings("hutch++"),
    }


def tools_trace_se(model, batch, rel: float, budget: int) -> dict:
    """Each tool run until its standard error is at most ``rel`` of its estimate.

    PyHessian: its own Rademacher probes and products with that stopping rule (it has
    none of its own); sharpscope: ``trace_to_stderr`` with XTrace and with Hutchinson.
    curvlinops and hessian-eigenthings take a fixed product count and report no
    standard error to stop on (hessian-eigenthings does report one after the fact)."""

    def ours(method):
        def run():
            op = HessianOperator(model, LOSS, batch, backend="auto")
            r = trace_to_stderr(op, rel_stderr=rel, method=method, max_products=budget,
                                seed=run.seed, check=False)  # fmt: skip
            run.seed += 1
            return (r.trace, r.stderr, r.method, r.reached), r.hvp_count

        run.seed = 0
        return run

    def pyhessian():
        r = pyhessian_trace(model, LOSS, batch, rel_stderr=rel, max_iter=budget)
        return (r["trace"], r["stderr"], "hutchinson", r["reached"]), r["hvp_count"]

    def no_target(name):
        def run():
            raise ImportError(f"{name} takes a fixed product count: no stop on a standard error")

        return run

    return {
        "sharpscope": ours("xtrace"),
        "sharpscope-hutchinson": ours("hutchinson"),
        "pyhessian": pyhessian,
        "curvlinops": no_target("curvlinops"),
        "hessian-eigenthings": no_target("hessian-eigenthings"),
    }


def reference_trace(model, batch, *, exact_below: int = 3000) -> dict:
    """The exact trace (``dim`` unit products) for small models, else XTrace with 600 products."""
    op = HessianOperator(model, LOSS, batch, backend="double")
    if op.dim <= exact_below:
        tr, _ = exact_trace(op)
        return {"trace": tr, "stderr": 0.0, "how": f"exact ({op.dim} products)"}
    r = xtrace(op, probes=600, seed=999, check=False)
    return {"trace": r.trace, "stderr": r.stderr, "how": "XTrace, 600 products"}


def run_interleaved(tools: dict, dev, repeats: int, score) -> dict:
    """Run every tool ``repeats`` times, round-robin; keep times, products, memory, error."""
    rec = {
        name: {"seconds": [], "products": None, "peak_bytes": [], "error": None} for name in tools
    }
    for _ in range(repeats):
        for name, fn in tools.items():
            if rec[name].get("skipped"):
                continue
            try:
                (value, products), secs, peak = _timed(fn, dev)
            except ImportError as exc:
                rec[name] = {"skipped": str(exc)}
                continue
            except Exception as exc:  # noqa: BLE001 - a peer's failure is a result, not a crash
                rec[name] = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
                continue
            rec[name]["seconds"].append(secs)
            rec[name].setdefault("products_each", []).append(products)
            rec[name]["products"] = statistics.median(rec[name]["products_each"])
            rec[name]["peak_bytes"].append(peak)
            rec[name]["error"] = score(value)
            rec[name].setdefault("scores", []).append(rec[name]["error"])
    base = rec["sharpscope"] if "sharpscope" in rec else rec["sharpscope-hutchinson"]
    for r in rec.values():
        if r.get("seconds"):
            ratios = [a / b for a, b in zip(r["seconds"], base["seconds"], strict=False)]
            r["time_ratio_to_sharpscope"] = {
                "median": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
            }
    return rec


def _print_case(case: dict) -> None:
    for task in ("top1", "top5", "trace", "trace-se"):
        for tool, r in case.get(task, {}).items():
            if not isinstance(r, dict):
                continue
            if "skipped" in r:
                print(f"  {task:<8} {tool:<30} skipped: {r['skipped']}")
                continue
            tr = r["time_ratio_to_sharpscope"]
            head = (
                f"  {task:<8} {tool:<30} {statistics.median(r['seconds']):8.3f} s "
                f"x{tr['median']:.2f} [{tr['min']:.2f}-{tr['max']:.2f}]  "
                f"{r['products']:g} products"
            )
            if task == "trace-se":
                e = r["error"]
                errs = [x["error"] for x in r["scores"]]
                tail = (
                    f"  last {e['trace']:.4g} +- {e['stderr']:.2g} ({e['method']}, "
                    f"reached {e['reached']}); |error| median {statistics.median(errs):.2%}"
                )
            elif task == "trace":
                tail = f"  trace {r['error']:.4g}"
            else:
                tail = f"  error {r['error']:.3g}"
            print(head + tail)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--cases", default=None, help="comma list of resnet20, cnn, mlp-digits")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--probes", type=int, default=None)
    ap.add_argument("--tasks", default="top1,top5,trace,trace-se",
                    help="comma list of top1, top5, trace (fixed products), trace-se")  # fmt: skip
    ap.add_argument("--rel-stderr", type=float, default=0.02,
                    help="trace-se: the stated relative standard error")  # fmt: skip
    ap.add_argument("--budget", type=int, default=3000, help="trace-se: most products per run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    cases = (args.cases or ("mlp-digits,cnn" if args.quick else "resnet20,cnn,mlp-digits")).split(
        ","
    )
    repeats = args.repeats or (1 if args.quick else 5)
    probes = args.probes or (12 if args.quick else 60)
    out = {
        "benchmark": "hessian",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "quick": args.quick,
        "cases": {},
    }
    for name in cases:
        model, batch = make_case(name, dev, quick=args.quick)
        ref = reference(model, batch, k=5, max_products=60 if args.quick else 300)
        params = sum(p.numel() for p in model.parameters())
        print(f"\n{name}: {params:,} parameters, {len(batch[0][1])} samples; reference {ref}")
        case = {"parameters": params, "reference": ref}
        tasks = args.tasks.split(",")
        for k in (1, 5):
            if f"top{k}" in tasks:
                case[f"top{k}"] = run_interleaved(
                    tools_eigen(model, batch, k),
                    dev,
                    repeats,
                    lambda v, k=k, ref=ref: _rel_err(v, ref["eigenvalues"][:k]),
                )
        if "trace" in tasks:
            case["trace"] = run_interleaved(tools_trace(model, batch, probes), dev, repeats, float)
        if "trace-se" in tasks:
            case["trace_reference"] = rt = reference_trace(model, batch)
            print(f"  trace reference {rt}")
            case["trace-se"] = run_interleaved(
                tools_trace_se(model, batch, args.rel_stderr, args.budget),
                dev,
                repeats,
                lambda v, rt=rt: {
                    "trace": v[0],
                    "stderr": v[1],
                    "method": v[2],
                    "reached": v[3],
                    "error": abs(v[0] - rt["trace"]) / abs(rt["trace"]),
                },  # fmt: skip
            )
            case["trace-se"]["rel_stderr"] = args.rel_stderr
        _print_case(case)
        out["cases"][name] = case
    path = Path(
        args.out
        or Path(__file__).parent
        / "results"
        / f"hessian-{dev.type}{'-quick' if args.quick else ''}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(f"\nwrote {path}")
    return out


if __name__ == "__main__":
    main()
