from __future__ import annotations

from pathlib import Path

import pytest

from pyrun import caps, config
from pyrun.errors import UsageError


def test_docker_default_caps_are_the_14_docker_grants() -> None:
    assert caps.resolve() == 0xA80425FB
    assert len(caps.names(caps.resolve())) == 14


def test_cap_add_and_drop() -> None:
    bits = caps.resolve(add=["SYS_ADMIN"], drop=["cap_chown", "NET_RAW"])
    assert bits & (1 << caps.number("SYS_ADMIN"))
    assert not bits & (1 << caps.number("CHOWN"))
    assert not bits & (1 << caps.number("NET_RAW"))
    assert caps.resolve(drop=["ALL"]) == 0
    assert caps.resolve(add=["KILL"], drop=["ALL"]) == 1 << caps.number("KILL")
    assert caps.resolve(privileged=True) == caps.all_caps()


def test_unknown_capability_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown capability 'NOPE'"):
        caps.resolve(add=["NOPE"])


def test_namespaces_clone_flags() -> None:
    flags = config.Namespaces().clone_flags()
    for f in (config.CLONE_NEWNS, config.CLONE_NEWPID, config.CLONE_NEWUTS,
              config.CLONE_NEWIPC, config.CLONE_NEWNET, config.CLONE_NEWCGROUP):
        assert flags & f
    assert not flags & config.CLONE_NEWUSER
    shared = config.Namespaces(pid=False, net=False, user=True).clone_flags()
    assert not shared & config.CLONE_NEWPID
    assert not shared & config.CLONE_NEWNET
    assert shared & config.CLONE_NEWUSER


def test_parse_env_copies_unset_key_from_environment() -> None:
    env = {"FOO": "bar"}
    assert config.parse_env(["A=1", "FOO", "MISSING", "B="], env) == ["A=1", "FOO=bar", "B="]
    with pytest.raises(UsageError):
        config.parse_env(["=x"], env)


def test_env_file(tmp_path: Path) -> None:
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=1\nB=two words\n")
    assert config.read_env_file(str(f)) == ["A=1", "B=two words"]
    with pytest.raises(UsageError, match="env file"):
        config.read_env_file(str(tmp_path / "missing"))


def test_merge_env_later_wins_in_first_order() -> None:
    assert config.merge_env(["PATH=/bin", "A=1"], ["A=2", "B=3"]) == ["PATH=/bin", "A=2", "B=3"]


def test_parse_volume(tmp_path: Path) -> None:
    v = config.parse_volume(f"{tmp_path}:/data:ro")
    assert (v.source, v.target, v.readonly) == (tmp_path, "/data", True)
    assert not config.parse_volume(f"{tmp_path}:/data/../x").readonly
    assert config.parse_volume(f"{tmp_path}:/data/../x").target == "/x"
    for bad in ("nocolon", f"{tmp_path}:relative", f"{tmp_path}:/x:rx", "name:/x",
                f"{tmp_path}/missing:/x"):
        with pytest.raises(UsageError):
            config.parse_volume(bad)


def test_tmpfs_options() -> None:
    t = config.parse_tmpfs("/run:size=1m,noexec")
    assert t.target == "/run"
    flags, data = config.tmpfs_flags(t.options)
    assert flags == config.MS_NOEXEC
    assert data == "size=1m"
    with pytest.raises(UsageError):
        config.parse_tmpfs("run")


def test_namespace_modes() -> None:
    assert config.parse_userns("private") is True
    assert config.parse_userns("host") is False
    assert config.parse_network("none") is True
    assert config.parse_network("host") is False
    with pytest.raises(UsageError, match="--network"):
        config.parse_network("bridge0")
    with pytest.raises(UsageError, match="--pid"):
        config.parse_ns_mode("--pid", "container:x")


def test_container_names() -> None:
    assert config.check_name("web-1.a_b") == "web-1.a_b"
    for bad in ("-x", "a/b", "", "a b"):
        with pytest.raises(UsageError):
            config.check_name(bad)


def test_subid_range(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\npyrun:300000:65536\n")
    subgid.write_text("pyrun:300000:65536\n")
    m = config.subid_range(files=(str(subuid), str(subgid)))
    assert (m.inside, m.outside, m.size) == (0, 300000, 65536)
    assert m.line() == "0 300000 65536\n"
    assert m.to_host(1000) == 301000
    with pytest.raises(UsageError):
        m.to_host(70000)
    # no entry (or different ranges): Docker-like default
    subgid.write_text("")
    assert config.subid_range(files=(str(subuid), str(subgid))).outside == 100000
