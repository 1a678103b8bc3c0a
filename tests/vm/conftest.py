"""`vm` tests need a pure cgroup v2 kernel: they run inside the test VM
(`make test-vm`, which sets PYRUN_IN_VM=1) and are deselected elsewhere, so
the host suite neither runs nor counts them."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYRUN_IN_VM") == "1":
        return
    vm = [item for item in items if "vm" in item.keywords]
    if vm:
        config.hook.pytest_deselected(items=vm)
        items[:] = [item for item in items if "vm" not in item.keywords]
