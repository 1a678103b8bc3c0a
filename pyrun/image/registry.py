"""A client for the distribution API v2 (docs: distribution/spec/api.md).

    GET /v2/                               ping; a 401 says how to authenticate
    GET /v2/<repo>/manifests/<tag|digest>  a manifest or an index
    GET /v2/<repo>/blobs/<digest>          a config or a layer (may redirect)

Authentication follows the 401's WWW-Authenticate header: `Basic` sends the
user's credentials; `Bearer realm=...,service=...,scope=...` (Docker Hub's
token flow) fetches a token from the realm, with the credentials if there
are any, and retries with it. Credentials come from ~/.docker/config.json.
Plain HTTP is used only for registries on loopback, as Docker allows.

Everything fetched is verified against its digest while it streams: a
mismatch raises, and nothing unverified is kept.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from pyrun.errors import PyrunError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[0], MANIFEST_TYPES[2]
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_AUTH_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
RETRIES = 4  # 0.25 + 0.5 + 1 + 2 s of backoff at most


def _backoff(attempt: int) -> None:
    time.sleep(0.25 * 2**attempt)


class RegistryError(PyrunError):
    pass


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"


def config_key(registry: str) -> str:
    """The "auths" key Docker uses for a registry."""
    return "https://index.docker.io/v1/" if registry == DOCKER_HUB else registry


def store_credentials(registry: str, user: str | None, password: str | None,
                      path: Path | None = None) -> None:
    """Add (or, with user None, remove) a registry's entry in
    ~/.docker/config.json, keeping everything else in it; written
    atomically, readable by its owner only."""
    from pyrun.state import write_atomic

    path = path or docker_config_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        doc = {}
    except (OSError, ValueError) as e:
        raise PyrunError(f"{path}: cannot read it: {e}") from None
    auths = doc.setdefault("auths", {})
    key = config_key(registry)
    if user is None:
        if key not in auths:
            raise PyrunError(f"not logged in to {registry}")
        del auths[key]
    else:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auths[key] = {"auth": token}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)


def credentials_for(registry: str, path: Path | None = None) -> tuple[str, str] | None:
    """(user, password) for a registry from ~/.docker/config.json "auths"."""
    path = path or docker_config_path()
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    keys = [registry, f"https://{registry}", f"http://{registry}"]
    if registry == DOCKER_HUB:
        keys += ["https://index.docker.io/v1/", "index.docker.io"]
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise PyrunError(f"{path}: invalid auth entry for {key}") from None
            return user, password
    return None


@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str
    raw: bytes

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.raw)
        return doc


def config_path() -> Path:
    return Path(os.environ.get("PYRUN_CONFIG", "/etc/pyrun/config.json"))


@dataclass(frozen=True)
class RegistryConfig:
    """pyrun's registry settings, Docker daemon.json style:

        {"insecure-registries": ["myreg:5000"],
         "registry-mirrors": ["https://mirror.example"]}       (for docker.io)
    or  {"registry-mirrors": {"docker.io": [...], "quay.io": [...]}}
    """

    insecure: tuple[str, ...] = ()
    mirrors: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def load(cls, path: Path | None = None) -> RegistryConfig:
        path = path or config_path()
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            raise PyrunError(f"{path}: {e}") from None
        mirrors = doc.get("registry-mirrors") or {}
        if isinstance(mirrors, list):
            mirrors = {DOCKER_HUB: mirrors}
        if not isinstance(mirrors, dict) or not all(
                isinstance(v, list) and all(isinstance(u, str) for u in v)
                for v in mirrors.values()):
            raise PyrunError(f"{path}: registry-mirrors must be a list of URLs, or a map "
                             "from registry to such lists")
        insecure = doc.get("insecure-registries") or []
        if not isinstance(insecure, list) or not all(isinstance(h, str) for h in insecure):
            raise PyrunError(f"{path}: insecure-registries must be a list of hosts")
        return cls(tuple(insecure), tuple((k, tuple(v)) for k, v in mirrors.items()))

    def endpoints(self, registry: str) -> list[str]:
        """Base URLs to try for a registry: its mirrors, then itself."""
        own = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        scheme = "http" if is_loopback(registry) or registry in self.insecure else "https"
        mirrors = dict(self.mirrors).get(registry, ())
        return [m.rstrip("/") for m in mirrors] + [f"{scheme}://{own}"]


class Client:
    """One registry endpoint; one session of connections and tokens."""

    def __init__(self, registry: str, credentials: tuple[str, str] | None = None,
                 base: str | None = None) -> None:
        self.registry = registry
        self.base = base or RegistryConfig().endpoints(registry)[-1]
        if credentials is None:
            credentials = credentials_for(httpx.URL(self.base).netloc.decode()
                                          if base else registry)
        self.credentials = credentials
        self.http = httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30, connect=10),
                                 headers={"User-Agent": "pyrun"})
        self.authorization: str | None = None

    def close(self) -> None:
        self.http.close()

    def _authenticate(self, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if not self.credentials:
                raise RegistryError(f"{self.registry}: authentication required "
                                    "(pyrun login, or ~/.docker/config.json)")
            user, password = self.credentials
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.authorization = f"Basic {token}"
            return
        if scheme.lower() != "bearer":
            raise RegistryError(f"{self.registry}: unsupported authentication {scheme!r}")
        fields = dict(_AUTH_PARAM_RE.findall(params))
        if "realm" not in fields:
            raise RegistryError(f"{self.registry}: bearer challenge without a realm")
        query = {k: v for k, v in fields.items() if k in ("service", "scope")}
        auth = httpx.BasicAuth(*self.credentials) if self.credentials else None
        r = self.http.get(fields["realm"], params=query, auth=auth)
        if r.status_code in (401, 403):
            raise RegistryError(f"{self.registry}: the token service refused the credentials "
                                f"(HTTP {r.status_code})")
        if r.status_code != 200:
            raise RegistryError(f"{self.registry}: token request failed: HTTP {r.status_code}")
        body = r.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"{self.registry}: the token service returned no token")
        self.authorization = f"Bearer {token}"

    @staticmethod
    def _explain(r: httpx.Response) -> str:
        try:
            errors = r.json().get("errors") or []
            return "; ".join(str(e.get("message", e.get("code", ""))) for e in errors) or r.text
        except ValueError:
            return r.text[:200]

    def _get(self, path: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """GET with the auth dance (a 401 tells how to authenticate; then once
        more with the answer) and retries with exponential backoff on 5xx
        answers and failed connections. Yields the open streaming response.
        A failure after streaming began is the caller's to retry (see blob)."""
        url = f"{self.base}/v2/{path}"
        authenticated = False
        for attempt in range(RETRIES + 1):
            hdrs = dict(headers or {})
            if self.authorization:
                hdrs["Authorization"] = self.authorization
            try:
                with self.http.stream("GET", url, headers=hdrs) as r:
                    if r.status_code >= 500 and attempt < RETRIES:
                        r.read()
                        _backoff(attempt)
                        continue
                    if r.status_code == 401 and not authenticated:
                        r.read()
                        self._authenticate(r.headers.get("www-authenticate", ""))
                        authenticated = True
                        continue
                    if r.status_code == 401:
                        raise RegistryError(f"{self.registry}: authentication failed: "
                                            "wrong user name or password")
                    if r.status_code == 404:
                        r.read()
                        raise RegistryError(f"{self.registry}/{path}: not found "
                                            f"({self._explain(r)})")
                    if r.status_code != 200:
                        r.read()
                        raise RegistryError(f"{self.registry}/{path}: HTTP {r.status_code} "
                                            f"({self._explain(r)})")
                    yield r
                    return
            except httpx.TransportError as e:
                if attempt >= RETRIES:
                    raise RegistryError(f"{self.registry}: {e} (after {RETRIES} retries)") \
                        from None
                _backoff(attempt)
            except httpx.HTTPError as e:
                raise RegistryError(f"{self.registry}: {e}") from None

    def ping(self) -> None:
        """GET /v2/, authenticating as asked: checks the credentials."""
        for r in self._get(""):
            r.read()

    def manifest(self, repository: str, reference: str) -> Manifest:
        for r in self._get(f"{repository}/manifests/{reference}",
                           {"Accept": ", ".join(MANIFEST_TYPES)}):
            raw = r.read()
            media_type = r.headers.get("content-type", "").split(";")[0]
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"manifest {reference}: content has digest {digest}")
        if media_type not in MANIFEST_TYPES:
            media_type = json.loads(raw).get("mediaType", media_type)
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"{repository}:{reference}: unsupported manifest type "
                                f"{media_type!r}")
        return Manifest(media_type, digest, raw)

    def blob(self, repository: str, digest: str, out: IO[bytes],
             on_bytes: Callable[[int], None] | None = None) -> int:
        """Stream a blob into out (a seekable file), verifying its sha256;
        returns its size. A connection dropped mid-stream starts over."""
        if not digest.startswith("sha256:"):
            raise RegistryError(f"unsupported digest {digest!r}")
        for attempt in range(RETRIES + 1):
            out.seek(0)
            out.truncate()
            h = hashlib.sha256()
            size = 0
            try:
                for r in self._get(f"{repository}/blobs/{digest}"):
                    for chunk in r.iter_bytes(1 << 20):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                        if on_bytes is not None:
                            on_bytes(size)
                break
            except (httpx.TransportError, RegistryError) as e:
                dropped = isinstance(e, httpx.TransportError)
                if not dropped or attempt >= RETRIES:
                    if dropped:
                        raise RegistryError(f"blob {digest}: {e}") from None
                    raise
                _backoff(attempt)
        if "sha256:" + h.hexdigest() != digest:
            raise RegistryError(f"blob {digest}: content does not match its digest "
                                f"(got sha256:{h.hexdigest()})")
        return size


def select_platform(index: dict[str, Any], os_name: str = "linux",
                    arch: str = "amd64", variant: str | None = None) -> str:
    """The digest of the index entry for the platform (--platform)."""
    for m in index.get("manifests", []):
        p = m.get("platform") or {}
        if p.get("os") == os_name and p.get("architecture") == arch and (
                variant is None or p.get("variant") == variant):
            return str(m["digest"])
    have = ", ".join(f"{(m.get('platform') or {}).get('os')}/"
                     f"{(m.get('platform') or {}).get('architecture')}"
                     for m in index.get("manifests", []))
    raise RegistryError(f"no image for {os_name}/{arch} in the index (it has: {have})")
