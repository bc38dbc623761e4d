#!/usr/bin/env bash
# run-bench.sh: vfsd against the reference virtiofsd and against plain syscalls, in one run,
# on the same files, on the same machine. Not part of CI (timing is not a test).
#
# For each measurement, a fresh back-end is started on a socket, tests/frontend's vfsd-fe
# plays QEMU and the guest against it (no VM) and runs one benchmark for BENCH_SECONDS,
# then disconnects (both daemons exit then). The baseline is tests/bench/syscall-bench.c
# doing the same loops with pread/pwrite/fstatat/openat on the host. Each measurement is
# repeated BENCH_REPS times, back-ends interleaved, and the median is reported.
#
# Usage: tests/bench/run-bench.sh            (as root, from anywhere; ~2-3 minutes)
#
# Environment (all optional):
#   VFSD_BIN, VFSD_FE    the binaries (default: built Release into $VFSD_BENCH_BUILD)
#   VFSD_BENCH_BUILD     build directory (default <repo>/build-bench)
#   VFSD_E2E_ROOT        the trixie tree holding virtiofsd (default /var/tmp/vfsd-e2e/trixie)
#   BENCH_SECONDS        length of one measurement (default 1)
#   BENCH_REPS           repetitions, the median is printed (default 3)
#   BENCH_TMP            where the temporary share is made (default /var/tmp)
#   BENCH_QUEUES         parallel request queues for vfsd's extra read rows (default 2)
#   BENCH_NO_VIRTIOFSD=1 leave virtiofsd out
#   BENCH_TESTS          which groups to run (default "read write meta")
set -euo pipefail

REPO="$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)"
: "${VFSD_BENCH_BUILD:=$REPO/build-bench}"
: "${VFSD_E2E_ROOT:=/var/tmp/vfsd-e2e/trixie}"
: "${BENCH_SECONDS:=1}"
: "${BENCH_REPS:=3}"
: "${BENCH_TMP:=/var/tmp}"
: "${BENCH_QUEUES:=2}"
: "${BENCH_NO_VIRTIOFSD:=0}"
: "${BENCH_TESTS:=read write meta}"

msg() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    exit 1
}

[[ $EUID -eq 0 ]] || die "run me as root"

# ------------------------------------------------------------------------------ binaries
if [[ -z "${VFSD_BIN:-}" || -z "${VFSD_FE:-}" ]]; then
    msg "building vfsd and vfsd-fe (Release) in $VFSD_BENCH_BUILD"
    # -Wno-error=maybe-uninitialized: gcc 12 at -O3 warns in tests/frontend/lib/fuse.c.
    if ! { cmake -S "$REPO" -B "$VFSD_BENCH_BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_C_FLAGS=-Wno-error=maybe-uninitialized &&
        cmake --build "$VFSD_BENCH_BUILD" -j"$(nproc)" --target vfsd vfsd-fe; } \
        >"$BENCH_TMP/vfsd-bench-build.log" 2>&1; then
        die "build failed, see $BENCH_TMP/vfsd-bench-build.log (or set VFSD_BIN and VFSD_FE)"
    fi
    rm -f "$BENCH_TMP/vfsd-bench-build.log"
fi
: "${VFSD_BIN:=$VFSD_BENCH_BUILD/vfsd}"
: "${VFSD_FE:=$VFSD_BENCH_BUILD/tests/vfsd-fe}"
[[ -x "$VFSD_BIN" ]] || die "no vfsd at $VFSD_BIN"
[[ -x "$VFSD_FE" ]] || die "no vfsd-fe at $VFSD_FE"
R="$VFSD_E2E_ROOT"
VIRTIOFSD=(
    "$R/lib64/ld-linux-x86-64.so.2" --library-path "$R/usr/lib/x86_64-linux-gnu"
    "$R/usr/libexec/virtiofsd"
)
if [[ $BENCH_NO_VIRTIOFSD != 1 && ! -x "$R/usr/libexec/virtiofsd" ]]; then
    msg "no virtiofsd in $R (scripts/setup-e2e.sh makes it): leaving it out"
    BENCH_NO_VIRTIOFSD=1
fi

