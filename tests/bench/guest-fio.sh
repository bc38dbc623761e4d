#!/usr/bin/env bash
# guest-fio.sh: the same small fio jobs in the same e2e guest (QEMU 10, Linux 6.12, TCG) against
# each back-end: vfsd, then virtiofsd 1.13. Prints fio's bandwidth and IOPS for each. Under TCG
# the guest CPU is the bottleneck, so only the ratio between back-ends means anything.
#
# Usage: tests/bench/guest-fio.sh [BACKEND...]     (as root; default: vfsd virtiofsd; ~2-3 min)
#
# Environment: everything scripts/e2e-lib.sh reads (VFSD_BIN, VFSD_E2E_ROOT, ...), plus
#   VFSD_FIO_SIZE     file size per job (default 16M)
#   VFSD_FIO_RUNTIME  seconds per job (default 8)
#   VFSD_FIO_SMP      guest CPUs (default 2)
# VFSD_BIN defaults to <repo>/build-bench/vfsd when that exists (tests/bench/run-bench.sh's
# Release build), else the e2e default <repo>/build/vfsd.
set -euo pipefail
BENCH_DIR="$(dirname "$(readlink -f "$0")")"
REPO="$(cd "$BENCH_DIR/../.." && pwd)"
if [[ -z "${VFSD_BIN:-}" && -x "$REPO/build-bench/vfsd" ]]; then
    export VFSD_BIN="$REPO/build-bench/vfsd"
fi
export VFSD_E2E_FIO=1
: "${VFSD_FIO_SIZE:=16M}"
: "${VFSD_FIO_RUNTIME:=8}"
: "${VFSD_FIO_SMP:=2}"
: "${VFSD_E2E_LOG_LEVEL:=warn}"
: "${VFSD_E2E_TIMEOUT:=300}"
# shellcheck source=scripts/e2e-lib.sh
. "$REPO/scripts/e2e-lib.sh"

BACKENDS=("$@")
[[ ${#BACKENDS[@]} -gt 0 ]] || BACKENDS=(vfsd virtiofsd)

e2e_begin fio-bench
# The guest scripts come from tests/e2e/guest; ours is added to a copy of them.
GUEST="$E2E_RUNDIR/guest"
mkdir -p "$GUEST"
cp "$REPO/tests/e2e/guest/init" "$REPO/tests/e2e/guest/"*.sh "$GUEST/"
cp "$BENCH_DIR/guest/fio-bench.sh" "$GUEST/"
E2E_GUEST_DIR="$GUEST"

JOBS=(seqwrite-1m seqread-1m randread-4k randwrite-4k)
declare -A BW=() IOPS=()
failed=0
for be in "${BACKENDS[@]}"; do
    VFSD_E2E_BACKEND="$be"
    E2E_LOGPFX="$E2E_LOGDIR/fio-bench-$be"
    rm -rf --one-file-system "$E2E_RUNDIR/share"
    e2e_msg "fio in the guest against $be (size $VFSD_FIO_SIZE, ${VFSD_FIO_RUNTIME}s per job)"
    if ! e2e_run_guest fio-bench --smp "$VFSD_FIO_SMP" \
        --append "vfsd.fio_size=$VFSD_FIO_SIZE vfsd.fio_runtime=$VFSD_FIO_RUNTIME"; then
        e2e_warn "$be: the guest run failed (console: $E2E_CONSOLE)"
        failed=1
    fi
    for j in "${JOBS[@]}"; do
        BW["$j|$be"]="$(e2e_value "$j.bw_kib")"
        IOPS["$j|$be"]="$(e2e_value "$j.iops")"
    done
done

echo
echo "fio in a TCG guest ($VFSD_FIO_SMP vCPUs, 1 request queue, O_DIRECT, psync, size $VFSD_FIO_SIZE, ${VFSD_FIO_RUNTIME}s per job), $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
hdr="| fio job |"
sep="|---|"
for be in "${BACKENDS[@]}"; do
    hdr+=" $be MiB/s | $be IOPS |"
    sep+="---:|---:|"
done
echo "$hdr"
echo "$sep"
for j in "${JOBS[@]}"; do
    line="| $j |"
    for be in "${BACKENDS[@]}"; do
        bw="${BW["$j|$be"]:-}"
        line+=" $(awk -v k="$bw" 'BEGIN { if (k == "") print "-"; else printf "%.1f", k / 1024 }') | ${IOPS["$j|$be"]:--} |"
    done
    echo "$line"
done
exit "$failed"
