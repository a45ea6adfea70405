"""CPU time of a fixed torch workload on a loaded machine: torch's default threads vs chosen ones.

    python benchmarks/bench_threads.py [--device cpu|cuda] [--load K] [--threads N] [--quick]

The script loads the machine itself: K busy-loop processes (default: the number of CPUs
this process may use), each with a hard deadline and killed at the end. It then runs the
same small training loop (an MLP, fixed size, fixed steps, fixed seed) in fresh
subprocesses with

- ``default``:    torch's default thread count (OMP_NUM_THREADS removed from the env),
- ``configured``: ``sharpscope.runtime.threads.configure_threads(--threads)`` (affinity + cgroup
  quota, or the given count),
- ``1 thread``:   ``configure_threads(1)``, what the load note suggests,

interleaved round by round, and records each run's wall time and its own CPU time
(``os.wait4`` rusage of that child only). It prints medians and the CPU-time ratios
default / configured and default / 1 thread.

Note: on a machine whose affinity mask and cgroup quota equal its core count, ``default``
and ``configured`` choose the same count and the first ratio is ~1 by construction; the
collapse the issue describes (64 threads under a 2-CPU quota) needs such a quota to show.
The ``1 thread`` row shows what the load note buys on an oversubscribed machine.
Whole run: under ~2 minutes by default, a few seconds with ``--quick``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sharpscope.runtime.threads import choose_threads, usable_cpus  # noqa: E402

WORKLOAD = r"""
import resource, sys, time
mode, steps, width, batch, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if mode != "default":
    from sharpscope.runtime.threads import configure_threads
    configure_threads(int(mode))
import torch
torch.manual_seed(0)
dev = torch.device(device)
model = torch.nn.Sequential(
    torch.nn.Linear(width, 2 * width), torch.nn.ReLU(), torch.nn.Linear(2 * width, 10)
).to(dev)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.randn(batch, width, device=dev)
y = torch.randint(0, 10, (batch,), device=dev)
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
t0, c0 = time.perf_counter(), cpu()
for _ in range(steps):
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
if dev.type == "cuda":
    torch.cuda.synchronize()
print("RESULT", torch.get_num_threads(), time.perf_counter() - t0, cpu() - c0, float(loss))
"""

BUSY = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def start_load(k: int, seconds: float) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)], stdin=subprocess.DEVNULL)
        for _ in range(k)
    ]


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def run_workload(mode: str, args: argparse.Namespace, env: dict[str, str]) -> dict:
    """One fresh subprocess; wall time, and CPU time of that child alone (os.wait4)."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKLOAD,
                mode,
                str(args.steps),
                str(args.width),
                str(args.batch),
                args.device,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    line = next((ln for ln in text.splitlines() if ln.startswith("RESULT")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"error: workload ({mode}) failed: {text.strip().splitlines()[-1:]}")
    _, threads, loop_s, loop_cpu_s, loss = line.split()
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "loop_s": float(loop_s),
        "loop_cpu_s": float(loop_cpu_s),
        "threads": int(threads),
        "loss": float(loss),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (auto: cuda if available)")
    ap.add_argument("--load", type=int, default=None, help="busy processes (default: usable CPUs)")
    ap.add_argument("--threads", type=int, default=None, help="count for 'configured'")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round (seconds)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        args.repeats, args.steps, args.width, args.batch = 1, 5, 64, 32

    cpus = usable_cpus()
    load = cpus if args.load is None else max(0, args.load)
    configured = choose_threads(args.threads)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    modes = {"default": "default", "configured": str(configured), "1 thread": "1"}

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    budget = 60.0 if args.quick else 150.0  # the busy loops end by themselves after this
    runs: dict[str, list[dict]] = {name: [] for name in modes}
    procs = start_load(load, budget)
    try:
        time.sleep(0.5 if args.quick else 2.0)  # let the load settle
        t_start = time.monotonic()
        rounds = max(1, args.repeats)
        for i in range(rounds):
            for name, mode in modes.items():
                runs[name].append(run_workload(mode, args, env))
            elapsed = time.monotonic() - t_start
            if i + 1 < rounds and elapsed * (i + 2) / (i + 1) > budget - 5:
                print("note: stopping early to stay within the time budget")
                break
    finally:
        stop_load(procs)

    print(
        f"{args.device}: MLP {args.width}->{2 * args.width}->10, batch {args.batch}, "
        f"{args.steps} steps; {load} busy processes on {cpus} usable CPUs "
        f"(os.cpu_count {os.cpu_count()}, load before {load_before})"
    )
    print("medians; 'loop' = the training loop alone, 'process' = including python/torch start")
    print(
        f"{'threads':12s} {'n':>3s} {'loop wall':>10s} {'loop cpu':>10s} {'cpu/wall':>8s}"
        f" {'proc wall':>10s} {'proc cpu':>10s}"
    )
    summary = {}
    for name, rs in runs.items():
        row = {
            key: statistics.median(r[key] for r in rs)
            for key in ("loop_s", "loop_cpu_s", "wall_s", "cpu_s")
        }
        summary[name] = {"threads": rs[0]["threads"], **row}
        print(
            f"{name:12s} {rs[0]['threads']:3d} {row['loop_s']:10.3f} {row['loop_cpu_s']:10.3f}"
            f" {row['loop_cpu_s'] / max(row['loop_s'], 1e-9):8.2f}"
            f" {row['wall_s']:10.2f} {row['cpu_s']:10.2f}"
        )
    losses = {r["loss"] for rs in runs.values() for r in rs}
    for name in ("configured", "1 thread"):
        loop = summary["default"]["loop_cpu_s"] / max(summary[name]["loop_cpu_s"], 1e-9)
        proc = summary["default"]["cpu_s"] / max(summary[name]["cpu_s"], 1e-9)
        print(f"CPU time default / {name}: loop {loop:.2f}x, process {proc:.2f}x")
    print(f"final losses across runs: {sorted(losses)} (same work in every run)")

    if args.json is not None:
        record = {
            "benchmark": "threads",
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": platform.platform(),
            "device": args.device,
            "usable_cpus": cpus,
            "load_processes": load,
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "runs": runs,
            "summary": summary,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