# ------------------------------------------------------------------------------ work dir
LOAD_START="$(cut -d" " -f1-3 /proc/loadavg)"
W="$(mktemp -d "$BENCH_TMP/vfsd-bench.XXXXXX")"
BE_PID=
cleanup() {
    local rc=$?
    if [[ -n "$BE_PID" ]] && kill -0 "$BE_PID" 2>/dev/null; then
        kill "$BE_PID" 2>/dev/null || true
        wait "$BE_PID" 2>/dev/null || true
    fi
    rm -rf "$W"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -Wall -o "$W/syscall-bench" "$REPO/tests/bench/syscall-bench.c"
SHARE="$W/share"
mkdir -p "$SHARE/meta"
msg "work dir $W ($(df --output=fstype "$W" | tail -1) on $(df --output=source "$W" | tail -1))"
head -c 64M /dev/urandom >"$SHARE/data"
cat "$SHARE/data" >/dev/null # page cache warm for everyone

# ------------------------------------------------------------------------------ runners
# start_backend NAME: start a back-end on $W/sock serving $SHARE; sets BE_PID.
start_backend() {
    rm -f "$W/sock"
    case "$1" in
    vfsd)
        "$VFSD_BIN" --socket-path="$W/sock" --shared-dir="$SHARE" --log-level=warn \
            >>"$W/vfsd.log" 2>&1 &
        ;;
    vfsd-sync)
        "$VFSD_BIN" --socket-path="$W/sock" --shared-dir="$SHARE" --log-level=warn \
            --no-io-uring >>"$W/vfsd.log" 2>&1 &
        ;;
    virtiofsd)
        "${VIRTIOFSD[@]}" --socket-path="$W/sock" --shared-dir="$SHARE" --sandbox=none \
            --seccomp=none --rlimit-nofile=0 --log-level=error >>"$W/virtiofsd.log" 2>&1 &
        ;;
    *) die "unknown back-end $1" ;;
    esac
    BE_PID=$!
    for _ in $(seq 100); do
        [[ -S "$W/sock" ]] && return 0
        kill -0 "$BE_PID" 2>/dev/null || die "$1 died at start (see its log in $W)"
        sleep 0.05
    done
    die "$1: no socket after 5 s"
}

# stop_backend: the daemon exits when the front-end disconnects; make sure of it.
stop_backend() {
    for _ in $(seq 100); do
        kill -0 "$BE_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$BE_PID" 2>/dev/null; then
        msg "back-end $BE_PID still up after disconnect: killing it"
        kill "$BE_PID" 2>/dev/null || true
    fi
    wait "$BE_PID" 2>/dev/null || true
    BE_PID=
}

# run BACKEND ARGS...: one benchmark; its output lines go to stdout.
#   BACKEND is syscall (ARGS for syscall-bench) or a back-end name (ARGS for vfsd-fe).
run() {
    local be="$1" rc=0
    shift
    if [[ $be == syscall ]]; then
        (cd "$SHARE" && "$W/syscall-bench" "$@")
        return
    fi
    start_backend "$be"
    timeout 120 "$VFSD_FE" -s "$W/sock" --mem 64 "$@" 2>>"$W/fe.log" || rc=$?
    stop_backend
    if [[ $rc -ne 0 ]]; then
        msg "vfsd-fe $* against $be failed (rc $rc):"
        tail -5 "$W/fe.log" >&2
        return 1
    fi
}

# bench ARGS...: run ARGS... in this shell (so cleanup knows BE_PID); its output goes to $out.
out=
bench() {
    run "$@" >"$W/out"
    out="$(<"$W/out")"
}

# field LINE UNIT: the number just before UNIT ("MB/s," or "ops/s") in LINE.
field() { awk -v u="$2" '{ for (i = 2; i <= NF; i++) if ($i == u) { print $(i - 1); exit } }' <<<"$1"; }

declare -A RES=() # "row|column" -> space-separated values
add() { RES["$1|$2"]="${RES["$1|$2"]:-} $3"; }
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

COLS=(syscall vfsd vfsd-sync)
[[ $BENCH_NO_VIRTIOFSD == 1 ]] || COLS+=(virtiofsd)
SIZES=(4k 128k 1m)
S="$BENCH_SECONDS"
N="$BENCH_QUEUES"
nrep=0

