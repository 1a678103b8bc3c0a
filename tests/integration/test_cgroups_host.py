"""cgroups on this host, whatever its kind: the group, refusal of limits a
hybrid host cannot enforce, freezing. Enforcement itself is in tests/vm."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from pyrun import cgroups
from tests.conftest import Pyrun

pytestmark = pytest.mark.root
HOST = cgroups.host_info()


def test_container_is_born_in_its_own_cgroup(pyrun: Pyrun) -> None:
    assert HOST.mount is not None
    p = pyrun.popen("run", "--name", "cg", "busybox", "sh", "-c",
                    "cat /proc/self/cgroup; sleep 5", stdout=subprocess.PIPE,
                    stdin=subprocess.DEVNULL)
    assert p.stdout is not None
    inside = p.stdout.readline().decode()
    while not inside.startswith("0::"):
        inside = p.stdout.readline().decode()
    assert inside == "0::/\n"  # the cgroup namespace's root is its own group
    state = json.loads(next((pyrun.root / "containers").glob("*/state.json")).read_text())
    group = state["State"]["CgroupPath"]
    assert group == f"{HOST.mount}/pyrun/{state['Id']}"
    pid = state["State"]["Pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        assert f"0::/pyrun/{state['Id']}\n" in f.read()
    p.terminate()
    assert p.wait(timeout=10) == 143
    assert pyrun("rm", "cg").returncode == 0


@pytest.mark.skipif(HOST.enforceable, reason="this host can enforce limits (see tests/vm)")
def test_limits_refused_clearly_on_a_host_without_v2_controllers(pyrun: Pyrun) -> None:
    r = pyrun("run", "--memory", "64m", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1
    assert "memory controller" in r.stderr
    assert "unified cgroup hierarchy" in r.stderr
    assert not (pyrun.root / "containers").exists() or not list(
        (pyrun.root / "containers").iterdir())
    info = json.loads(pyrun("info", "--format", "json").stdout)
    assert info["LimitsEnforceable"] is False
    assert info["CgroupVersion"] in ("hybrid", "v1")


def test_invalid_limit_values_fail_before_anything_is_made(pyrun: Pyrun) -> None:
    for args in (["--memory", "lots"], ["--cpus", "-1"], ["--pids-limit", "x"],
                 ["--memory-swap", "1g"], ["--cpuset-cpus", "a"]):
        r = pyrun("run", *args, "busybox", "true")
        assert r.returncode == 125, args
        assert "Traceback" not in r.stderr
    assert not (pyrun.root / "containers").exists() or not list(
        (pyrun.root / "containers").iterdir())


def test_pause_freezes_and_unpause_thaws(pyrun: Pyrun) -> None:
    p = pyrun.popen("run", "--rm", "--name", "fz", "busybox", "sh", "-c",
                    "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done",
                    stdin=subprocess.DEVNULL)
    from tests.integration.test_process import wait_for_container
    wait_for_container(pyrun)

    def count() -> int:
        state = json.loads(next((pyrun.root / "containers").glob("*/state.json")).read_text())
        with open(f"/proc/{state['State']['Pid']}/root/tmp/count") as f:
            return int(f.read() or 0)

    assert pyrun("pause", "fz").returncode == 0
    assert "Up (Paused)" in pyrun("ps").stdout
    frozen = count()
    time.sleep(0.5)
    assert count() == frozen
    assert pyrun("unpause", "fz").returncode == 0
    time.sleep(0.5)
    assert count() > frozen
    stats = json.loads(pyrun("stats", "--no-stream", "--format", "json", "fz").stdout)
    assert stats["Name"] == "fz" and stats["cpu_usage_usec"] > 0
    p.terminate()
    assert p.wait(timeout=10) == 143
