"""What a container is made of, asserted from inside it with the probe."""

from __future__ import annotations

import os
import socket

import pytest

from tests.conftest import Pyrun

pytestmark = pytest.mark.root

KINDS = ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user")


def host_ns() -> dict[str, int]:
    return {k: os.stat(f"/proc/self/ns/{k}").st_ino for k in KINDS}


def test_pid1_and_only_container_processes(pyrun: Pyrun) -> None:
    info = pyrun.probe()
    assert info["pid"] == 1
    assert info["ppid"] == 0
    assert info["pids"] == [1]


def test_each_requested_namespace_is_new_and_others_shared(pyrun: Pyrun) -> None:
    host = host_ns()
    info = pyrun.probe()
    for kind in ("pid", "mnt", "uts", "ipc", "net", "cgroup"):
        assert info["ns"][kind] != host[kind], kind
    assert info["ns"]["user"] == host["user"]  # --userns host is the default

    shared = pyrun.probe("--pid", "host", "--uts", "host", "--ipc", "host",
                         "--network", "host", "--cgroupns", "host")
    for kind in ("pid", "uts", "ipc", "net", "cgroup", "user"):
        assert shared["ns"][kind] == host[kind], kind
    assert shared["ns"]["mnt"] != host["mnt"]  # the root filesystem is always its own
    assert shared["pid"] != 1


def test_hostname_isolated(pyrun: Pyrun) -> None:
    before = socket.gethostname()
    info = pyrun.probe("--hostname", "box1")
    assert info["hostname"] == "box1"
    assert socket.gethostname() == before
    r = pyrun("run", "--rm", "--hostname", "box1", "busybox", "cat", "/etc/hostname",
              "/etc/hosts")
    assert r.stdout.startswith("box1\n")
    assert "127.0.0.1\tlocalhost" in r.stdout
    # default: the short container id, as Docker does
    default = pyrun.probe()["hostname"]
    assert len(default) == 12 and all(c in "0123456789abcdef" for c in default)


def test_network_namespace_has_only_loopback_and_it_is_up(pyrun: Pyrun) -> None:
    r = pyrun("run", "--rm", "busybox", "ls", "/sys/class/net")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["lo"]
    # lo is up: a server and a client inside can talk over 127.0.0.1
    r = pyrun("run", "--rm", "busybox", "sh", "-c",
              "nc -l -p 7777 -e echo hello & sleep 0.3; nc 127.0.0.1 7777 </dev/null")
    assert r.stdout == "hello\n", r.stderr


def test_cgroup_namespace_root(pyrun: Pyrun) -> None:
    info = pyrun.probe()
    assert info["cgroup"].strip().endswith("0::/")


def test_docker_default_capabilities(pyrun: Pyrun) -> None:
    c = pyrun.probe()["caps"]
    assert c["CapBnd"] == c["CapEff"] == c["CapPrm"] == "00000000a80425fb"
    assert c["CapInh"] == c["CapAmb"] == "0000000000000000"


def test_cap_add_drop_and_privileged(pyrun: Pyrun) -> None:
    c = pyrun.probe("--cap-drop", "CHOWN", "--cap-add", "SYS_ADMIN")["caps"]
    eff = int(c["CapEff"], 16)
    assert not eff & 1  # CAP_CHOWN
    assert eff & (1 << 21)  # CAP_SYS_ADMIN
    with open("/proc/self/status") as f:  # all of pyrun's own (the caller's)
        everything = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapBnd:"))
    assert int(pyrun.probe("--privileged")["caps"]["CapBnd"], 16) == everything
    r = pyrun("run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "1:1", "/tmp")
    assert r.returncode == 1
    assert "Operation not permitted" in r.stderr


def test_non_root_user_has_no_effective_caps(pyrun: Pyrun) -> None:
    info = pyrun.probe("-u", "user")
    assert (info["uid"], info["gid"]) == (1000, 1000)
    assert {29, 44, 1000} <= set(info["groups"])
    assert info["caps"]["CapEff"] == "0000000000000000"
    assert info["caps"]["CapBnd"] == "00000000a80425fb"
    numeric = pyrun.probe("-u", "4242:4343")
    assert (numeric["uid"], numeric["gid"]) == (4242, 4343)


def test_no_new_privileges(pyrun: Pyrun) -> None:
    assert pyrun.probe()["no_new_privs"] == 0
    assert pyrun.probe("--security-opt", "no-new-privileges")["no_new_privs"] == 1


def test_userns_private_maps_root_to_an_unprivileged_range(pyrun: Pyrun) -> None:
    info = pyrun.probe("--userns", "private")
    uid_map = info["uid_map"].split()
    gid_map = info["gid_map"].split()
    assert uid_map[0] == gid_map[0] == "0"
    assert int(uid_map[1]) >= 1000 and int(uid_map[2]) >= 65536
    assert info["uid"] == 0
    assert info["ns"]["user"] != os.stat("/proc/self/ns/user").st_ino
    # the image's files appear owned by root inside
    r = pyrun("run", "--rm", "--userns", "private", "busybox", "stat", "-c", "%u:%g %a",
              "/bin/busybox", "/root", "/home/user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["0:0 755", "0:0 700", "1000:1000 755"]
    # and root inside can write its own files (a mapped owner)
    r = pyrun("run", "--rm", "--userns", "private", "busybox", "sh", "-c",
              "echo x > /root/f && chown user /root/f && stat -c %U /root/f")
    assert (r.returncode, r.stdout) == (0, "user\n"), r.stderr


def test_userns_root_is_not_host_root(pyrun: Pyrun, tmp_path: os.PathLike[str]) -> None:
    secret = os.path.join(tmp_path, "secret")
    with open(secret, "w") as f:
        f.write("host root only")
    os.chmod(secret, 0o600)
    r = pyrun("run", "--rm", "--userns", "private", "-v", f"{secret}:/secret", "busybox",
              "cat", "/secret")
    assert r.returncode == 1
    assert "Permission denied" in r.stderr