for rep in $(seq "$BENCH_REPS"); do
    msg "round $rep of $BENCH_REPS"
    for bs in "${SIZES[@]}"; do
        [[ " $BENCH_TESTS " == *" read "* ]] || break
        for be in "${COLS[@]}"; do
            if [[ $be == syscall ]]; then
                bench syscall read data "$bs" "$S"
            else
                bench "$be" bench-read data --size "$bs" --duration "$S"
            fi
            add "read $bs" "$be" "$(field "$out" MB/s,)"
            [[ $bs != 4k ]] || add "read 4k ops" "$be" "$(field "$out" ops/s)"
        done
        bench vfsd bench-read data --size "$bs" --duration "$S" --jobs "$N"
        add "read $bs x$N" vfsd "$(field "$out" MB/s,)"
        bench vfsd-sync bench-read data --size "$bs" --duration "$S" --jobs "$N"
        add "read $bs x$N" vfsd-sync "$(field "$out" MB/s,)"
    done
    for bs in "${SIZES[@]}"; do
        [[ " $BENCH_TESTS " == *" write "* ]] || break
        for be in "${COLS[@]}"; do
            if [[ $be == syscall ]]; then
                bench syscall write wfile "$bs" 32m "$S"
            else
                bench "$be" bench-write wfile --size "$bs" --file-size 32m --duration "$S"
            fi
            add "write $bs" "$be" "$(field "$out" MB/s,)"
        done
    done
    for be in "${COLS[@]}"; do
        [[ " $BENCH_TESTS " == *" meta "* ]] || break
        if [[ $be == syscall ]]; then
            bench syscall meta meta 256 "$S"
        else
            bench "$be" bench-meta meta --files 256 --duration "$S"
        fi
        add lookup "$be" "$(field "$(grep '^lookup' <<<"$out")" ops/s)"
        add create "$be" "$(field "$(grep '^create' <<<"$out")" ops/s)"
    done
    nrep=$rep
done

# ------------------------------------------------------------------------------ report
label() {
    case "$1" in
    "read 4k") echo "sequential read, 4 KiB requests (MB/s)" ;;
    "read 4k ops") echo "sequential read, 4 KiB requests (requests/s)" ;;
    "read 128k") echo "sequential read, 128 KiB requests (MB/s)" ;;
    "read 1m") echo "sequential read, 1 MiB requests (MB/s)" ;;
    "read 4k x$N") echo "sequential read, 4 KiB, $N queues in parallel (MB/s)" ;;
    "read 128k x$N") echo "sequential read, 128 KiB, $N queues in parallel (MB/s)" ;;
    "read 1m x$N") echo "sequential read, 1 MiB, $N queues in parallel (MB/s)" ;;
    "write 4k") echo "sequential write, 4 KiB requests (MB/s)" ;;
    "write 128k") echo "sequential write, 128 KiB requests (MB/s)" ;;
    "write 1m") echo "sequential write, 1 MiB requests (MB/s)" ;;
    lookup) echo "LOOKUP+GETATTR (pairs/s; syscalls: fstatat)" ;;
    create) echo "CREATE+RELEASE+UNLINK+FORGET (files/s; syscalls: open+close+unlink)" ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

ROWS=("read 4k" "read 4k ops" "read 128k" "read 1m" "read 4k x$N" "read 128k x$N" "read 1m x$N"
    "write 4k" "write 128k" "write 1m" lookup create)
echo
echo "vfsd benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), kernel $(uname -r), $(df --output=fstype "$W" | tail -1 | tr -d " "), median of $nrep x ${S}s, load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
hdr="| measurement | syscalls | vfsd | vfsd --no-io-uring |"
sep="|---|---:|---:|---:|"
[[ $BENCH_NO_VIRTIOFSD == 1 ]] || {
    hdr+=" virtiofsd 1.13 | vfsd / virtiofsd |"
    sep+="---:|---:|"
}
hdr+=" vfsd / syscalls |"
sep+="---:|"
echo "$hdr"
echo "$sep"
for row in "${ROWS[@]}"; do
    declare -A m=()
    [[ -n "${RES["$row|vfsd"]:-}${RES["$row|syscall"]:-}" ]] || continue
    for be in syscall vfsd vfsd-sync virtiofsd; do
        m[$be]="$(median "${RES["$row|$be"]:-}")"
    done
    line="| $(label "$row") | ${m[syscall]:--} | ${m[vfsd]:--} | ${m[vfsd-sync]:--} |"
    [[ $BENCH_NO_VIRTIOFSD == 1 ]] ||
        line+=" ${m[virtiofsd]:--} | $(ratio "${m[vfsd]}" "${m[virtiofsd]}") |"
    line+=" $(ratio "${m[vfsd]}" "${m[syscall]}") |"
    echo "$line"
    unset m
done
echo
echo "Every value: median of $nrep runs; the raw runs:"
for row in "${ROWS[@]}"; do
    for be in "${COLS[@]}"; do
        if [[ -n "${RES["$row|$be"]:-}" ]]; then echo "  $row / $be:${RES["$row|$be"]}"; fi
    done
done
