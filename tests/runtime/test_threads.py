"""Thread count from the CPUs this process may use: affinity, cgroup v1/v2 quota, overrides."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sharpscope.errors import SharpscopeError
from sharpscope.runtime import threads
from sharpscope.runtime.threads import (
    ThreadsError,
    cgroup_cpu_limit,
    choose_threads,
    configure_threads,
    load_average_note,
    usable_cpus,
)


@pytest.fixture
def affinity(monkeypatch):
    """Pretend the process may run on ``n`` CPUs of a 64-core machine."""

    def set_cpus(n: int) -> None:
        monkeypatch.setattr(
            threads.os, "sched_getaffinity", lambda pid: set(range(n)), raising=False
        )
        monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)

    set_cpus(8)
    return set_cpus


def _v2(root, text: str) -> None:
    (root / "cpu.max").write_text(text)


def _v1(root, quota: str, period: str, sub: str = "cpu") -> None:
    folder = root / sub
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.cfs_quota_us").write_text(quota)
    (folder / "cpu.cfs_period_us").write_text(period)


# ----------------------------------------------------------------------------- cgroup v2
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max 100000\n", 8),  # no quota: the affinity mask decides
        ("150000 100000\n", 2),  # 1.5 CPUs -> ceil 2
        ("200000 100000\n", 2),  # exactly 2
        ("50000 100000\n", 1),  # half a CPU -> at least 1
        ("1600000 100000\n", 8),  # quota above the affinity mask: the mask wins
        ("garbage\n", 8),
        ("150000\n", 8),  # one field: garbled
        ("-5 100000\n", 8),
        ("150000 0\n", 8),  # zero period: garbled, not a division by zero
        ("", 8),
    ],
)
def test_cgroup_v2_cpu_max(tmp_path, affinity, text, expected):
    _v2(tmp_path, text)
    assert usable_cpus(cgroup_root=tmp_path) == expected


def test_cgroup_v2_fraction_is_exact(tmp_path):
    _v2(tmp_path, "150000 100000")
    assert cgroup_cpu_limit(cgroup_root=tmp_path) == 1.5


def test_cgroup_v2_nested_path_and_ancestors(tmp_path, affinity):
    """A quota on the process's own cgroup or any ancestor limits it; the smallest wins."""
    leaf = tmp_path / "user.slice" / "job.scope"
    leaf.mkdir(parents=True)
    (tmp_path / "user.slice" / "cpu.max").write_text("300000 100000")
    (leaf / "cpu.max").write_text("max 100000")
    proc = "0::/user.slice/job.scope\n"
    assert usable_cpus(cgroup_root=tmp_path, proc_cgroup=proc) == 3
    (leaf / "cpu.max").write_text("100000 100000")
    assert usable_cpus(cgroup_root=tmp_path, proc_cgroup=proc) == 1
    # without the /proc/self/cgroup text only the root is read: no limit there
    assert usable_cpus(cgroup_root=tmp_path) == 8


def test_dotdot_in_proc_cgroup_cannot_leave_the_root(tmp_path, affinity):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "cpu.max").write_text("100000 100000")
    root = tmp_path / "root"
    root.mkdir()
    assert usable_cpus(cgroup_root=root, proc_cgroup="0::/../outside\n") == 8


# ----------------------------------------------------------------------------- cgroup v1
@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [
        ("-1", "100000", 8),  # no quota
        ("150000", "100000", 2),
        ("400000", "100000", 4),
        ("abc", "100000", 8),
        ("150000", "xyz", 8),
        ("150000", "0", 8),
    ],
)
def test_cgroup_v1_cfs_quota(tmp_path, affinity, quota, period, expected):
    _v1(tmp_path, quota, period)
    assert usable_cpus(cgroup_root=tmp_path) == expected


def test_cgroup_v1_combined_mount_and_nested(tmp_path, affinity):
    _v1(tmp_path, "-1", "100000", sub="cpu,cpuacct")
    _v1(tmp_path, "250000", "100000", sub="cpu,cpuacct/docker/abc")
    proc = "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    assert usable_cpus(cgroup_root=tmp_path, proc_cgroup=proc) == 3


def test_v1_file_missing_period_is_ignored(tmp_path, affinity):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    assert usable_cpus(cgroup_root=tmp_path) == 8


def test_v1_and_v2_both_present_smallest_wins(tmp_path, affinity):
    _v2(tmp_path, "300000 100000")
    _v1(tmp_path, "200000", "100000")
    assert usable_cpus(cgroup_root=tmp_path) == 2


def test_unreadable_binary_and_missing_root(tmp_path, affinity):
    (tmp_path / "cpu.max").write_bytes(b"\xff\xfe\x00 150000")
    assert usable_cpus(cgroup_root=tmp_path) == 8
    assert usable_cpus(cgroup_root=tmp_path / "does-not-exist") == 8
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu.max").mkdir()  # a folder where a file should be
    assert usable_cpus(cgroup_root=tmp_path) == 8


