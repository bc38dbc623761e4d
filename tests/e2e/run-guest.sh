#!/usr/bin/env bash
# run-guest.sh: boot one e2e guest against $VFSD_E2E_BACKEND (vfsd | virtiofsd) and report.
#
#   tests/e2e/run-guest.sh [--smp N] [--queues N] [--share DIR] [--timeout S] [--append "vfsd.x=y"] TEST
#
# TEST names tests/e2e/guest/TEST.sh. Without --share the back-end serves a fresh empty directory.
# Exit status: 0 when the guest printed E2E-DONE rc=0 and no E2E-FAIL, 124 on timeout, else 1.
set -euo pipefail
# shellcheck source=scripts/e2e-lib.sh
. "$(dirname "$(readlink -f "$0")")/../../scripts/e2e-lib.sh"

args=()
while [[ $# -gt 1 ]]; do args+=("$1" "$2"); shift 2; done
[[ $# -eq 1 ]] || { sed -n '2,8p' "$0" >&2; exit 2; }
test="$1"

e2e_begin "run-guest-$test"
rc=0
e2e_run_guest "$test" ${args[@]+"${args[@]}"} || rc=$?
echo "console log: $E2E_CONSOLE"
echo "back-end log: $E2E_BACKEND_LOG"
exit "$rc"
