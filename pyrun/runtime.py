"""One container, from spec to exit status: prepare, spawn, wait, teardown.

    spec + image -> overlay root -> C core (clone .. execve) -> wait -> teardown

The order matters and is the lesson of this module:
1. the root filesystem is mounted on the host first (the child only binds it);
2. signal handlers are installed before clone, so no signal is lost;
3. the child asks for its uid/gid maps, reports READY, and execs on GO;
4. teardown is idempotent, and a pyrun that was killed is cleaned up by the
   next one (collect_garbage).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Protocol

from pyrun import caps as capabilities
from pyrun import cgroups, config, core, rootfs, tty
from pyrun.config import (
    CLONE_NEWPID,
    DEFAULT_PATH,
    MASKED_PATHS,
    MS_BIND,
    MS_REC,
    READONLY_PATHS,
    ContainerSpec,
    IdMap,
    merge_env,
    tmpfs_flags,
)
from pyrun.errors import PyrunError, UsageError, strerror
from pyrun.image import Image, image_for_rootfs
from pyrun.state import Container, Store, owner_alive

INIT_BINARY = Path(__file__).resolve().parent / "libexec" / "pyrun-init"

# Signals pyrun passes on to the container (Docker's --sig-proxy, plus WINCH).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
# Of those, the ones whose default action ends a process.
TERMINATING = frozenset(FORWARDED) - {signal.SIGWINCH}


class ImageSource(Protocol):
    def lookup(self, name: str) -> Image: ...


class Tracer:
    """--trace: the story of the container, one plain line per kernel step."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str) -> None:
        if self.enabled:
            try:
                print(f"pyrun: {text}", file=sys.stderr, flush=True)
            except OSError:
                # stderr went away (`--trace ... 2>&1 | head`): stop tracing,
                # but never let it interrupt a teardown.
                self.enabled = False


def command_for(spec: ContainerSpec, image: Image) -> list[str]:
    """Docker's rules: --entrypoint replaces the image's ENTRYPOINT and
    also drops its CMD; arguments after the image replace CMD."""
    if spec.entrypoint is not None:
        entrypoint = [spec.entrypoint] if spec.entrypoint else []
        cmd = list(spec.command)
    else:
        entrypoint = list(image.config.entrypoint)
        cmd = list(spec.command) if spec.command else list(image.config.cmd)
    argv = entrypoint + cmd
    if not argv:
        raise UsageError("no command specified (the image has no CMD or ENTRYPOINT)")
    return argv


def pid1_handles(pid: int, sig: int) -> bool:
    """Does the process catch or ignore sig? (SigCgt/SigIgn in
    /proc/PID/status, one bit per signal, bit N-1 for signal N.)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return True
    bit = 1 << (sig - 1)
    return bool((int(fields["SigCgt"], 16) | int(fields["SigIgn"], 16)) & bit)


@dataclass
class SignalForwarder:
    """Forward signals to the container's PID 1.

    PID 1 of a pid namespace gets no default signal actions from its own
    namespace (pid_namespaces(7)): `sleep` as PID 1 ignores SIGTERM. A user
    pressing Ctrl-C expects what the signal would do to a normal process, so
    when PID 1 neither catches nor ignores a terminating signal, pyrun
    applies the default action itself: SIGKILL, reported as 128+N.
    """

    trace: Tracer
    emulate_default: bool
    on_winch: Callable[[], None] | None = None
    pid: int = 0
    pidfd: int = -1
    pending: list[int] = field(default_factory=list)
    killed_by: int | None = None
    _saved: dict[int, object] = field(default_factory=dict)

    def install(self) -> None:
        for sig in FORWARDED:
            self._saved[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._saved.clear()

    def attach(self, pid: int, pidfd: int) -> None:
        self.pid, self.pidfd = pid, pidfd
        pending, self.pending = self.pending, []
        for sig in pending:
            self.forward(sig)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self.pidfd < 0:
            self.pending.append(sig)
        else:
            self.forward(sig)

    def forward(self, sig: int) -> None:
        if sig == signal.SIGWINCH and self.on_winch is not None:
            self.on_winch()  # resizing the pty signals the container itself
            return
        name = signal.Signals(sig).name
        try:
            if self.emulate_default and sig in TERMINATING and not pid1_handles(self.pid, sig):
                self.trace(f"PID 1 has no handler for {name}: applying its default action (kill)")
                self.killed_by = sig
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                self.trace(f"forward {name} to PID 1 (host pid {self.pid})")
                signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass


def exit_code(status: int, killed_by: int | None) -> int:
    """A wait status as the shell and Docker report it: the exit code, or
    128+N for death by signal N."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    sig = os.WTERMSIG(status)
    if sig == signal.SIGKILL and killed_by is not None:
        sig = killed_by
    return 128 + sig


