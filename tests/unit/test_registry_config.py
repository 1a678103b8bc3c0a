from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pyrun.errors import PyrunError
from pyrun.image.registry import RegistryConfig, credentials_for, is_loopback


def test_loopback_registries_use_plain_http() -> None:
    for host in ("localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"):
        assert is_loopback(host), host
    for host in ("example.com", "10.0.0.1:5000", "myreg:5000"):
        assert not is_loopback(host), host
    cfg = RegistryConfig()
    assert cfg.endpoints("127.0.0.1:5000") == ["http://127.0.0.1:5000"]
    assert cfg.endpoints("quay.io") == ["https://quay.io"]
    assert cfg.endpoints("docker.io") == ["https://registry-1.docker.io"]


def test_config_file_mirrors_and_insecure(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"insecure-registries": ["myreg:5000"],
                                "registry-mirrors": ["https://mirror.test/"]}))
    cfg = RegistryConfig.load(path)
    assert cfg.endpoints("myreg:5000") == ["http://myreg:5000"]
    assert cfg.endpoints("docker.io") == ["https://mirror.test",
                                          "https://registry-1.docker.io"]
    path.write_text(json.dumps({"registry-mirrors": {"quay.io": ["http://127.0.0.1:1"]}}))
    assert RegistryConfig.load(path).endpoints("quay.io")[0] == "http://127.0.0.1:1"
    assert RegistryConfig.load(tmp_path / "missing.json") == RegistryConfig()
    path.write_text(json.dumps({"registry-mirrors": "nope"}))
    with pytest.raises(PyrunError, match="registry-mirrors"):
        RegistryConfig.load(path)


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    token = base64.b64encode(b"u:p:w").decode()
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": token},
                                          "myreg:5000": {"auth": token}}}))
    assert credentials_for("docker.io", path) == ("u", "p:w")
    assert credentials_for("myreg:5000", path) == ("u", "p:w")
    assert credentials_for("other", path) is None
