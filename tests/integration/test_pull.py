"""Pulling from a real registry (Debian's docker-registry on loopback) into
the store, and running what was pulled."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pyrun
from tests.registry import (
    Registry,
    build_busybox_layout,
    build_layered_layout,
    build_multiarch_layout,
    build_zstd_layout,
    start_registry,
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dest = tmp_path_factory.mktemp("layouts")
    busybox = build_busybox_layout(dest)
    layered = build_layered_layout(dest, busybox)
    return {"busybox": busybox, "layered": layered,
            "multi": build_multiarch_layout(dest, busybox, layered),
            "zstd": build_zstd_layout(dest, layered)}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory,
             layouts: dict[str, Path]) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg") / "open")
    reg.push(layouts["busybox"], "test/busybox:latest")
    reg.push(layouts["layered"], "test/layered:v1")
    reg.push(layouts["multi"], "test/multi:latest", "--all")
    reg.push(layouts["zstd"], "test/zstd:latest")
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory,
                  layouts: dict[str, Path]) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("reg") / "basic", ("alice", "s3cret"))
    reg.push(layouts["busybox"], "private/busybox:latest")
    yield reg
    reg.stop()


def docker_config(tmp_path: Path, host: str, user: str, password: str) -> dict[str, str]:
    cfg = tmp_path / "docker"
    cfg.mkdir(exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return {"DOCKER_CONFIG": str(cfg)}


def run_with_env(pyrun: Pyrun, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pyrun.argv(*args), env={**pyrun.env(), **env}, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def test_pull_then_run(pyrun: Pyrun, registry: Registry) -> None:
    image = f"{registry.host}/test/busybox"
    r = pyrun("pull", image)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Digest: sha256:")
    assert "downloading" in r.stderr and "done" in r.stderr
    listing = pyrun("images").stdout
    assert f"{registry.host}/test/busybox" in listing and "latest" in listing
    info = pyrun.probe_image(image)
    assert info["pid"] == 1
    # the image's config: CMD sh, Env PATH
    r = pyrun("run", "--rm", image, "sh", "-c", "echo $PATH")
    assert r.stdout == "/usr/sbin:/usr/bin:/sbin:/bin\n"
    # a second pull copies nothing
    r = pyrun("pull", image)
    assert "already exists" in r.stderr and "downloading" not in r.stderr


def test_run_pulls_when_missing_and_not_with_never(pyrun: Pyrun, registry: Registry) -> None:
    image = f"{registry.host}/test/busybox:latest"
    r = pyrun("run", "--rm", "--pull", "never", image, "true")
    assert r.returncode == 125 and "--pull never" in r.stderr
    r = pyrun("run", "--rm", image, "true")
    assert r.returncode == 0, r.stderr
    assert "downloading" in r.stderr


def test_pull_by_digest(pyrun: Pyrun, registry: Registry) -> None:
    digest = pyrun("pull", "-q", f"{registry.host}/test/busybox").stdout.strip()
    assert digest.startswith("sha256:") and len(digest) == 71
    r = pyrun("run", "--rm", f"{registry.host}/test/busybox@{digest}", "true")
    assert r.returncode == 0, r.stderr


def test_layers_whiteouts_and_opaque_dirs(pyrun: Pyrun, registry: Registry) -> None:
    image = f"{registry.host}/test/layered:v1"
    r = pyrun("run", "--rm", image, "sh", "-c",
              "ls /data; ls /cache; cat /data/hard; readlink /data/link; stat -c %a /data/suid;"
              "stat -c %h /data/keep")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert "gone" not in out  # deleted in the top layer: really gone
    assert "old" not in out  # the directory was replaced (opaque)
    assert out[:8] == ["fifo", "hard", "keep", "link", "null", "suid", "new", "keep"]
    assert out[8:] == ["/data/keep", "4755", "2"]
    r = pyrun("run", "--rm", image, "sh", "-c",
              "stat -c '%F %t:%T %a' /data/null; stat -c %F /data/fifo; echo x > /data/null")
    assert r.stdout.splitlines() == ["character special file 1:3 666", "fifo"], r.stderr
    assert r.returncode == 0


def test_basic_auth(pyrun: Pyrun, auth_registry: Registry, tmp_path: Path) -> None:
    image = f"{auth_registry.host}/private/busybox"
    r = run_with_env(pyrun, {"DOCKER_CONFIG": str(tmp_path / "none")}, "pull", image)
    assert r.returncode == 125
    assert "authentication required" in r.stderr
    assert r.stderr.count("\n") == 1
    r = run_with_env(pyrun, docker_config(tmp_path, auth_registry.host, "alice", "wrong"),
                     "pull", image)
    assert r.returncode == 125
    assert "wrong user name or password" in r.stderr
    r = run_with_env(pyrun, docker_config(tmp_path, auth_registry.host, "alice", "s3cret"),
                     "pull", image)
    assert r.returncode == 0, r.stderr


def test_bearer_token_auth(pyrun: Pyrun, tmp_path: Path, layouts: dict[str, Path]) -> None:
    """The Docker Hub flow: 401 Bearer challenge -> token service -> JWT."""
    from tests.token_issuer import token_issuer

    with token_issuer(tmp_path, {"bob": "tok3n"}) as issuer:
        reg = start_registry(tmp_path / "token", ("bob", "tok3n"),
                             token=(issuer.realm, issuer.cert_file))
        try:
            reg.push(layouts["busybox"], "team/busybox:latest")
            image = f"{reg.host}/team/busybox"
            issuer.requests.clear()
            r = run_with_env(pyrun, docker_config(tmp_path, reg.host, "bob", "wrong"),
                             "pull", image)
            assert r.returncode == 125
            assert "token service refused the credentials" in r.stderr
            r = run_with_env(pyrun, docker_config(tmp_path, reg.host, "bob", "tok3n"),
                             "pull", image)
            assert r.returncode == 0, r.stderr
            assert "repository:team/busybox:pull" in issuer.requests
            r = run_with_env(pyrun, docker_config(tmp_path, reg.host, "bob", "tok3n"),
                             "run", "--rm", image, "true")
            assert r.returncode == 0, r.stderr
        finally:
            reg.stop()


def test_login_and_logout(pyrun: Pyrun, auth_registry: Registry, tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    host = auth_registry.host
    r = subprocess.run(pyrun.argv("login", "-u", "alice", "--password-stdin", host),
                       env={**pyrun.env(), **env}, input="wrong\n", capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 125 and "wrong user name or password" in r.stderr
    assert not (tmp_path / "cfg/config.json").exists()
    r = subprocess.run(pyrun.argv("login", "-u", "alice", "--password-stdin", host),
                       env={**pyrun.env(), **env}, input="s3cret\n", capture_output=True,
                       text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (0, "Login Succeeded\n"), r.stderr
    cfg = tmp_path / "cfg/config.json"
    assert oct(cfg.stat().st_mode & 0o777) == "0o600"
    assert base64.b64decode(json.loads(cfg.read_text())["auths"][host]["auth"]) == \
        b"alice:s3cret"
    assert run_with_env(pyrun, env, "pull", f"{host}/private/busybox").returncode == 0
    r = run_with_env(pyrun, env, "logout", host)
    assert r.returncode == 0
    assert json.loads(cfg.read_text())["auths"] == {}
    assert run_with_env(pyrun, env, "logout", host).returncode == 125


def test_retries_after_5xx_and_dropped_connections(pyrun: Pyrun, registry: Registry) -> None:
    from tests.registry import flaky_proxy

    with flaky_proxy(registry.host) as (proxy, seen):
        r = pyrun("pull", f"{proxy}/test/layered:v1")
        assert r.returncode == 0, r.stderr
        blobs = {path: n for path, n in seen.items() if "/blobs/" in path}
        assert len(blobs) == 4  # config + 3 layers
        assert set(blobs.values()) == {3}  # 503, dropped, then served
    r = pyrun("run", "--rm", f"{proxy}/test/layered:v1", "cat", "/data/keep")
    assert r.stdout == "keep\n", r.stderr


def test_blobs_redirected_to_other_storage(pyrun: Pyrun, registry: Registry) -> None:
    from tests.registry import redirecting_proxy

    with redirecting_proxy(registry.host) as (proxy, redirected):
        r = pyrun("pull", f"{proxy}/test/layered:v1")
        assert r.returncode == 0, r.stderr
        assert len(redirected) == 4  # the config and 3 layers came from elsewhere
    assert pyrun("run", "--rm", f"{proxy}/test/layered:v1", "cat", "/data/keep").stdout == \
        "keep\n"


def test_pull_killed_midway_is_completed_by_the_next(pyrun: Pyrun, registry: Registry) -> None:
    import threading
    import time

    from tests.registry import flaky_proxy

    stall = threading.Event()
    with flaky_proxy(registry.host, stall) as (proxy, _):
        p = pyrun.popen("pull", f"{proxy}/test/busybox", stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        storage = pyrun.root / "storage"
        deadline = time.monotonic() + 30
        while not list(storage.rglob(".tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        partial = list(storage.rglob(".tmp-*"))
        assert partial, "the pull never started writing the layer"
        p.kill()  # SIGKILL: no cleanup of any kind
        p.wait()
        stall.set()
    assert (pyrun.root / "storage/layers").exists() is False or not list(
        (pyrun.root / "storage/layers").iterdir())
    r = pyrun("pull", f"{registry.host}/test/busybox")
    assert r.returncode == 0, r.stderr
    assert list(storage.rglob(".tmp-*")) == []  # the killed pull's temp files are gone
    assert pyrun("run", "--rm", f"{registry.host}/test/busybox", "true").returncode == 0


def test_multi_platform_index_selects_the_platform(pyrun: Pyrun, registry: Registry) -> None:
    image = f"{registry.host}/test/multi"
    r = pyrun("run", "--rm", image, "ls", "/data")  # linux/amd64: plain busybox
    assert r.returncode == 1 and "No such file" in r.stderr
    r = pyrun("run", "--rm", "--pull", "always", "--platform", "linux/arm64", image,
              "cat", "/data/keep")
    assert r.stdout == "keep\n", r.stderr
    r = pyrun("pull", "--platform", "linux/s390x", image)
    assert r.returncode == 125
    assert "no image for linux/s390x" in r.stderr and "linux/arm64" in r.stderr


def test_zstd_layers(pyrun: Pyrun, registry: Registry) -> None:
    image = f"{registry.host}/test/zstd"
    r = pyrun("pull", image)
    assert r.returncode == 0, r.stderr
    digest = r.stdout.split()[1]
    manifest = json.loads((pyrun.root / "storage/blobs/sha256" /
                           digest.removeprefix("sha256:")).read_text())
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"}
    r = pyrun("run", "--rm", image, "sh", "-c", "cat /data/keep; ls /cache")
    assert r.stdout == "keep\nnew\n", r.stderr


def test_unknown_image_and_tag(pyrun: Pyrun, registry: Registry) -> None:
    r = pyrun("pull", f"{registry.host}/test/nosuch")
    assert r.returncode == 125 and "not found" in r.stderr
    r = pyrun("pull", f"{registry.host}/test/busybox:nosuchtag")
    assert r.returncode == 125 and "not found" in r.stderr
    r = pyrun("pull", "Bad/Name")
    assert r.returncode == 125 and "invalid reference format" in r.stderr


def test_tampered_blob_is_refused_and_nothing_kept(pyrun: Pyrun, tmp_path: Path,
                                                   layouts: dict[str, Path]) -> None:
    reg = start_registry(tmp_path / "tampered")
    try:
        reg.push(layouts["busybox"], "t/busybox:latest")
        index = json.loads((layouts["busybox"] / "index.json").read_text())
        manifest_digest = index["manifests"][0]["digest"]
        manifest = json.loads((layouts["busybox"] / "blobs/sha256" /
                               manifest_digest.removeprefix("sha256:")).read_text())
        layer = manifest["layers"][0]["digest"]
        blob = reg.blob_file(layer)
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        r = pyrun("pull", f"{reg.host}/t/busybox")
        assert r.returncode == 125
        assert "does not match its digest" in r.stderr
        storage = pyrun.root / "storage"
        assert not (storage / "blobs/sha256" / layer.removeprefix("sha256:")).exists()
        leftovers = [p for p in storage.rglob(".tmp-*")]
        assert leftovers == []
        assert not (storage / "layers").exists() or list((storage / "layers").iterdir()) == []
    finally:
        reg.stop()


def test_concurrent_pulls_of_one_image(pyrun: Pyrun, registry: Registry) -> None:
    image = f"{registry.host}/test/layered:v1"
    procs = [pyrun.popen("pull", "-q", image, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert len({o[0] for o in outs}) == 1  # one digest
    layers = list((pyrun.root / "storage/layers").iterdir())
    assert len(layers) == 3 and all(p.is_dir() for p in layers)
    assert os.listdir(pyrun.root / "storage/layers") == [p.name for p in layers]
    assert pyrun("run", "--rm", image, "cat", "/data/keep").stdout == "keep\n"


def test_tag_inspect_history_rmi_prune(pyrun: Pyrun, registry: Registry) -> None:
    image = f"{registry.host}/test/layered:v1"
    assert pyrun("pull", "-q", image).returncode == 0
    assert pyrun("tag", image, "mine:1").returncode == 0
    listing = pyrun("images", "--format", "json").stdout.splitlines()
    rows = [json.loads(line) for line in listing]
    assert {(r["Repository"], r["Tag"]) for r in rows} == {
        (f"{registry.host}/test/layered", "v1"), ("mine", "1")}
    assert len({r["ID"] for r in rows}) == 1  # one image, two names
    (info,) = json.loads(pyrun("image", "inspect", "mine:1").stdout)
    assert info["Id"] == rows[0]["ID"]
    assert set(info["RepoTags"]) == {"docker.io/library/mine:1",
                                     f"{registry.host}/test/layered:v1"}
    assert len(info["RootFS"]["diff_ids"]) == 3
    assert info["Os"] == "linux"
    # by id prefix too, as docker allows
    assert json.loads(pyrun("image", "inspect", info["Id"][7:19]).stdout)[0]["Id"] == info["Id"]
    hist = [json.loads(line) for line in pyrun("history", "--format", "json",
                                                   "mine:1").stdout.splitlines()]
    assert sum(1 for h in hist if h["Size"] > 0) == 3  # one row per layer made
    # an image a container uses is not removed without -f
    assert pyrun("run", "--name", "user", "mine:1", "true").returncode == 0
    r = pyrun("rmi", "mine:1")
    assert r.returncode == 1 and "container user uses it" in r.stderr
    assert pyrun("rm", "user").returncode == 0
    r = pyrun("rmi", "mine:1")
    assert r.returncode == 0 and "Untagged: docker.io/library/mine:1" in r.stdout
    assert "Deleted" not in r.stdout  # still named by the registry tag
    r = pyrun("image", "rm", image)
    assert r.returncode == 0 and "Deleted: " in r.stdout
    storage = pyrun.root / "storage"
    assert list((storage / "layers").iterdir()) == []
    assert list((storage / "blobs/sha256").iterdir()) == []
    assert pyrun("images", "-q").stdout == ""
    assert pyrun("rmi", "nosuch:image").returncode == 1


def test_import_a_rootfs_tar(pyrun: Pyrun, tmp_path: Path) -> None:
    from tests.conftest import BUSYBOX_ROOTFS

    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(BUSYBOX_ROOTFS), "-cf", str(tar), "."], check=True)
    r = pyrun("import", "-c", 'CMD ["echo", "from the image"]', "-c", "ENV GREETING=hi",
              str(tar), "local/bb:1")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:")
    r = pyrun("run", "--rm", "--pull", "never", "local/bb:1")
    assert r.stdout == "from the image\n", r.stderr
    assert pyrun("run", "--rm", "local/bb:1", "sh", "-c", "echo $GREETING").stdout == "hi\n"
    (info,) = json.loads(pyrun("image", "inspect", "local/bb:1").stdout)
    assert info["Id"] == image_id
    assert pyrun("import", "-c", "RUN make", str(tar), "x:1").returncode == 125
    assert pyrun("import", str(tmp_path / "missing.tar"), "x:1").returncode == 125


def test_save_and_load_round_trip(pyrun: Pyrun, registry: Registry, tmp_path: Path) -> None:
    image = f"{registry.host}/test/layered:v1"
    assert pyrun("pull", "-q", image).returncode == 0
    archive = tmp_path / "out.tar"
    r = pyrun("save", "-o", str(archive), image)
    assert r.returncode == 0, r.stderr
    names = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    other = Pyrun(tmp_path / "other-root", tmp_path / "other-run")
    r = other("load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Loaded image: {image}\n"
    assert other("run", "--rm", "--pull", "never", image, "cat", "/data/keep").stdout == "keep\n"
    assert other("rmi", image).returncode == 0


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_load_archives_made_by_skopeo(pyrun: Pyrun, layouts: dict[str, Path], tmp_path: Path,
                                      transport: str) -> None:
    archive = tmp_path / f"{transport}.tar"
    dest = f"{transport}:{archive}:" + ("skopeo/bb:2" if transport == "docker-archive"
                                        else "docker.io/skopeo/bb:2")
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{layouts['layered']}:latest", dest],
                   check=True, capture_output=True)
    r = pyrun("load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    assert "skopeo/bb:2" in r.stdout
    r = pyrun("run", "--rm", "--pull", "never", "skopeo/bb:2", "sh", "-c",
              "cat /data/keep; ls /cache")
    assert r.stdout == "keep\nnew\n", r.stderr


def test_load_rejects_hostile_or_broken_archives(pyrun: Pyrun, tmp_path: Path) -> None:
    import io
    import tarfile
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    r = pyrun("load", "-i", str(evil))
    assert r.returncode == 125 and "not a readable image archive" in r.stderr
    assert not (tmp_path / "escaped").exists()
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    assert pyrun("load", "-i", str(junk)).returncode == 125
    assert pyrun("load", "-i", str(tmp_path / "missing.tar")).returncode == 125


def test_registry_mirror_serves_docker_hub_names(pyrun: Pyrun, registry: Registry,
                                                 layouts: dict[str, Path],
                                                 tmp_path: Path) -> None:
    registry.push(layouts["busybox"], "library/busybox:latest")
    config = tmp_path / "pyrun.json"
    config.write_text(json.dumps({"registry-mirrors": [
        "http://127.0.0.1:1",  # dead: skipped
        f"http://{registry.host}"]}))
    r = run_with_env(pyrun, {"PYRUN_CONFIG": str(config)}, "pull", "busybox")
    assert r.returncode == 0, r.stderr
    assert "mirror http://127.0.0.1:1" in r.stderr and "trying the next" in r.stderr
    assert "docker.io/library/busybox:latest" in r.stdout
    assert pyrun("images", "--format", "json").stdout.count('"Repository": "busybox"') == 1


def test_pull_progress_on_a_terminal(pyrun: Pyrun, registry: Registry) -> None:
    """On a tty the per-layer lines are redrawn in place, with a bar."""
    import pty

    master, slave = pty.openpty()
    try:
        p = pyrun.popen("pull", f"{registry.host}/test/layered:v1", stdout=subprocess.DEVNULL,
                        stderr=slave, stdin=subprocess.DEVNULL)
        assert p.wait(timeout=60) == 0
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = out.decode()
    assert "\x1b[2K" in text and "\x1b[3A" in text  # three layer lines, redrawn
    assert text.count(": done") >= 3
    assert "Downloading [" in text


def test_a_real_debian_image(pyrun: Pyrun, registry: Registry) -> None:
    """debootstrap's minbase root (cached across runs), pushed, pulled, run."""
    from tests.registry import debian_layout

    registry.push(debian_layout(), "test/debian:bookworm")
    image = f"{registry.host}/test/debian:bookworm"
    r = pyrun("run", "--rm", image, "bash", "-c",
              "cat /etc/debian_version; stat -c '%a %U' /usr/bin/passwd; "
              "getent passwd _apt | cut -d: -f1; dpkg-query -W -f='${Package}\\n' dpkg")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("12.")
    assert lines[1:] == ["4755 root", "_apt", "dpkg"]
    # with its own user namespace too: owners shifted, setuid kept
    r = pyrun("run", "--rm", "--userns", "private", image, "stat", "-c", "%a %u",
              "/usr/bin/passwd")
    assert r.stdout == "4755 0\n", r.stderr


def test_export_then_import(pyrun: Pyrun, registry: Registry, tmp_path: Path) -> None:
    image = f"{registry.host}/test/layered:v1"
    r = pyrun("run", "--name", "ex", image, "sh", "-c",
              "echo made inside > /made; rm /data/keep; mkdir /newdir")
    assert r.returncode == 0, r.stderr
    archive = tmp_path / "ex.tar"
    assert pyrun("export", "-o", str(archive), "ex").returncode == 0
    names = set(subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True,
                               check=True).stdout.split())
    assert {"made", "newdir/", "data/suid", "bin/busybox"} <= names
    assert "data/keep" not in names  # deleted in the container: not exported
    assert not [n for n in names if ".wh." in n]
    assert pyrun("import", str(archive), "exported:1").returncode == 0
    r = pyrun("run", "--rm", "exported:1", "sh", "-c", "cat /made; ls /data")
    assert r.stdout == "made inside\nfifo\nhard\nlink\nnull\nsuid\n", r.stderr
    assert pyrun("rm", "ex").returncode == 0
    assert pyrun("export", "nosuch").returncode == 125
