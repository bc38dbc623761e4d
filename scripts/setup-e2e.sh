#!/usr/bin/env bash
# setup-e2e.sh: make (or adopt) the Debian trixie tree that the e2e harness runs QEMU 10, the
# 6.12 guest kernel and the reference virtiofsd from. Idempotent; run as root.
#
#   root: ${VFSD_E2E_ROOT:-/var/tmp/vfsd-e2e/trixie}   (see ../shared/e2e/README.md)
#
# 1. root has the ready marker and its binaries: nothing to do.
# 2. root.tmp holds a finished debootstrap: rename it to root (unless some process is running
#    from it: then it is marked ready where it is and the harness uses it until a later run renames).
# 3. otherwise: debootstrap into root.tmp (a half-made one is removed first), then rename.
# Packages come from debootstrap's default Debian mirror only.
set -euo pipefail
# shellcheck source=scripts/e2e-lib.sh
. "$(dirname "$(readlink -f "$0")")/e2e-lib.sh"

ROOT="$VFSD_E2E_ROOT"
TMP="$ROOT.tmp"
SUITE=trixie
INCLUDE="qemu-system-x86,virtiofsd,linux-image-cloud-amd64,busybox-static,fio,kmod"

[[ "$(id -u)" == 0 ]] || e2e_die "run me as root (debootstrap, chroot)"

write_marker() {
    local d="$1" kernel qemu
    kernel="$(cd "$d" && find boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)"
    qemu="$(chroot "$d" /usr/bin/qemu-system-x86_64 --version 2>/dev/null | head -n 1 || true)"
    {
        echo "suite=$SUITE"
        echo "kernel=/$kernel"
        echo "qemu=$qemu"
        echo "ready=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >"$d/$E2E_MARKER"
}

report() {
    local d="$1"
    echo "e2e tree ready: $d"
    sed 's/^/  /' "$d/$E2E_MARKER"
    echo "  qemu:      chroot $d /usr/bin/qemu-system-x86_64"
    echo "  virtiofsd: chroot $d /usr/libexec/virtiofsd"
    echo "  busybox:   $d/bin/busybox"
    echo "  run the suite: tests/e2e/run-all.sh   (VFSD_E2E_BACKEND=vfsd|virtiofsd)"
}

# unmount_below DIR: unmount whatever debootstrap (or a harness run) left mounted inside DIR.
unmount_below() {
    local d m
    d="$(readlink -f "$1")"
    awk '{ print $2 }' /proc/self/mounts | { grep -E "^$d(/|$)" || true; } | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}

# try_rename: rename TMP to ROOT unless something runs from TMP. Returns 1 if it had to wait.
try_rename() {
    local users
    users="$(e2e_tree_users "$TMP" | tr '\n' ' ')"
    if [[ -n "$users" ]]; then
        e2e_warn "$TMP is in use by pid(s) $users; not renaming it now."
        e2e_warn "The harness uses $TMP meanwhile; run this script again later to rename it."
        return 1
    fi
    if [[ -e "$ROOT" ]]; then
        # An unfinished root (no marker) is in the way: it is stale.
        unmount_below "$ROOT"
        rm -rf --one-file-system "$ROOT"
    fi
    unmount_below "$TMP"
    mv "$TMP" "$ROOT"
    e2e_msg "renamed $TMP -> $ROOT"
}

if e2e_root_ready "$ROOT"; then
    report "$ROOT"
    exit 0
fi

if e2e_tree_complete "$ROOT"; then
    # A finished tree made by hand (or by an older setup) at the final place: adopt it.
    e2e_msg "adopting the finished tree in $ROOT"
    write_marker "$ROOT"
    report "$ROOT"
    exit 0
fi

if e2e_tree_complete "$TMP"; then
    e2e_msg "adopting the finished debootstrap in $TMP"
    [[ -f "$TMP/$E2E_MARKER" ]] || write_marker "$TMP"
    if try_rename; then report "$ROOT"; else report "$TMP"; fi
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    e2e_msg "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi

if [[ -e "$TMP" ]]; then
    users="$(e2e_tree_users "$TMP" | tr '\n' ' ')"
    [[ -z "$users" ]] || e2e_die "$TMP is half-made but in use by pid(s) $users; stop them first"
    e2e_msg "removing the half-made $TMP"
    unmount_below "$TMP"
    rm -rf --one-file-system "$TMP"
fi
mkdir -p "$(dirname "$TMP")"
e2e_msg "debootstrap $SUITE into $TMP (about 70 s and 630 MB)"
t0="$(e2e_now)"
log="$(dirname "$TMP")/debootstrap.log"
e2e_msg "log: $log"
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$TMP" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    e2e_die "debootstrap failed (full log: $log)"
fi
unmount_below "$TMP"
e2e_tree_complete "$TMP" || e2e_die "debootstrap finished but $TMP lacks qemu/virtiofsd/busybox/kernel"
e2e_msg "debootstrap took $(e2e_elapsed "$t0") s"
write_marker "$TMP"
if try_rename; then report "$ROOT"; else report "$TMP"; fi
