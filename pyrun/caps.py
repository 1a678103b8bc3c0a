"""Linux capabilities by name, and Docker's default set.

capabilities(7) splits root's power into ~41 bits. A container keeps the 14
that Docker grants by default; ``--cap-add``/``--cap-drop`` adjust the set and
``--privileged`` keeps all of them. The result is one 64-bit mask the C core
applies to the bounding, permitted and effective sets.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyrun.errors import UsageError

# Index = capability number (include/uapi/linux/capability.h).
NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
    "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
    "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip

# moby's oci/caps/defaults.go: the set every Docker container starts with.
DOCKER_DEFAULT = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
    "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
    "AUDIT_WRITE",
)  # fmt: skip


def last_cap() -> int:
    """The highest capability this kernel knows (it may be newer than NAMES)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def number(name: str) -> int:
    """CAP_SYS_ADMIN, sys_admin and SYS_ADMIN all name capability 21."""
    key = name.upper().removeprefix("CAP_")
    try:
        return NAMES.index(key)
    except ValueError:
        raise UsageError(f"unknown capability {name!r}") from None


def mask(names: Iterable[str]) -> int:
    bits = 0
    for name in names:
        bits |= 1 << number(name)
    return bits


def all_caps() -> int:
    """Every capability pyrun itself holds: --privileged cannot give more
    than the caller's own bounding set (capset(2) would refuse)."""
    known = (1 << (last_cap() + 1)) - 1
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return known & int(line.split()[1], 16)
    except OSError:
        pass
    return known


def resolve(add: Iterable[str] = (), drop: Iterable[str] = (), privileged: bool = False) -> int:
    """The capability mask for a container, with Docker's rules: ALL in
    --cap-add grants everything, ALL in --cap-drop starts from nothing, and
    an explicit add wins over a drop of ALL."""
    add = [a.upper() for a in add]
    drop = [d.upper() for d in drop]
    if privileged:
        return all_caps()
    bits = 0 if "ALL" in drop else mask(DOCKER_DEFAULT)
    bits &= ~mask(d for d in drop if d != "ALL")
    bits |= all_caps() if "ALL" in add else mask(a for a in add if a != "ALL")
    return bits


def names(bits: int) -> list[str]:
    return [name for i, name in enumerate(NAMES) if bits & (1 << i)]
