"""Image references, parsed and normalised as Docker does.

    alpine                      -> docker.io/library/alpine:latest
    user/img                    -> docker.io/user/img:latest
    host:5000/a/b:tag           -> host:5000/a/b:tag
    name@sha256:<64 hex>        -> a digest, no tag
    name:tag@sha256:<64 hex>    -> the digest wins for pulling; the tag is kept

The grammar is the distribution project's reference grammar
(distribution/reference/regexp.go): a name is path components separated by
"/", each lowercase alphanumerics joined by ".", "_", "__" or "-"s; the
first component is a registry host when it contains "." or ":" or is
"localhost". Docker Hub's official images live under "library/".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyrun.errors import UsageError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255  # distribution's NameTotalLengthMax

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    registry: str         # "docker.io", "localhost:5000", "[::1]:5000"
    repository: str       # "library/alpine"
    tag: str | None       # None when only a digest was given
    digest: str | None    # "sha256:..."

    @property
    def name(self) -> str:
        """registry/repository: what a tag index is keyed by."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def familiar(self) -> str:
        """The short form Docker prints: alpine:latest, user/img:tag."""
        name = self.repository if self.registry == DEFAULT_REGISTRY else self.name
        name = name.removeprefix("library/") if self.registry == DEFAULT_REGISTRY else name
        return name + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")

    @property
    def pull_ref(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest
        when there is one (it pins the content), else the tag."""
        return self.digest or self.tag or DEFAULT_TAG


def _is_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or (
        component.startswith("["))


def parse(text: str) -> Reference:
    """Parse and normalise; raises UsageError with Docker-like messages."""
    if not text:
        raise UsageError("invalid reference format: empty image name")
    m = _REFERENCE_RE.match(text)
    if not m:
        if _REFERENCE_RE.match(text.lower()):
            raise UsageError(f"invalid reference format: repository name must be lowercase: "
                             f"{text!r}")
        raise UsageError(f"invalid reference format: {text!r}")
    name, tag, digest = m.group("name"), m.group("tag"), m.group("digest")
    if len(name) > NAME_TOTAL_MAX:
        raise UsageError(f"invalid reference format: repository name longer than "
                         f"{NAME_TOTAL_MAX} characters: {text!r}")
    first, _, rest = name.partition("/")
    if rest and _is_domain(first):
        registry, repository = first, rest
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if any(c.isupper() for c in repository):
        raise UsageError(f"invalid reference format: repository name must be lowercase: "
                         f"{text!r}")
    if digest is not None:
        algo = digest.split(":", 1)[0]
        if algo != "sha256":
            raise UsageError(f"unsupported digest algorithm {algo!r} in {text!r}")
        if not _SHA256_RE.match(digest):
            raise UsageError(f"invalid digest in {text!r}: expected sha256: and 64 lowercase "
                             "hex digits")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)
