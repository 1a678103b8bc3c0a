"""Unpack one image layer (a tar stream) into a directory, safely.

A layer comes from the network: it must not be able to write one byte
outside its own directory, whatever its entries say. The rules:

- Names: leading "/" and "./" are stripped (Docker does the same); any ".."
  component, an empty name, or a NUL is rejected.
- Every entry's parent is opened with openat2(RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS) from the layer's own directory fd: a path that would
  cross a symlink (say an entry "etc/x" after "etc -> /etc") or leave the
  layer is rejected by the kernel itself, not by string checks.
- Symlinks are created as they are (an absolute target means "in the
  container's root") and are never followed while unpacking.
- Hardlinks must name a regular file already unpacked in this same layer,
  found with the same openat2 rules.
- Whiteouts (OCI image-spec, layer.md): ".wh.NAME" becomes an overlayfs
  whiteout (a 0/0 character device named NAME); ".wh..wh..opq" marks its
  directory opaque (xattr trusted.overlay.opaque=y).
- Owners, modes (setuid/setgid/sticky included), mtimes, xattrs (PAX
  SCHILY.xattr.*), device nodes and fifos are kept: this runs as root.

Any violation raises UnpackError; the caller unpacks into a temporary
directory and deletes it on error, so a hostile layer leaves nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from typing import IO

from pyrun import core
from pyrun.errors import PyrunError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
MAX_ID = 2**32 - 2  # (uid_t)-1 is "no change" to chown(2)
MAX_NAME = 4096


class UnpackError(PyrunError):
    """The layer is malformed or hostile."""


def _clean_name(name: str) -> str:
    """The entry's path relative to the layer root, or UnpackError."""
    if "\0" in name or len(name) > MAX_NAME:
        raise UnpackError(f"invalid entry name {name[:100]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnpackError(f"entry {name!r} points outside the layer (..)")
    return "/".join(parts)


class _Layer:
    """The destination directory, as an fd all lookups start from."""

    def __init__(self, dest: str) -> None:
        self.fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []  # metadata set at the end

    def close(self) -> None:
        os.close(self.fd)

    def open_dir(self, path: str, create: bool = True) -> int:
        """An fd of directory `path` (relative), creating missing parents the
        way Docker does, never through a symlink or out of the layer."""
        if not path:
            return os.dup(self.fd)
        try:
            return core.openat2(self.fd, path, os.O_RDONLY | os.O_DIRECTORY,
                                core.RESOLVE_BENEATH_NO_SYMLINKS)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnpackError(f"entry below a symlink: {path!r}") from None
            if e.errno == errno.EXDEV:
                raise UnpackError(f"entry {path!r} leads outside the layer") from None
            if e.errno == errno.ENOTDIR:
                raise UnpackError(f"entry below a non-directory: {path!r}") from None
            if e.errno != errno.ENOENT or not create:
                raise
        head, _, tail = path.rpartition("/")
        parent = self.open_dir(head)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(tail, 0o755, dir_fd=parent)
            return self.open_dir(path, create=False)
        finally:
            os.close(parent)

    def remove(self, parent: int, name: str) -> None:
        """An entry replaces what an earlier entry of this layer put there
        (a directory stays a directory if the new entry is one too)."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _rmtree_at(parent, name)
        else:
            os.unlink(name, dir_fd=parent)


def _rmtree_at(parent: int, name: str) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=parent)
    try:
        for entry in os.listdir(fd):
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _rmtree_at(fd, entry)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def _check_ids(info: tarfile.TarInfo) -> None:
    if not (0 <= info.uid <= MAX_ID and 0 <= info.gid <= MAX_ID):
        raise UnpackError(f"entry {info.name!r} has an invalid owner {info.uid}:{info.gid}")
    if info.size < 0 or not 0 <= info.mode <= 0o7777:
        raise UnpackError(f"entry {info.name!r} has an invalid size or mode")


def _set_metadata(parent: int, name: str, info: tarfile.TarInfo) -> None:
    """Owner first, then mode: chown(2) clears setuid/setgid bits."""
    os.chown(name, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
    for key, value in info.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            os.setxattr(f"/proc/self/fd/{parent}/{name}", key[len("SCHILY.xattr."):],
                        value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
    if not info.issym():
        os.chmod(name, info.mode, dir_fd=parent)
    mtime = max(0, int(info.mtime))
    os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)


def _whiteout(layer: _Layer, parent: int, name: str) -> None:
    if name == OPAQUE_MARKER:
        os.setxattr(f"/proc/self/fd/{parent}", OPAQUE_XATTR, b"y")
        return
    target = name[len(WHITEOUT_PREFIX):]
    if target in ("", ".", ".."):
        raise UnpackError(f"invalid whiteout {name!r}")
    layer.remove(parent, target)
    # overlayfs(5): a 0/0 character device hides the name in lower layers.
    os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)


def _extract(layer: _Layer, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
    path = _clean_name(info.name)
    if not path:
        return  # the root itself ("./")
    _check_ids(info)
    head, _, name = path.rpartition("/")
    parent = layer.open_dir(head)
    try:
        if name.startswith(WHITEOUT_PREFIX):
            _whiteout(layer, parent, name)
            return
        if info.isdir():
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    layer.remove(parent, name)
                    os.mkdir(name, 0o700, dir_fd=parent)
            except FileNotFoundError:
                os.mkdir(name, 0o700, dir_fd=parent)
            # Directory metadata last: files created inside would bump mtime.
            layer.dirs.append((path, info))
            return
        layer.remove(parent, name)
        if info.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o600, dir_fd=parent)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(info)
                if src is not None:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
        elif info.issym():
            os.symlink(info.linkname, name, dir_fd=parent)
        elif info.islnk():
            _hardlink(layer, parent, name, info)
            return  # a hardlink shares its target's metadata
        elif info.ischr() or info.isblk():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(info.devmajor, info.devminor),
                     dir_fd=parent)
        elif info.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent)
        else:
            raise UnpackError(f"entry {info.name!r} has an unsupported type {info.type!r}")
        _set_metadata(parent, name, info)
    finally:
        os.close(parent)


def _hardlink(layer: _Layer, parent: int, name: str, info: tarfile.TarInfo) -> None:
    target = _clean_name(info.linkname)
    if not target:
        raise UnpackError(f"hardlink {info.name!r} has no target")
    try:
        fd = core.openat2(layer.fd, target, os.O_PATH | os.O_NOFOLLOW,
                          core.RESOLVE_BENEATH_NO_SYMLINKS)
    except OSError as e:
        raise UnpackError(f"hardlink {info.name!r} -> {info.linkname!r}: target not in this "
                          f"layer ({os.strerror(e.errno or 0).lower()})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnpackError(f"hardlink {info.name!r} -> {info.linkname!r}: not a file")
        # linkat(2) from the fd itself: no second lookup of the target path.
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=parent, follow_symlinks=True)
    finally:
        os.close(fd)


def unpack(stream: IO[bytes], dest: str) -> None:
    """Unpack an uncompressed or gzip tar stream into the existing empty
    directory dest. On UnpackError dest holds a partial layer: the caller
    removes it."""
    layer = _Layer(dest)
    try:
        try:
            tar = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115 (closed below)
        except tarfile.TarError as e:
            raise UnpackError(f"not a tar archive: {e}") from None
        with tar:
            try:
                for info in tar:
                    _extract(layer, tar, info)
            except tarfile.TarError as e:
                raise UnpackError(f"corrupt tar archive: {e}") from None
        for path, info in reversed(layer.dirs):  # deepest first
            head, _, name = path.rpartition("/")
            parent = layer.open_dir(head, create=False)
            try:
                _set_metadata(parent, name, info)
            finally:
                os.close(parent)
    finally:
        layer.close()
