"""The content-addressed image store, and pulling into it.

    <root>/storage/blobs/sha256/<hex>    manifests, configs, compressed layers
    <root>/storage/layers/<hex>/         a layer unpacked, named by its diff id
                                         (the digest of the uncompressed tar),
                                         shared by every image that has it
    <root>/storage/repositories.json     "registry/repo:tag" -> manifest digest

Every file appears by rename(2) of a complete, verified temp file or
directory, under a per-digest flock: two pulls of the same or overlapping
images wait for each other, and a pull killed at any point leaves only
temp names (".tmp-*"), which the next pull of that content replaces.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pyrun.errors import PyrunError
from pyrun.image import DEFAULT_PLATFORM, Image, ImageConfig
from pyrun.image.progress import Progress
from pyrun.image.reference import Reference, parse
from pyrun.state import file_lock, write_json

GZIP_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip",
              "application/vnd.docker.image.rootfs.diff.tar.gzip")
TAR_TYPES = ("application/vnd.oci.image.layer.v1.tar",)
ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd",)
PARALLEL = 3  # layers downloaded at once, as Docker's max-concurrent-downloads


class _Hashing:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.sha.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self.sha.hexdigest()


class _HashingWriter:
    """A write-only stream that hashes what passes through it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()


def _remove_stale(final: Path) -> None:
    """Temp files of `final` left by a pull that was killed. Called under
    the digest's lock, so no live pull is writing them."""
    for stale in final.parent.glob(f".tmp-*-{final.name}"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef"
                                                         for c in hexpart):
        raise PyrunError(f"invalid digest {digest!r}")
    return hexpart


