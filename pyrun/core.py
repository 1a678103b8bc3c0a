"""Typed wrapper over the C core (pyrun._core, built from csrc/ by cffi).

`spawn()` fills the one C config struct and clones the container process;
`Child.handshake()` then drives the sync-socket protocol described in
csrc/pyrun_core.h, calling back into the runtime for the host-side steps.
Nothing in this module decides policy: it only translates.
"""

from __future__ import annotations

import errno as errno_mod
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyrun._core import ffi, lib
from pyrun.errors import CommandNotExecutable, CommandNotFound, PyrunError


@dataclass(frozen=True)
class CoreMount:
    source: str
    target: str
    fstype: str | None = None  # None: bind mount
    flags: int = 0
    data: str | None = None
    readonly: bool = False
    is_file: bool = False


@dataclass(frozen=True)
class SpawnRequest:
    clone_flags: int
    rootfs: str
    argv: tuple[str, ...]
    envp: tuple[str, ...]
    cwd: str = "/"
    hostname: str | None = None
    readonly_rootfs: bool = False
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    caps: int = 0  # bounding, permitted and effective
    no_new_privs: bool = False
    mounts: tuple[CoreMount, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    stdio: tuple[int, int, int] = (-1, -1, -1)
    tty: bool = False
    init_fd: int = -1
    cgroup_fd: int = -1
    trace: bool = False


@dataclass
class Hooks:
    """Host-side steps the parent runs when the child asks for them."""

    userns: Callable[[int], None] = lambda pid: None  # write the id maps of pid
    pty: Callable[[int], None] = lambda fd: None  # receive the pty master
    ready: Callable[[int], None] = lambda pid: None  # last chance before exec
    trace: Callable[[str], None] = lambda text: None


def _strerror(err: int) -> str:
    return os.strerror(err).lower() if err else "unknown error"


def child_error(step: int, err: int, text: str) -> PyrunError:
    """An ERROR message from the child as the exception Docker's exit code
    goes with: 127 not found, 126 not executable, 125 anything else."""
    message = f"{text}: {_strerror(err)}"
    if step == lib.PYRUN_STEP_EXEC:
        if err == errno_mod.ENOENT:
            return CommandNotFound(message)
        if err in (errno_mod.EACCES, errno_mod.ENOEXEC, errno_mod.EISDIR, errno_mod.EPERM):
            return CommandNotExecutable(message)
    return PyrunError(message)


class _Keep:
    """cffi frees what a cdata owns when the Python object dies: keep every
    buffer the config points at alive until the spawn returns."""

    def __init__(self) -> None:
        self.refs: list[Any] = []

    def cstr(self, s: str | None) -> Any:
        if s is None:
            return ffi.NULL
        buf = ffi.new("char[]", os.fsencode(s))
        self.refs.append(buf)
        return buf

    def strv(self, items: tuple[str, ...]) -> Any:
        arr = ffi.new("const char *[]", len(items) + 1)
        for i, s in enumerate(items):
            arr[i] = self.cstr(s)
        arr[len(items)] = ffi.NULL
        self.refs.append(arr)
        return arr


def _build_config(req: SpawnRequest, keep: _Keep) -> Any:
    cfg = ffi.new("struct pyrun_config *")
    cfg.clone_flags = req.clone_flags
    cfg.cgroup_fd = req.cgroup_fd
    cfg.rootfs = keep.cstr(req.rootfs)
    cfg.readonly_rootfs = int(req.readonly_rootfs)
    cfg.hostname = keep.cstr(req.hostname)
    cfg.argv = keep.strv(req.argv)
    cfg.envp = keep.strv(req.envp)
    cfg.cwd = keep.cstr(req.cwd)
    cfg.uid = req.uid
    cfg.gid = req.gid
    groups = ffi.new("gid_t[]", list(req.groups) or [0])
    keep.refs.append(groups)
    cfg.groups = groups
    cfg.ngroups = len(req.groups)
    cfg.cap_bounding = cfg.cap_effective = cfg.cap_permitted = req.caps
    # Docker clears the inheritable set (CVE-2022-24769) and sets no ambient.
    cfg.cap_inheritable = 0
    cfg.cap_ambient = 0
    cfg.no_new_privs = int(req.no_new_privs)
    mounts = ffi.new("struct pyrun_mount[]", max(len(req.mounts), 1))
    keep.refs.append(mounts)
    for i, m in enumerate(req.mounts):
        mounts[i].source = keep.cstr(m.source)
        mounts[i].target = keep.cstr(m.target)
        mounts[i].fstype = keep.cstr(m.fstype)
        mounts[i].flags = m.flags
        mounts[i].data = keep.cstr(m.data)
        mounts[i].readonly = int(m.readonly)
        mounts[i].is_file = int(m.is_file)
    cfg.mounts = mounts
    cfg.nmounts = len(req.mounts)
    cfg.masked_paths = keep.strv(req.masked_paths)
    cfg.readonly_paths = keep.strv(req.readonly_paths)
    for i in range(3):
        cfg.stdio[i] = req.stdio[i]
    cfg.tty = int(req.tty)
    cfg.init_fd = req.init_fd
    cfg.trace = int(req.trace)
    return cfg


MSG_SIZE = ffi.sizeof("struct pyrun_msg")


@dataclass
class Message:
    type: int
    step: int
    err: int
    text: str
    fds: list[int] = field(default_factory=list)


class Child:
    """The container's first process, from clone to exec."""

    def __init__(self, pid: int, pidfd: int, sync_fd: int) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.sock = socket.socket(fileno=sync_fd)

    def _recv(self) -> Message | None:
        data, fds, _flags, _addr = socket.recv_fds(self.sock, MSG_SIZE, 1)
        if not data:
            return None  # EOF: the child exec'd (or died)
        if len(data) != MSG_SIZE:
            raise PyrunError(f"container setup: short message ({len(data)} bytes)")
        msg = ffi.cast("struct pyrun_msg *", ffi.from_buffer(data))
        text = ffi.string(msg.text).decode("utf-8", "replace")
        return Message(msg.type, msg.step, msg.err, text, list(fds))

    def _send(self, msg_type: int) -> None:
        msg = ffi.new("struct pyrun_msg *", {"type": msg_type})
        self.sock.send(bytes(ffi.buffer(msg)))

    def handshake(self, hooks: Hooks) -> None:
        """Answer the child until it execs (EOF) or reports an error."""
        ready = False
        while True:
            msg = self._recv()
            if msg is None:
                if not ready:
                    raise PyrunError("container setup: the child exited before it was ready")
                return
            if msg.type == lib.PYRUN_MSG_TRACE:
                hooks.trace(msg.text)
            elif msg.type == lib.PYRUN_MSG_ERROR:
                raise child_error(msg.step, msg.err, msg.text)
            elif msg.type == lib.PYRUN_MSG_USERNS_READY:
                hooks.userns(self.pid)
                self._send(lib.PYRUN_MSG_USERNS_DONE)
            elif msg.type == lib.PYRUN_MSG_PTY:
                if len(msg.fds) != 1:
                    raise PyrunError("container setup: the pty message carried no fd")
                hooks.pty(msg.fds[0])
            elif msg.type == lib.PYRUN_MSG_READY:
                ready = True
                hooks.ready(self.pid)
                self._send(lib.PYRUN_MSG_GO)
            else:
                raise PyrunError(f"container setup: unexpected message {msg.type}")

    def close(self) -> None:
        self.sock.close()


def spawn(req: SpawnRequest) -> Child:
    keep = _Keep()
    cfg = _build_config(req, keep)
    out = ffi.new("struct pyrun_child *")
    if lib.pyrun_spawn(cfg, out) < 0:
        raise PyrunError(f"clone3: {_strerror(out.err)}")
    return Child(out.pid, out.pidfd, out.sync_fd)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    """mount(2) for the parent's own mounts (the overlay root)."""
    keep = _Keep()
    r = lib.mount(keep.cstr(source), keep.cstr(target), keep.cstr(fstype), flags, keep.cstr(data))
    if r < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), target)


