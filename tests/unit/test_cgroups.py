from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrun import cgroups
from pyrun.errors import UsageError


def test_sizes_use_dockers_binary_units() -> None:
    assert cgroups.parse_size("512", "-m") == 512
    assert cgroups.parse_size("64k", "-m") == 64 << 10
    assert cgroups.parse_size("512m", "-m") == 512 << 20
    assert cgroups.parse_size("1G", "-m") == 1 << 30
    assert cgroups.parse_size("1.5g", "-m") == 3 << 29
    assert cgroups.parse_size("10mb", "-m") == 10 << 20
    with pytest.raises(UsageError, match="invalid -m 'lots'"):
        cgroups.parse_size("lots", "-m")


def test_memory_files_follow_docker_swap_semantics() -> None:
    files = cgroups.parse_limits(memory="64m").files()
    assert files["memory.max"] == str(64 << 20)
    assert files["memory.swap.max"] == str(64 << 20)  # default: swap = memory
    assert cgroups.parse_limits(memory="64m", memory_swap="64m").files()[
        "memory.swap.max"] == "0"
    assert cgroups.parse_limits(memory="64m", memory_swap="100m").files()[
        "memory.swap.max"] == str(36 << 20)
    assert cgroups.parse_limits(memory="64m", memory_swap="-1").files()[
        "memory.swap.max"] == "max"
    assert cgroups.parse_limits(memory_reservation="32m").files() == {
        "memory.low": str(32 << 20)}


def test_cpu_pids_cpuset_io_files() -> None:
    lim = cgroups.parse_limits(cpus="0.5", cpu_shares=1024, pids_limit=20, cpuset_cpus="0",
                               cpuset_mems="0", blkio_weight=500)
    files = lim.files()
    assert files["cpu.max"] == "50000 100000"
    assert files["cpu.weight"] == "39"  # runc's conversion of 1024 shares
    assert files["pids.max"] == "20"
    assert files["cpuset.cpus"] == "0"
    assert files["io.weight"] == "default 4950"
    assert lim.controllers() == ["cpu", "cpuset", "io", "pids"]
    assert cgroups.parse_limits(pids_limit=-1).files() == {"pids.max": "max"}
    assert cgroups.parse_limits().files() == {}
    assert cgroups.parse_limits().controllers() == []


def test_device_limits_name_the_device_numbers() -> None:
    lim = cgroups.parse_limits(devices=(("--device-read-bps", "rbps", "/dev/null:1mb"),
                                        ("--device-write-iops", "wiops", "/dev/zero:100")))
    assert lim.files()["io.max"] == "1:3 rbps=1048576\n1:5 wiops=100"
    with pytest.raises(UsageError, match="--device-read-bps"):
        cgroups.parse_limits(devices=(("--device-read-bps", "rbps", "/dev/nosuch:1m"),))
    with pytest.raises(UsageError, match="expected /dev/DEVICE:RATE"):
        cgroups.parse_limits(devices=(("--device-read-bps", "rbps", "sda"),))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"memory": "1m"}, "minimum is 6m"),
    ({"memory_swap": "1g"}, "needs --memory"),
    ({"memory": "64m", "memory_swap": "32m"}, "at least --memory"),
    ({"memory": "64m", "memory_reservation": "128m"}, "below --memory"),
    ({"cpus": "x"}, "--cpus"),
    ({"cpus": "0"}, "--cpus"),
    ({"cpus": str((os.cpu_count() or 1) + 1)}, "--cpus"),
    ({"cpuset_cpus": "0-"}, "--cpuset-cpus"),
    ({"blkio_weight": 5}, "--blkio-weight"),
])
def test_invalid_limits(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        cgroups.parse_limits(**kwargs)  # type: ignore[arg-type]


def test_find_mount_reads_mountinfo(tmp_path: Path) -> None:
    hybrid, v2 = tmp_path / "unified", tmp_path / "cgroup"
    for d in (hybrid, v2):
        d.mkdir()
        (d / "cgroup.controllers").write_text("")
    info = tmp_path / "mountinfo"
    info.write_text(
        "25 1 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw\n"
        f"36 25 0:31 / {hybrid} rw,nosuid shared:9 - cgroup2 cgroup2 rw\n")
    assert cgroups.find_mount(str(info)) == hybrid
    # a later cgroup2 mount (that may hide the first) wins
    with info.open("a") as f:
        f.write(f"40 25 0:31 / {v2} rw - cgroup2 cgroup2 rw\n")
    assert cgroups.find_mount(str(info)) == v2
    info.write_text("25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")
    assert cgroups.find_mount(str(info)) is None