def init_memfd() -> int:
    """pyrun-init in a sealed memfd: the container's PID 1 runs a file that
    nothing can write (F_SEAL_WRITE), not a host binary it could replace
    through /proc/1/exe. Returned read-only, since execve(2) refuses a file
    still open for writing (ETXTBSY)."""
    try:
        data = INIT_BINARY.read_bytes()
    except OSError:
        raise PyrunError(f"--init: {INIT_BINARY} is missing (run `make`)") from None
    fd = os.memfd_create("pyrun-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)


def write_etc_files(container: Container, hostname: str, owner: tuple[int, int] | None) -> list[
        core.CoreMount]:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf of this container,
    bind-mounted over the image's (as Docker does), so the image is intact."""
    try:
        with open("/etc/resolv.conf") as f:
            host_resolv = f.read().splitlines()
    except OSError:
        host_resolv = []
    # Loopback resolvers of the host are unreachable from the container.
    resolv = [ln for ln in host_resolv
              if not (ln.startswith("nameserver") and ln.split()[1:2]
                      and (ln.split()[1].startswith("127.") or ln.split()[1] == "::1"))]
    files = {
        "hostname": f"{hostname}\n",
        "hosts": ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                  f"127.0.1.1\t{hostname}\n"),
        "resolv.conf": "\n".join(resolv) + "\n",
    }
    mounts = []
    for name, text in files.items():
        path = container.etc / name
        path.write_text(text)
        if owner is not None:
            os.chown(path, *owner)
        mounts.append(core.CoreMount(str(path), f"/etc/{name}", None, MS_BIND, is_file=True))
    return mounts


def collect_garbage(store: Store, trace: Tracer) -> None:
    """Clean up after pyrun processes that were killed: unmount their
    overlays and mark their containers exited (or remove them, with --rm)."""
    with store.lock():
        for path in store.leftovers():
            shutil.rmtree(path, ignore_errors=True)
        for path in store.orphan_rundirs():
            rootfs.unmount(path / "merged")
            rootfs.unmount_layers(path / "lower")
            shutil.rmtree(path, ignore_errors=True)
        for container in store.containers():
            doc = container.read()
            state = doc.get("State", {})
            if owner_alive(state.get("Owner", {})):
                continue
            # An exited --rm container whose pyrun died before removing it
            # is collected too; other exited containers are kept, as Docker.
            if state.get("Status") not in ("created", "running", "paused") and not doc.get(
                    "Config", {}).get("AutoRemove"):
                continue
            trace(f"clean up container {container.short_id}: its pyrun is gone")
            if doc.get("Config", {}).get("AutoRemove"):
                remove_container(container)
            else:
                release_container(container)
                container.update(Status="exited", ExitCode=137, Pid=0)


def export_container(container: Container, out: IO[bytes]) -> None:
    """The container's filesystem as a flat tar (docker export): its
    writable layer over the image's, through a read-only overlay of them
    all (an overlay with no upperdir cannot be written), mounted privately
    in its runtime directory for the time of the export."""
    import tarfile

    doc = container.read()
    layers = [container.upper] + [Path(p) for p in doc.get("Config", {}).get("Layers", [])]
    if not all(p.is_dir() for p in layers):
        raise PyrunError(f"container {container.short_id}: its image layers are gone")
    view = container.rundir / "export"
    view.mkdir(parents=True, exist_ok=True)
    lower = ":".join(str(p) for p in layers)
    try:
        core.mount("overlay", str(view), "overlay", config.MS_RDONLY, f"lowerdir={lower}")
    except OSError as e:
        raise PyrunError(f"export: mount the container's layers: {strerror(e)}") from None
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(os.listdir(view)):
                tar.add(view / entry, arcname=entry, recursive=True)
    finally:
        rootfs.unmount(view)
        view.rmdir()


def release_container(container: Container) -> None:
    """Idempotent: whatever is left of the container's cgroup, its overlay,
    the layers that overlay stacks. Every step runs even if one before it
    failed; the failures are reported together at the end."""
    path = container.read().get("State", {}).get("CgroupPath")
    steps: list[tuple[str, Callable[[], None]]] = [
        ("unmount the root", lambda: rootfs.unmount(container.merged)),
        ("unmount the layers", lambda: rootfs.unmount_layers(container.lower)),
    ]
    if path:
        steps.insert(0, ("remove the cgroup", cgroups.load(path).destroy))
    failures = []
    for what, step in steps:
        try:
            step()
        except (PyrunError, OSError) as e:
            failures.append(f"{what}: {e}")
    if failures:
        raise PyrunError(f"container {container.short_id}: " + "; ".join(failures))


