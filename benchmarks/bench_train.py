"""Cost of SAM and XSAM steps relative to SGD, measured in one run on the same model and batch.

    python benchmarks/bench_train.py [--device cpu|cuda] [--model resnet20,mlp] [--batch-size 128] [--quick]

Prints per-step times and the ratios SAM/SGD, XSAM(k=1, alpha fixed)/SAM, XSAM epoch
(dynamic alpha: one 21-point search per epoch) / SAM epoch, and k-step XSAM (k=2, 3) / SGD.
Methods are timed in interleaved rounds (the order rotates from round to round); each step
ratio is computed within each round and reported as the median over rounds with its min and
max, so a burst of load on a shared machine widens the range instead of biasing one method.
``--model`` takes a comma-separated list (one record per model). The
XSAM/SAM epoch ratio is measured directly on a short epoch (``--epoch-steps``) and also
extrapolated to a CIFAR epoch (50,000 / batch size steps) from the measured step and
search costs. Writes ``benchmarks/results/train-<device>.json``.
GPU targets (ResNet-20, batch 128): SAM/SGD <= 2.05, XSAM/SAM epoch <= 1.05.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sharpscope.models import build_model
from sharpscope.optim.factory import make_optimizer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="resnet20,mlp", help="model name(s), comma-separated")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per method per round")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument(
        "--epoch-steps", type=int, default=None, help="steps in the directly measured 'epoch'"
    )
    ap.add_argument("--quick", action="store_true", help="few steps (for CI or a 2-core CPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument(
        "--out",
        default=None,
        help="JSON file (default benchmarks/results/train-<device>[-<model>].json; "
        "with several models, -<model> is added to its name)",
    )
    args = ap.parse_args()
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    for name in models:
        bench(args, name)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench(args: argparse.Namespace, model: str) -> None:
    args = argparse.Namespace(**{**vars(args), "model": model, "models": args.model})
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (3 if args.quick else 10)
    rounds = args.rounds or (3 if args.quick else 5)
    epoch_steps = args.epoch_steps or (10 if args.quick else 40)
    shape = (3, 32, 32) if args.model.startswith(("resnet", "vgg")) else (1, 8, 8)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    torch.manual_seed(0)
    net0 = build_model(args.model, input_shape=shape, num_classes=10).to(device)
    state0 = {k: v.clone() for k, v in net0.state_dict().items()}

    def make(name: str, **kw):
        net0.load_state_dict(state0)
        opt = make_optimizer(name, net0, lr=0.01, momentum=0.9, weight_decay=5e-4, **kw)
        net0.train()
        return opt

    def closure():
        loss = F.cross_entropy(net0(x), y)
        loss.backward()
        return loss

    def loss_fn():
        return F.cross_entropy(net0(x), y)

    def run(opt, n: int, name: str) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net0(x), y).backward()
            if name == "sgd":
                opt.step()
            elif name.startswith("xsam"):
                opt.step(closure, loss_fn=loss_fn)
            else:
                opt.step(closure)
        _sync(device)
        return (time.perf_counter() - t0) / n

    methods = {
        "sgd": ("sgd", {}),
        "sam": ("sam", {"rho": 0.05}),
        "xsam_k1_fixed": ("xsam", {"rho": 0.05, "alpha": 0.5}),
        "xsam_k2": ("xsam", {"rho": 0.05, "steps": 2, "alpha": 0.5}),
        "xsam_k3": ("xsam", {"rho": 0.05, "steps": 3, "alpha": 0.5}),
    }
    opts = {k: make(n, **kw) for k, (n, kw) in methods.items()}
    for k, opt in opts.items():  # warm-up
        run(opt, 2, k)
    times: dict[str, list[float]] = {k: [] for k in methods}
    epoch_sam: list[float] = []
    epoch_xsam: list[float] = []
    search: list[float] = []
    order = list(opts)
    for r in range(rounds):
        for k in order[r % len(order) :] + order[: r % len(order)]:
            times[k].append(run(opts[k], steps, k))
        # short "epoch": SAM vs dynamic XSAM (one alpha search at its first step)
        sam_opt = make("sam", rho=0.05)
        epoch_sam.append(run(sam_opt, epoch_steps, "sam") * epoch_steps)
        xs = make("xsam", rho=0.05)
        xs.new_epoch()
        epoch_xsam.append(run(xs, epoch_steps, "xsam") * epoch_steps)
        # the search alone: 21 forward passes
        xs2 = make("xsam", rho=0.05, search_every=1)
        t_dyn = run(xs2, steps, "xsam")
        search.append(t_dyn - times["xsam_k1_fixed"][-1])
    med = {k: statistics.median(v) for k, v in times.items()}
    t_search = max(0.0, statistics.median(search))
    cifar_steps = math.ceil(50000 / args.batch_size)

    def paired(a: str, b: str) -> dict[str, float]:
        return _spread([ta / tb for ta, tb in zip(times[a], times[b], strict=True)])

    spreads = {
        "sam_over_sgd": paired("sam", "sgd"),
        "xsam_step_over_sam_step": paired("xsam_k1_fixed", "sam"),
        "xsam_epoch_over_sam_epoch_measured": _spread(
            [a / b for a, b in zip(epoch_xsam, epoch_sam, strict=True)]
        ),
        "xsam_k2_over_sgd": paired("xsam_k2", "sgd"),
        "xsam_k3_over_sgd": paired("xsam_k3", "sgd"),
    }
    ratios = {k: v["median"] for k, v in spreads.items()}
    ratios["xsam_epoch_over_sam_epoch_cifar"] = (cifar_steps * med["xsam_k1_fixed"] + t_search) / (
        cifar_steps * med["sam"]
    )
    print(
        f"device {device}, model {args.model}, batch {args.batch_size}, torch {torch.__version__}, "
        f"{rounds} rounds x {steps} steps (median)"
    )
    print(f"{'method':<22}{'ms / step':>12}{'/ SGD':>8}")
    for k, v in med.items():
        print(f"{k:<22}{1e3 * v:>12.2f}{v / med['sgd']:>8.2f}")
    print(f"{'alpha search (21 fwd)':<22}{1e3 * t_search:>12.2f}")
    print()
    print(f"{'ratio (median over rounds)':<42}{'value':>8}{'min':>8}{'max':>8}  target (GPU)")
    targets = {"sam_over_sgd": "<= 2.05", "xsam_epoch_over_sam_epoch_cifar": "<= 1.05"}
    for k, v in ratios.items():
        lo, hi = (
            (f"{spreads[k]['min']:>8.3f}", f"{spreads[k]['max']:>8.3f}")
            if k in spreads
            else ("", "")
        )
        print(f"{k:<42}{v:>8.3f}{lo:>8}{hi:>8}  {targets.get(k, '')}")
    record = {
        "benchmark": "train",
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        ),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "model": args.model,
        "batch_size": args.batch_size,
        "rounds": rounds,
        "steps": steps,
        "epoch_steps": epoch_steps,
        "cifar_epoch_steps": cifar_steps,
        "ms_per_step": {k: 1e3 * v for k, v in med.items()},
        "alpha_search_ms": 1e3 * t_search,
        "ratios": ratios,
        "ratio_spread": spreads,
        "ms_per_step_rounds": {k: [1e3 * t for t in v] for k, v in times.items()},
        "quick": args.quick,
    }
    out = (
        Path(args.out)
        if args.out
        else Path(__file__).parent
        / "results"
        / (
            f"train-{device.type}.json"
            if args.model == "resnet20"
            else f"train-{device.type}-{args.model}.json"
        )
    )
    if args.out and "," in args.models:
        out = out.with_name(f"{out.stem}-{args.model}{out.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
