"""Containers on disk: ids, directories, state files, locks.

Layout: what must survive a reboot under ``--root`` (default /var/lib/pyrun),
what must not under ``--runroot`` (default /run/pyrun, a tmpfs: after a
reboot no stale mount point or generated file can be mistaken for live)::

    <root>/containers/<id>/state.json   what `ps` shows; written atomically
    <root>/containers/<id>/upper, work  the overlay's writable layer
    <root>/containers.lock              taken while names are checked, dirs made
    <runroot>/<id>/merged               the overlay mount point (the container's /)
    <runroot>/<id>/lower/N              idmapped layer mounts (--userns private)
    <runroot>/<id>/etc/                 hostname, hosts, resolv.conf bound in

Every container records the pid and start time of the pyrun process that owns
it; a container whose owner is gone was left by a killed pyrun and is cleaned
up by the next pyrun (see runtime.collect_garbage).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pyrun.errors import PyrunError

DEFAULT_ROOT = Path("/var/lib/pyrun")
DEFAULT_RUNROOT = Path("/run/pyrun")


@contextmanager
def atomic_file(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file that readers see complete or not at all: the caller writes a
    temp file in the same directory; on success it is fsynced and renamed
    over path (rename(2) is atomic), on error removed."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_file(path, mode) as f:
        f.write(data)


def write_json(path: Path, doc: Any) -> None:
    write_atomic(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock(2): released by the kernel if we are killed."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: with the pid, it names one process even
    after the pid number is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_alive(owner: dict[str, int]) -> bool:
    start = process_start_time(owner.get("pid", 0))
    return start is not None and start == owner.get("start")


@dataclass(frozen=True)
class Container:
    id: str
    dir: Path     # under --root
    rundir: Path  # under --runroot

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def merged(self) -> Path:
        return self.rundir / "merged"

    @property
    def lower(self) -> Path:
        """Idmapped mounts of the image layers, with --userns private."""
        return self.rundir / "lower"

    @property
    def etc(self) -> Path:
        return self.rundir / "etc"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def read(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            doc = {"Id": self.id, "Name": "", "State": {"Status": "unknown"}}
        return doc

    def update(self, **state: Any) -> None:
        doc = self.read()
        doc.setdefault("State", {}).update(state)
        write_json(self.state_file, doc)


class Store:
    def __init__(self, root: Path, runroot: Path) -> None:
        self.root = root
        self.runroot = runroot
        self.containers_dir = root / "containers"

    def _container(self, cid: str) -> Container:
        return Container(cid, self.containers_dir / cid, self.runroot / cid)

    def lock(self) -> Any:
        """Held while names are checked, directories made or collected."""
        self.containers_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
        return file_lock(self.root / "containers.lock")

    def containers(self) -> list[Container]:
        if not self.containers_dir.is_dir():
            return []
        return [self._container(p.name) for p in sorted(self.containers_dir.iterdir())
                if p.is_dir() and not p.name.startswith(".")]

    def create(self, name: str | None, config: dict[str, Any]) -> Container:
        """Make the directory of a new container, its name checked unique
        under the store lock so two concurrent runs cannot both take it."""
        with self.lock():
            if name is not None and any(c.read().get("Name") == name for c in self.containers()):
                raise PyrunError(f"the container name {name!r} is already in use; "
                                 "remove that container or choose another name")
            cid = os.urandom(32).hex()
            # Build the directory under a temporary name, then rename: a
            # killed pyrun leaves either nothing or a complete container.
            tmp = self.containers_dir / f".new-{cid}"
            tmp.mkdir(mode=0o700)
            for sub in ("upper", "work"):
                (tmp / sub).mkdir()
            me = os.getpid()
            doc = {
                "Id": cid,
                "Name": name or f"pyrun_{cid[:12]}",
                "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "Config": config,
                "State": {"Status": "created", "Owner": {"pid": me,
                                                          "start": process_start_time(me)}},
            }
            write_json(tmp / "state.json", doc)
            os.chmod(tmp, 0o711)
            container = self._container(cid)
            for d in (container.merged, container.etc):
                d.mkdir(parents=True, mode=0o711)
            os.rename(tmp, container.dir)
            return container

    def find(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (as Docker resolves them)."""
        matches = [c for c in self.containers()
                   if c.id.startswith(ref) or c.read().get("Name") == ref]
        exact = [c for c in matches if c.id == ref or c.read().get("Name") == ref]
        if exact:
            return exact[0]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise PyrunError(f"no such container: {ref}")
        raise PyrunError(f"container reference {ref!r} is ambiguous")

    def orphan_rundirs(self) -> list[Path]:
        """Runtime directories whose container is gone (a pyrun killed
        between making them and renaming the container into place)."""
        if not self.runroot.is_dir():
            return []
        return [p for p in self.runroot.iterdir()
                if len(p.name) == 64 and not (self.containers_dir / p.name).exists()]

    def leftovers(self) -> list[Path]:
        """Half-made container directories of a pyrun killed in create()."""
        if not self.containers_dir.is_dir():
            return []
        return [p for p in self.containers_dir.iterdir() if p.name.startswith(".new-")]
