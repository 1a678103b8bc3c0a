"""cgroup v2: one group per container, Docker's resource flags, stats.

A cgroup v2 hierarchy is one tree of directories (cgroups(7),
Documentation/admin-guide/cgroup-v2.rst). A container gets its own leaf::

    <cgroup2 mount>/<parent, default "pyrun">/<container id>/

Controllers (memory, cpu, pids, ...) only act on a group when its parent
lists them in cgroup.subtree_control, so pyrun enables, top-down, exactly
the controllers the requested limits need, then writes the limit files.
The child is born inside the group (clone3 CLONE_INTO_CGROUP), so it never
runs a single instruction outside its limits.

On a hybrid host (cgroup v1 controllers, an empty cgroup2 at
/sys/fs/cgroup/unified) pyrun still makes the group there, for tracking,
freezing and cgroup.kill, but refuses any limit: it never writes to v1.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyrun.errors import PyrunError, UsageError, strerror

DEFAULT_PARENT = "pyrun"
ACCOUNTING = ("cpu", "io", "memory", "pids")
CPU_PERIOD = 100_000  # cpu.max period in microseconds (Docker's and runc's)
UNIFIED_FIX = ("boot with a unified cgroup hierarchy "
               "(systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all)")

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$", re.IGNORECASE)
_CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_size(value: str, flag: str) -> int:
    """Docker's units: 512, 512b, 64k, 512m, 1g (powers of 1024)."""
    m = _SIZE_RE.match(value.strip())
    if not m:
        raise UsageError(f"invalid {flag} {value!r}: expected a size like 512m or 1g")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class DeviceLimit:
    """--device-read-bps /dev/sda:1mb -> io.max "8:0 rbps=1048576"."""

    major: int
    minor: int
    key: str  # rbps, wbps, riops, wiops
    value: int

    def line(self) -> str:
        return f"{self.major}:{self.minor} {self.key}={self.value}"


