"""Peak memory of one Hessian-vector product against one gradient, per backend.

For each case of ``bench_hessian.py`` and each product kernel (double backward with its
retained graph; forward-over-reverse for one vector; forward-over-reverse ``vmap`` over
a block of 8, per vector), the peak memory above the model and data, divided by a
gradient's. Also the ``vmap`` block that ``max_memory="auto"`` chooses on this machine.

CPU: each measurement runs in a fresh process and reads the growth of its peak resident
set (``ru_maxrss``) over the state after the model and data were built, so it includes
the allocator's slack. CUDA: ``torch.cuda.max_memory_allocated`` above the same state.

    python benchmarks/bench_memory.py --device cpu|cuda [--cases cnn,resnet20,mlp-digits]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

KINDS = ("gradient", "double", "forward", "forward-block8")


def _peak_bytes(dev: torch.device) -> int:
    if dev.type == "cuda":
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated(dev))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def child(case: str, kind: str, device: str) -> dict:
    """One measurement in this (fresh) process."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_hessian import LOSS, make_case

    from sharpscope.hessian import HessianOperator

    dev = torch.device(device)
    model, batch = make_case(case, dev, steps=0)
    x, y = batch[0]
    params = [p for p in model.parameters() if p.requires_grad]
    dim = sum(p.numel() for p in params)
    V = torch.randn(dim, 8 if kind == "forward-block8" else 1, device=dev)
    if kind != "gradient":
        backend = "double" if kind == "double" else "forward"
        op = HessianOperator(model, LOSS, batch, backend=backend, block_size=V.shape[1],
                             max_memory=None)  # fmt: skip
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
    base = _peak_bytes(dev) if dev.type != "cuda" else int(torch.cuda.memory_allocated(dev))
    if kind == "gradient":
        torch.autograd.grad(LOSS(model(x), y), params)
    else:
        op.matmat(V)
    peak = _peak_bytes(dev) - base
    auto = HessianOperator(model, LOSS, batch, backend="forward", block_size=64)
    return {"bytes": peak, "vectors": V.shape[1] if kind != "gradient" else 0,
            "auto_vmap_block": auto.vmap_block, "parameters": dim}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cases", default="mlp-digits,cnn,resnet20")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", nargs=3, metavar=("CASE", "KIND", "DEVICE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return {}
    out = {"benchmark": "memory", "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "device": args.device, "device_name": platform.processor(), "torch": torch.__version__,
           "method": "ru_maxrss growth in a fresh process" if args.device == "cpu"
           else "cuda max_memory_allocated", "cases": {}}  # fmt: skip
    for case in args.cases.split(","):
        rows = {}
        for kind in KINDS:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", case, kind, args.device],
                capture_output=True, text=True, check=True)  # fmt: skip
            rows[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        grad = max(rows["gradient"]["bytes"], 1)
        print(f"\n{case}: {rows['gradient']['parameters']:,} parameters; "
              f"max_memory=auto chooses a vmap block of {rows['double']['auto_vmap_block']}")  # fmt: skip
        for kind, r in rows.items():
            per = r["bytes"] / max(r["vectors"], 1)
            r["ratio_to_gradient"] = per / grad
            print(f"  {kind:<15} {r['bytes'] / 2**20:9.1f} MiB  "
                  f"{'per vector ' + format(per / 2**20, '.1f') + ' MiB' if r['vectors'] > 1 else '':<22}"
                  f"x{r['ratio_to_gradient']:.2f} of a gradient")  # fmt: skip
        out["cases"][case] = rows
    path = Path(args.out or Path(__file__).parent / "results" / f"memory-{args.device}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {path}")
    return out


if __name__ == "__main__":
    main()
