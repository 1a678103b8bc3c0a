"""Host-side root filesystem pieces: idmapped layers and the shifted copy."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from pyrun import rootfs
from pyrun.config import IdMap
from pyrun.rootfs import mounts_under

pytestmark = pytest.mark.root

MAP = IdMap(0, 200000, 65536)


def make_layer(tmp_path: Path) -> Path:
    layer = tmp_path / "layer"
    (layer / "home").mkdir(parents=True)
    (layer / "suid").write_text("x")
    os.chmod(layer / "suid", 0o4755)
    os.chown(layer / "home", 1000, 1000)
    (layer / "link").symlink_to("/suid")
    os.lchown(layer / "link", 5, 5)
    return layer


def test_shifted_copy_moves_owners_into_the_range_and_keeps_modes(tmp_path: Path) -> None:
    layer = make_layer(tmp_path)
    (out,) = rootfs.shifted_layers((layer,), MAP, tmp_path / "cache")
    assert os.lstat(out).st_uid == 200000
    assert os.lstat(out / "home").st_uid == 201000
    st = os.lstat(out / "suid")
    assert (st.st_uid, st.st_gid) == (200000, 200000)
    assert stat.S_IMODE(st.st_mode) == 0o4755  # chown cleared setuid; it was put back
    assert os.lstat(out / "link").st_uid == 200005
    assert os.readlink(out / "link") == "/suid"
    # the layer itself is untouched, and the copy is reused
    assert os.lstat(layer / "home").st_uid == 1000
    assert rootfs.shifted_layers((layer,), MAP, tmp_path / "cache") == (out,)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]


def test_idmapped_layers_show_host_root_as_the_range(tmp_path: Path) -> None:
    layer = make_layer(tmp_path)
    mounts = tmp_path / "lower"
    (mapped,) = rootfs.idmapped_layers((layer,), MAP, mounts)
    try:
        assert os.lstat(mapped / "suid").st_uid == 200000
        assert os.lstat(mapped / "home").st_uid == 201000
        assert os.lstat(layer / "suid").st_uid == 0
        # read-only: a layer is shared by every container of the image
        with pytest.raises(OSError) as e:
            (mapped / "new").write_text("x")
        assert e.value.errno == errno.EROFS
    finally:
        rootfs.unmount_layers(mounts)
    assert mounts_under(mounts) == []


def test_long_layer_lists_fit_in_one_mount(tmp_path: Path) -> None:
    """150 layers of 64-hex names: ~10 kB of options, over mount(2)'s page."""
    layers_dir = tmp_path / "storage" / "layers"
    layers = []
    for i in range(150):
        layer = layers_dir / f"{i:064x}"
        layer.mkdir(parents=True)
        (layer / f"file{i}").write_text(str(i))
        layers.append(layer)
    (layers[0] / "shadowed").write_text("top")
    (layers[-1] / "shadowed").write_text("bottom")
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    cwd = os.getcwd()
    options = rootfs.mount_overlay(tuple(layers), upper, work, merged)
    try:
        assert len(options) < 4096
        assert os.getcwd() == cwd  # restored
        assert (merged / "file0").read_text() == "0"
        assert (merged / "file149").read_text() == "149"
        assert (merged / "shadowed").read_text() == "top"  # the first layer is the topmost
    finally:
        rootfs.unmount(merged)
    assert mounts_under(tmp_path) == []
