#!/usr/bin/env bash
# test-multiqueue.sh: -smp 4 and num-request-queues=4; pinned parallel writers and readers in the
# guest, every file verified on the host. Back-end: $VFSD_E2E_BACKEND. Exit 0 = pass.
#   VFSD_E2E_MQ_CPUS=N          guest vCPUs = parallel writers/readers (default 4)
#   VFSD_E2E_MQ_QUEUES=N        num-request-queues (default: the vCPU count; virtiofsd 1.13 has a
#                               single request queue and dies on more, so run-all.sh gives it 1)
#   VFSD_E2E_EXPECT_QUEUE_LOG=1 also require "queue N" lines for >= 2 queues in vfsd's debug log
set -euo pipefail
# shellcheck source=scripts/e2e-lib.sh
. "$(dirname "$(readlink -f "$0")")/../../scripts/e2e-lib.sh"

C="${VFSD_E2E_MQ_CPUS:-4}"
Q="${VFSD_E2E_MQ_QUEUES:-$C}"
[[ "$VFSD_E2E_LOG_LEVEL" == info ]] && VFSD_E2E_LOG_LEVEL=debug   # vfsd: queue threads log "queue N" at debug

e2e_begin multiqueue
S="$E2E_RUNDIR/share"
mkdir -p "$S"

grc=0
e2e_run_guest multiqueue --smp "$C" --queues "$Q" --append "vfsd.queues=$Q vfsd.cpus=$C" || grc=$?

for ((c = 0; c < C; c++)); do
    d="$S/mq/w$c"
    e2e_heq "writer$c.size" "$(stat -c %s "$d/big" 2>&1)" 4194304
    e2e_hcheck "writer$c.md5-present" test -n "$(e2e_value "md5.w$c")"
    e2e_heq "writer$c.md5" "$(e2e_md5 "$d/big")" "$(e2e_value "md5.w$c")"
    e2e_heq "writer$c.small-files" "$(find "$d" -name 's*' -type f 2>/dev/null | wc -l)" 50
    bad=0
    for ((i = 0; i < 50; i++)); do
        [[ "$(cat "$d/s$i" 2>/dev/null)" == "w$c-$i" ]] || bad=$((bad + 1))
    done
    e2e_heq "writer$c.small-content" "$bad bad" "0 bad"
done

echo "guest: request queues that raised interrupts: $(e2e_value queues.busy) of $Q" \
    "($(grep '^E2E-VALUE irq\.' "$E2E_CONSOLE" | sed 's/^E2E-VALUE irq\.//' | tr '\n' ' '))"
# The writers are pinned one per vCPU and Linux maps each vCPU to its own request queue: every
# queue must have carried requests (and so been served by the back-end, which raised them).
e2e_heq queues.all-busy "$(e2e_value queues.busy)" "$Q"

# The back-end's own view (vfsd logs "queue N" from its queue threads at debug level).
queues_logged="$(grep -oE 'queue [0-9]+' "$E2E_BACKEND_LOG" 2>/dev/null | sort -u | wc -l || true)"
echo "back-end log: $queues_logged distinct 'queue N' mentions"
if [[ "${VFSD_E2E_EXPECT_QUEUE_LOG:-0}" == 1 ]]; then
    if [[ "$queues_logged" -ge 2 ]]; then e2e_hpass backend.queue-log
    else e2e_hfail backend.queue-log "expected 'queue N' lines for >= 2 queues in $E2E_BACKEND_LOG"; fi
fi

e2e_finish "$grc"
