"""Start-up cost of the sharpscope CLI and package, and which heavy modules load at start-up.

    python benchmarks/bench_startup.py [--repeats 5] [--json FILE]

Each command runs in a fresh subprocess; commands are interleaved round by round and the
median wall and CPU time (user + system, from ``RUSAGE_CHILDREN``) is kept. Then, for
``import sharpscope``, ``import sharpscope_cli.app`` and ``sharpscope --help``, it lists which
heavy modules (torch, scipy, matplotlib, plotly, sklearn, pyhessian, ...) are loaded and, from
``python -X importtime``, the import chain through which each one was first pulled in and its
cumulative import time. Target (issue 16): every command starts in under 0.5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.5
HEAVY = (
    "torch",
    "numpy",
    "scipy",
    "matplotlib",
    "plotly",
    "sklearn",
    "pyhessian",
    "pandas",
    "tqdm",
)
PY = sys.executable


def _cli() -> list[str]:
    script = shutil.which("sharpscope") or str(Path(PY).with_name("sharpscope"))
    if Path(script).exists():
        return [script]
    return [PY, "-m", "sharpscope_cli.app"]


def commands() -> dict[str, list[str]]:
    cli = _cli()
    return {
        "python -c pass (baseline)": [PY, "-c", "pass"],
        "python -c 'import sharpscope'": [PY, "-c", "import sharpscope"],
        "python -c 'import sharpscope_cli.app'": [PY, "-c", "import sharpscope_cli.app"],
        "python -m sharpscope_cli.app --help": [PY, "-m", "sharpscope_cli.app", "--help"],
        "sharpscope --help": [*cli, "--help"],
        "sharpscope info --help": [*cli, "info", "--help"],
        "sharpscope --version": [*cli, "--version"],
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_once(cmd: list[str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=_env(), timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def time_commands(repeats: int) -> dict[str, dict[str, float]]:
    cmds = commands()
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    codes: dict[str, int] = {}
    for name, cmd in cmds.items():  # warm the file cache once, not timed
        codes[name] = run_once(cmd)[2]
    for _ in range(repeats):
        for name, cmd in cmds.items():
            wall, cpu, code = run_once(cmd)
            walls[name].append(wall)
            cpus[name].append(cpu)
            codes[name] = code
    return {
        name: {
            "wall_s": statistics.median(walls[name]),
            "cpu_s": statistics.median(cpus[name]),
            "wall_min_s": min(walls[name]),
            "exit_code": codes[name],
        }
        for name in cmds
    }


def parse_importtime(stderr: str) -> list[tuple[int, str, int]]:
    """``(depth, module, cumulative_us)`` per line of ``-X importtime`` output, in order."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        try:
            _, cum_us, name = line.split("|", 2)
            cumulative = int(cum_us.strip())
        except ValueError:
            continue
        name = name[1:] if name.startswith(" ") else name  # the space after "|"
        indent = len(name) - len(name.lstrip(" "))
        rows.append((indent // 2, name.strip(), cumulative))
    return rows


def import_chain(rows: list[tuple[int, str, int]], target: str) -> tuple[list[str], int] | None:
    """The chain of importers of the first ``target`` import, outermost first, and its cost.

    importtime prints a module after everything it imported, one indent level deeper, so
    a module's importer is the next line below it with a smaller depth.
    """
    for i, (depth, name, cumulative) in enumerate(rows):
        if name == target:
            chain = [name]
            level = depth
            for d, n, _ in rows[i + 1 :]:
                if d < level:
                    chain.append(n)
                    level = d
                    if d == 0:
                        break
            return list(reversed(chain)), cumulative
    return None


def heavy_imports(label: str, args: list[str]) -> dict:
    code = (
        "import sys\n"
        "try:\n"
        f"    {args[0]}\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY:', *(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = _env()
    loaded = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    timed = subprocess.run(
        [PY, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    rows = parse_importtime(timed.stderr)
    marker = [ln for ln in loaded.stdout.splitlines() if ln.startswith("HEAVY:")]
    modules = marker[-1].split()[1:] if marker else []
    chains = {}
    for mod in modules:
        found = import_chain(rows, mod)
        if found is not None:
            chain, cumulative = found
            chains[mod] = {"chain": chain, "cumulative_s": cumulative / 1e6}
    return {"label": label, "loaded": modules, "chains": chains}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (median kept)")
    ap.add_argument("--json", type=Path, default=None, help="also write the record here")
    args = ap.parse_args()

    timings = time_commands(max(1, args.repeats))
    print(f"start-up, median of {args.repeats} interleaved runs (target < {TARGET_S} s)")
    print(f"{'command':42s} {'wall s':>8s} {'cpu s':>8s}  {'exit':>4s}  target")
    for name, t in timings.items():
        ok = "" if "baseline" in name else ("ok" if t["wall_s"] < TARGET_S else "MISSED")
        print(f"{name:42s} {t['wall_s']:8.3f} {t['cpu_s']:8.3f}  {t['exit_code']:4d}  {ok}")

    probes = [
        ("import sharpscope", ["import sharpscope"]),
        ("import sharpscope_cli.app", ["import sharpscope_cli.app"]),
        (
            "sharpscope --help",
            ["from sharpscope_cli.app import main; main(['--help'])"],
        ),
        (
            "sharpscope info --help",
            ["from sharpscope_cli.app import main; main(['info', '--help'])"],
        ),
    ]
    reports = []
    for label, probe in probes:
        rep = heavy_imports(label, probe)
        reports.append(rep)
        print(f"\n{label}: heavy modules loaded: {', '.join(rep['loaded']) or 'none'}")
        for mod, info in rep["chains"].items():
            chain = " -> ".join(info["chain"])
            print(f"  {mod:11s} {info['cumulative_s']:6.3f} s  via {chain}")

    record = {
        "benchmark": "startup",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "target_s": TARGET_S,
        "timings": timings,
        "heavy_imports": reports,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