@dataclass(frozen=True)
class Limits:
    memory: int | None = None               # memory.max
    memory_swap: int | None = None          # Docker: memory + swap, -1 unlimited
    memory_reservation: int | None = None   # memory.low
    cpus: float | None = None               # cpu.max
    cpu_shares: int | None = None           # cpu.weight
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None           # pids.max; <= 0 unlimited
    blkio_weight: int | None = None         # io.weight
    devices: tuple[DeviceLimit, ...] = ()   # io.max

    def files(self) -> dict[str, str]:
        """The interface files to write, in the order they must be written."""
        out: dict[str, str] = {}
        if self.cpuset_cpus is not None:
            out["cpuset.cpus"] = self.cpuset_cpus
        if self.cpuset_mems is not None:
            out["cpuset.mems"] = self.cpuset_mems
        if self.memory_reservation is not None:
            out["memory.low"] = str(self.memory_reservation)
        if self.memory is not None:
            out["memory.max"] = str(self.memory)
            # Docker's --memory-swap is memory+swap; v2 limits swap alone.
            # Unset means "as much swap as memory" (Docker's default).
            if self.memory_swap is None:
                out["memory.swap.max"] = str(self.memory)
            elif self.memory_swap < 0:
                out["memory.swap.max"] = "max"
            else:
                out["memory.swap.max"] = str(self.memory_swap - self.memory)
        if self.cpus is not None:
            out["cpu.max"] = f"{round(self.cpus * CPU_PERIOD)} {CPU_PERIOD}"
        if self.cpu_shares is not None:
            # runc's mapping of shares [2, 262144] onto weight [1, 10000].
            shares = min(max(self.cpu_shares, 2), 262144)
            out["cpu.weight"] = str(1 + ((shares - 2) * 9999) // 262142)
        if self.pids_limit is not None:
            out["pids.max"] = str(self.pids_limit) if self.pids_limit > 0 else "max"
        if self.blkio_weight is not None:
            # blkio weight [10, 1000] onto io.weight [1, 10000], as runc does.
            out["io.weight"] = f"default {1 + ((self.blkio_weight - 10) * 9999) // 990}"
        if self.devices:
            out["io.max"] = "\n".join(d.line() for d in self.devices)
        return out

    def controllers(self) -> list[str]:
        """The controllers these files belong to (the prefix of each name)."""
        return sorted({name.split(".")[0] for name in self.files()})


def parse_device_limit(value: str, key: str, flag: str) -> DeviceLimit:
    path, sep, amount = value.rpartition(":")
    if not sep or not path.startswith("/dev/"):
        raise UsageError(f"invalid {flag} {value!r}: expected /dev/DEVICE:RATE")
    try:
        st = os.stat(path)
    except OSError as e:
        raise UsageError(f"invalid {flag} {value!r}: {path}: {strerror(e)}") from None
    if not (os.major(st.st_rdev) or os.minor(st.st_rdev)):
        raise UsageError(f"invalid {flag} {value!r}: {path} is not a device")
    if key.endswith("iops"):
        if not amount.isdigit():
            raise UsageError(f"invalid {flag} {value!r}: the rate must be a number")
        rate = int(amount)
    else:
        rate = parse_size(amount, flag)
    return DeviceLimit(os.major(st.st_rdev), os.minor(st.st_rdev), key, rate)


def parse_limits(memory: str | None = None, memory_swap: str | None = None,
                 memory_reservation: str | None = None, cpus: str | None = None,
                 cpu_shares: int | None = None, cpuset_cpus: str | None = None,
                 cpuset_mems: str | None = None, pids_limit: int | None = None,
                 blkio_weight: int | None = None,
                 devices: tuple[tuple[str, str, str], ...] = ()) -> Limits:
    """Docker's flags -> Limits, every value checked before anything exists.
    `devices` holds (flag, key, value) for the --device-*-bps/iops flags."""
    mem = parse_size(memory, "--memory") if memory else None
    if mem is not None and mem < 6 << 20:
        raise UsageError("invalid --memory: the minimum is 6m")
    swap = None
    if memory_swap:
        if mem is None:
            raise UsageError("--memory-swap needs --memory as well")
        swap = -1 if memory_swap.strip() == "-1" else parse_size(memory_swap, "--memory-swap")
        if swap != -1 and swap < mem:
            raise UsageError("invalid --memory-swap: it is memory+swap, so it must be at "
                             "least --memory (or -1 for unlimited swap)")
    reservation = parse_size(memory_reservation, "--memory-reservation") \
        if memory_reservation else None
    if reservation is not None and mem is not None and reservation > mem:
        raise UsageError("invalid --memory-reservation: it must be below --memory")
    ncpus = None
    if cpus is not None:
        try:
            ncpus = float(cpus)
        except ValueError:
            raise UsageError(f"invalid --cpus {cpus!r}: expected a number like 0.5") from None
        if not 0.01 <= ncpus <= (os.cpu_count() or 1):
            raise UsageError(f"invalid --cpus {cpus}: the range is 0.01 to {os.cpu_count()}")
    if cpu_shares is not None and cpu_shares < 0:
        raise UsageError("invalid --cpu-shares: it must be positive")
    for flag, value in (("--cpuset-cpus", cpuset_cpus), ("--cpuset-mems", cpuset_mems)):
        if value is not None and not _CPUSET_RE.match(value):
            raise UsageError(f"invalid {flag} {value!r}: expected a list like 0-2,4")
    if blkio_weight is not None and not 10 <= blkio_weight <= 1000:
        raise UsageError("invalid --blkio-weight: the range is 10 to 1000")
    return Limits(
        memory=mem, memory_swap=swap, memory_reservation=reservation, cpus=ncpus,
        cpu_shares=cpu_shares, cpuset_cpus=cpuset_cpus, cpuset_mems=cpuset_mems,
        pids_limit=pids_limit, blkio_weight=blkio_weight,
        devices=tuple(parse_device_limit(value, key, flag) for flag, key, value in devices),
    )


def find_mount(mountinfo: str = "/proc/self/mountinfo") -> Path | None:
    """Where cgroup2 is mounted: /sys/fs/cgroup on a v2 host,
    /sys/fs/cgroup/unified on a hybrid one, nowhere on a pure v1 host.
    Of several, the last mounted: an earlier one may be hidden under a later
    mount (a cgroup2 mounted over a hybrid host's /sys/fs/cgroup tmpfs)."""
    found = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2" and (Path(fields[4]) / "cgroup.controllers").exists():
                found = Path(fields[4])
    return found


@dataclass(frozen=True)
class HostInfo:
    version: str                 # "v2", "hybrid", "v1"
    mount: Path | None
    controllers: tuple[str, ...]

    @property
    def enforceable(self) -> bool:
        return {"memory", "cpu", "pids"} <= set(self.controllers)


def host_info() -> HostInfo:
    mount = find_mount()
    if mount is None:
        return HostInfo("v1", None, ())
    controllers = tuple((mount / "cgroup.controllers").read_text().split())
    version = "v2" if mount == Path("/sys/fs/cgroup") else "hybrid"
    return HostInfo(version, mount, controllers)


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise PyrunError(f"write {value!r} to {path}: {strerror(e)}") from None


@dataclass
class Cgroup:
    """One container's group. Made by `create`, removed by `destroy`."""

    path: Path
    info: HostInfo
    # Parents to remove once empty: those of pyrun's default parent chain.
    # A --cgroup-parent the user gave is theirs, and is never removed.
    parents: list[Path] = field(default_factory=list)

    def open_fd(self) -> int:
        """For clone3's CLONE_INTO_CGROUP."""
        return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def read(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text()
        except OSError:
            return None

    def flat_keyed(self, name: str) -> dict[str, int]:
        """Files like memory.events and cpu.stat: "key value" lines."""
        out = {}
        for line in (self.read(name) or "").splitlines():
            key, _, value = line.partition(" ")
            if value.isdigit():
                out[key] = int(value)
        return out

    def oom_killed(self) -> bool:
        return self.flat_keyed("memory.events").get("oom_kill", 0) > 0

    def freeze(self, frozen: bool) -> None:
        """cgroup.freeze: every task stops (or resumes) at once; waits for
        cgroup.events to report the new state."""
        _write(self.path / "cgroup.freeze", "1" if frozen else "0")
        want = f"frozen {int(frozen)}"
        for _ in range(200):
            if want in (self.read("cgroup.events") or "").splitlines():
                return
            time.sleep(0.01)
        raise PyrunError(f"{self.path}: did not {'freeze' if frozen else 'thaw'} in 2s")

    def kill_all(self) -> None:
        """cgroup.kill (Linux 5.14) SIGKILLs every task in the group at once,
        race-free against forks; older kernels: kill what cgroup.procs lists."""
        try:
            _write(self.path / "cgroup.kill", "1")
        except PyrunError:
            for pid in (self.read("cgroup.procs") or "").split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)

    def destroy(self) -> None:
        """Idempotent: kill stragglers, wait until the group is empty, rmdir
        it and the parents we made if they are empty."""
        if self.path.is_dir():
            if "populated 1" in (self.read("cgroup.events") or ""):
                self.kill_all()
            for _ in range(500):
                try:
                    self.path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise PyrunError(f"remove cgroup {self.path}: {strerror(e)}") from None
                    time.sleep(0.01)
            else:
                raise PyrunError(f"remove cgroup {self.path}: still busy after 5s")
        for parent in reversed(self.parents):
            with contextlib.suppress(OSError):
                parent.rmdir()  # fails while other containers use it: fine


def check(limits: Limits, parent: str = DEFAULT_PARENT) -> HostInfo:
    """Can this host enforce `limits`? One clear error naming what is
    missing, raised before anything is created."""
    info = host_info()
    wanted = limits.controllers()
    if ".." in Path(parent).parts:
        raise UsageError(f"invalid --cgroup-parent {parent!r}")
    if info.mount is None:
        if wanted:
            raise PyrunError(f"resource limits need cgroup v2, which this host does not mount: "
                             f"{UNIFIED_FIX}")
        return info
    missing = [c for c in wanted if c not in info.controllers]
    if missing:
        what = "controller" if len(missing) == 1 else "controllers"
        raise PyrunError(f"the {' and '.join(missing)} {what} of cgroup v2 "
                         f"{'is' if len(missing) == 1 else 'are'} not available on this host "
                         f"(cgroup {info.version}; v2 has: {' '.join(info.controllers) or 'none'})"
                         f": {UNIFIED_FIX}")
    return info


def path_for(name: str, parent: str = DEFAULT_PARENT) -> Path | None:
    """Where create() will make the group (None: no cgroup2 here), so the
    caller can record it first: a pyrun killed inside create() then
    leaves a path the next one's clean-up can find."""
    mount = find_mount()
    return mount / Path(parent.strip("/")) / name if mount else None


def create(name: str, limits: Limits, parent: str = DEFAULT_PARENT) -> Cgroup | None:
    """Make the group <mount>/<parent>/<name> with `limits` written, or None
    when the host has no cgroup2 mount (and no limit was asked for)."""
    info = check(limits, parent)
    if info.mount is None:
        return None
    # The limits' controllers, plus those `stats` reads (memory.current,
    # pids.current, io.stat) when the host has them: accounting for all.
    wanted = sorted(set(limits.controllers())
                    | (set(ACCOUNTING) & set(info.controllers)))
    rel = Path(parent.strip("/")) if parent.strip("/") else Path()
    chain = [info.mount.joinpath(*rel.parts[:i + 1]) for i in range(len(rel.parts))]
    group = info.mount / rel / name
    # Another pyrun may remove an empty default parent between our mkdirs:
    # then the leaf's mkdir meets ENOENT, and we make the chain again.
    for attempt in range(3):
        current = info.mount
        for path in chain:
            # A controller is usable in a child only once enabled in the
            # parent's subtree_control ("+memory +pids"), top-down.
            _enable(current, wanted)
            with contextlib.suppress(FileExistsError):
                path.mkdir()
            current = path
        _enable(current, wanted)
        try:
            group.mkdir()
            break
        except FileNotFoundError:
            if attempt == 2:
                raise PyrunError(f"create cgroup {group}: its parent keeps vanishing") from None
        except OSError as e:
            raise PyrunError(f"create cgroup {group}: {strerror(e)}") from None
    cg = Cgroup(group, info, chain if parent == DEFAULT_PARENT else [])
    try:
        for filename, value in limits.files().items():
            for line in value.splitlines():  # io.max takes one device a write
                _write(group / filename, line)
    except BaseException:
        cg.destroy()
        raise
    return cg


def _enable(path: Path, controllers: list[str]) -> None:
    if not controllers:
        return
    enabled = (path / "cgroup.subtree_control").read_text().split()
    todo = [c for c in controllers if c not in enabled]
    if todo:
        _write(path / "cgroup.subtree_control", " ".join(f"+{c}" for c in todo))


def load(path: str) -> Cgroup:
    """The group of an existing container, from the path in its state."""
    group = Path(path)
    info = host_info()
    default = info.mount / DEFAULT_PARENT if info.mount else None
    return Cgroup(group, info, [group.parent] if group.parent == default else [])


def stats(cg: Cgroup) -> dict[str, int | float | None]:
    """What `pyrun stats` shows, read from the group's interface files."""
    cpu = cg.flat_keyed("cpu.stat")
    mem_max = (cg.read("memory.max") or "").strip()
    io_read = io_write = 0
    for line in (cg.read("io.stat") or "").splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes":
                io_read += int(value)
            elif key == "wbytes":
                io_write += int(value)
    current = cg.read("memory.current")
    pids = cg.read("pids.current")
    return {
        "cpu_usage_usec": cpu.get("usage_usec"),
        "cpu_throttled_usec": cpu.get("throttled_usec"),
        "memory_usage": int(current) if current else None,
        "memory_limit": int(mem_max) if mem_max.isdigit() else None,
        "pids": int(pids) if pids else None,
        "io_read_bytes": io_read,
        "io_write_bytes": io_write,
    }
