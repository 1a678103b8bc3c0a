"""pyrun's exceptions, each carrying the exit code Docker would use.

125: pyrun itself failed (bad flag, missing image, mount refused...).
126: the container's command exists but cannot be executed.
127: the container's command was not found.
"""

from __future__ import annotations


class PyrunError(Exception):
    """A failure of pyrun itself; the CLI prints it on one line, exits 125."""

    exit_code = 125


class UsageError(PyrunError):
    """A flag or argument the user gave is invalid."""


class CommandNotFound(PyrunError):
    exit_code = 127


class CommandNotExecutable(PyrunError):
    exit_code = 126
