"""The caller's terminal in `-t` mode: raw mode, window size, and copying
bytes between the caller and the pty master whose slave is the container's
stdio (the pty itself is made inside the container by the C core)."""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import struct
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the caller's terminal in raw mode (the container's pty does the
    line editing and signals), and restore it on every way out."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def copy_winsize(src: int, dst: int) -> None:
    """TIOCGWINSZ from the caller's terminal, TIOCSWINSZ on the pty master:
    the kernel then sends SIGWINCH to the container's foreground group."""
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return
    rows, cols = struct.unpack("HHHH", size)[:2]
    if rows and cols:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def proxy(master: int, stdin: int | None, stdout: int, pidfd: int) -> None:
    """Copy caller stdin -> master and master -> caller stdout until the
    container's PID 1 exits (its pidfd becomes readable), then drain."""
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ, "master")
    sel.register(pidfd, selectors.EVENT_READ, "exit")
    if stdin is not None:
        sel.register(stdin, selectors.EVENT_READ, "stdin")
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "master":
                    try:
                        data = os.read(master, 65536)
                    except OSError as e:
                        if e.errno != errno.EIO:  # EIO: every slave fd closed
                            raise
                        data = b""
                    if not data:
                        sel.unregister(master)
                        continue
                    _write_all(stdout, data)
                elif key.data == "stdin":
                    data = os.read(key.fd, 65536)
                    if not data:  # caller's EOF: stop reading, as docker does
                        sel.unregister(key.fd)
                        continue
                    _write_all(master, data)
                else:
                    _drain(master, stdout)
                    return
    finally:
        sel.close()


def _drain(master: int, stdout: int) -> None:
    os.set_blocking(master, False)
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        _write_all(stdout, data)
