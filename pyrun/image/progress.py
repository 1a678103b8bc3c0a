"""Pull progress, one status per layer, as Docker shows it.

On a terminal the lines are redrawn in place (ANSI: cursor up, erase line),
with a bar and byte counts while a layer downloads. Anywhere else (a pipe,
a CI log) each event is one plain line, and byte counts are not printed.
Several download threads report at once: a lock keeps the screen whole.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

BAR = 30


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False,
                 tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.last_draw = 0.0
        self.lock = threading.Lock()

    def event(self, layer: str, status: str) -> None:
        """A layer changed state: downloading, verified, extracting, done..."""
        if self.quiet:
            return
        with self.lock:
            if not self.tty:
                print(f"{layer}: {status}", file=self.stream, flush=True)
                return
            self.lines[layer] = f"{layer}: {status}"
            self._draw()

    def note(self, text: str) -> None:
        """A line that is not about one layer (a mirror skipped...)."""
        if self.quiet:
            return
        with self.lock:
            if self.tty:
                self.lines[f"\0{len(self.lines)}"] = text
                self._draw()
            else:
                print(text, file=self.stream, flush=True)

    def transferred(self, layer: str, done: int, total: int) -> None:
        """Bytes of a layer so far; drawn at most 10 times a second."""
        if self.quiet or not self.tty:
            return
        now = time.monotonic()
        if now - self.last_draw < 0.1 and done < total:
            return
        with self.lock:
            filled = BAR * done // total if total else BAR
            bar = "=" * max(filled - 1, 0) + (">" if filled < BAR else "=") + " " * (BAR - filled)
            self.lines[layer] = f"{layer}: Downloading [{bar}] {_size(done)}/{_size(total)}"
            self._draw()

    def _draw(self) -> None:
        self.last_draw = time.monotonic()
        out = [f"\x1b[{self.drawn}A"] if self.drawn else []
        for line in self.lines.values():
            out.append(f"\r\x1b[2K{line}\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self.drawn = len(self.lines)
