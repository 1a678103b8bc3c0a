"""The container's root filesystem: an overlay of the image's layers with a
per-container writable layer, plus what pyrun reads out of it (users).

overlayfs(5): lowerdir= the read-only layers (topmost first), upperdir= where
the container's writes go, workdir= the kernel's scratch space on the same
filesystem as upperdir. The image directories are never modified.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pyrun import core
from pyrun.config import IdMap
from pyrun.errors import PyrunError, strerror

# mount(2) copies at most one page of options: longer lists must shrink.
OPTIONS_MAX = 4000


def mount_overlay(layers: tuple[Path, ...], upper: Path, work: Path, merged: Path) -> str:
    """Mount the overlay; returns the options used (for --trace).

    A long layer list does not fit in the one page of options mount(2)
    takes. Then every layer gets a short symlink, l/<16 chars>, next to the
    directory holding the layers, and the mount runs with that as its
    working directory and relative lowerdir entries (Docker's overlay2
    driver does the same)."""
    tail = f",upperdir={_escape(str(upper))},workdir={_escape(str(work))}"
    options = "lowerdir=" + ":".join(_escape(str(p)) for p in layers) + tail
    cwd = None
    if len(options) > OPTIONS_MAX:
        cwd, short = _short_links(layers)
        options = "lowerdir=" + ":".join(short) + tail
        if len(options) > OPTIONS_MAX:
            raise PyrunError(f"too many layers for one overlay mount ({len(layers)})")
    saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cwd else -1
    try:
        if cwd:
            os.chdir(cwd)
        core.mount("overlay", str(merged), "overlay", 0, options)
    except OSError as e:
        raise PyrunError(f"mount overlay on {merged}: {strerror(e)}") from None
    finally:
        if saved >= 0:
            os.fchdir(saved)
            os.close(saved)
    return options


def _short_links(layers: tuple[Path, ...]) -> tuple[Path, list[str]]:
    """(directory to mount from, "l/NAME" for each layer)."""
    parents = {p.parent for p in layers}
    if len(parents) != 1:
        raise PyrunError(f"too many layers for one overlay mount ({len(layers)})")
    base = parents.pop().parent
    links = base / "l"
    links.mkdir(exist_ok=True)
    short = []
    for layer in layers:
        name = hashlib.sha256(layer.name.encode()).hexdigest()[:16]
        link = links / name
        with contextlib.suppress(FileExistsError):
            link.symlink_to(Path("..") / layer.parent.name / layer.name)
        short.append(f"l/{name}")
    return base, short


def _escape(path: str) -> str:
    # overlayfs splits its options on "," and lowerdir on ":".
    if any(c in path for c in ",:\\"):
        raise PyrunError(f"overlay layer path {path!r} may not contain ',', ':' or '\\'")
    return path


def unmount(path: Path) -> None:
    """Idempotent: a path that is not mounted (any more) is fine."""
    try:
        core.umount(str(path), detach=True)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise PyrunError(f"unmount {path}: {strerror(e)}") from None


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path (octal escapes of mountinfo decoded)."""
    prefix = str(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def idmapped_layers(layers: tuple[Path, ...], idmap: IdMap, mount_dir: Path) -> tuple[Path, ...]:
    """For --userns private: each layer bind-mounted through an idmap
    (mount_setattr(2) MOUNT_ATTR_IDMAP), so host uid 0 appears as the
    namespace's root with no copy. Raises OSError where the filesystem
    cannot (then shifted_layers is the fallback); mounts made so far are
    undone by unmount_layers."""
    userns = core.userns_fd(idmap.line())
    try:
        out = []
        for i, layer in enumerate(layers):
            target = mount_dir / str(i)
            target.mkdir(parents=True, exist_ok=True)
            core.idmap_mount(str(layer), str(target), userns)
            out.append(target)
        return tuple(out)
    finally:
        os.close(userns)


def unmount_layers(mount_dir: Path) -> None:
    if mount_dir.is_dir():
        for target in sorted(mount_dir.iterdir()):
            unmount(target)


def shifted_layers(layers: tuple[Path, ...], idmap: IdMap, cache: Path) -> tuple[Path, ...]:
    """For --userns private: copies of the layers whose owners are shifted
    into the host range of the user namespace, so that root's files inside
    appear owned by root. Cached per (layer, mapping); made under a temporary
    name and renamed, so a killed pyrun never leaves a half-shifted copy."""
    # Imported here: only this fallback needs them, and start-up time counts.
    import shutil
    import subprocess

    out = []
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    for layer in layers:
        key = hashlib.sha256(f"{layer}:{layer.stat().st_mtime_ns}".encode()).hexdigest()[:16]
        dest = cache / f"{key}-{idmap.outside}-{idmap.size}"
        if not dest.is_dir():
            tmp = cache / f".tmp-{os.getpid()}-{dest.name}"
            shutil.rmtree(tmp, ignore_errors=True)
            # cp -a keeps modes, xattrs, hardlinks and device nodes.
            r = subprocess.run(["cp", "-a", "--", f"{layer}/.", str(tmp)],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise PyrunError(f"copy {layer} for the user namespace: {r.stderr.strip()}")
            _shift_owners(tmp, idmap)
            try:
                os.rename(tmp, dest)
            except OSError:  # a concurrent pyrun made it first
                shutil.rmtree(tmp, ignore_errors=True)
        out.append(dest)
    return tuple(out)


def _shift_owners(top: Path, idmap: IdMap) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames, None]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(path)
            uid = idmap.to_host(st.st_uid) if st.st_uid < idmap.size else st.st_uid
            gid = idmap.to_host(st.st_gid) if st.st_gid < idmap.size else st.st_gid
            os.lchown(path, uid, gid)
            # chown(2) clears setuid/setgid bits: put the mode back.
            if not os.path.islink(path):
                os.chmod(path, st.st_mode & 0o7777)


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str = "/"  # from /etc/passwd, for $HOME


def read_in_root(root: Path, path: str) -> str | None:
    """A file of the container's root, read without following its symlinks
    out of the root (an image could link /etc/passwd to any host file)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = core.open_in_root(root_fd, path)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        return f.read()


def _entries(text: str | None, fields: int) -> list[list[str]]:
    if not text:
        return []
    rows = [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
    # Entries with non-numeric ids are skipped, as libc's getpwent would.
    return [r for r in rows if len(r) >= fields and r[2].isdigit()
            and (fields < 7 or r[3].isdigit())]


def resolve_user(root: Path, spec: str) -> User:
    """-u/--user as Docker and runc resolve it against the container's own
    /etc/passwd and /etc/group: NAME, UID, NAME:GROUP, UID:GID. Supplementary
    groups are the groups of /etc/group that list the user."""
    passwd = _entries(read_in_root(root, "/etc/passwd"), 7)
    groups = _entries(read_in_root(root, "/etc/group"), 4)
    user_part, _, group_part = (spec or "0").partition(":")

    if user_part.isdigit():
        entry = next((r for r in passwd if r[2] == user_part), None)
        uid = int(user_part)
    else:
        entry = next((r for r in passwd if r[0] == user_part), None)
        if entry is None:
            raise PyrunError(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = int(entry[2])
    # A uid with no passwd entry runs with gid 0 and HOME=/, as in Docker.
    name, gid, home = (entry[0], int(entry[3]), entry[5] or "/") if entry else (None, 0, "/")

    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            grow = next((r for r in groups if r[0] == group_part), None)
            if grow is None:
                raise PyrunError(f"unable to find group {group_part}: "
                                 "no matching entries in group file")
            gid = int(grow[2])

    extra = []
    if name is not None and not group_part:
        for row in groups:
            if name in row[3].split(",") and row[2].isdigit():
                extra.append(int(row[2]))
    supplementary = tuple(dict.fromkeys([gid, *extra]))
    return User(uid, gid, supplementary, home)
