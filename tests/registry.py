"""A real registry for tests: Debian's docker-registry (distribution 2.8)
on 127.0.0.1 with a free port, and fixture images built with umoci from the
busybox rootfs and pushed with skopeo (as shared/DESIGN.md prescribes)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import BUSYBOX_ROOTFS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str               # 127.0.0.1:PORT
    data: Path              # its storage root
    process: subprocess.Popen[bytes]
    credentials: tuple[str, str] | None = None

    def push(self, layout: Path, name: str, *options: str) -> None:
        creds = ["--dest-creds", ":".join(self.credentials)] if self.credentials else []
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *creds, *options,
                        f"oci:{layout}:latest", f"docker://{self.host}/{name}"],
                       check=True, capture_output=True)

    def blob_file(self, digest: str) -> Path:
        hexpart = digest.removeprefix("sha256:")
        return self.data / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_registry(workdir: Path, credentials: tuple[str, str] | None = None,
                   token: tuple[str, Path] | None = None) -> Registry:
    """credentials: htpasswd Basic auth; token: (realm, CA cert) Bearer auth."""
    workdir.mkdir(parents=True)
    port = free_port()
    auth = ""
    if token:
        from tests.token_issuer import ISSUER, SERVICE

        auth = (f"auth:\n  token:\n    realm: {token[0]}\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {token[1]}\n")
    elif credentials:
        htpasswd = subprocess.run(["htpasswd", "-Bbn", *credentials], check=True,
                                  capture_output=True, text=True).stdout
        (workdir / "htpasswd").write_text(htpasswd)
        auth = f"auth:\n  htpasswd:\n    realm: pyrun-test\n    path: {workdir}/htpasswd\n"
    (workdir / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}")
    proc = subprocess.Popen(["docker-registry", "serve", str(workdir / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # 401: up, and asking for credentials
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("docker-registry did not start") from None
            time.sleep(0.05)
    return Registry(f"127.0.0.1:{port}", workdir / "data", proc, credentials)


def umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True)


def build_busybox_layout(dest: Path) -> Path:
    """An OCI layout: one layer with the busybox rootfs, CMD sh."""
    layout, bundle = dest / "busybox", dest / "busybox-bundle"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:latest")
    umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    shutil.copytree(BUSYBOX_ROOTFS, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    umoci("repack", "--image", f"{layout}:latest", str(bundle))
    umoci("config", "--image", f"{layout}:latest", "--config.cmd", "sh",
          "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--config.workingdir", "/")
    shutil.rmtree(bundle)
    return layout


def build_layered_layout(dest: Path, base: Path) -> Path:
    """busybox plus two layers: one adds files (a hardlink, a symlink, a
    setuid file, a fifo, a directory), the next deletes a file and replaces
    a directory's content (a whiteout and an opaque directory)."""
    layout, bundle = dest / "layered", dest / "layered-bundle"
    shutil.copytree(base, layout)
    umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    root = bundle / "rootfs"
    (root / "data").mkdir()
    (root / "data/keep").write_text("keep\n")
    (root / "data/gone").write_text("to be deleted\n")
    (root / "cache").mkdir()
    (root / "cache/old").write_text("old\n")
    (root / "data/hard").hardlink_to(root / "data/keep")
    (root / "data/link").symlink_to("/data/keep")
    (root / "data/suid").write_text("#!/bin/sh\n")
    (root / "data/suid").chmod(0o4755)
    os.mknod(root / "data/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(root / "data/null", 0o666)  # mknod's mode passes through the umask
    os.mkfifo(root / "data/fifo")
    umoci("repack", "--image", f"{layout}:latest", str(bundle))
    shutil.rmtree(bundle)
    umoci("unpack", "--image", f"{layout}:latest", str(bundle))
    root = bundle / "rootfs"
    (root / "data/gone").unlink()
    shutil.rmtree(root / "cache")
    (root / "cache").mkdir()
    (root / "cache/new").write_text("new\n")
    umoci("repack", "--image", f"{layout}:latest", str(bundle))
    shutil.rmtree(bundle)
    return layout


@contextmanager
def flaky_proxy(upstream: str, stall: threading.Event | None = None
                ) -> Iterator[tuple[str, dict[str, int]]]:
    """A proxy to a registry that fails each blob twice before serving it:
    first a 503, then a connection dropped halfway through the body. With
    `stall`, it instead sends half of every blob and waits for the event.
    Yields (host:port, requests seen per path)."""
    seen: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            n = seen[self.path] = seen.get(self.path, 0) + 1
            is_blob = "/blobs/" in self.path
            if is_blob and n == 1 and stall is None:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            req = urllib.request.Request(f"http://{upstream}{self.path}",
                                         headers={k: v for k, v in self.headers.items()
                                                  if k.lower() in ("accept", "authorization")})
            try:
                resp = urllib.request.urlopen(req, timeout=10)
                status, body, headers = resp.status, resp.read(), resp.headers
            except urllib.error.HTTPError as e:
                status, body, headers = e.code, e.read(), e.headers
            self.send_response(status)
            for key in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate"):
                if headers.get(key):
                    self.send_header(key, headers[key])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if is_blob and stall is not None and int(headers.get("Content-Length") or 0) > 4096:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                stall.wait(30)
                self.close_connection = True
                return
            if is_blob and n == 2:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve(Handler) as port:
        yield f"127.0.0.1:{port}", seen


@contextmanager
def redirecting_proxy(upstream: str) -> Iterator[tuple[str, list[str]]]:
    """Manifests proxied, blobs answered with a 307 to the upstream registry,
    the way registries backed by object storage send clients elsewhere.
    Yields (host:port, the redirected paths)."""
    redirected: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if "/blobs/" in self.path:
                redirected.append(self.path)
                self.send_response(307)
                self.send_header("Location", f"http://{upstream}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            req = urllib.request.Request(f"http://{upstream}{self.path}",
                                         headers={"Accept": self.headers.get("Accept", "")})
            with urllib.request.urlopen(req, timeout=10) as resp:
                body, ctype = resp.read(), resp.headers.get("Content-Type", "")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve(Handler) as port:
        yield f"127.0.0.1:{port}", redirected


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server on a free loopback port, in a thread, for a test's
    duration; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()


def build_multiarch_layout(dest: Path, amd64: Path, arm64: Path) -> Path:
    """An OCI layout whose "latest" is an image index of two platforms:
    linux/amd64 -> the image of `amd64`, linux/arm64 -> that of `arm64`."""
    import hashlib
    import json

    layout = dest / "multi"
    shutil.copytree(arm64, layout)  # its blobs include the base image's
    entries = []
    for src, arch in ((amd64, "amd64"), (arm64, "arm64")):
        entry = json.loads((src / "index.json").read_text())["manifests"][0]
        entry.pop("annotations", None)
        entry["platform"] = {"os": "linux", "architecture": arch}
        entries.append(entry)
        for blob in (src / "blobs/sha256").iterdir():
            target = layout / "blobs/sha256" / blob.name
            if not target.exists():
                shutil.copy(blob, target)
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    digest = hashlib.sha256(index).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(index)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
        "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    return layout


def build_zstd_layout(dest: Path, src: Path) -> Path:
    """`src` with every layer recompressed as zstd (media type tar+zstd).
    The config's diff ids (digests of the uncompressed tars) do not change."""
    import gzip
    import hashlib
    import json

    import zstandard

    layout = dest / "zstd"
    shutil.copytree(src, layout)
    blobs = layout / "blobs/sha256"

    def put(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    index = json.loads((layout / "index.json").read_text())
    entry = index["manifests"][0]
    manifest = json.loads((blobs / entry["digest"][7:]).read_text())
    for layer in manifest["layers"]:
        tar = gzip.decompress((blobs / layer["digest"][7:]).read_bytes())
        layer["digest"], layer["size"] = put(zstandard.ZstdCompressor().compress(tar))
        layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    entry["digest"], entry["size"] = put(json.dumps(manifest).encode())
    (layout / "index.json").write_text(json.dumps(index))
    return layout


DEBIAN_CACHE = Path("/var/cache/pyrun-test")


def debian_layout() -> Path:
    """An OCI layout of `debootstrap --variant=minbase bookworm`, built once
    and cached (debootstrap takes a minute or two and needs Debian's
    mirror, a package registry); made under a temp name, then renamed."""
    layout = DEBIAN_CACHE / "debian-layout"
    if (layout / "index.json").exists():
        return layout
    DEBIAN_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".debian-", dir=DEBIAN_CACHE))
    try:
        umoci("init", "--layout", str(tmp / "layout"))
        umoci("new", "--image", f"{tmp / 'layout'}:latest")
        umoci("unpack", "--image", f"{tmp / 'layout'}:latest", str(tmp / "bundle"))
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm",
                        str(tmp / "bundle" / "rootfs"), "http://deb.debian.org/debian"],
                       check=True, capture_output=True)
        umoci("repack", "--image", f"{tmp / 'layout'}:latest", str(tmp / "bundle"))
        umoci("config", "--image", f"{tmp / 'layout'}:latest", "--config.cmd", "bash",
              "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        os.rename(tmp / "layout", layout)
        return layout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
