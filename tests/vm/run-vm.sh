#!/usr/bin/env bash
# Run the `vm`-marked tests inside a VM with a pure cgroup v2 kernel.
#
#   tests/vm/run-vm.sh [pytest args...]        (make test-vm)
#   tests/vm/run-vm.sh --exec 'COMMAND'        run COMMAND in the checkout, in the VM
#
# Why a VM: the build and CI hosts are "hybrid" (memory, cpu, pids... bound
# to cgroup v1), so cgroup v2 limits cannot be enforced, nor tested, there.
# virtme-ng boots a Debian kernel under qemu over the host's own filesystem
# (9p, read-only), so the guest runs this very checkout and venv.
#
# Facts this relies on (see shared/DESIGN.md):
# - KVM does not boot on these hosts (nested virtualisation): try it briefly,
#   then fall back to TCG, which boots in ~10 s.
# - The kernel comes from Debian's package, unpacked with dpkg-deb; virtme
#   needs its modules under /lib/modules/<version> of the (shared) host fs.
# - In the guest / is read-only and /tmp an overlay that cannot hold overlay
#   upper dirs: pyrun's store, pytest's temp dirs all go under /run (tmpfs).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${PYRUN_VM_CACHE:-/var/cache/pyrun-vm}
VENV=$REPO/.venv
VNG_VERSION=1.42
export PATH=$VENV/bin:$PATH

log() { printf 'test-vm: %s\n' "$*" >&2; }

# --- what the VM needs on the host, installed once -----------------------
need=()
for pkg in qemu-system-x86 kmod; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! "$VENV/bin/vng" --version 2>/dev/null | grep -q "$VNG_VERSION"; then
    log "installing virtme-ng $VNG_VERSION"
    "$VENV/bin/pip" install -q "virtme-ng==$VNG_VERSION"
fi

# --- the Debian 6.1 kernel, cached ------------------------------------------
mkdir -p "$CACHE"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6/ {print $2; exit}')
if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6/ {print $2; exit}')
fi
kver=${kpkg#linux-image-}
kdir=$CACHE/$kver
if [ ! -f "$kdir/boot/vmlinuz-$kver" ]; then
    log "downloading $kpkg"
    tmp=$(mktemp -d "$CACHE/.dl.XXXXXX")
    (cd "$tmp" && apt-get download "$kpkg" 2>/dev/null)
    dpkg-deb -x "$tmp"/*.deb "$tmp/root"
    /sbin/depmod -b "$tmp/root" "$kver"      # the package's postinst would
    rm -rf "$kdir"
    mv "$tmp/root" "$kdir"                   # complete, or not there at all
    rm -rf "$tmp"
fi
# Only this kernel's own entry under /lib/modules, nothing else touched: a
# missing, dangling or elsewhere-pointing symlink is (re)pointed at our
# cache; a real directory (this kernel installed on the host) is used as is.
mkdir -p /lib/modules
link=/lib/modules/$kver
if [ ! -e "$link" ] || { [ -L "$link" ] && [ "$(readlink "$link")" != "$kdir/lib/modules/$kver" ]; }; then
    ln -sfn "$kdir/lib/modules/$kver" "$link"
fi

# --- boot and run -------------------------------------------------------------
# Inside: a store and temp dirs on /run, no writes to the read-only checkout.
# The guest prints PYRUN_VM_EXIT=<status>: virtme's own exit code does not
# carry the command's.
if [ "${1:-}" = "--exec" ]; then
    command=$2
else
    command="$VENV/bin/pytest -m vm -p no:cacheprovider --color=no \
--basetemp=/run/pyrun-vm/tmp tests/vm$(printf ' %q' "$@")"
fi
# The status goes to a file in a directory shared read-write with the guest
# (--rwdir): on the serial console kernel messages can split a marker line.
shared=$(mktemp -d "$CACHE/.run.XXXXXX")
guest="echo PYRUN_VM_BEGIN; mkdir -p /run/pyrun-vm && cd $REPO && \
PYRUN_IN_VM=1 PYTHONDONTWRITEBYTECODE=1 \
PYRUN_ROOT=/run/pyrun-vm/root PYRUN_RUNROOT=/run/pyrun-vm/run \
$command; s=\$?; echo \$s > $shared/status; echo PYRUN_VM_EXIT=\$s"

out=$(mktemp)
trap 'rm -f "$out"; rm -rf "$shared"' EXIT
boot() {
    # $1: extra vng flags; $2: timeout in seconds; $3: the guest command
    # shellcheck disable=SC2086
    timeout "$2" vng --run "$kdir/boot/vmlinuz-$kver" $1 --verbose --cpus 2 --memory 2G \
        --append "cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" \
        --rwdir "$shared" --exec "$3" >"$out" 2>&1 || true
}
start=$(date +%s)
# A KVM guest that boots at all says so within seconds; one that hangs (as
# on these hosts) is abandoned quickly and the tests run under TCG.
# The verdict is kept per kernel in the cache: the probe runs once a machine.
mode=tcg
flags=--disable-kvm
verdict=$CACHE/kvm-$kver
if [ -w /dev/kvm ] && [ ! -e "$verdict" ]; then
    boot "" 20 "echo PYRUN_VM_BOOTED"
    if grep -q PYRUN_VM_BOOTED "$out"; then echo yes; else echo no; fi >"$verdict"
fi
if [ -w /dev/kvm ] && [ "$(cat "$verdict")" = yes ]; then
    mode=kvm
    flags=
fi
booted=$(date +%s)
boot "$flags" 1200 "$guest"
end=$(date +%s)

# The command's own lines: from the guest's exec on (the console also
# carries kernel messages, which start with a [timestamp]).
sed -n '/^PYRUN_VM_BEGIN/,/PYRUN_VM_EXIT=/p' "$out" \
    | grep -v -e '^\[ *[0-9.]*\]' -e '^PYRUN_VM_' || true
status=$(cat "$shared/status" 2>/dev/null || true)
if [ -z "$status" ]; then
    log "the VM did not report a test status ($mode); its console said:"
    tail -n 40 "$out" >&2
    exit 1
fi
log "$mode VM, kernel $kver: exit status $status; $((end - booted)) s for the VM run," \
    "$((end - start)) s in all"
exit "$status"