class ImageStore:
    def __init__(self, root: Path, progress: Progress | None = None) -> None:
        self.dir = root / "storage"
        self.progress = progress or Progress()

    # ---- paths and locks ------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.dir / "blobs" / "sha256" / _hex(digest)

    def layer_path(self, diff_id: str) -> Path:
        return self.dir / "layers" / _hex(diff_id)

    def _lock(self, name: str) -> Any:
        locks = self.dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return file_lock(locks / name)

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise PyrunError(f"blob {digest} is missing from the store") from None

    # ---- writing ------------------------------------------------------------
    def fetch_blob(self, client: Any, repository: str, digest: str,
                   on_bytes: Callable[[int], None] | None = None) -> Path:
        """The blob, downloaded and verified unless already stored."""
        path = self.blob_path(digest)
        if path.exists():
            return path
        with self._lock(f"blob-{_hex(digest)}"):
            if path.exists():  # another pull brought it while we waited
                return path
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(path)
            tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
            try:
                with open(tmp, "wb") as f:
                    client.blob(repository, digest, f, on_bytes)
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return path

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"
            tmp.write_bytes(data)
            os.rename(tmp, path)
        return digest

    def unpack_layer(self, blob: Path, media_type: str, diff_id: str) -> Path:
        """The layer unpacked under its diff id, verified, made once."""
        from pyrun.image.unpack import unpack

        dest = self.layer_path(diff_id)
        if dest.is_dir():
            return dest
        with self._lock(f"layer-{_hex(diff_id)}"):
            if dest.is_dir():
                return dest
            dest.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(dest)
            tmp = dest.parent / f".tmp-{os.getpid()}-{dest.name}"
            tmp.mkdir(mode=0o755)
            try:
                with open(blob, "rb") as raw:
                    stream: Any  # GzipFile, a raw file or a zstd reader
                    if media_type in GZIP_TYPES:
                        stream = gzip.GzipFile(fileobj=raw, mode="rb")
                    elif media_type in TAR_TYPES:
                        stream = raw
                    elif media_type in ZSTD_TYPES:
                        import zstandard

                        stream = zstandard.ZstdDecompressor().stream_reader(raw)
                    else:
                        raise PyrunError(f"unsupported layer type {media_type!r}")
                    hashing = _Hashing(stream)
                    unpack(hashing, str(tmp))  # type: ignore[arg-type]
                    got = hashing.drain()
                if got != diff_id:
                    raise PyrunError(f"layer {blob.name[:12]}: its content has diff id {got}, "
                                     f"the image config says {diff_id}")
                os.rename(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return dest

    # ---- tags ---------------------------------------------------------------
    def _repositories(self) -> dict[str, str]:
        try:
            doc: dict[str, str] = json.loads((self.dir / "repositories.json").read_text())
            return doc
        except (OSError, ValueError):
            return {}

    def tag(self, ref: Reference, manifest_digest: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock("repositories"):
            repos = self._repositories()
            if ref.tag:
                repos[f"{ref.name}:{ref.tag}"] = manifest_digest
            repos[f"{ref.name}@{manifest_digest}"] = manifest_digest
            write_json(self.dir / "repositories.json", repos)

    def resolve(self, ref: Reference) -> str | None:
        repos = self._repositories()
        if ref.digest:
            return ref.digest if self.blob_path(ref.digest).exists() else None
        return repos.get(f"{ref.name}:{ref.tag}")

    def images(self) -> list[tuple[str, str]]:
        """(name:tag, manifest digest) of every tagged image."""
        return sorted((k, v) for k, v in self._repositories().items() if "@" not in k)

    def find(self, text: str) -> tuple[str, list[str]]:
        """An image by reference, or by (a prefix of) its id: its manifest
        digest and the repositories.json keys that name it."""
        repos = self._repositories()
        bare = text.removeprefix("sha256:")
        if len(bare) >= 4 and all(c in "0123456789abcdef" for c in bare):
            by_id = {d for d in set(repos.values())
                     if self.config_digest(d).removeprefix("sha256:").startswith(bare)}
            if len(by_id) > 1:
                raise PyrunError(f"image id {text!r} is ambiguous")
            if by_id:
                found = by_id.pop()
                return found, [k for k, v in repos.items() if v == found]
        ref = parse(text)
        digest = self.resolve(ref)
        if digest is None:
            raise PyrunError(f"no such image: {text}")
        keys = [f"{ref.name}:{ref.tag}"] if ref.tag and not ref.digest else [
            k for k, v in repos.items() if v == digest]
        return digest, keys

    def config_digest(self, manifest_digest: str) -> str:
        return str(json.loads(self.read_blob(manifest_digest))["config"]["digest"])

    def untag(self, keys: list[str]) -> None:
        """Remove names; a digest whose last tag goes loses its @digest name
        too. The data goes with prune()."""
        with self._lock("repositories"):
            repos = self._repositories()
            for key in keys:
                repos.pop(key, None)
            tagged = {v for k, v in repos.items() if "@" not in k}
            repos = {k: v for k, v in repos.items() if "@" not in k or v in tagged}
            write_json(self.dir / "repositories.json", repos)

    def tag_as(self, source: str, target: str) -> None:
        digest, _ = self.find(source)
        ref = parse(target)
        if ref.digest:
            raise PyrunError(f"cannot tag with a digest: {target}")
        self.tag(ref, digest)

    def prune(self, in_use: set[str] | frozenset[str] = frozenset()) -> tuple[int, int]:
        """Delete blobs and layers that neither a named image nor a container
        (`in_use`: manifest digests) refers to; returns how many of each.
        Under the repositories lock: no tag appears meanwhile."""
        with self._lock("repositories"):
            keep_blobs: set[str] = set()
            keep_layers: set[str] = set()
            live = set(self._repositories().values()) | {
                d for d in in_use if self.blob_path(d).exists()}
            for digest in live:
                keep_blobs.add(digest)
                doc = json.loads(self.read_blob(digest))
                for m in doc.get("manifests", []):  # an index: its manifests
                    keep_blobs.add(m["digest"])
                if "config" in doc:
                    keep_blobs.add(doc["config"]["digest"])
                    keep_blobs.update(layer["digest"] for layer in doc.get("layers", []))
                    config = json.loads(self.read_blob(doc["config"]["digest"]))
                    keep_layers.update(config.get("rootfs", {}).get("diff_ids", []))
            blobs = layers = 0
            for path in (self.dir / "blobs" / "sha256").glob("*"):
                if not path.name.startswith(".") and f"sha256:{path.name}" not in keep_blobs:
                    path.unlink()
                    blobs += 1
            for path in (self.dir / "layers").glob("*"):
                if not path.name.startswith(".") and f"sha256:{path.name}" not in keep_layers:
                    shutil.rmtree(path)
                    layers += 1
            for link in (self.dir / "l").glob("*"):  # rootfs.mount_overlay's short links
                if not link.exists():
                    link.unlink()
            return blobs, layers

    def inspect(self, manifest_digest: str) -> dict[str, Any]:
        """Docker's `image inspect` fields that the store knows."""
        manifest = json.loads(self.read_blob(manifest_digest))
        config = json.loads(self.read_blob(manifest["config"]["digest"]))
        names = [k for k, v in self._repositories().items() if v == manifest_digest]
        return {
            "Id": manifest["config"]["digest"],
            "RepoTags": sorted(k for k in names if "@" not in k),
            "RepoDigests": sorted(k for k in names if "@" in k),
            "Created": config.get("created", ""),
            "Architecture": config.get("architecture", ""),
            "Os": config.get("os", ""),
            "Config": config.get("config", {}),
            "RootFS": config.get("rootfs", {}),
            "Size": sum(int(layer.get("size", 0)) for layer in manifest.get("layers", [])),
            "Manifest": manifest_digest,
        }

    def history(self, manifest_digest: str) -> list[dict[str, Any]]:
        """config.history, newest first, each with the size of its layer
        (entries marked empty_layer made none)."""
        manifest = json.loads(self.read_blob(manifest_digest))
        config = json.loads(self.read_blob(manifest["config"]["digest"]))
        sizes = iter(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
        rows = []
        for entry in config.get("history", []):
            size = 0 if entry.get("empty_layer") else next(sizes, 0)
            rows.append({"Created": entry.get("created", ""),
                         "CreatedBy": entry.get("created_by", ""),
                         "Comment": entry.get("comment", ""), "Size": size})
        return list(reversed(rows))

    # ---- reading an image -----------------------------------------------
    def image(self, name: str, manifest_digest: str) -> Image:
        manifest = json.loads(self.read_blob(manifest_digest))
        config_doc = json.loads(self.read_blob(manifest["config"]["digest"]))
        diff_ids = config_doc.get("rootfs", {}).get("diff_ids", [])
        layers = [self.layer_path(d) for d in diff_ids]
        missing = [p for p in layers if not p.is_dir()]
        if missing:
            raise PyrunError(f"image {name}: {len(missing)} layer(s) missing: pull it again")
        # overlayfs wants the topmost layer first
        return Image(name=name, layers=tuple(reversed(layers)),
                     config=ImageConfig.from_json(config_doc), id=manifest["config"]["digest"],
                     manifest=manifest_digest)

    def lookup(self, text: str) -> Image | None:
        ref = parse(text)
        digest = self.resolve(ref)
        return self.image(ref.familiar, digest) if digest else None

    # ---- importing ----------------------------------------------------------
    def import_tar(self, stream: IO[bytes], name: str, config: dict[str, Any]) -> str:
        """`docker import`: a flat root filesystem tar becomes a one-layer
        image named `name`; `config` is its "config" object (Cmd, Env...).
        Returns the manifest digest."""
        import time

        ref = parse(name)
        if ref.digest:
            raise PyrunError(f"cannot import as a digest: {name}")
        self.dir.mkdir(parents=True, exist_ok=True)
        blobs = self.dir / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        # The layer is stored gzip-compressed, hashing both forms on the way.
        tmp = blobs / f".tmp-{os.getpid()}-import"
        try:
            raw_sha = hashlib.sha256()
            with open(tmp, "wb") as out:
                gz_out = _HashingWriter(out)
                with gzip.GzipFile(fileobj=gz_out, mode="wb", mtime=0) as gz:
                    while chunk := stream.read(1 << 20):
                        raw_sha.update(chunk)
                        gz.write(chunk)
            diff_id = "sha256:" + raw_sha.hexdigest()
            layer_digest = "sha256:" + gz_out.sha.hexdigest()
            size = tmp.stat().st_size
            path = self.blob_path(layer_digest)
            if not path.exists():
                os.rename(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.unpack_layer(self.blob_path(layer_digest), GZIP_TYPES[0], diff_id)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        config_doc = {"architecture": "amd64", "os": "linux", "created": created,
                      "config": config, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                      "history": [{"created": created, "created_by": "pyrun import",
                                   "comment": "Imported from tarball"}]}
        config_raw = json.dumps(config_doc, sort_keys=True).encode()
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": self.put_blob(config_raw), "size": len(config_raw)},
                    "layers": [{"mediaType": GZIP_TYPES[0], "digest": layer_digest,
                                "size": size}]}
        digest = self.put_blob(json.dumps(manifest, sort_keys=True).encode())
        self.tag(ref, digest)
        return digest

    # ---- pulling ------------------------------------------------------------
    def _pull_layers(self, client: Any, repository: str, layers: list[dict[str, Any]],
                     diff_ids: list[str]) -> None:
        """Download (in parallel, PARALLEL at a time) and unpack the layers
        that are not stored yet. The threads are done before this returns:
        pyrun spawns containers from a single-threaded process only."""
        from concurrent.futures import ThreadPoolExecutor

        def one(layer: dict[str, Any], diff_id: str) -> None:
            short = layer["digest"][7:19]
            if self.layer_path(diff_id).is_dir():
                self.progress.event(short, "already exists")
                return
            size = int(layer.get("size", 0))
            self.progress.event(short, f"downloading {size} bytes")
            blob = self.fetch_blob(client, repository, layer["digest"],
                                   lambda done: self.progress.transferred(short, done, size))
            self.progress.event(short, "verified, extracting")
            self.unpack_layer(blob, layer["mediaType"], diff_id)
            self.progress.event(short, "done")

        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = [pool.submit(one, layer, diff_id)
                       for layer, diff_id in zip(layers, diff_ids, strict=True)]
            for future in futures:
                future.result()  # the first failure, after all have ended

    def fetch(self, source: Any, repository: str, reference: str,
              platform: str = DEFAULT_PLATFORM) -> str:
        """Bring one image from `source` (a registry.Client, or a local
        layout.Layout: anything with manifest() and blob()) into the store:
        the platform's manifest of an index, its config, its layers. Returns
        the manifest digest; tagging is the caller's."""
        from pyrun.image import registry

        os_name, _, arch = platform.partition("/")
        arch, _, variant = arch.partition("/")
        manifest = source.manifest(repository, reference)
        if manifest.media_type in registry.INDEX_TYPES:
            self.put_blob(manifest.raw)
            digest = registry.select_platform(manifest.json(), os_name, arch, variant or None)
            manifest = source.manifest(repository, digest)
        doc = manifest.json()
        config_path = self.fetch_blob(source, repository, doc["config"]["digest"])
        diff_ids = json.loads(config_path.read_bytes()).get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(doc.get("layers", [])):
            raise PyrunError(f"{repository}@{manifest.digest}: the manifest has "
                             f"{len(doc.get('layers', []))} layers, its config "
                             f"{len(diff_ids)} diff ids")
        self._pull_layers(source, repository, doc["layers"], diff_ids)
        self.put_blob(manifest.raw)
        return str(manifest.digest)

    def pull(self, text: str, platform: str = DEFAULT_PLATFORM) -> str:
        """Pull an image from its registry, trying its configured mirrors
        first (a mirror that fails or lacks the image is skipped, as Docker
        does); returns the manifest digest."""
        from pyrun.image import registry

        ref = parse(text)
        endpoints = registry.RegistryConfig.load().endpoints(ref.registry)
        for i, base in enumerate(endpoints):
            client = registry.Client(ref.registry, base=base)
            try:
                digest = self.fetch(client, ref.repository, ref.pull_ref, platform)
                break
            except registry.RegistryError as e:
                if i == len(endpoints) - 1:
                    raise
                self.progress.note(f"mirror {base}: {e}; trying the next")
            finally:
                client.close()
        self.tag(ref, digest)
        return digest
