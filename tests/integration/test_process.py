"""PID 1, exit statuses, signals, --init, stdio and the pty."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Pyrun

pytestmark = pytest.mark.root


@pytest.mark.parametrize(("args", "code", "message"), [
    (["sh", "-c", "exit 3"], 3, None),
    (["probe", "exit", "42"], 42, None),
    # death by signal N is 128+N (outside a pid namespace, where PID 1 is
    # not protected from its own signals)
    (["--pid", "host", "sh", "-c", "kill -TERM $$"], 143, None),
    (["/bin/nosuch"], 127, "exec /bin/nosuch: no such file or directory"),
    (["nosuch"], 127, "exec nosuch: no such file or directory"),
    (["/etc/passwd"], 126, "exec /etc/passwd: permission denied"),
    (["/etc"], 126, "exec /etc: permission denied"),
])
def test_exit_codes(pyrun: Pyrun, args: list[str], code: int, message: str | None) -> None:
    flags = args[:2] if args[0].startswith("--") else []
    r = pyrun("run", "--rm", *flags, "busybox", *args[len(flags):])
    assert r.returncode == code, r.stderr
    if message:
        assert r.stderr == f"pyrun: {message}\n"


def test_pyrun_errors_exit_125_with_one_line(pyrun: Pyrun) -> None:
    for args in (["run", "--rm", "no-such-image"], ["run", "--bogus-flag", "busybox"],
                 ["run", "--rm", "--cap-add", "NOPE", "busybox", "true"],
                 ["run", "--rm", "-v", "relative:/x", "busybox", "true"],
                 ["run", "--rm", "-u", "nobody-here", "busybox", "true"]):
        r = pyrun(*args)
        assert r.returncode == 125, (args, r.stderr)
        assert r.stderr.startswith("pyrun: "), r.stderr
        assert "Traceback" not in r.stderr
        assert r.stdout == ""
    for d in (pyrun.root / "containers", pyrun.runroot):
        assert not d.exists() or not list(d.iterdir()), list(d.iterdir())


def test_no_stray_output_on_stdout(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "busybox", "true")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_stdio_are_the_callers_pipes(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "-i", "busybox", "sh", "-c", "wc -l; echo err >&2", input="a\nb\nc\n")
    assert r.stdout.strip() == "3"
    assert r.stderr == "err\n"
    # without -i stdin is empty, as with docker
    r = pyrun("run", "--rm", "busybox", "cat", input="ignored")
    assert (r.returncode, r.stdout) == (0, "")
    # a pipeline downstream of pyrun
    p = subprocess.run(f"{' '.join(pyrun.argv('run', '--rm', 'busybox', 'seq', '5'))} | wc -l",
                       shell=True, env=pyrun.env(), capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "5"


def start_signals_probe(pyrun: Pyrun, *extra: str) -> subprocess.Popen[bytes]:
    p = pyrun.popen("run", "--rm", *extra, "busybox", "probe", "signals",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n"
    return p


def test_signals_are_forwarded_to_pid1(pyrun: Pyrun) -> None:
    p = start_signals_probe(pyrun)
    assert p.stdout is not None
    for sig in (signal.SIGUSR1, signal.SIGHUP, signal.SIGWINCH, signal.SIGUSR2):
        p.send_signal(sig)
        assert p.stdout.readline() == f"signal {int(sig)}\n".encode()
    p.send_signal(signal.SIGTERM)
    assert p.stdout.readline() == f"signal {int(signal.SIGTERM)}\n".encode()
    assert p.wait(timeout=10) == 0  # the probe exits 0 after SIGTERM


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_pid1_without_handler(pyrun: Pyrun, sig: int, code: int) -> None:
    """`sleep` as PID 1 has no handler: pyrun applies the default action."""
    p = pyrun.popen("run", "--rm", "busybox", "sleep", "100", stdin=subprocess.DEVNULL)
    wait_for_container(pyrun)
    p.send_signal(sig)
    assert p.wait(timeout=10) == code


def wait_for_container(pyrun: Pyrun, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in (pyrun.root / "containers").glob("*/state.json"):
            try:
                if json.loads(state.read_text())["State"]["Status"] == "running":
                    time.sleep(0.2)  # past execve
                    return
            except (ValueError, KeyError, OSError):
                pass
        time.sleep(0.05)
    raise AssertionError("container did not start")


def zombies_after(pyrun: Pyrun, *flags: str) -> list[int]:
    """Run a PID 1 that never waits (sh execs sleep) after orphaning 3
    exited grandchildren; count, from the host, the zombie children of the
    container's PID 1 (a zombie has already left cgroup.procs)."""
    p = pyrun.popen("run", "--rm", *flags, "busybox", "sh", "-c",
                    "probe zombie 3 >/dev/null; exec sleep 3", stdin=subprocess.DEVNULL)
    try:
        wait_for_container(pyrun)
        time.sleep(1)
        state = json.loads(next((pyrun.root / "containers").glob("*/state.json")).read_text())
        pid1 = str(state["State"]["Pid"])
        zombies = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and fields[1] == pid1:
                zombies.append(int(pid))
        return zombies
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_init_is_pid1_and_reaps_orphans(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline; exit 5")
    assert r.returncode == 5, r.stderr
    assert r.stdout.split("\0")[:3] == ["pyrun-init", "--", "/bin/sh"]
    # without an init, orphans of a PID 1 that never waits stay zombies
    assert len(zombies_after(pyrun)) == 3
    assert zombies_after(pyrun, "--init") == []


def test_init_forwards_signals(pyrun: Pyrun) -> None:
    p = start_signals_probe(pyrun, "--init")
    assert p.stdout is not None
    p.send_signal(signal.SIGUSR1)
    assert p.stdout.readline() == f"signal {int(signal.SIGUSR1)}\n".encode()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 0
    # and a command without handlers dies of the forwarded signal
    p2 = pyrun.popen("run", "--rm", "--init", "busybox", "sleep", "100", stdin=subprocess.DEVNULL)
    wait_for_container(pyrun)
    p2.send_signal(signal.SIGTERM)
    assert p2.wait(timeout=10) == 143


def test_init_binary_cannot_be_overwritten(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "--init", "busybox", "sh", "-c",
              "readlink /proc/1/exe; echo x > /proc/1/exe && echo WROTE")
    assert "memfd:pyrun-init" in r.stdout
    assert "WROTE" not in r.stdout


def read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{needle!r} not seen in {buf!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


@contextmanager
def terminal(pyrun: Pyrun, rows: int, cols: int,
             *args: str) -> Iterator[tuple[int, int, subprocess.Popen[bytes]]]:
    """`pyrun run --rm -it busybox sh` on a fresh pty of rows x cols, as a
    user's terminal would run it: yields (master, slave, process)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = pyrun.popen("run", "--rm", "-it", *args, "busybox", "sh", stdin=slave, stdout=slave,
                    stderr=slave)
    try:
        yield master, slave, p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


def test_tty_mode_through_a_real_pty(pyrun: Pyrun) -> None:
    """Drive `pyrun run -it` from a pty, as a terminal user would."""
    with terminal(pyrun, 33, 111) as (master, slave, p):
        before = termios.tcgetattr(slave)
        os.write(master, b"tty; probe winsize; echo $TERM; exit 7\r")
        out = read_until(master, b"xterm")
        assert b"/dev/pts/0" in out
        assert b'"rows":33,"cols":111' in out
        assert b'"isatty_stdin":true' in out
        assert p.wait(timeout=10) == 7
        assert termios.tcgetattr(slave) == before  # the terminal is restored


def test_tty_window_resize_reaches_the_container(pyrun: Pyrun) -> None:
    with terminal(pyrun, 20, 80) as (master, slave, p):
        os.write(master, b"echo started\r")
        read_until(master, b"started\r\n")
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        p.send_signal(signal.SIGWINCH)  # what the terminal would send pyrun
        time.sleep(0.3)
        os.write(master, b"probe winsize; exit\r")
        assert b'"rows":50,"cols":132' in read_until(master, b'"cols":132')
        assert p.wait(timeout=10) == 0


@pytest.mark.parametrize("init", [[], ["--init"]])
def test_tty_ctrl_c_reaches_the_container_foreground(pyrun: Pyrun, init: list[str]) -> None:
    with terminal(pyrun, 24, 80, *init) as (master, _, p):
        os.write(master, b"sleep 100; echo interrupted\r")
        time.sleep(1)
        os.write(master, b"\x03")  # ^C through the container's own pty
        read_until(master, b"interrupted")
        os.write(master, b"exit 0\r")
        assert p.wait(timeout=10) == 0


def test_name_is_unique_and_state_kept_without_rm(pyrun: Pyrun) -> None:
    r = pyrun("run", "--name", "web", "busybox", "true")
    assert r.returncode == 0, r.stderr
    r = pyrun("run", "--name", "web", "busybox", "true")
    assert r.returncode == 125
    assert "already in use" in r.stderr
    r = pyrun("ps", "-a")
    assert "web" in r.stdout and "Exited (0)" in r.stdout
    assert pyrun("rm", "web").returncode == 0
    # a container that failed to start keeps the reason and the code
    assert pyrun("run", "--name", "bad", "busybox", "nosuch").returncode == 127
    doc = json.loads(pyrun("ps", "-a", "--format", "json").stdout)
    assert (doc["Name"], doc["State"]["ExitCode"]) == ("bad", 127)
    assert "exec nosuch" in doc["State"]["Error"]
    assert pyrun("rm", "bad").returncode == 0
    assert pyrun("ps", "-a", "-q").stdout == ""


def test_killed_pyrun_is_cleaned_up_by_the_next(pyrun: Pyrun) -> None:
    """kill -9 of pyrun: the container dies with it (PDEATHSIG) and the next
    pyrun unmounts what was left and marks the container exited."""
    p = pyrun.popen("run", "busybox", "sleep", "100", stdin=subprocess.DEVNULL)
    wait_for_container(pyrun)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 5
    from tests.conftest import processes_rooted_under
    while processes_rooted_under(pyrun.runroot) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_rooted_under(pyrun.runroot)
    r = pyrun("run", "--rm", "busybox", "true")
    assert r.returncode == 0
    r = pyrun("ps", "-a")
    assert "Exited (137)" in r.stdout
    assert pyrun("rm", pyrun("ps", "-a", "-q").stdout.strip()).returncode == 0
    assert list(pyrun.runroot.iterdir()) == []
    assert list((pyrun.root / "containers").iterdir()) == []


def test_rootfs_exit_status(pyrun: Pyrun, tmp_path: Path) -> None:
    from tests.conftest import BUSYBOX_ROOTFS
    r = pyrun("run", "--rm", "--rootfs", str(BUSYBOX_ROOTFS), "/bin/sh", "-c", "exit 3")
    assert r.returncode == 3


def test_trace_into_a_closed_pipe_still_tears_down(pyrun: Pyrun) -> None:
    """`pyrun run --trace ... 2>&1 | head -3`: the trace's reader goes away
    mid-run; the container must still be unmounted and removed."""
    p = subprocess.run(f"{' '.join(pyrun.argv('run', '--rm', '--trace', 'busybox', 'true'))} "
                       "2>&1 | head -3", shell=True, env=pyrun.env(), capture_output=True,
                       text=True, timeout=60, check=False)
    assert len(p.stdout.splitlines()) == 3
    assert list(pyrun.runroot.iterdir()) == []


def test_dev_null_is_writable_by_non_root(pyrun: Pyrun) -> None:
    """mknod's mode passes through the umask: the devices must still be 0666."""
    r = pyrun("run", "--rm", "-u", "1000", "busybox", "sh", "-c",
              "echo x > /dev/null && stat -c %a /dev/null /dev/zero /dev/urandom")
    assert (r.returncode, r.stdout.split()) == (0, ["666", "666", "666"]), r.stderr


def _dead_container(pyrun: Pyrun, auto_remove: bool, status: str) -> tuple[str, Path | None]:
    """A container whose pyrun died: a dead owner pid, a cgroup at the path
    recorded before creation (as Runtime.run records it)."""
    from pyrun import cgroups
    from pyrun.state import Store

    store = Store(pyrun.root, pyrun.runroot)
    c = store.create(None, {"Image": "busybox", "AutoRemove": auto_remove})
    group = cgroups.path_for(c.id)
    if group is not None:
        group.mkdir(parents=True)
    c.update(Status=status, Owner={"pid": 2**22 + 7, "start": 1},
             CgroupPath=str(group) if group else None)
    return c.id, group


def test_gc_removes_what_a_killed_pyrun_left(pyrun: Pyrun) -> None:
    created, group1 = _dead_container(pyrun, auto_remove=True, status="created")
    exited_rm, group2 = _dead_container(pyrun, auto_remove=True, status="exited")
    kept, group3 = _dead_container(pyrun, auto_remove=False, status="running")
    assert pyrun("run", "--rm", "busybox", "true").returncode == 0
    ids = pyrun("ps", "-a", "-q", "--no-trunc").stdout.split()
    assert created not in ids and exited_rm not in ids  # --rm ones: removed
    assert ids == [kept]  # the other: kept, marked exited, its cgroup gone
    assert "Exited (137)" in pyrun("ps", "-a").stdout
    for group in (group1, group2, group3):
        assert group is None or not group.exists()
    assert pyrun("rm", kept).returncode == 0
