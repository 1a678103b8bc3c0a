"""Layer unpacking on the real filesystem: every entry type, whiteouts,
and a corpus of hostile tarballs that must write nothing outside."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pyrun.image.unpack import UnpackError, unpack

pytestmark = pytest.mark.root


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
          uid: int = 0, gid: int = 0, link: str = "", major: int = 0, minor: int = 0,
          pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode, info.uid, info.gid, info.linkname = mode, uid, gid, link
    info.devmajor, info.devminor = major, minor
    info.mtime = 1_700_000_000
    if pax:
        info.pax_headers = pax
    return info, data


def tarball(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(layer dir, a sibling `outside` that must stay empty)."""
    layer, outside = tmp_path / "layer", tmp_path / "outside"
    layer.mkdir()
    outside.mkdir()
    return layer, outside


def test_every_entry_type_and_its_metadata(dirs: tuple[Path, Path]) -> None:
    layer, _ = dirs
    unpack(io.BytesIO(tarball(
        entry("./", tarfile.DIRTYPE, mode=0o755),
        entry("etc", tarfile.DIRTYPE, mode=0o755),
        entry("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
        entry("usr/bin/su", data=b"\x7fELF", mode=0o4755),  # parent made implicitly
        entry("home/user", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000),
        entry("home/user/f", data=b"x", uid=1000, gid=1000, mode=0o600),
        entry("bin/sh", tarfile.SYMTYPE, link="/bin/busybox"),
        entry("etc/passwd.hard", tarfile.LNKTYPE, link="etc/passwd"),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3),
        entry("dev/sda", tarfile.BLKTYPE, mode=0o660, major=8, minor=0),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o600),
        entry("tmp", tarfile.DIRTYPE, mode=0o1777),
        entry("cap", data=b"c", pax={"SCHILY.xattr.user.note": "hello"}),
    )), str(layer))
    assert (layer / "etc/passwd").read_bytes() == b"root:x:0:0::/root:/bin/sh\n"
    assert stat.S_IMODE((layer / "usr/bin/su").stat().st_mode) == 0o4755
    st = (layer / "home/user").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o750)
    assert (layer / "home/user/f").stat().st_uid == 1000
    assert os.readlink(layer / "bin/sh") == "/bin/busybox"
    assert (layer / "etc/passwd.hard").stat().st_ino == (layer / "etc/passwd").stat().st_ino
    dev = (layer / "dev/null").stat()
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert stat.S_ISBLK((layer / "dev/sda").stat().st_mode)
    assert stat.S_ISFIFO((layer / "run/fifo").stat().st_mode)
    assert stat.S_IMODE((layer / "tmp").stat().st_mode) == 0o1777
    assert os.getxattr(layer / "cap", "user.note") == b"hello"
    assert int((layer / "etc/passwd").stat().st_mtime) == 1_700_000_000
    assert int((layer / "etc").stat().st_mtime) == 1_700_000_000  # set after its files


def test_whiteouts_and_opaque_directories(dirs: tuple[Path, Path]) -> None:
    layer, _ = dirs
    unpack(io.BytesIO(tarball(
        entry("etc", tarfile.DIRTYPE, mode=0o755),
        entry("etc/.wh.motd", data=b""),
        entry("var/cache", tarfile.DIRTYPE, mode=0o755),
        entry("var/cache/.wh..wh..opq", data=b""),
        entry("var/cache/new", data=b"n"),
    )), str(layer))
    wh = (layer / "etc/motd").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert not (layer / "etc/.wh.motd").exists()
    assert os.getxattr(layer / "var/cache", "trusted.overlay.opaque") == b"y"
    assert not (layer / "var/cache/.wh..wh..opq").exists()
    assert (layer / "var/cache/new").read_bytes() == b"n"


def test_later_entries_replace_earlier_ones(dirs: tuple[Path, Path]) -> None:
    layer, _ = dirs
    unpack(io.BytesIO(tarball(
        entry("x", data=b"first"),
        entry("x", data=b"second"),
        entry("d", tarfile.SYMTYPE, link="/somewhere"),
        entry("d", tarfile.DIRTYPE, mode=0o755),
        entry("d/f", data=b"in a real dir"),
    )), str(layer))
    assert (layer / "x").read_bytes() == b"second"
    assert (layer / "d").is_dir() and not (layer / "d").is_symlink()


def test_absolute_names_are_kept_inside(dirs: tuple[Path, Path]) -> None:
    layer, outside = dirs
    unpack(io.BytesIO(tarball(entry(f"{outside}/abs", data=b"a"))), str(layer))
    assert list(outside.iterdir()) == []
    assert (layer / str(outside).lstrip("/") / "abs").read_bytes() == b"a"


HOSTILE: dict[str, Callable[[Path], bytes]] = {
    "dotdot": lambda out: tarball(entry("../outside/pwned", data=b"x")),
    "dotdot deep": lambda out: tarball(entry("a/b/../../../outside/pwned", data=b"x")),
    "symlink then through it": lambda out: tarball(
        entry("evil", tarfile.SYMTYPE, link=str(out)), entry("evil/pwned", data=b"x")),
    "relative symlink then through it": lambda out: tarball(
        entry("evil", tarfile.SYMTYPE, link="../outside"), entry("evil/pwned", data=b"x")),
    "symlinked parent deep": lambda out: tarball(
        entry("a", tarfile.DIRTYPE), entry("a/b", tarfile.SYMTYPE, link="../../outside"),
        entry("a/b/c/pwned", data=b"x")),
    "hardlink to a host file": lambda out: tarball(
        entry("h", tarfile.LNKTYPE, link="/etc/passwd")),
    "hardlink with dotdot": lambda out: tarball(
        entry("h", tarfile.LNKTYPE, link="../outside/secret")),
    "hardlink through a symlink": lambda out: tarball(
        entry("s", tarfile.SYMTYPE, link=str(out)), entry("h", tarfile.LNKTYPE, link="s/secret")),
    "hardlink to a symlink out": lambda out: tarball(
        entry("s", tarfile.SYMTYPE, link="/etc/shadow"), entry("h", tarfile.LNKTYPE, link="s")),
    "whiteout of the directory itself": lambda out: tarball(entry(".wh..", data=b"")),
    "whiteout through symlink": lambda out: tarball(
        entry("s", tarfile.SYMTYPE, link=str(out)), entry("s/.wh.secret", data=b"")),
    "huge uid": lambda out: tarball(entry("f", data=b"x", uid=2**40)),
    "negative size header": lambda out: tarball(entry("f", data=b"x"))[:124]
    + b"-0000000001\0" + tarball(entry("f", data=b"x"))[136:],
    "size beyond the data": lambda out: _truncated(),
    "not a tar": lambda out: b"this is not a tar archive" * 100,
}


def _truncated() -> bytes:
    data = tarball(entry("big", data=b"y" * 4096))
    return data[:1024]  # the header promises 4096 bytes, 512 follow


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layers_are_rejected_and_write_nothing_outside(
        dirs: tuple[Path, Path], case: str) -> None:
    layer, outside = dirs
    (outside / "secret").write_text("keep")
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(UnpackError):
        unpack(io.BytesIO(HOSTILE[case](outside)), str(layer))
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (outside / "secret").read_text() == "keep"
    assert os.stat(outside / "secret").st_nlink == 1  # no hardlink was made to it
