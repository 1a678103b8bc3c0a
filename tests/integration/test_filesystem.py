"""The container's root and its mounts: /proc, /sys, /dev, masks, binds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BUSYBOX_ROOTFS, Pyrun

pytestmark = pytest.mark.root


def targets(info: dict[str, list[dict[str, str]]]) -> dict[str, dict[str, str]]:
    return {m["target"]: m for m in info["mounts"]}


def test_standard_mounts(pyrun: Pyrun) -> None:
    m = targets(pyrun.probe())
    assert m["/"]["fstype"] == "overlay"
    assert m["/proc"]["fstype"] == "proc"
    assert m["/sys"]["fstype"] == "sysfs" and "ro" in m["/sys"]["options"].split(",")
    assert m["/dev"]["fstype"] == "tmpfs"
    assert m["/dev/pts"]["fstype"] == "devpts"
    assert m["/dev/shm"]["fstype"] == "tmpfs"
    assert m["/dev/mqueue"]["fstype"] == "mqueue"


def test_dev_holds_only_the_default_devices(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "busybox", "ls", "/dev")
    assert set(r.stdout.split()) == {"null", "zero", "full", "random", "urandom", "tty", "pts",
                                     "shm", "mqueue", "fd", "stdin", "stdout", "stderr",
                                     "ptmx", "core"}
    r = pyrun("run", "--rm", "busybox", "sh", "-c",
              "echo x > /dev/null && head -c 4 /dev/zero | wc -c && readlink /dev/stdout")
    assert r.stdout.split() == ["4", "/proc/self/fd/1"]


def test_masked_paths(pyrun: Pyrun) -> None:
    m = targets(pyrun.probe())
    assert m["/proc/keys"]["source"] != "proc"  # /dev/null bound over it
    assert m["/proc/timer_list"]["fstype"] == "tmpfs" or m["/proc/timer_list"]
    assert m["/sys/firmware"]["fstype"] == "tmpfs"
    r = pyrun("run", "--rm", "busybox", "sh", "-c",
              "wc -c < /proc/keys; ls /sys/firmware | wc -l")
    assert r.stdout.split() == ["0", "0"]


def test_readonly_paths(pyrun: Pyrun) -> None:
    m = targets(pyrun.probe())
    for path in ("/proc/sys", "/proc/bus", "/proc/irq", "/proc/fs"):
        if path in m:
            assert "ro" in m[path]["options"].split(","), path
    assert "/proc/sys" in m
    r = pyrun("run", "--rm", "busybox", "probe", "write", "/proc/sys/kernel/hostname")
    assert r.json()["ok"] is False
    assert r.json()["errno"] == 30  # EROFS


def test_privileged_has_no_masks(pyrun: Pyrun) -> None:
    m = targets(pyrun.probe("--privileged"))
    assert "/proc/keys" not in m
    assert "/proc/sys" not in m


def test_rootfs_dir_is_never_modified(pyrun: Pyrun, tmp_path: Path) -> None:
    before = sorted(p.name for p in (BUSYBOX_ROOTFS / "etc").iterdir())
    r = pyrun("run", "--rm", "--rootfs", str(BUSYBOX_ROOTFS), "/bin/sh", "-c",
              "echo hi > /etc/new && rm /etc/group && exit 3")
    assert r.returncode == 3, r.stderr
    assert sorted(p.name for p in (BUSYBOX_ROOTFS / "etc").iterdir()) == before


def test_writes_do_not_outlive_the_container(pyrun: Pyrun) -> None:
    pyrun("run", "--rm", "busybox", "sh", "-c", "echo x > /root/mark")
    r = pyrun("run", "--rm", "busybox", "ls", "/root")
    assert r.stdout == ""


def test_read_only_root_with_tmpfs(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c",
              "echo ok > /tmp/x && cat /tmp/x; touch /y")
    assert r.stdout == "ok\n"
    assert "Read-only file system" in r.stderr
    assert r.returncode == 1


def test_bind_mounts_rw_and_ro(pyrun: Pyrun, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in").write_text("from host\n")
    r = pyrun("run", "--rm", "-v", f"{data}:/data", "busybox", "sh", "-c",
              "cat /data/in && echo from container > /data/out")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from host\n"
    assert (data / "out").read_text() == "from container\n"

    r = pyrun("run", "--rm", "-v", f"{data}:/data:ro", "busybox", "probe", "write", "/data/x")
    assert r.json()["errno"] == 30  # EROFS
    assert not (data / "x").exists()


def test_bind_mount_target_symlink_cannot_escape(pyrun: Pyrun, tmp_path: Path) -> None:
    """An image symlink pointing at a host path must not redirect a mount."""
    root = tmp_path / "evilroot"
    import shutil
    shutil.copytree(BUSYBOX_ROOTFS, root, symlinks=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (root / "mnt").symlink_to(victim)  # absolute host path inside the image
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("x")
    r = pyrun("run", "--rm", "--rootfs", str(root), "-v", f"{src}:/mnt", "/bin/ls", "/mnt")
    assert list(victim.iterdir()) == []  # nothing was mounted on the host path
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["payload"]


def test_workdir_env_and_entrypoint(pyrun: Pyrun, tmp_path: Path) -> None:
    envfile = tmp_path / "env"
    envfile.write_text("FROM_FILE=1\nOVER=file\n")
    r = pyrun("run", "--rm", "-w", "/new/dir", "--env-file", str(envfile), "-e", "OVER=flag",
              "-e", "A=b c", "busybox", "sh", "-c", 'pwd; echo "$FROM_FILE $OVER $A $HOME"')
    assert r.stdout == "/new/dir\n1 flag b c /root\n", r.stderr
    r = pyrun("run", "--rm", "--entrypoint", "echo", "busybox", "hello", "world")
    assert r.stdout == "hello world\n"
    info = pyrun.probe("-e", "X=1")
    assert "X=1" in info["env"]
    assert any(e.startswith("PATH=") for e in info["env"])
    assert f"HOSTNAME={info['hostname']}" in info["env"]
