"""The runtime's pure decisions: command, exit status, user resolution."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pyrun import runtime
from pyrun.config import ContainerSpec
from pyrun.errors import PyrunError, UsageError
from pyrun.image import Image, ImageConfig, LocalImages
from pyrun.rootfs import resolve_user


def image(entrypoint: tuple[str, ...] = (), cmd: tuple[str, ...] = ()) -> Image:
    return Image("x", (Path("/"),), ImageConfig(entrypoint=entrypoint, cmd=cmd))


def test_command_follows_dockers_override_rules() -> None:
    img = image(entrypoint=("/ep",), cmd=("default",))
    assert runtime.command_for(ContainerSpec(), img) == ["/ep", "default"]
    assert runtime.command_for(ContainerSpec(command=("a", "b")), img) == ["/ep", "a", "b"]
    # --entrypoint drops the image's CMD too
    assert runtime.command_for(ContainerSpec(entrypoint="/x"), img) == ["/x"]
    assert runtime.command_for(ContainerSpec(entrypoint="", command=("ls",)), img) == ["ls"]
    with pytest.raises(UsageError, match="no command"):
        runtime.command_for(ContainerSpec(), image())


def test_exit_code_mapping() -> None:
    assert runtime.exit_code(3 << 8, None) == 3
    assert runtime.exit_code(signal.SIGTERM, None) == 143
    assert runtime.exit_code(signal.SIGKILL, None) == 137
    # pyrun applied SIGINT's default action to a PID 1 without a handler
    assert runtime.exit_code(signal.SIGKILL, signal.SIGINT) == 130


def test_pid1_handles_reads_sigcgt() -> None:
    # pytest's own process ignores nothing special but handles SIGINT
    assert runtime.pid1_handles(os.getpid(), signal.SIGINT)


def make_root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text(
        "root:x:0:\nuser:x:1000:\naudio:x:29:user\nvideo:x:44:user,other\n")
    return tmp_path


def test_resolve_user(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert resolve_user(root, "") == resolve_user(root, "root")
    u = resolve_user(root, "user")
    assert (u.uid, u.gid, u.home) == (1000, 1000, "/home/user")
    assert resolve_user(root, "").home == "/root"
    assert set(u.groups) == {1000, 29, 44}
    assert resolve_user(root, "1000").gid == 1000
    u = resolve_user(root, "4242")  # unknown uid: allowed, gid 0
    assert (u.uid, u.gid) == (4242, 0)
    u = resolve_user(root, "user:audio")
    assert (u.uid, u.gid, u.groups) == (1000, 29, (29,))
    u = resolve_user(root, "5:6")
    assert (u.uid, u.gid) == (5, 6)
    with pytest.raises(PyrunError, match="unable to find user nobody"):
        resolve_user(root, "nobody")
    with pytest.raises(PyrunError, match="unable to find group nogroup"):
        resolve_user(root, "user:nogroup")


def test_resolve_user_does_not_follow_symlinks_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").symlink_to(outside)  # absolute: resolved in the root
    with pytest.raises(PyrunError, match="unable to find user evil"):
        resolve_user(root, "evil")


def test_local_images(tmp_path: Path) -> None:
    (tmp_path / "img" / "rootfs").mkdir(parents=True)
    (tmp_path / "img" / "config.json").write_text(
        '{"config": {"Cmd": ["sh"], "Env": ["A=1"], "WorkingDir": "/w", '
        '"Volumes": {"/data": {}}, "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"}}')
    img = LocalImages([tmp_path]).lookup("img:latest")
    assert img.config.volumes == ("/data",)
    assert img.config.exposed_ports == ("80/tcp",)
    assert img.config.stop_signal == "SIGQUIT"
    assert img.config.cmd == ("sh",)
    assert img.config.env == ("A=1",)
    assert img.config.workdir == "/w"
    with pytest.raises(PyrunError, match="not found"):
        LocalImages([tmp_path]).lookup("nope")
    # registry references are not directory images: the store answers them
    assert LocalImages([tmp_path]).find("docker.io/library/alpine") is None
    assert LocalImages([tmp_path]).find("img:v2") is None


def test_catalog_never_pulls_with_pull_never(tmp_path: Path) -> None:
    from pyrun.image import Catalog

    with pytest.raises(PyrunError, match="--pull never"):
        Catalog(tmp_path, pull="never").lookup("127.0.0.1:1/nothing")
    with pytest.raises(PyrunError, match="invalid --pull"):
        Catalog(tmp_path, pull="sometimes")


def test_import_changes() -> None:
    from pyrun.image import apply_changes

    assert apply_changes(['CMD ["sh", "-c", "x"]', "ENTRYPOINT /init --flag", "ENV A=1",
                          "ENV B two", "WORKDIR /w", "USER nobody"]) == {
        "Cmd": ["sh", "-c", "x"], "Entrypoint": ["/bin/sh", "-c", "/init --flag"],
        "Env": ["A=1", "B=two"], "WorkingDir": "/w", "User": "nobody"}
    for bad in ("RUN make", "CMD [1, 2]", "CMD [oops", "WORKDIR relative"):
        with pytest.raises(PyrunError, match="invalid --change"):
            apply_changes([bad])