def remove_container(container: Container) -> None:
    """Release, then delete its files; never while anything is still mounted
    below them (rmtree would walk into the image through the mount)."""
    release_container(container)
    busy = rootfs.mounts_under(container.rundir) + rootfs.mounts_under(container.dir)
    if busy:
        raise PyrunError(f"container {container.short_id}: still mounted: {' '.join(busy)}")
    shutil.rmtree(container.dir, ignore_errors=True)
    shutil.rmtree(container.rundir, ignore_errors=True)


def write_id_maps(pid: int, idmap: IdMap, trace: Tracer) -> None:
    """Only a process outside the new user namespace may write its maps
    (user_namespaces(7)); as host root we may map any range in one line."""
    for kind in ("uid", "gid"):
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write(idmap.line())
        trace(f"write /proc/{pid}/{kind}_map: {idmap.line().strip()} "
              f"(container {kind} {idmap.inside}.. is host {kind} {idmap.outside}..)")


class Runtime:
    def __init__(self, store: Store, images: ImageSource) -> None:
        self.root = store.root
        self.images = images
        self.store = store

    def run(self, spec: ContainerSpec) -> int:
        trace = Tracer(spec.trace)
        collect_garbage(self.store, trace)
        if spec.rootfs is not None:
            image = image_for_rootfs(spec.rootfs)
        elif spec.image:
            image = self.images.lookup(spec.image)
        else:
            raise UsageError("an image or --rootfs is required")
        argv = command_for(spec, image)
        cgroups.check(spec.limits, spec.cgroup_parent)
        record = {"Image": image.name, "ImageID": image.id, "ImageManifest": image.manifest,
                  "Layers": [str(p) for p in image.layers],
                  "Volumes": list(image.config.volumes),
                  "ExposedPorts": list(image.config.exposed_ports),
                  "StopSignal": image.config.stop_signal or "SIGTERM",
                  "Cmd": argv, "AutoRemove": spec.remove,
                  "Tty": spec.tty, "OpenStdin": spec.interactive}
        container = self.store.create(spec.name, record)
        trace(f"container {container.id}")
        cgroup = None
        try:
            planned = cgroups.path_for(container.id, spec.cgroup_parent)
            if planned is not None:
                container.update(CgroupPath=str(planned))  # before it exists: see path_for
            cgroup = cgroups.create(container.id, spec.limits, spec.cgroup_parent)
            if cgroup is not None:
                files = spec.limits.files()
                trace(f"cgroup {cgroup.path}" + (": " + ", ".join(
                    f"{k}={v!r}" for k, v in files.items()) if files else " (no limits)"))
            return self._run(spec, image, argv, container, cgroup, trace)
        except PyrunError as e:
            # It never ran: keep why, with the exit code pyrun returns.
            container.update(Status="exited", ExitCode=e.exit_code, Error=str(e), Pid=0)
            raise
        finally:
            if spec.remove:
                remove_container(container)
                trace(f"remove cgroup, unmount and delete container {container.short_id} (--rm)")
            else:
                release_container(container)
                trace(f"remove cgroup and unmount container {container.short_id}")

    def _layers_for_userns(self, layers: tuple[Path, ...], idmap: IdMap, container: Container,
                           trace: Tracer) -> tuple[Path, ...]:
        """The image as root of the user namespace sees it: idmapped mounts
        where the filesystem supports them, else a cached shifted copy."""
        try:
            mapped = rootfs.idmapped_layers(layers, idmap, container.lower)
            trace(f"idmapped mounts of the image layers: host uid 0 appears as "
                  f"{idmap.outside} ({idmap.line().strip()})")
            return mapped
        except OSError as e:
            rootfs.unmount_layers(container.lower)
            trace(f"idmapped mount refused ({strerror(e)}): using a copy with owners "
                  f"shifted by {idmap.outside}")
            return rootfs.shifted_layers(layers, idmap, self.root / "idmap")

    def _run(self, spec: ContainerSpec, image: Image, argv: list[str], container: Container,
             cgroup: cgroups.Cgroup | None, trace: Tracer) -> int:
        idmap = spec.userns_map if spec.namespaces.user else None
        layers = image.layers
        owner = None
        if idmap is not None:
            layers = self._layers_for_userns(layers, idmap, container, trace)
            owner = (idmap.outside, idmap.outside)
            for d in (container.upper, container.work, container.etc):
                os.chown(d, *owner)
        options = rootfs.mount_overlay(layers, container.upper, container.work, container.merged)
        trace(f"mount overlay on {container.merged}: {options}")

        user = rootfs.resolve_user(container.merged, spec.user or image.config.user)
        hostname = spec.hostname or container.short_id
        env = merge_env([f"PATH={DEFAULT_PATH}"], image.config.env,
                        [f"HOSTNAME={hostname}", f"HOME={user.home}"]
                        + (["TERM=xterm"] if spec.tty else []), spec.env)

        mounts = write_etc_files(container, hostname, owner)
        for vol in spec.volumes:
            mounts.append(core.CoreMount(str(vol.source), vol.target, None, MS_BIND | MS_REC,
                                         readonly=vol.readonly, is_file=not vol.source.is_dir()))
        for tmpfs in spec.tmpfs:
            flags, data = tmpfs_flags(tmpfs.options)
            mounts.append(core.CoreMount("tmpfs", tmpfs.target, "tmpfs", flags, data or None))

        caps = capabilities.resolve(spec.cap_add, spec.cap_drop, spec.privileged)
        clone_flags = spec.namespaces.clone_flags()
        trace(f"clone3 with {config.describe_clone_flags(clone_flags)}"
              + (f", CLONE_INTO_CGROUP {cgroup.path}: born inside its cgroup" if cgroup else ""))

        fds_to_close: list[int] = []
        stdin = -1
        if not spec.interactive and not spec.tty:
            stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            fds_to_close.append(stdin)
        init_fd = -1
        if spec.init:
            init_fd = init_memfd()
            fds_to_close.append(init_fd)
        cgroup_fd = -1
        if cgroup is not None:
            cgroup_fd = cgroup.open_fd()
            fds_to_close.append(cgroup_fd)

        req = core.SpawnRequest(
            clone_flags=clone_flags,
            rootfs=str(container.merged),
            argv=tuple(argv),
            envp=tuple(env),
            cwd=spec.workdir or image.config.workdir or "/",
            hostname=hostname,
            readonly_rootfs=spec.read_only,
            uid=user.uid,
            gid=user.gid,
            groups=user.groups,
            caps=caps,
            no_new_privs=spec.no_new_privileges,
            mounts=tuple(mounts),
            masked_paths=() if spec.privileged else MASKED_PATHS,
            readonly_paths=() if spec.privileged else READONLY_PATHS,
            stdio=(stdin, -1, -1),
            tty=spec.tty,
            init_fd=init_fd,
            cgroup_fd=cgroup_fd,
            trace=spec.trace,
        )
        master: list[int] = []
        caller_tty = next((fd for fd in (0, 1) if os.isatty(fd)), None)

        def resize() -> None:
            if master and caller_tty is not None:
                tty.copy_winsize(caller_tty, master[0])

        forwarder = SignalForwarder(
            trace, emulate_default=bool(clone_flags & CLONE_NEWPID) and not spec.init,
            on_winch=resize if spec.tty else None)
        forwarder.install()
        try:
            child = core.spawn(req)
        except BaseException:
            forwarder.restore()
            for fd in fds_to_close:
                os.close(fd)
            raise
        fds_to_close.append(child.pidfd)
        try:
            def on_pty(fd: int) -> None:
                master.append(fd)
                fds_to_close.append(fd)
                resize()

            def on_ready(pid: int) -> None:
                container.update(Status="running", Pid=pid)
                trace(f"container process ready (host pid {pid}): go")

            hooks = core.Hooks(
                userns=lambda pid: write_id_maps(pid, idmap, trace) if idmap else None,
                pty=on_pty, ready=on_ready, trace=trace)
            try:
                try:
                    child.handshake(hooks)
                finally:
                    child.close()
                forwarder.attach(child.pid, child.pidfd)
                if spec.tty and master:
                    with tty.raw_mode(0) if spec.interactive else nullcontext():
                        tty.proxy(master[0], 0 if spec.interactive else None, 1, child.pidfd)
            except BaseException:
                # Whatever failed, the container must not outlive this run:
                # its mounts and cgroup are torn down next.
                signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
                os.waitpid(child.pid, 0)
                raise
            _, status = os.waitpid(child.pid, 0)
        finally:
            forwarder.restore()
            for fd in fds_to_close:
                os.close(fd)
        code = exit_code(status, forwarder.killed_by)
        trace(f"PID 1 exited: status {code}")
        oom = cgroup is not None and cgroup.oom_killed()
        if oom:
            print("pyrun: the container was killed by the OOM killer (memory limit reached)",
                  file=sys.stderr)
        container.update(Status="exited", ExitCode=code, Pid=0, OOMKilled=oom)
        return code

