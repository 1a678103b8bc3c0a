"""Images: the name -> root filesystem seam.

For now an image is a directory pyrun knows by name, holding ``rootfs/`` and
an OCI image ``config.json``. The content-addressed store and registry pulls
will replace `LocalImages` behind the same `lookup()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pyrun.errors import PyrunError

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

        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=strings("Env"),
            workdir=str(cfg.get("WorkingDir") or ""),
            user=str(cfg.get("User") or ""),
        )


@dataclass(frozen=True)
class Image:
    name: str
    layers: tuple[Path, ...]  # lower directories, topmost first
    config: ImageConfig = field(default_factory=ImageConfig)


def image_for_rootfs(path: Path) -> Image:
    """--rootfs DIR: a bare directory is an image with one layer, no config."""
    if not path.is_dir():
        raise PyrunError(f"rootfs {path}: not a directory")
    return Image(name=str(path), layers=(path.resolve(),))


class LocalImages:
    """Images kept as directories: <dir>/<name>/{rootfs/,config.json}."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    def lookup(self, name: str) -> Image:
        short = name.removesuffix(":latest")
        if "/" in short or short in ("", ".", ".."):
            raise PyrunError(f"image {name!r} not found: registry pulls are not supported yet")
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
        hint = ""
        if short == "busybox":
            hint = " (run `make rootfs` to build the embedded busybox image)"
        raise PyrunError(f"image {name!r} not found{hint}")
