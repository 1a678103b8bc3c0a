"""Pull + prepare a root filesystem: pyrun next to skopeo + umoci, one run.

    .venv/bin/python bench/pull.py [--runs 5]          (make bench-pull)

From Debian's docker-registry on loopback, with a cold store each run:

- pyrun pull IMAGE        (manifest, parallel layer download, verify,
                           unpack every layer: ready for an overlay mount)
- skopeo copy docker://IMAGE oci:DIR  +  umoci unpack --image DIR BUNDLE
                          (the same work with the OCI reference tools)

for two images:
- "random-100mb": 4 layers of 25 MB of incompressible data (download and
  hashing dominate);
- "debian": a Debian bookworm minbase root made with debootstrap (many
  small files: unpacking dominates). Built once and cached under
  /var/cache/pyrun-test (shared with the tests); it needs Debian's mirror.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.registry import Registry, debian_layout, start_registry, umoci  # noqa: E402

PYRUN = REPO / ".venv" / "bin" / "pyrun"


def random_layout(dest: Path) -> Path:
    layout, bundle = dest / "random", dest / "random-bundle"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:latest")
    for i in range(4):
        umoci("unpack", "--image", f"{layout}:latest", str(bundle))
        (bundle / "rootfs" / f"blob{i}").write_bytes(os.urandom(25 << 20))
        umoci("repack", "--image", f"{layout}:latest", str(bundle))
        shutil.rmtree(bundle)
    return layout


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_image(reg: Registry, name: str, runs: int, work: Path) -> dict[str, float]:
    image = f"{reg.host}/bench/{name}:latest"
    pyrun_times, peer_times = [], []
    for i in range(runs):
        root = work / f"pyrun-{name}-{i}"
        env = {**os.environ, "PYRUN_ROOT": str(root), "PYRUN_RUNROOT": str(root / "run")}
        pyrun_times.append(timed([str(PYRUN), "pull", "-q", image], env))
        shutil.rmtree(root)
        oci, bundle = work / f"oci-{name}-{i}", work / f"bundle-{name}-{i}"
        peer_times.append(
            timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                   f"docker://{image}", f"oci:{oci}:latest"])
            + timed(["umoci", "unpack", "--image", f"{oci}:latest", str(bundle)]))
        shutil.rmtree(oci)
        shutil.rmtree(bundle)
    return {"pyrun_s": statistics.median(pyrun_times),
            "skopeo_umoci_s": statistics.median(peer_times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    work = Path(tempfile.mkdtemp(prefix="pyrun-bench-pull-"))
    reg = start_registry(work / "registry")
    results = {}
    try:
        layouts = {"random-100mb": random_layout(work)}
        if shutil.which("debootstrap"):
            layouts["debian"] = debian_layout()
        else:
            print("debian: skipped (apt-get install debootstrap)")
        for name, layout in layouts.items():
            reg.push(layout, f"bench/{name}:latest")
            results[name] = bench_image(reg, name, args.runs, work)
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'image':<14} {'runs':>4} {'pyrun pull':>12} {'skopeo+umoci':>14} {'ratio':>7}")
    for name, r in results.items():
        print(f"{name:<14} {args.runs:>4} {r['pyrun_s']:>11.2f}s {r['skopeo_umoci_s']:>13.2f}s "
              f"{r['pyrun_s'] / r['skopeo_umoci_s']:>6.2f}x")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pull-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "runs": args.runs, "results": results}, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
