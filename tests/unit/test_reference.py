from __future__ import annotations

import pytest

from pyrun.errors import UsageError
from pyrun.image.reference import parse

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "full", "familiar"), [
    ("alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("alpine:3.19", "docker.io/library/alpine:3.19", "alpine:3.19"),
    ("user/img", "docker.io/user/img:latest", "user/img:latest"),
    ("docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("index.docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("host:5000/a/b:tag", "host:5000/a/b:tag", "host:5000/a/b:tag"),
    ("localhost/img", "localhost/img:latest", "localhost/img:latest"),
    ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest",
     "127.0.0.1:5000/busybox:latest"),
    ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
    ("quay.io/org/sub/img:v1.2_3-rc", "quay.io/org/sub/img:v1.2_3-rc",
     "quay.io/org/sub/img:v1.2_3-rc"),
    ("a_b__c-d--f/g.h", "docker.io/a_b__c-d--f/g.h:latest", "a_b__c-d--f/g.h:latest"),
    (f"alpine@{DIGEST}", f"docker.io/library/alpine@{DIGEST}", f"alpine@{DIGEST}"),
    (f"alpine:3@{DIGEST}", f"docker.io/library/alpine:3@{DIGEST}", f"alpine:3@{DIGEST}"),
])
def test_valid_references(text: str, full: str, familiar: str) -> None:
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


def test_parts_and_pull_ref() -> None:
    ref = parse("host:5000/a/b:tag")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == ("host:5000", "a/b", "tag",
                                                                   None)
    assert ref.pull_ref == "tag"
    pinned = parse(f"alpine:3@{DIGEST}")
    assert pinned.pull_ref == DIGEST  # the digest pins what is pulled
    assert parse(f"alpine@{DIGEST}").tag is None
    # "user" without a dot or port is a path component, not a host
    assert parse("user/img").registry == "docker.io"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("Alpine", "lowercase"),
    ("alpine:", "invalid reference format"),
    ("alpine:-bad", "invalid reference format"),
    ("alp ine", "invalid reference format"),
    ("/alpine", "invalid reference format"),
    ("alpine/", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("alpine@sha256:abc", "invalid reference format"),
    ("alpine@sha256:" + "AB" * 32, "invalid digest"),
    ("alpine@md5:" + "ab" * 16, "unsupported digest algorithm"),
    ("x" * 256, "longer than 255"),
    ("alpine:" + "t" * 129, "invalid reference format"),
    ("host:5000/Upper/x", "lowercase"),
])
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(text)
