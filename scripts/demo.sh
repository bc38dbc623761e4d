#!/usr/bin/env bash
# demo.sh: vfsd end to end on a fresh machine, in one command (as root):
#
#   scripts/demo.sh
#
# 1. installs the build packages (scripts/setup.sh)
# 2. makes the guest environment: QEMU 10, Linux 6.12 and virtiofsd from Debian trixie,
#    debootstrapped into /var/tmp/vfsd-e2e/trixie (scripts/setup-e2e.sh; ~2 min the first time)
# 3. builds vfsd (cmake -S . -B build && cmake --build build --target vfsd)
# 4. makes a shared directory with a hello file (/tmp/vfsd-demo)
# 5. starts vfsd serving it, boots a Linux guest that mounts it, lists it, reads the hello file
#    and writes from-guest.txt; then shows that file from the host and stops vfsd.
#
# Environment: VFSD_DEMO_SHARE (default /tmp/vfsd-demo), VFSD_DEMO_BACKEND=vfsd|virtiofsd
# (virtiofsd: the reference back-end from trixie), VFSD_E2E_ROOT, VFSD_LOG_LEVEL (default info).
set -euo pipefail
REPO="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
BACKEND="${VFSD_DEMO_BACKEND:-vfsd}"
SHARE="${VFSD_DEMO_SHARE:-/tmp/vfsd-demo}"
T_START=$SECONDS

if [[ -t 1 ]]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B="" G="" R="" N=""; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
ok()   { printf '    %s%s%s\n' "$G" "$*" "$N"; }
bad()  { printf '    %s%s%s\n' "$R" "$*" "$N" >&2; }

case "$BACKEND" in vfsd|virtiofsd) ;; *) bad "VFSD_DEMO_BACKEND must be vfsd or virtiofsd"; exit 2 ;; esac
if [[ "$(id -u)" != 0 ]]; then
    bad "The demo needs root (debootstrap, chroot, bind mounts). Run: sudo $0"
    exit 2
fi
cd "$REPO"

step "1/5 Packages"
if [[ -x scripts/setup.sh || -f scripts/setup.sh ]]; then
    bash scripts/setup.sh
else
    ok "scripts/setup.sh not there yet: skipped"
fi

step "2/5 Guest environment (QEMU 10, Linux 6.12, virtiofsd from Debian trixie)"
bash scripts/setup-e2e.sh | sed 's/^/    /'

step "3/5 Building vfsd"
mkdir -p e2e-work/logs
BUILD_LOG="$REPO/e2e-work/logs/demo-build.log"
# Only the daemon: the demo needs nothing else, and a test that does not build must not stop it.
if cmake -S . -B build >"$BUILD_LOG" 2>&1 && cmake --build build -j2 --target vfsd >>"$BUILD_LOG" 2>&1; then
    ok "built $REPO/build/vfsd"
elif [[ "$BACKEND" == vfsd ]]; then
    tail -n 30 "$BUILD_LOG" >&2
    bad "the build failed (full log: $BUILD_LOG)"
    exit 1
else
    bad "the build failed (log: $BUILD_LOG); going on with virtiofsd"
fi

# shellcheck source=scripts/e2e-lib.sh
. "$REPO/scripts/e2e-lib.sh"
export VFSD_E2E_BACKEND="$BACKEND"
VFSD_E2E_LOG_LEVEL="${VFSD_LOG_LEVEL:-info}"

step "4/5 The shared directory: $SHARE"
mkdir -p "$SHARE"
rm -f "$SHARE/from-guest.txt"
printf 'Hello from the host! This file lives in %s on %s.\n' "$SHARE" "$(hostname)" >"$SHARE/hello.txt"
ok "wrote $SHARE/hello.txt"

step "5/5 Booting a Linux guest against $BACKEND"
e2e_begin demo
SOCK="$E2E_RUNDIR/$BACKEND.sock"
E2E_BACKEND_LOG="$E2E_LOGPFX-backend.log"
e2e_start_backend "$SOCK" "$SHARE" "$E2E_BACKEND_LOG" || { bad "$BACKEND did not start"; exit 1; }
ok "$BACKEND (pid $E2E_BACKEND_PID) serves $SHARE on $SOCK"
ok "QEMU $(chroot "$E2E_ROOT" /usr/bin/qemu-system-x86_64 --version | head -n 1 | awk '{print $4}') (TCG, no KVM needed) boots $E2E_KERNEL; the guest says:"
echo
VFSD_E2E_VERBOSE=1 E2E_LIVE_FILTER='^(guest\||E2E-FAIL)' e2e_boot_guest demo "$SOCK" --smp 2 --timeout 120 2>&1
rc=0
e2e_guest_verdict 2>/dev/null || rc=$?

step "The file the guest wrote, seen on the host: $SHARE/from-guest.txt"
if [[ -f "$SHARE/from-guest.txt" ]]; then
    sed 's/^/    /' "$SHARE/from-guest.txt"
else
    bad "not there"
    rc=1
fi

step "Stopping $BACKEND"
pid="$E2E_BACKEND_PID"
if e2e_alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do e2e_alive "$pid" || break; sleep 0.1; done
fi
if e2e_alive "$pid"; then
    bad "$BACKEND ignored SIGTERM for 10 s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
fi
brc=0
wait "$pid" 2>/dev/null || brc=$?
e2e_forget_pid "$pid"
E2E_BACKEND_PID=
if [[ "$brc" == 0 ]]; then ok "$BACKEND exited cleanly"; else bad "$BACKEND exited with status $brc"; fi

echo
echo "Logs:     $E2E_CONSOLE (guest console), $E2E_BACKEND_LOG"
echo "QEMU:     $E2E_LOGPFX-qemu.cmd (the exact command line)"
echo "Tests:    tests/e2e/run-all.sh (VFSD_E2E_BACKEND=vfsd|virtiofsd)"
if [[ "$rc" == 0 ]]; then
    printf '\n%sDemo finished in %d s: the guest read the host'"'"'s file and wrote one back through %s.%s\n' \
        "$G" $((SECONDS - T_START)) "$BACKEND" "$N"
else
    printf '\n%sDemo failed (see the logs above).%s\n' "$R" "$N"
    e2e_guest_verdict >/dev/null 2>&1 || true
    grep '^E2E-FAIL' "$E2E_CONSOLE" | sed 's/^/    /' || true
fi
exit "$rc"
