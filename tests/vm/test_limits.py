"""cgroup v2 limits, enforced for real: these run inside the test VM on a
pure cgroup v2 kernel (make test-vm). Each reads the group's own files from
inside the container (/sys/fs/cgroup is its cgroup namespace root)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import Pyrun
from tests.integration import (
    test_cgroups_host,
    test_filesystem,
    test_namespaces,
    test_process,
)

pytestmark = pytest.mark.vm


def test_memory_limit_oom_kills_with_137(pyrun: Pyrun) -> None:
    # `tail /dev/zero` buffers an endless line: PID 1 itself outgrows 32m.
    r = pyrun("run", "--name", "oom", "-m", "32m", "--memory-swap", "32m", "busybox",
              "tail", "/dev/zero", timeout=120)
    assert r.returncode == 137, r.stderr
    assert "OOM killer" in r.stderr
    state = json.loads(next((pyrun.root / "containers").glob("*/state.json")).read_text())
    assert state["State"]["OOMKilled"] is True
    assert pyrun("rm", "oom").returncode == 0


def test_memory_files_and_no_swap(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "-m", "64m", "--memory-swap", "64m", "--memory-reservation", "16m",
              "busybox", "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.swap.max",
              "/sys/fs/cgroup/memory.low")
    assert r.stdout.split() == [str(64 << 20), "0", str(16 << 20)], r.stderr


def test_oom_counted_in_memory_events_of_a_child(pyrun: Pyrun) -> None:
    # A child is killed, PID 1 survives and sees oom_kill counted.
    r = pyrun("run", "--rm", "-m", "32m", "--memory-swap", "32m", "busybox", "sh", "-c",
              "tail /dev/zero; grep oom_kill /sys/fs/cgroup/memory.events", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "oom_kill 1" in r.stdout


def test_pids_limit_stops_a_fork_loop(pyrun: Pyrun) -> None:
    # The probe is PID 1 (it is the container's only task): 19 children fit.
    r = pyrun("run", "--rm", "--pids-limit", "20", "busybox", "probe", "forks", "40",
              timeout=120)
    assert r.returncode == 0, r.stderr  # the container survived its fork loop
    result = json.loads(r.stdout)
    assert result["forked"] == 19
    assert result["refused"] == 21
    assert result["errno"] == 11  # EAGAIN: "fork rejected by pids controller"
    r = pyrun("run", "--rm", "--pids-limit", "20", "busybox", "cat", "/sys/fs/cgroup/pids.max")
    assert r.stdout == "20\n"


def test_cpus_half_a_cpu_is_throttled(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "--cpus", "0.5", "busybox", "sh", "-c",
              "cat /sys/fs/cgroup/cpu.max; timeout 3 sh -c 'while :; do :; done'; "
              "cat /sys/fs/cgroup/cpu.stat", timeout=120)
    lines = r.stdout.split("\n")
    assert lines[0] == "50000 100000", r.stdout
    stat = dict(line.split() for line in lines[1:] if line)
    assert int(stat["nr_throttled"]) > 0
    share = int(stat["usage_usec"]) / 3e6
    assert 0.3 < share < 0.7, share  # about half a CPU over 3 s


def test_cpuset_cpus_pins_the_affinity(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "--cpuset-cpus", "0", "busybox", "sh", "-c",
              "grep Cpus_allowed_list /proc/self/status; cat /sys/fs/cgroup/cpuset.cpus")
    assert r.stdout.split() == ["Cpus_allowed_list:", "0", "0"], r.stderr


def test_cpu_weight(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "--cpu-shares", "512", "busybox", "cat",
              "/sys/fs/cgroup/cpu.weight")
    assert r.stdout.strip() == "20", r.stderr


def test_freeze_and_thaw(pyrun: Pyrun) -> None:
    test_cgroups_host.test_pause_freezes_and_unpause_thaws(pyrun)


def test_info_says_limits_are_enforceable(pyrun: Pyrun) -> None:
    info = json.loads(pyrun("info", "--format", "json").stdout)
    assert info["CgroupVersion"] == "v2"
    assert info["LimitsEnforceable"] is True


# The foundation's path on a pure cgroup v2 kernel.
def test_foundation_pid1(pyrun: Pyrun) -> None:
    test_namespaces.test_pid1_and_only_container_processes(pyrun)


def test_foundation_namespaces(pyrun: Pyrun) -> None:
    test_namespaces.test_each_requested_namespace_is_new_and_others_shared(pyrun)


def test_foundation_capabilities(pyrun: Pyrun) -> None:
    test_namespaces.test_docker_default_capabilities(pyrun)


def test_foundation_masked_paths(pyrun: Pyrun) -> None:
    test_filesystem.test_masked_paths(pyrun)


def test_foundation_signal(pyrun: Pyrun) -> None:
    test_process.test_signal_stops_pid1_without_handler(pyrun, signal.SIGTERM, 143)


def test_stats_reads_memory_pids_and_cpu(pyrun: Pyrun) -> None:
    p = pyrun.popen("run", "--rm", "--name", "st", "-m", "64m", "busybox", "sh", "-c",
                    "sleep 60 & sleep 60 & while :; do :; done", stdin=subprocess.DEVNULL)
    try:
        test_process.wait_for_container(pyrun)
        time.sleep(1)
        r = pyrun("stats", "--no-stream", "--format", "json", "st")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["memory_limit"] == 64 << 20
        assert 0 < s["memory_usage"] < 64 << 20
        assert 0 < s["MemPerc"] < 100
        assert s["pids"] == 3
        assert s["CPUPerc"] > 20  # the busy loop
        table = pyrun("stats", "--no-stream", "st").stdout
        assert "64.0MiB" in table
    finally:
        p.terminate()
        p.wait(timeout=30)