# ----------------------------------------------------------------------------- affinity
def test_affinity_mask_limits(tmp_path, affinity):
    affinity(3)
    assert usable_cpus(cgroup_root=tmp_path) == 3
    _v2(tmp_path, "150000 100000")
    assert usable_cpus(cgroup_root=tmp_path) == 2


def test_no_sched_getaffinity_falls_back_to_cpu_count(tmp_path, monkeypatch):
    monkeypatch.delattr(threads.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 6)
    assert usable_cpus(cgroup_root=tmp_path) == 6
    monkeypatch.setattr(threads.os, "cpu_count", lambda: None)
    assert usable_cpus(cgroup_root=tmp_path) == 1


def test_real_machine_is_at_least_one_and_within_affinity():
    n = usable_cpus()
    assert (
        1
        <= n
        <= (
            len(threads.os.sched_getaffinity(0))
            if hasattr(threads.os, "sched_getaffinity")
            else threads.os.cpu_count()
        )
    )


# ----------------------------------------------------------------------------- choose
def test_choose_explicit_request_wins(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda **kw: 5)
    assert choose_threads(3, env={"OMP_NUM_THREADS": "7"}) == 3
    assert choose_threads(12, env={}) == 12  # the user may oversubscribe on purpose
    assert choose_threads("4", env={}) == 4


@pytest.mark.parametrize("bad", [0, -1, -8, "0", "two", "", 1.5, True, [2]])
def test_choose_rejects_non_positive_with_one_line(bad):
    with pytest.raises(ThreadsError) as info:
        choose_threads(bad, env={})
    message = str(info.value)
    assert isinstance(info.value, SharpscopeError)
    assert "\n" not in message
    assert message.startswith("--threads must be a positive integer, got ")
    assert repr(bad) in message or str(bad) in message


def test_choose_respects_omp_num_threads(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda **kw: 5)
    assert choose_threads(env={"OMP_NUM_THREADS": "3"}) == 3
    assert choose_threads(env={"OMP_NUM_THREADS": " 6 "}) == 6
    assert choose_threads(env={"OMP_NUM_THREADS": "2,1"}) == 2  # nested-parallelism list
    # unset, empty or invalid: ignored (libgomp ignores it too), usable CPUs decide
    for env in ({}, {"OMP_NUM_THREADS": ""}, {"OMP_NUM_THREADS": "0"}, {"OMP_NUM_THREADS": "x"}):
        assert choose_threads(env=env) == 5


def test_choose_defaults_to_os_environ(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda **kw: 5)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert choose_threads() == 5


# ----------------------------------------------------------------------------- configure
@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_configure_sets_torch_threads(restore_torch_threads, monkeypatch):
    torch.set_num_threads(1)
    assert configure_threads(2, env={}) == 2
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(threads, "usable_cpus", lambda **kw: 1)
    assert configure_threads(env={}) == 1
    assert torch.get_num_threads() == 1
    assert configure_threads(env={"OMP_NUM_THREADS": "3"}) == 3
    assert torch.get_num_threads() == 3


def test_configure_invalid_leaves_torch_untouched(restore_torch_threads):
    torch.set_num_threads(1)
    with pytest.raises(ThreadsError):
        configure_threads(0, env={})
    assert torch.get_num_threads() == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_configure_after_interop_pool_started_does_not_raise(restore_torch_threads):
    """In this test process torch has already run work; set_num_interop_threads would raise."""
    torch.jit.wait(torch.jit.fork(torch.add, torch.ones(1), 1))  # starts the inter-op pool
    other = 1 if torch.get_num_interop_threads() != 1 else 2
    with pytest.raises(RuntimeError):
        torch.set_num_interop_threads(other)
    assert configure_threads(other, env={}) == other
    assert torch.get_num_threads() == other


def test_configure_in_fresh_process_sets_interop_and_module_does_not_import_torch():
    code = (
        "import sys, sharpscope.runtime.threads as t\n"
        "import torch\n"
        "n = t.configure_threads(1, env={})\n"
        "print(n, torch.get_num_threads(), torch.get_num_interop_threads())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["1", "1", "1"]


def test_threads_module_imports_no_heavy_module():
    """The module itself (not the sharpscope package around it) pulls in no torch."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('t', sys.argv[1])\n"
        "import types; pkg = types.ModuleType('sharpscope'); pkg.__path__ = [sys.argv[2]]\n"
        "sys.modules['sharpscope'] = pkg\n"
        "import sharpscope.runtime.threads\n"
        "print(sorted(m for m in ('torch', 'numpy', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, threads.__file__, str(threads.__file__).rsplit("/", 2)[0]],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- load note
def test_load_average_note(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda **kw: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (7.5, 1.0, 1.0))
    note = load_average_note()
    assert note is not None and "\n" not in note
    assert "load 7.5 on 2 usable CPUs" in note and "--threads 1" in note
    assert load_average_note(threads=1) is None  # already one thread: nothing to suggest
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.0, 9.0, 9.0))
    assert load_average_note() is None  # load equal to the CPUs is not overload
