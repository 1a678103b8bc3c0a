"""A small token service, the Docker Hub flow in miniature: the registry
answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`;
the client asks this service for a token (with Basic credentials); the
service signs a JWT (RS256, x5c header) that the registry is configured to
trust (auth.token.rootcertbundle)."""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE = "pyrun-test-registry"
ISSUER = "pyrun-test-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenIssuer:
    realm: str
    cert_file: Path
    requests: list[str]  # scopes asked for, to see the flow happened


@contextmanager
def token_issuer(workdir: Path, users: dict[str, str]) -> Iterator[TokenIssuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file = workdir / "token-ca.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    seen: list[str] = []

    def sign(user: str, scope: str) -> str:
        access = []
        if scope:
            kind, repo, actions = scope.split(":")
            access.append({"type": kind, "name": repo, "actions": actions.split(",")})
        t = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "iat": t, "nbf": t - 10,
                  "exp": t + 300, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(sig)}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            scope = query.get("scope", [""])[0]
            seen.append(scope)
            user = None
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if users.get(name) == password:
                    user = name
            if user is None:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"token": sign(user, scope)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    from tests.registry import serve

    with serve(Handler) as port:
        yield TokenIssuer(f"http://127.0.0.1:{port}/token", cert_file, seen)
