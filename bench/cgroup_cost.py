"""Per-container cost of cgroup setup + teardown (pyrun.cgroups).

    tests/vm/run-vm.sh --exec '.venv/bin/python bench/cgroup_cost.py'   (make bench-vm)

Times `cgroups.create()` (mkdir, enable controllers, write limits) and
`Cgroup.destroy()` (rmdir, parents) for a group with no limits and for one
with memory, cpu and pids limits, median of N rounds. Needs a cgroup v2
host with those controllers (the test VM); on a hybrid host only the
no-limit case runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from pyrun import cgroups


def measure(limits: cgroups.Limits, rounds: int) -> tuple[float, float]:
    setup, teardown = [], []
    for i in range(rounds):
        t0 = time.perf_counter()
        cg = cgroups.create(f"bench-{os.getpid()}-{i}", limits)
        t1 = time.perf_counter()
        assert cg is not None
        cg.destroy()
        t2 = time.perf_counter()
        setup.append(t1 - t0)
        teardown.append(t2 - t1)
    return statistics.median(setup) * 1e3, statistics.median(teardown) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    info = cgroups.host_info()
    print(f"cgroup {info.version} at {info.mount}, kernel {os.uname().release}, "
          f"{args.rounds} rounds")
    cases = [("no limits", cgroups.Limits())]
    if info.enforceable:
        cases.append(("-m 64m --cpus 0.5 --pids-limit 100",
                      cgroups.parse_limits(memory="64m", cpus="0.5", pids_limit=100)))
    for name, limits in cases:
        setup, teardown = measure(limits, args.rounds)
        print(f"{name:<38} setup {setup:6.2f} ms  teardown {teardown:6.2f} ms  "
              f"total {setup + teardown:6.2f} ms (median)")


if __name__ == "__main__":
    main()