def umount(target: str, detach: bool = False) -> None:
    r = lib.umount2(os.fsencode(target), lib.MNT_DETACH if detach else 0)
    if r < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), target)


def userns_fd(idmap_line: str) -> int:
    """An fd of a new user namespace mapped by one uid/gid_map line."""
    fd: int = lib.pyrun_userns_fd(idmap_line.encode())
    if fd < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), "user namespace")
    return fd


def idmap_mount(source: str, target: str, userns: int) -> None:
    if lib.pyrun_idmap_mount(os.fsencode(source), os.fsencode(target), userns) < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), source)


RESOLVE_IN_ROOT = lib.RESOLVE_IN_ROOT | lib.RESOLVE_NO_MAGICLINKS
RESOLVE_BENEATH_NO_SYMLINKS = lib.RESOLVE_BENEATH | lib.RESOLVE_NO_SYMLINKS


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0o644) -> int:
    """openat2(2): open path relative to dir_fd under `resolve` rules."""
    fd: int = lib.pyrun_openat2(dir_fd, os.fsencode(path), flags, mode, resolve)
    if fd < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err), path)
    return fd


def open_in_root(root_fd: int, path: str, flags: int = os.O_RDONLY) -> int:
    """openat2(RESOLVE_IN_ROOT): open a path of a container's root from the
    host without following its symlinks out of it."""
    return openat2(root_fd, path, flags, RESOLVE_IN_ROOT)
