"""Image archives: `pyrun save` and `pyrun load`.

Two formats, both tar files (or directories, for load):

- an OCI image layout (image-spec, image-layout.md): ``oci-layout``,
  ``index.json`` and ``blobs/sha256/<hex>``. Names come from the index
  annotations ``io.containerd.image.name`` (a full reference) or
  ``org.opencontainers.image.ref.name`` (a tag, or a full reference);
- Docker's `docker save` archive: ``manifest.json`` listing, per image, its
  Config file, RepoTags and uncompressed layer tars.

`save` writes an OCI layout that also carries Docker's ``manifest.json``,
as Docker 25+ does, so either kind of tool can load it. Loading goes
through ImageStore.fetch, exactly like a pull: a layout is a registry whose
blobs are files, and every blob is verified against its digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pyrun.errors import PyrunError
from pyrun.image.reference import parse
from pyrun.image.registry import Manifest, RegistryError
from pyrun.image.store import GZIP_TYPES, TAR_TYPES, ImageStore

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


class Layout:
    """An OCI image layout directory, read like a registry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "index.json").is_file():
            raise PyrunError(f"{root}: not an OCI image layout (no index.json)")

    def _path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or "/" in hexpart:
            raise PyrunError(f"invalid digest {digest!r} in the archive")
        return self.root / "blobs" / "sha256" / hexpart

    def refs(self) -> list[tuple[str, str]]:
        """(name, digest) for every named entry of index.json."""
        index = json.loads((self.root / "index.json").read_text())
        out = []
        for entry in index.get("manifests", []):
            ann = entry.get("annotations") or {}
            name = ann.get(CONTAINERD_NAME) or ann.get(REF_NAME)
            if name:
                if "/" not in name and ":" not in name and CONTAINERD_NAME not in ann:
                    name = f"imported:{name}"  # a bare tag names no repository
                out.append((name, entry["digest"]))
        return out

    def manifest(self, repository: str, reference: str) -> Manifest:
        raw = self._path(reference).read_bytes()
        if "sha256:" + hashlib.sha256(raw).hexdigest() != reference:
            raise RegistryError(f"archive manifest {reference}: content does not match")
        media_type = json.loads(raw).get("mediaType") or (
            INDEX_TYPE if "manifests" in json.loads(raw) else MANIFEST_TYPE)
        return Manifest(media_type, reference, raw)

    def blob(self, repository: str, digest: str, out: IO[bytes],
             on_bytes: Callable[[int], None] | None = None) -> int:
        h = hashlib.sha256()
        size = 0
        with open(self._path(digest), "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if on_bytes is not None:
                    on_bytes(size)
        if "sha256:" + h.hexdigest() != digest:
            raise RegistryError(f"archive blob {digest}: content does not match its digest")
        return size

    def close(self) -> None:
        pass


def _docker_archive_to_layout(root: Path) -> None:
    """Give a `docker save` directory the OCI layout it may lack: its layer
    tars and configs become blobs, each image an OCI manifest in index.json."""
    entries = json.loads((root / "manifest.json").read_text())
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(path: Path) -> tuple[str, int]:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        target = blobs / h.hexdigest()
        if not target.exists():
            shutil.copyfile(path, target)
        return f"sha256:{h.hexdigest()}", target.stat().st_size

    def inside(name: str) -> Path:
        path = (root / name).resolve()
        if not path.is_relative_to(root.resolve()):
            raise PyrunError(f"archive entry {name!r} points outside the archive")
        return path

    index = []
    for entry in entries:
        config_digest, config_size = put(inside(entry["Config"]))
        layers = []
        for name in entry["Layers"]:
            digest, size = put(inside(name))
            with open(inside(name), "rb") as f:
                gz = f.read(2) == b"\x1f\x8b"
            layers.append({"mediaType": GZIP_TYPES[0] if gz else TAR_TYPES[0],
                           "digest": digest, "size": size})
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": config_digest, "size": config_size},
                               "layers": layers}).encode()
        digest = hashlib.sha256(manifest).hexdigest()
        (blobs / digest).write_bytes(manifest)
        for tag in entry.get("RepoTags") or []:
            index.append({"mediaType": MANIFEST_TYPE, "digest": f"sha256:{digest}",
                          "size": len(manifest), "annotations": {CONTAINERD_NAME: tag}})
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": index}))


def load(store: ImageStore, source: Path | IO[bytes]) -> list[str]:
    """Load every named image of an archive (tar file, stream, or an
    unpacked directory) into the store; returns the names."""
    with tempfile.TemporaryDirectory(prefix=".load-", dir=_tmp_dir(store)) as tmp:
        if isinstance(source, Path) and source.is_dir():
            root = source
        else:
            root = Path(tmp)
            try:
                if isinstance(source, Path):
                    tar = tarfile.open(source)  # noqa: SIM115 (closed below)
                else:
                    tar = tarfile.open(fileobj=source, mode="r|*")  # noqa: SIM115
                with tar:
                    # "data": no absolute paths, no .., no links out, no devices.
                    tar.extractall(root, filter="data")
            except (tarfile.TarError, OSError) as e:
                raise PyrunError(f"load: not a readable image archive: {e}") from None
        if not (root / "index.json").exists() and (root / "manifest.json").exists():
            if root is source:
                raise PyrunError("load: a docker-save directory must be given as a tar")
            _docker_archive_to_layout(root)
        layout = Layout(root)
        names = []
        for name, digest in layout.refs():
            ref = parse(name)
            store.tag(ref, store.fetch(layout, ref.repository, digest))
            names.append(ref.familiar)
        if not names:
            raise PyrunError("load: the archive names no image")
        return names


def _tmp_dir(store: ImageStore) -> Path:
    store.dir.mkdir(parents=True, exist_ok=True)
    return store.dir


def save(store: ImageStore, names: list[str], out: IO[bytes]) -> None:
    """Write images as an OCI layout tar that also has Docker's manifest.json."""
    index: list[dict[str, Any]] = []
    docker: list[dict[str, Any]] = []
    blobs: set[str] = set()
    for name in names:
        digest, keys = store.find(name)
        manifest = json.loads(store.read_blob(digest))
        if "config" not in manifest:
            raise PyrunError(f"save: {name} is an index; pull one platform")
        tags = [k for k in keys if "@" not in k] or [name]
        blobs.update([digest, manifest["config"]["digest"],
                      *(layer["digest"] for layer in manifest["layers"])])
        for tag in tags:
            ref = parse(tag)
            index.append({"mediaType": MANIFEST_TYPE, "digest": digest,
                          "size": store.blob_path(digest).stat().st_size,
                          "annotations": {CONTAINERD_NAME: str(ref), REF_NAME: ref.tag or ""}})
        docker.append({"Config": f"blobs/sha256/{manifest['config']['digest'][7:]}",
                       "RepoTags": [parse(t).familiar for t in tags],
                       "Layers": [f"blobs/sha256/{layer['digest'][7:]}"
                                  for layer in manifest["layers"]]})
    with tarfile.open(fileobj=out, mode="w|") as tar:
        def add_bytes(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_bytes("index.json", json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE,
                                            "manifests": index}).encode())
        add_bytes("manifest.json", json.dumps(docker).encode())
        for digest in sorted(blobs):
            path = store.blob_path(digest)
            info = tarfile.TarInfo(f"blobs/sha256/{digest[7:]}")
            info.size, info.mode = path.stat().st_size, 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)

