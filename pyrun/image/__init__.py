"""Images: the name -> root filesystem seam.

`Catalog.lookup(name)` is what `run` asks. It answers from, in order: the
content-addressed store (pyrun.image.store), then directory images pyrun
knows by short name (the embedded busybox, a ``rootfs/`` and an OCI
``config.json``, for stores it was not imported into), and then pulls from
the registry when the image is missing (``--pull missing``, Docker's
default), always, or never.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyrun.errors import PyrunError


def host_platform() -> str:
    """This host as an OCI platform: linux/amd64, linux/arm64/v8..."""
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7", "armv6l": "arm/v6",
            "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}.get(machine, machine)
    return f"linux/{arch}"


DEFAULT_PLATFORM = host_platform()

# The embedded busybox image is built by `make rootfs` next to the package.
BUILTIN_DIR = Path(__file__).resolve().parent.parent.parent / "rootfs" / "build"


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image config ("config" object) a run uses."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    volumes: tuple[str, ...] = ()        # recorded; pyrun has no named volumes yet
    exposed_ports: tuple[str, ...] = ()  # recorded for the networking to come
    stop_signal: str = ""                # for `stop` of detached containers

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> ImageConfig:
        cfg = doc.get("config") or {}
        if not isinstance(cfg, dict):
            raise PyrunError("image config: 'config' is not an object")

        def strings(key: str) -> tuple[str, ...]:
            value = cfg.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PyrunError(f"image config: {key} is not a list of strings")
            return tuple(value)

        def keys(key: str) -> tuple[str, ...]:
            value = cfg.get(key) or {}
            return tuple(sorted(value)) if isinstance(value, dict) else ()

        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=strings("Env"),
            workdir=str(cfg.get("WorkingDir") or ""),
            user=str(cfg.get("User") or ""),
            volumes=keys("Volumes"),
            exposed_ports=keys("ExposedPorts"),
            stop_signal=str(cfg.get("StopSignal") or ""),
        )


@dataclass(frozen=True)
class Image:
    name: str
    layers: tuple[Path, ...]  # lower directories, topmost first
    config: ImageConfig = field(default_factory=ImageConfig)
    id: str = ""  # the config's digest, for images of the store
    manifest: str = ""  # the manifest's digest, for images of the store


def image_for_rootfs(path: Path) -> Image:
    """--rootfs DIR: a bare directory is an image with one layer, no config."""
    if not path.is_dir():
        raise PyrunError(f"rootfs {path}: not a directory")
    return Image(name=str(path), layers=(path.resolve(),))


class LocalImages:
    """Images kept as directories: <dir>/<name>/{rootfs/,config.json}."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    def find(self, name: str) -> Image | None:
        short = name.removesuffix(":latest")
        if "/" in short or ":" in short or "@" in short or short in ("", ".", ".."):
            return None
        for d in self.dirs:
            image_dir = d / short
            if (image_dir / "rootfs").is_dir():
                doc = {}
                config_path = image_dir / "config.json"
                if config_path.exists():
                    try:
                        doc = json.loads(config_path.read_text())
                    except ValueError as e:
                        raise PyrunError(f"image {name}: invalid config.json: {e}") from None
                return Image(name=short, layers=((image_dir / "rootfs").resolve(),),
                             config=ImageConfig.from_json(doc))
        return None

    def lookup(self, name: str) -> Image:
        image = self.find(name)
        if image is None:
            hint = ""
            if name.removesuffix(":latest") == "busybox":
                hint = " (run `make rootfs` to build the embedded busybox image)"
            raise PyrunError(f"image {name!r} not found{hint}")
        return image


PULL_POLICIES = ("missing", "always", "never")


class Catalog:
    """Directory images first, then the store, pulling per the policy."""

    def __init__(self, root: Path, pull: str = "missing", platform: str = DEFAULT_PLATFORM) -> None:
        if pull not in PULL_POLICIES:
            raise PyrunError(f"invalid --pull {pull!r}: expected missing, always or never")
        self.local = LocalImages([root / "images", BUILTIN_DIR])
        self.root = root
        self.pull = pull
        self.platform = platform

    def lookup(self, name: str) -> Image:
        from pyrun.image.store import ImageStore

        store = ImageStore(self.root)
        if self.pull != "always":
            found = store.lookup(name)
            if found is not None:
                return found
            image = self.local.find(name)
            if image is not None:
                return image
        if self.pull == "never":
            raise PyrunError(f"image {name!r} not found and --pull never")
        digest = store.pull(name, self.platform)
        found = store.lookup(name)
        if found is None:
            raise PyrunError(f"image {name!r}: pulled {digest} but cannot find it")
        return found


def apply_changes(changes: list[str] | tuple[str, ...]) -> dict[str, object]:
    """`import --change` instructions (Dockerfile syntax) as an OCI config
    object: CMD and ENTRYPOINT (JSON or shell form), ENV, WORKDIR, USER."""
    config: dict[str, object] = {}
    env: list[str] = []
    for change in changes:
        word, _, rest = change.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word in ("CMD", "ENTRYPOINT"):
            try:
                value = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
            except ValueError:
                raise PyrunError(f"invalid --change {change!r}: not a JSON array") from None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PyrunError(f"invalid --change {change!r}: expected strings")
            config["Cmd" if word == "CMD" else "Entrypoint"] = value
        elif word == "ENV" and "=" in rest:
            env.append(rest)
        elif word == "ENV" and " " in rest:
            key, _, value_text = rest.partition(" ")
            env.append(f"{key}={value_text.strip()}")
        elif word == "WORKDIR" and rest.startswith("/"):
            config["WorkingDir"] = rest
        elif word == "USER" and rest:
            config["User"] = rest
        else:
            raise PyrunError(f"invalid --change {change!r}: supported are CMD, ENTRYPOINT, "
                             "ENV KEY=VALUE, WORKDIR /dir, USER name")
    if env:
        config["Env"] = env
    return config
