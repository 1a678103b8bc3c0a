"""pyrun's exceptions, each carrying the exit code Docker would use.

125: pyrun itself failed (bad flag, missing image, mount refused...).
126: the container's command exists but cannot be executed.
127: the container's command was not found.
"""

from __future__ import annotations

import os


class PyrunError(Exception):
    """A failure of pyrun itself; the CLI prints it on one line, exits 125."""

    exit_code = 125


class UsageError(PyrunError):
    """A flag or argument the user gave is invalid."""


class CommandNotFound(PyrunError):
    exit_code = 127


class CommandNotExecutable(PyrunError):
    exit_code = 126


def strerror(e: OSError) -> str:
    """'no such file or directory': the lowercase errno text pyrun's one-line
    messages end with (crun's style)."""
    return (os.strerror(e.errno) if e.errno else str(e)).lower()
