"""A container's spec as frozen dataclasses, and the parsers that build it.

The CLI turns flags into a ContainerSpec with the functions here (pure, unit
tested); the runtime turns the spec plus the image into what the C core needs.
Nothing here touches the system.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyrun.cgroups import Limits
from pyrun.errors import UsageError, strerror

# clone(2) flags, from <linux/sched.h>.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags, from <sys/mount.h>.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's defaults (moby oci/defaults.go), also the OCI runtime-spec's.
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass(frozen=True)
class Namespaces:
    """Which namespaces the container gets of its own (True) or shares."""

    pid: bool = True
    uts: bool = True
    ipc: bool = True
    net: bool = True
    cgroup: bool = True
    user: bool = False

    def clone_flags(self) -> int:
        flags = CLONE_NEWNS  # always: the root filesystem is per container
        for kind, (_name, flag) in NAMESPACE_FLAGS.items():
            if kind != "mnt" and getattr(self, kind):
                flags |= flag
        return flags


# Namespace kind -> its clone(2) flag, by name (for --trace) and value.
NAMESPACE_FLAGS = {
    "mnt": ("CLONE_NEWNS", CLONE_NEWNS),
    "pid": ("CLONE_NEWPID", CLONE_NEWPID),
    "uts": ("CLONE_NEWUTS", CLONE_NEWUTS),
    "ipc": ("CLONE_NEWIPC", CLONE_NEWIPC),
    "net": ("CLONE_NEWNET", CLONE_NEWNET),
    "cgroup": ("CLONE_NEWCGROUP", CLONE_NEWCGROUP),
    "user": ("CLONE_NEWUSER", CLONE_NEWUSER),
}


def describe_clone_flags(flags: int) -> str:
    """CLONE_NEWNS|CLONE_NEWPID|... (0x...), for --trace."""
    names = [name for name, flag in NAMESPACE_FLAGS.values() if flags & flag]
    return "|".join(names) + f" (0x{flags:x})"


@dataclass(frozen=True)
class IdMap:
    """One line of /proc/PID/uid_map: ids [inside, inside+size) are host
    ids [outside, outside+size)."""

    inside: int
    outside: int
    size: int

    def line(self) -> str:
        return f"{self.inside} {self.outside} {self.size}\n"

    def to_host(self, inside_id: int) -> int:
        if not self.inside <= inside_id < self.inside + self.size:
            raise UsageError(f"id {inside_id} is outside the user namespace mapping")
        return inside_id - self.inside + self.outside


@dataclass(frozen=True)
class Volume:
    """-v HOSTDIR:CTRDIR[:ro]"""

    source: Path
    target: str
    readonly: bool = False


@dataclass(frozen=True)
class Tmpfs:
    """--tmpfs CTRDIR[:OPTIONS]"""

    target: str
    options: str = "rw,nosuid,nodev,noexec,size=65536k"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the user asked for; the image fills in what they did not."""

    image: str | None = None          # an image name, or None with rootfs
    rootfs: Path | None = None        # --rootfs DIR
    command: tuple[str, ...] = ()     # CMD given on the command line
    entrypoint: str | None = None     # --entrypoint ("" clears the image's)
    env: tuple[str, ...] = ()         # KEY=VALUE, after --env-file
    workdir: str | None = None
    user: str | None = None           # name or uid[:gid]
    hostname: str | None = None
    name: str | None = None
    remove: bool = False
    read_only: bool = False
    tmpfs: tuple[Tmpfs, ...] = ()
    volumes: tuple[Volume, ...] = ()
    namespaces: Namespaces = field(default_factory=Namespaces)
    userns_map: IdMap | None = None   # with namespaces.user
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    interactive: bool = False
    tty: bool = False
    init: bool = False
    trace: bool = False
    limits: Limits = field(default_factory=Limits)
    cgroup_parent: str = "pyrun"


