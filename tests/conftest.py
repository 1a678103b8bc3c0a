"""Shared fixtures. Integration tests (marked `root`) run pyrun for real as
root; after each one, nothing it made may be left: no mount under its store,
no process whose root is in it, no container directory of a --rm run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyrun.rootfs import mounts_under

REPO = Path(__file__).resolve().parent.parent
BUSYBOX_ROOTFS = REPO / "rootfs" / "build" / "busybox" / "rootfs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Root tests skip for a non-root developer, but never in CI: there a
    missing privilege is a failure, not a pass."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI must run the test suite as root")
    skip = pytest.mark.skip(reason="needs root (integration test)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Pyrun:
    """Runs the real `pyrun` command against a private store."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.root = root
        self.runroot = runroot

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYRUN_ROOT": str(self.root), "PYRUN_RUNROOT": str(self.runroot)}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pyrun", *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> Result:
        p = subprocess.run(self.argv(*args), env=self.env(), input=input, capture_output=True,
                           text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL if input is None else None)
        return Result(p.returncode, p.stdout, p.stderr)

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(*args), env=self.env(), **kw)

    def probe(self, *args: str) -> Any:
        """`pyrun run --rm [args] busybox probe` -> the probe's JSON."""
        return self.probe_image("busybox", *args)

    def probe_image(self, image: str, *args: str) -> Any:
        r = self("run", "--rm", *args, image, "probe")
        assert r.returncode == 0, r.stderr
        return r.json()


def processes_rooted_under(path: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                root = os.readlink(f"/proc/{entry}/root")
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if root.startswith(str(path)) or cwd.startswith(str(path)):
                found.append(int(entry))
    return found


@pytest.fixture
def pyrun(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pyrun]:
    if "root" in request.keywords and not BUSYBOX_ROOTFS.is_dir():
        pytest.fail("the busybox image is not built: run `make rootfs`")
    root, runroot = tmp_path / "store", tmp_path / "run"
    yield Pyrun(root, runroot)
    leaks = mounts_under(root) + mounts_under(runroot)
    procs = processes_rooted_under(root) + processes_rooted_under(runroot)
    for target in reversed(leaks):  # clean up so one leak fails one test
        subprocess.run(["umount", "-l", target], check=False)
    assert not leaks, f"mounts left behind: {leaks}"
    assert not procs, f"processes left behind: {procs}"
    assert not pyrun_cgroups(), f"cgroups left behind: {pyrun_cgroups()}"


def pyrun_cgroups() -> list[str]:
    """Container groups under pyrun's default cgroup parent."""
    from pyrun import cgroups

    mount = cgroups.find_mount()
    parent = mount / cgroups.DEFAULT_PARENT if mount else None
    return sorted(p.name for p in parent.iterdir() if p.is_dir()) \
        if parent is not None and parent.is_dir() else []
