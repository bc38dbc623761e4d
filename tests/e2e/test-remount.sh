#!/usr/bin/env bash
# test-remount.sh: the guest unmounts and mounts the share twice more (three FUSE INITs on one
# vhost-user connection), writing each round; the host checks every round's file.
# Back-end: $VFSD_E2E_BACKEND. Exit 0 = pass.
set -euo pipefail
# shellcheck source=scripts/e2e-lib.sh
. "$(dirname "$(readlink -f "$0")")/../../scripts/e2e-lib.sh"

e2e_begin remount
S="$E2E_RUNDIR/share"
mkdir -p "$S"
echo "from the host" >"$S/host.txt"

grc=0
e2e_run_guest remount --smp 2 || grc=$?

for r in 1 2 3; do
    e2e_heq "round$r.content" "$(cat "$S/remount/round$r.txt" 2>&1)" "round $r"
done
e2e_heq listing "$(cd "$S/remount" 2>/dev/null && ls | tr '\n' ' ')" "round1.txt round2.txt round3.txt "
e2e_heq host-file "$(cat "$S/host.txt")" "from the host"
e2e_hcheck guest-reached-round3 test "$(grep -c '^E2E-PASS remount.3.mount$' "$E2E_CONSOLE")" = 1

e2e_finish "$grc"