def parse_env(items: tuple[str, ...] | list[str],
              environ: dict[str, str] | None = None) -> list[str]:
    """-e KEY=VALUE, or -e KEY to copy KEY from pyrun's environment (dropped
    when unset), as Docker does."""
    environ = dict(os.environ) if environ is None else environ
    out = []
    for item in items:
        key, sep, _ = item.partition("=")
        if not key or any(c.isspace() for c in key):
            raise UsageError(f"invalid environment variable {item!r}")
        if sep:
            out.append(item)
        elif key in environ:
            out.append(f"{key}={environ[key]}")
    return out


def read_env_file(path: str) -> list[str]:
    """--env-file: KEY=VALUE lines; blank lines and # comments skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"env file {path}: {strerror(e)}") from None
    items = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return parse_env(items)


def merge_env(*layers: list[str] | tuple[str, ...]) -> list[str]:
    """Later layers win, keeping first-seen order (image env, then -e)."""
    merged: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            key, _, value = item.partition("=")
            merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def check_container_path(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise UsageError(f"{what} {path!r} must be an absolute path")
    return os.path.normpath(path)


def parse_volume(spec: str) -> Volume:
    """HOSTDIR:CTRDIR[:ro|rw]; HOSTDIR must exist (pyrun has no named volumes)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(f"invalid volume {spec!r}: expected HOSTDIR:CTRDIR[:ro]")
    readonly = False
    if len(parts) == 3:
        opts = parts[2].split(",")
        if any(o not in ("ro", "rw") for o in opts):
            raise UsageError(f"invalid volume {spec!r}: unknown option {parts[2]!r}")
        readonly = "ro" in opts
    if not parts[0].startswith("/"):
        raise UsageError(f"invalid volume {spec!r}: named volumes are not supported, "
                         "give an absolute host path")
    source = Path(parts[0])
    if not source.exists():
        raise UsageError(f"invalid volume {spec!r}: {source} does not exist")
    return Volume(source, check_container_path(parts[1], "volume target"), readonly)


def parse_tmpfs(spec: str) -> Tmpfs:
    target, _, options = spec.partition(":")
    target = check_container_path(target, "tmpfs target")
    return Tmpfs(target, options) if options else Tmpfs(target)


def tmpfs_flags(options: str) -> tuple[int, str]:
    """Split mount(8)-style options into MS_* flags and the tmpfs data."""
    flag_words = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}
    ignored = {"rw", "suid", "dev", "exec"}
    flags, data = 0, []
    for opt in filter(None, options.split(",")):
        if opt in flag_words:
            flags |= flag_words[opt]
        elif opt not in ignored:
            data.append(opt)
    return flags, ",".join(data)


def parse_userns(mode: str) -> bool:
    if mode not in ("host", "private", ""):
        raise UsageError(f"invalid --userns {mode!r}: expected host or private")
    return mode == "private"


def parse_ns_mode(flag: str, mode: str) -> bool:
    """--pid/--uts/--ipc/--cgroupns host|private -> own namespace?"""
    if mode not in ("host", "private"):
        raise UsageError(f"invalid {flag} {mode!r}: expected host or private")
    return mode == "private"


def parse_network(mode: str) -> bool:
    """Only the container's own loopback ("none") or the host's for now."""
    if mode not in ("none", "host", "private"):
        raise UsageError(f"invalid --network {mode!r}: expected none or host")
    return mode != "host"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] allowed")
    return name


def subid_range(user: str = "pyrun", files: tuple[str, str] = ("/etc/subuid", "/etc/subgid"),
                default: tuple[int, int] = (100000, 65536)) -> IdMap:
    """The host range for --userns private: the first entry for `user` in
    /etc/subuid (and the same must exist in /etc/subgid), else 100000:65536."""
    ranges = []
    for path in files:
        found = None
        try:
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[0] == user:
                        found = (int(parts[1]), int(parts[2]))
                        break
        except (OSError, ValueError):
            pass
        ranges.append(found)
    if ranges[0] is not None and ranges[0] == ranges[1]:
        start, size = ranges[0]
    else:
        start, size = default
    return IdMap(0, start, size)
