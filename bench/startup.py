"""Container start-up time: pyrun next to runc and crun, in one run.

    make bench                          # or: .venv/bin/python bench/startup.py --runs 20

Each contender starts `/bin/true` in a new container on the same busybox
root filesystem and tears it down; the wall time of the whole command is
measured, runs interleaved round-robin so drift hits all alike:

- pyrun run --rm busybox true   (overlay mount, namespaces, cgroup, exec)
- runc run / crun run           (an OCI bundle of the same rootfs, same namespaces)
- python3 -c pass               (the interpreter start-up pyrun cannot beat)
- python3 -c "import pyrun.cli" (pyrun's own import cost)

runc and crun would create cgroups in the host's cgroup v1 hierarchies on a
hybrid host, which pyrun's hosts forbid. So the benchmark re-runs itself in
a private mount namespace where the host's cgroup2 tree is mounted at
/sys/fs/cgroup: every runtime then sees a pure-v2 host and uses only the
unified tree, and the host's own mounts are untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "rootfs" / "build" / "busybox" / "rootfs"
VENV_PY = REPO / ".venv" / "bin" / "python"
PYRUN = REPO / ".venv" / "bin" / "pyrun"
IN_NS = "PYRUN_BENCH_IN_NS"


class RunFailed(Exception):
    pass


@dataclass
class Contender:
    name: str
    argv: Callable[[int], list[str]]  # run number -> command
    after: Callable[[int], None] = lambda i: None  # clean-up after a run
    times: list[float] = field(default_factory=list)
    max_rss_kib: int = 0

    def run(self, i: int, env: dict[str, str]) -> None:
        start = time.perf_counter()
        p = subprocess.Popen(self.argv(i), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        self.after(i)
        if p.returncode != 0:
            err = p.stderr.read().decode() if p.stderr else ""
            raise RunFailed(f"{self.name} failed ({p.returncode}): {err.strip()}")
        if p.stderr:
            p.stderr.close()
        self.times.append(elapsed)
        self.max_rss_kib = max(self.max_rss_kib, usage.ru_maxrss)


def oci_bundle(tmp: Path, runtime: str) -> Path:
    """An OCI bundle over the busybox rootfs with pyrun's namespace set."""
    bundle = tmp / f"bundle-{runtime}"
    bundle.mkdir()
    subprocess.run([runtime, "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(ROOTFS), "readonly": True}
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    # pyrun sets no rlimits; raising RLIMIT_MEMLOCK also needs CAP_SYS_RESOURCE.
    spec["process"].pop("rlimits", None)
    # A known cgroup path, so a run that fails half-way can be cleaned up.
    spec["linux"]["cgroupsPath"] = f"/pyrun-bench-{runtime}"
    kinds = {ns["type"] for ns in spec["linux"]["namespaces"]}
    for kind in ("pid", "mount", "uts", "ipc", "network", "cgroup"):
        if kind not in kinds:
            spec["linux"]["namespaces"].append({"type": kind})
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle


def oci_contender(tmp: Path, runtime: str) -> Contender | None:
    if shutil.which(runtime) is None:
        print(f"{runtime}: not installed, skipped (apt-get install {runtime})")
        return None
    bundle = oci_bundle(tmp, runtime)
    state = tmp / f"state-{runtime}"
    state.mkdir()

    def delete(i: int) -> None:
        subprocess.run([runtime, "--root", str(state), "delete", "-f", f"bench{i}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        with contextlib.suppress(OSError):
            Path(f"/sys/fs/cgroup/pyrun-bench-{runtime}").rmdir()

    return Contender(
        f"{runtime} run",
        lambda i: [runtime, "--root", str(state), "run", "--bundle", str(bundle), f"bench{i}"],
        delete)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def reexec_in_private_mount_ns() -> None:
    """See the module docstring: cgroup2 at /sys/fs/cgroup, privately."""
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                mount = fields[4]
    script = "set -e; "
    if mount and mount != "/sys/fs/cgroup":
        script += "mount -t cgroup2 cgroup2 /sys/fs/cgroup; "
    script += 'exec "$0" "$@"'
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          script, sys.executable, *sys.argv])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the benchmark runs containers: run it as root")
    if not ROOTFS.is_dir() or not PYRUN.exists():
        raise SystemExit("build first: make install")
    if os.environ.get(IN_NS) != "1":
        os.environ[IN_NS] = "1"
        reexec_in_private_mount_ns()

    tmp = Path(tempfile.mkdtemp(prefix="pyrun-bench-"))
    env = {**os.environ, "PYRUN_ROOT": str(tmp / "root"), "PYRUN_RUNROOT": str(tmp / "run")}
    try:
        contenders = [
            Contender("pyrun run --rm busybox true",
                      lambda i: [str(PYRUN), "run", "--rm", "busybox", "true"]),
            *filter(None, (oci_contender(tmp, "runc"), oci_contender(tmp, "crun"))),
            Contender("python3 -c pass", lambda i: [str(VENV_PY), "-c", "pass"]),
            Contender("python3 -c 'import pyrun.cli'",
                      lambda i: [str(VENV_PY), "-c", "import pyrun.cli"]),
        ]
        for c in list(contenders):  # warm-up: page cache, first-run work
            try:
                c.run(-1, env)
            except RunFailed as e:
                if c is contenders[0]:
                    raise SystemExit(str(e)) from None
                print(f"skipped, it cannot run on this host: {e}")
                contenders.remove(c)
            c.times.clear()
        for i in range(args.runs):
            for c in contenders:
                c.run(i, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'command':<34} {'runs':>5} {'median':>9} {'p10':>9} {'p90':>9} {'min':>9} "
          f"{'max RSS':>9}")
    rows: list[dict[str, str | int | float]] = []
    for c in contenders:
        row: dict[str, str | int | float] = {
               "name": c.name, "runs": len(c.times),
               "median_ms": statistics.median(c.times) * 1e3,
               "p10_ms": percentile(c.times, 0.1) * 1e3, "p90_ms": percentile(c.times, 0.9) * 1e3,
               "min_ms": min(c.times) * 1e3, "max_rss_mib": c.max_rss_kib / 1024}
        rows.append(row)
        print(f"{c.name:<34} {len(c.times):>5} "
              + " ".join(f"{float(row[k]):>7.1f}ms" for k in ("median_ms", "p10_ms", "p90_ms",
                                                             "min_ms"))
              + f" {c.max_rss_kib / 1024:>6.1f}MiB")
    medians = {str(r["name"]): float(r["median_ms"]) for r in rows}
    pyrun_ms = medians["pyrun run --rm busybox true"]
    for peer in ("runc run", "crun run"):
        if peer in medians:
            print(f"pyrun / {peer}: {pyrun_ms / medians[peer]:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "kernel": os.uname().release,
              "cpus": os.cpu_count(), "runs": args.runs, "results": rows}
    out = args.out / f"startup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
