# shellcheck shell=bash
# e2e-lib.sh: shared functions for the vfsd end-to-end harness (real QEMU + real Linux guest).
#
# Source it from bash scripts that run `set -euo pipefail`:
#     . "$(dirname "$(readlink -f "$0")")/../../scripts/e2e-lib.sh"
#
# The QEMU/kernel/virtiofsd userland is a Debian trixie tree made by scripts/setup-e2e.sh
# (see ../shared/e2e/README.md). QEMU (and virtiofsd, when it is the back-end) run chrooted in it;
# vfsd runs on the host. Sockets and the initramfs live in a per-run directory under $ROOT/run, so
# QEMU sees them at /run/<name>.
#
# Environment (all optional):
#   VFSD_E2E_ROOT        the trixie tree (default /var/tmp/vfsd-e2e/trixie)
#   VFSD_E2E_BACKEND     vfsd | virtiofsd (default vfsd)
#   VFSD_BIN             the vfsd binary (default $REPO/build/vfsd)
#   VFSD_E2E_LOG_LEVEL   vfsd --log-level (default info)
#   VFSD_E2E_BACKEND_ARGS extra arguments for the back-end (word-split)
#   VFSD_E2E_TIMEOUT     hard limit for one QEMU run, seconds (default 180)
#   VFSD_E2E_LOGDIR      where logs go (default $REPO/e2e-work/logs): TEST-BACKEND-console.log,
#                        TEST-BACKEND-backend.log, TEST-BACKEND-qemu.cmd
#   VFSD_E2E_KEEP=1      keep the per-run directory (share, sockets, initramfs) for debugging
#   VFSD_E2E_FIO=1       put fio and its libraries in the initramfs (about 20 MB more)
#   VFSD_E2E_VERBOSE=1   echo the guest console live while it runs

E2E_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_REPO="$(cd "$E2E_LIB_DIR/.." && pwd)"
E2E_GUEST_DIR="$E2E_REPO/tests/e2e/guest"
E2E_MARKER=".vfsd-e2e-ready"

: "${VFSD_E2E_ROOT:=/var/tmp/vfsd-e2e/trixie}"
: "${VFSD_E2E_BACKEND:=vfsd}"
: "${VFSD_BIN:=$E2E_REPO/build/vfsd}"
: "${VFSD_E2E_LOG_LEVEL:=info}"
: "${VFSD_E2E_BACKEND_ARGS:=}"
: "${VFSD_E2E_TIMEOUT:=180}"
: "${VFSD_E2E_LOGDIR:=$E2E_REPO/e2e-work/logs}"
: "${VFSD_E2E_KEEP:=0}"
: "${VFSD_E2E_FIO:=0}"
: "${VFSD_E2E_VERBOSE:=0}"

E2E_BIND_DIRS=(proc dev sys)

e2e_msg()  { printf '[e2e] %s\n' "$*" >&2; }
e2e_warn() { printf '[e2e] WARNING: %s\n' "$*" >&2; }
e2e_die()  { printf '[e2e] ERROR: %s\n' "$*" >&2; exit 2; }

e2e_now() { date +%s.%N; }
e2e_elapsed() { awk -v a="$1" -v b="$(e2e_now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------------
# The trixie tree
# ---------------------------------------------------------------------------------------------

# e2e_tree_complete DIR: debootstrap finished there and it holds what we need.
e2e_tree_complete() {
    local d="$1"
    [[ -x "$d/usr/bin/qemu-system-x86_64" ]] || return 1
    [[ -x "$d/usr/libexec/virtiofsd" ]] || return 1
    [[ -x "$d/bin/busybox" ]] || return 1
    compgen -G "$d/boot/vmlinuz-*" >/dev/null || return 1
    # debootstrap removes its own work directory at "Base system installed successfully".
    [[ ! -d "$d/debootstrap" ]] || return 1
}

# e2e_root_ready DIR: setup-e2e.sh has finished with DIR.
e2e_root_ready() {
    [[ -f "$1/$E2E_MARKER" ]] && e2e_tree_complete "$1"
}

# e2e_tree_users DIR: print PIDs whose root, cwd, exe or an open fd is inside DIR.
e2e_tree_users() {
    local d p l f
    d="$(readlink -f "$1")"
    for p in /proc/[0-9]*; do
        for l in root cwd exe; do
            f="$(readlink "$p/$l" 2>/dev/null)" || continue
            if [[ "$f" == "$d" || "$f" == "$d/"* ]]; then echo "${p#/proc/}"; continue 2; fi
        done
        for l in "$p"/fd/*; do
            f="$(readlink "$l" 2>/dev/null)" || continue
            if [[ "$f" == "$d/"* ]]; then echo "${p#/proc/}"; continue 2; fi
        done
    done
}

# e2e_resolve_root: set E2E_ROOT. Falls back to $VFSD_E2E_ROOT.tmp when setup had to leave it there
# (someone was running from it), so a run never waits for the rename.
e2e_resolve_root() {
    if e2e_root_ready "$VFSD_E2E_ROOT"; then
        E2E_ROOT="$VFSD_E2E_ROOT"
    elif e2e_root_ready "$VFSD_E2E_ROOT.tmp"; then
        E2E_ROOT="$VFSD_E2E_ROOT.tmp"
        e2e_warn "using $E2E_ROOT (not renamed yet; run scripts/setup-e2e.sh again later)"
    else
        e2e_die "no e2e tree at $VFSD_E2E_ROOT: run scripts/setup-e2e.sh first (as root)"
    fi
    E2E_ROOT="$(readlink -f "$E2E_ROOT")"
    E2E_KERNEL="$(cd "$E2E_ROOT" && find boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)"
    E2E_KERNEL="/$E2E_KERNEL"
}

# ---------------------------------------------------------------------------------------------
# Bind mounts of /proc /dev /sys into the tree, shared by overlapping runs.
#
# Every run that needs them registers its PID in $ROOT/run/vfsd-e2e-binds/users/ (under a flock).
# A mount point that was not mounted gets mounted and an "owned-NAME" marker. Release removes the
# run's PID (and any dead ones); when no live user is left, it unmounts the mounts it owns. Mounts
# somebody made by hand (no marker) are never touched.
# ---------------------------------------------------------------------------------------------

e2e_binds_acquire() {
    local state="$E2E_ROOT/run/vfsd-e2e-binds" n
    mkdir -p "$state/users"
    (
        flock -w 60 9 || { echo "[e2e] ERROR: cannot lock $state/lock" >&2; exit 1; }
        : >"$state/users/$$"
        for n in "${E2E_BIND_DIRS[@]}"; do
            if ! mountpoint -q "$E2E_ROOT/$n"; then
                mount --bind "/$n" "$E2E_ROOT/$n"
                : >"$state/owned-$n"
            fi
        done
    ) 9>"$state/lock"
    E2E_BINDS_HELD=1
}

e2e_binds_release() {
    [[ "${E2E_BINDS_HELD:-0}" == 1 ]] || return 0
    E2E_BINDS_HELD=0
    local state="$E2E_ROOT/run/vfsd-e2e-binds" n f p live=0
    (
        flock -w 60 9 || exit 1
        rm -f "$state/users/$$"
        for f in "$state"/users/*; do
            [[ -e "$f" ]] || continue
            p="${f##*/}"
            if kill -0 "$p" 2>/dev/null; then live=1; else rm -f "$f"; fi
        done
        if [[ "$live" == 0 ]]; then
            for n in "${E2E_BIND_DIRS[@]}"; do
                if [[ -e "$state/owned-$n" ]]; then
                    if umount "$E2E_ROOT/$n" 2>/dev/null || umount -l "$E2E_ROOT/$n"; then
                        rm -f "$state/owned-$n"
                    fi
                fi
            done
        fi
    ) 9>"$state/lock" || e2e_warn "could not release the bind mounts"
}

# ---------------------------------------------------------------------------------------------
# Per-run state and cleanup
# ---------------------------------------------------------------------------------------------

E2E_PIDS=()            # every process we started, killed on exit
E2E_EXTRA_MOUNTS=()    # bind mounts we made for a share outside the tree
E2E_CLEANUP_HOOKS=()   # functions to call first on exit

# e2e_begin NAME: resolve the tree, make the run directory, mount the binds, install the trap.
e2e_begin() {
    E2E_NAME="$1"
    [[ "$(id -u)" == 0 ]] || e2e_die "the e2e harness needs root (chroot, bind mounts)"
    e2e_resolve_root
    E2E_RUNDIR="$E2E_ROOT/run/vfsd-e2e-$$"      # /run/vfsd-e2e-$$ inside the chroot
    rm -rf --one-file-system "$E2E_RUNDIR"
    mkdir -p "$E2E_RUNDIR" "$VFSD_E2E_LOGDIR"
    E2E_LOGDIR="$(readlink -f "$VFSD_E2E_LOGDIR")"
    E2E_LOGPFX="$E2E_LOGDIR/$E2E_NAME-$VFSD_E2E_BACKEND"   # so both back-ends can run side by side
    trap 'e2e_cleanup' EXIT
    trap 'e2e_msg "interrupted"; exit 130' INT
    trap 'e2e_msg "terminated"; exit 143' TERM
    e2e_binds_acquire
}

# e2e_alive PID: PID is running and is our child (never mistakes a recycled PID for ours).
e2e_alive() {
    local st rest
    st="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    rest="${st##*) }"                        # "S PPID ..." after the command name
    read -r -a st <<<"$rest"
    [[ "${st[0]}" != Z && "${st[1]}" == "$BASHPID" ]]
}

# e2e_forget_pid PID: drop a reaped child from E2E_PIDS, so cleanup never signals a recycled PID.
e2e_forget_pid() {
    local keep=() p
    for p in "${E2E_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    E2E_PIDS=(${keep[@]+"${keep[@]}"})
}

e2e_kill_pid() {
    local pid="$1" _
    e2e_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        e2e_alive "$pid" || break
        sleep 0.1
    done
    if e2e_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
}

e2e_cleanup() {
    local rc=$? h pid m
    trap - EXIT INT TERM
    for h in "${E2E_CLEANUP_HOOKS[@]}"; do "$h" || true; done
    for pid in "${E2E_PIDS[@]}"; do e2e_kill_pid "$pid"; done
    for m in "${E2E_EXTRA_MOUNTS[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if [[ -n "${E2E_RUNDIR:-}" && -d "$E2E_RUNDIR" ]]; then
        if [[ "$VFSD_E2E_KEEP" == 1 ]]; then
            e2e_msg "kept $E2E_RUNDIR"
            find "$E2E_RUNDIR" -maxdepth 1 -type s -delete 2>/dev/null || true
        else
            rm -rf --one-file-system "$E2E_RUNDIR"
        fi
    fi
    e2e_binds_release
    exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Guest initramfs
# ---------------------------------------------------------------------------------------------

# e2e_copy_from_tree STAGING PATH-IN-TREE: copy a binary and, per ldd in the chroot, its libraries.
e2e_copy_from_tree() {
    local staging="$1" bin="$2" lib
    mkdir -p "$staging$(dirname "$bin")"
    cp -L "$E2E_ROOT$bin" "$staging$bin"
    while read -r lib; do
        [[ -n "$lib" ]] || continue
        mkdir -p "$staging$(dirname "$lib")"
        [[ -e "$staging$lib" ]] || cp -L "$E2E_ROOT$lib" "$staging$lib"
    done < <(chroot "$E2E_ROOT" /usr/bin/ldd "$bin" 2>/dev/null |
             awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# e2e_build_initramfs OUT [TREE-BINARY...]: busybox, /init, the guest scripts, optional binaries
# (paths inside the trixie tree, copied with their libraries) and fio if VFSD_E2E_FIO=1.
e2e_build_initramfs() {
    local out="$1"; shift
    local staging a
    staging="$(mktemp -d "${TMPDIR:-/tmp}/vfsd-e2e-initramfs.XXXXXX")"
    mkdir -p "$staging"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,mnt,tmp,run,etc,tests}
    cp "$E2E_ROOT/bin/busybox" "$staging/bin/busybox"
    ln -s busybox "$staging/bin/sh"     # the other applets: busybox --install -s in /init
    mknod -m 600 "$staging/dev/console" c 5 1 2>/dev/null || true
    mknod -m 666 "$staging/dev/null" c 1 3 2>/dev/null || true
    install -m 755 "$E2E_GUEST_DIR/init" "$staging/init"
    cp "$E2E_GUEST_DIR"/*.sh "$staging/tests/"
    if [[ "$VFSD_E2E_FIO" == 1 ]]; then
        e2e_copy_from_tree "$staging" /usr/bin/fio
    fi
    for a in "$@"; do e2e_copy_from_tree "$staging" "$a"; done
    (cd "$staging" && find . -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc --quiet | gzip -1 >"$out")
    rm -rf --one-file-system "$staging"
}

# ---------------------------------------------------------------------------------------------
# Back-ends
# ---------------------------------------------------------------------------------------------

# e2e_start_backend SOCKET-HOST-PATH SHARE-HOST-DIR LOGFILE: start $VFSD_E2E_BACKEND, wait for the
# socket, set E2E_BACKEND_PID. Both paths are host paths; the socket must be inside the tree.
e2e_start_backend() {
    local sock="$1" share="$2" log="$3" _ extra=()
    read -r -a extra <<<"$VFSD_E2E_BACKEND_ARGS"
    rm -f "$sock"
    case "$VFSD_E2E_BACKEND" in
    virtiofsd)
        local gsock="${sock#"$E2E_ROOT"}" gshare
        share="$(readlink -f "$share")"
        if [[ "$share" == "$E2E_ROOT/"* ]]; then
            gshare="${share#"$E2E_ROOT"}"
        else
            # virtiofsd runs in the chroot: show it a share from outside through a bind mount.
            local bind="$E2E_RUNDIR/share-bind"
            mkdir -p "$bind"
            mount --bind "$share" "$bind"
            E2E_EXTRA_MOUNTS+=("$bind")
            gshare="${bind#"$E2E_ROOT"}"
        fi
        chroot "$E2E_ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            /usr/libexec/virtiofsd --socket-path="$gsock" --shared-dir="$gshare" \
            --sandbox=none "${extra[@]}" </dev/null >"$log" 2>&1 &
        ;;
    vfsd)
        [[ -x "$VFSD_BIN" ]] || e2e_die "no vfsd binary at $VFSD_BIN (build it: cmake -S . -B build && cmake --build build)"
        "$VFSD_BIN" --socket-path="$sock" --shared-dir="$share" \
            --log-level="$VFSD_E2E_LOG_LEVEL" "${extra[@]}" </dev/null >"$log" 2>&1 &
        ;;
    *) e2e_die "unknown VFSD_E2E_BACKEND=$VFSD_E2E_BACKEND (vfsd or virtiofsd)" ;;
    esac
    E2E_BACKEND_PID=$!
    E2E_PIDS+=("$E2E_BACKEND_PID")
    for _ in $(seq 1 100); do
        [[ -S "$sock" ]] && return 0
        if ! e2e_alive "$E2E_BACKEND_PID"; then
            e2e_warn "back-end $VFSD_E2E_BACKEND exited before creating its socket; log:"
            sed 's/^/    /' "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    e2e_warn "back-end $VFSD_E2E_BACKEND made no socket at $sock within 10 s"
    return 1
}

# e2e_stop_backend: give it 5 s to leave on its own (virtiofsd exits when QEMU hangs up), then
# SIGTERM, then SIGKILL. Sets E2E_BACKEND_RC.
e2e_stop_backend() {
    local pid="${E2E_BACKEND_PID:-}" _
    E2E_BACKEND_RC=
    [[ -n "$pid" ]] || return 0
    for _ in $(seq 1 50); do
        e2e_alive "$pid" || break
        sleep 0.1
    done
    if e2e_alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 50); do
        e2e_alive "$pid" || break
        sleep 0.1
    done
    if e2e_alive "$pid"; then
        e2e_warn "back-end ignored SIGTERM for 5 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    E2E_BACKEND_RC=0
    wait "$pid" 2>/dev/null || E2E_BACKEND_RC=$?
    e2e_forget_pid "$pid"
    E2E_BACKEND_PID=
}

# ---------------------------------------------------------------------------------------------
# Booting a guest
# ---------------------------------------------------------------------------------------------

# e2e_qemu_args SOCKET-GUEST-PATH INITRD-GUEST-PATH APPEND SMP QUEUES: fill E2E_QEMU_ARGS.
e2e_qemu_args() {
    local gsock="$1" ginitrd="$2" append="$3" smp="$4" queues="$5" dev
    dev="vhost-user-fs-pci,chardev=fs0,tag=share"
    [[ "$queues" -gt 1 ]] && dev+=",num-request-queues=$queues"
    # shellcheck disable=SC2054  # the commas are QEMU's
    E2E_QEMU_ARGS=(
        /usr/bin/qemu-system-x86_64 -accel tcg -cpu max -smp "$smp" -m 1G
        -M q35,memory-backend=mem -object memory-backend-memfd,id=mem,size=1G,share=on
        -kernel "$E2E_KERNEL" -initrd "$ginitrd"
        -append "console=ttyS0 quiet panic=-1 rdinit=/init $append"
        -chardev "socket,id=fs0,path=$gsock" -device "$dev"
        -nographic -no-reboot -display none -serial mon:stdio
    )
}

# e2e_boot_guest TEST SOCKET [--smp N] [--queues N] [--timeout S] [--append "k=v ..."]
#
# Builds the initramfs and boots the guest with vfsd.test=TEST on the vhost-user SOCKET (a host
# path inside the tree, already served). Watches $E2E_BACKEND_PID if set: when the back-end dies
# under a running guest, QEMU is stopped 3 s later instead of hanging until the timeout.
# Console (CRs and terminal escapes stripped) -> $E2E_LOGPFX-console.log = $E2E_CONSOLE.
# Sets E2E_QEMU_RC, E2E_BACKEND_DIED, E2E_GUEST_SECONDS. With VFSD_E2E_VERBOSE=1 the console is
# echoed live to stderr (only lines matching $E2E_LIVE_FILTER, an ERE, when that is set).
e2e_boot_guest() {
    local test="$1" sock="$2"; shift 2
    local smp=2 queues=1 timeout="$VFSD_E2E_TIMEOUT" append=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --smp) smp="$2"; shift 2 ;;
        --queues) queues="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        --append) append="$2"; shift 2 ;;
        *) e2e_die "e2e_boot_guest: unknown option $1" ;;
        esac
    done
    [[ -f "$E2E_GUEST_DIR/$test.sh" ]] || e2e_die "no guest script $E2E_GUEST_DIR/$test.sh"
    [[ "$sock" == "$E2E_ROOT/"* ]] || e2e_die "the socket $sock must be inside $E2E_ROOT"

    local initrd="$E2E_RUNDIR/initrd.cpio.gz" raw="$E2E_LOGPFX-console.raw.log"
    local t0 qpid tailpid="" dead_since="" bpid="${E2E_BACKEND_PID:-}"
    local unescape=(-e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g')
    E2E_CONSOLE="$E2E_LOGPFX-console.log"
    E2E_QEMU_RC=0
    E2E_BACKEND_DIED=0

    t0="$(e2e_now)"
    e2e_build_initramfs "$initrd" ${E2E_INITRAMFS_EXTRA:+"${E2E_INITRAMFS_EXTRA[@]}"}
    e2e_msg "initramfs $(du -h "$initrd" | cut -f1) in $(e2e_elapsed "$t0") s"

    e2e_qemu_args "${sock#"$E2E_ROOT"}" "${initrd#"$E2E_ROOT"}" "vfsd.test=$test $append" "$smp" "$queues"
    { printf '%q ' chroot "$E2E_ROOT" "${E2E_QEMU_ARGS[@]}"; echo; } >"$E2E_LOGPFX-qemu.cmd"

    t0="$(e2e_now)"
    e2e_msg "booting guest: test=$test smp=$smp queues=$queues timeout=${timeout}s"
    : >"$raw"
    timeout -k 5 "$timeout" chroot "$E2E_ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        "${E2E_QEMU_ARGS[@]}" </dev/null >"$raw" 2>&1 &
    qpid=$!
    E2E_PIDS+=("$qpid")
    if [[ "$VFSD_E2E_VERBOSE" == 1 ]]; then
        tail -n +1 -s 0.2 -f --pid="$qpid" "$raw" | sed -u "${unescape[@]}" |
            grep --line-buffered -E "${E2E_LIVE_FILTER:-.}" >&2 &
        tailpid=$!
    fi
    while e2e_alive "$qpid"; do
        if [[ -n "$bpid" && -z "$dead_since" ]] && ! e2e_alive "$bpid"; then
            dead_since="$SECONDS"
        fi
        if [[ -n "$dead_since" ]] && (( SECONDS - dead_since >= 3 )); then
            E2E_BACKEND_DIED=1
            e2e_warn "back-end $VFSD_E2E_BACKEND exited while the guest was running: stopping QEMU"
            kill -TERM "$qpid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$qpid" || E2E_QEMU_RC=$?
    e2e_forget_pid "$qpid"
    if [[ -n "$tailpid" ]]; then wait "$tailpid" 2>/dev/null || true; fi
    E2E_GUEST_SECONDS="$(e2e_elapsed "$t0")"
    sed "${unescape[@]}" "$raw" >"$E2E_CONSOLE"
    rm -f "$raw"
}

# e2e_guest_verdict: read $E2E_CONSOLE; 0 when the guest printed "E2E-DONE rc=0" and no E2E-FAIL
# line, 124 on timeout, 1 otherwise. Sets E2E_GUEST_PASSES and E2E_GUEST_FAILS.
e2e_guest_verdict() {
    local done_line
    E2E_GUEST_FAILS="$(grep -c '^E2E-FAIL' "$E2E_CONSOLE" || true)"
    E2E_GUEST_PASSES="$(grep -c '^E2E-PASS' "$E2E_CONSOLE" || true)"
    done_line="$(grep -o '^E2E-DONE rc=[0-9]*' "$E2E_CONSOLE" | tail -n 1 || true)"
    e2e_msg "guest finished in $E2E_GUEST_SECONDS s (qemu rc=$E2E_QEMU_RC, back-end rc=${E2E_BACKEND_RC:-?}):" \
        "$E2E_GUEST_PASSES passed, $E2E_GUEST_FAILS failed, ${done_line:-no E2E-DONE line}"
    grep '^E2E-FAIL' "$E2E_CONSOLE" | sed 's/^/    /' >&2 || true
    if [[ "$E2E_BACKEND_DIED" == 1 ]]; then
        e2e_warn "the back-end died (rc=${E2E_BACKEND_RC:-?}); last back-end log lines:"
        tail -n 10 "${E2E_BACKEND_LOG:-/dev/null}" | sed 's/^/    /' >&2
        return 1
    fi
    if [[ "$E2E_QEMU_RC" == 124 || "$E2E_QEMU_RC" == 137 ]]; then
        e2e_warn "QEMU timed out; last console lines:"
        tail -n 20 "$E2E_CONSOLE" | sed 's/^/    /' >&2
        return 124
    fi
    if [[ -z "$done_line" ]]; then
        e2e_warn "the guest did not finish; last console lines:"
        tail -n 20 "$E2E_CONSOLE" | sed 's/^/    /' >&2
        return 1
    fi
    [[ "$done_line" == "E2E-DONE rc=0" && "$E2E_GUEST_FAILS" == 0 ]]
}

# e2e_run_guest TEST [--smp N] [--queues N] [--share DIR] [--timeout S] [--append "k=v ..."]
#
# The whole run: starts $VFSD_E2E_BACKEND serving DIR (default $E2E_RUNDIR/share) on
# $E2E_RUNDIR/vhost.sock, boots the guest (e2e_boot_guest), stops the back-end, and returns
# e2e_guest_verdict. Logs: $E2E_LOGPFX-{console,backend}.log and -qemu.cmd.
e2e_run_guest() {
    local test="$1"; shift
    local share="$E2E_RUNDIR/share" boot=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --share) share="$2"; shift 2 ;;
        --smp|--queues|--timeout|--append) boot+=("$1" "$2"); shift 2 ;;
        *) e2e_die "e2e_run_guest: unknown option $1" ;;
        esac
    done
    mkdir -p "$share"
    local sock="$E2E_RUNDIR/vhost.sock"
    E2E_BACKEND_LOG="$E2E_LOGPFX-backend.log"
    E2E_CONSOLE="$E2E_LOGPFX-console.log"
    E2E_GUEST_SECONDS=0 E2E_QEMU_RC=0 E2E_BACKEND_DIED=0 E2E_BACKEND_RC=
    if ! e2e_start_backend "$sock" "$share" "$E2E_BACKEND_LOG"; then
        : >"$E2E_CONSOLE"
        E2E_GUEST_PASSES=0 E2E_GUEST_FAILS=0
        return 1
    fi
    e2e_msg "back-end $VFSD_E2E_BACKEND (pid $E2E_BACKEND_PID) serving $share"
    e2e_boot_guest "$test" "$sock" ${boot[@]+"${boot[@]}"}
    e2e_stop_backend
    rm -f "$sock"
    e2e_guest_verdict
}

# e2e_value KEY: the value of the guest's last "E2E-VALUE KEY=..." line (empty if none).
e2e_value() {
    { grep "^E2E-VALUE $1=" "$E2E_CONSOLE" || true; } | tail -n 1 | cut -d= -f2-
}

# ---------------------------------------------------------------------------------------------
# Host-side checks
# ---------------------------------------------------------------------------------------------

E2E_HOST_PASSES=0
E2E_HOST_FAILS=0

e2e_hpass() { E2E_HOST_PASSES=$((E2E_HOST_PASSES + 1)); printf 'HOST-PASS %s\n' "$1"; }
e2e_hfail() { E2E_HOST_FAILS=$((E2E_HOST_FAILS + 1)); printf 'HOST-FAIL %s: %s\n' "$1" "$2"; }

# e2e_hcheck NAME CMD...: pass when CMD succeeds.
e2e_hcheck() {
    local name="$1"; shift
    if "$@" >/dev/null 2>&1; then e2e_hpass "$name"; else e2e_hfail "$name" "failed: $*"; fi
}

# e2e_heq NAME ACTUAL EXPECTED
e2e_heq() {
    if [[ "$2" == "$3" ]]; then e2e_hpass "$1"; else e2e_hfail "$1" "got '$2', expected '$3'"; fi
}

e2e_md5() { md5sum "$1" 2>/dev/null | cut -d' ' -f1 || echo "(no file $1)"; }

# e2e_finish GUEST-RC: print the verdict line for this test and exit with 0 (pass) or 1.
e2e_finish() {
    local grc="$1" verdict=PASS
    [[ "$grc" == 0 && "$E2E_HOST_FAILS" == 0 ]] || verdict=FAIL
    printf '%s %s [%s]: guest %s passed / %s failed, host %s passed / %s failed, guest run %s s; logs %s-*\n' \
        "$verdict" "$E2E_NAME" "$VFSD_E2E_BACKEND" "${E2E_GUEST_PASSES:-0}" "${E2E_GUEST_FAILS:-0}" \
        "$E2E_HOST_PASSES" "$E2E_HOST_FAILS" "${E2E_GUEST_SECONDS:-?}" "$E2E_LOGPFX"
    [[ "$verdict" == PASS ]] && exit 0
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Live migration: QEMU in the background, QMP, consoles in files (tests/e2e/test-migration.sh)
# ---------------------------------------------------------------------------------------------

# e2e_qemu_mig_args QMP-GUEST-PATH SERIAL-GUEST-FILE [INCOMING-URI]: turn E2E_QEMU_ARGS (from
# e2e_qemu_args) into a migratable machine: 512 MiB of RAM, a QMP socket, the serial port into a
# file, no monitor, and without -no-reboot (a guest reboot resets the machine instead of quitting).
# Source and destination must differ only in these chardevs, the vhost-user socket and -incoming.
e2e_qemu_mig_args() {
    local qmp="$1" serial="$2" incoming="${3:-}" a out=() skip=0
    for a in "${E2E_QEMU_ARGS[@]}"; do
        if [[ "$skip" == 1 ]]; then skip=0; continue; fi
        case "$a" in
        -no-reboot|-nographic) continue ;;
        -serial) skip=1; continue ;;
        1G) a=512M ;;
        memory-backend-memfd,id=mem,size=1G,share=on) a=memory-backend-memfd,id=mem,size=512M,share=on ;;
        esac
        out+=("$a")
    done
    out+=(-serial "file:$serial" -monitor none -qmp "unix:$qmp,server=on,wait=off")
    [[ -n "$incoming" ]] && out+=(-incoming "$incoming")
    E2E_QEMU_ARGS=("${out[@]}")
}

# e2e_qemu_start LOG: start chroot+QEMU with E2E_QEMU_ARGS in the background under a timeout of
# $VFSD_E2E_TIMEOUT (stdout/stderr -> LOG), register it, set E2E_QEMU_PID.
e2e_qemu_start() {
    local log="$1"
    { printf '%q ' chroot "$E2E_ROOT" "${E2E_QEMU_ARGS[@]}"; echo; } >"${log%.log}.cmd"
    timeout -k 5 "$VFSD_E2E_TIMEOUT" chroot "$E2E_ROOT" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin "${E2E_QEMU_ARGS[@]}" </dev/null >"$log" 2>&1 &
    E2E_QEMU_PID=$!
    E2E_PIDS+=("$E2E_QEMU_PID")
}

# e2e_qmp SOCKET-HOST-PATH COMMAND [ARGUMENTS-JSON]: one QMP command; prints the "return" value as
# JSON. Exit 1 on a QMP error (printed to stderr) or when the socket does not answer in 10 s. For
# "quit", a connection closed before the reply counts as success.
e2e_qmp() {
    python3 - "$@" <<'PY'
import json, socket, sys
path, cmd = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(path)
f = s.makefile("rw")
def call(c, a=None):
    m = {"execute": c}
    if a is not None:
        m["arguments"] = a
    f.write(json.dumps(m) + "\n"); f.flush()
    while True:
        line = f.readline()
        if not line:
            if c == "quit":
                return {}
            raise SystemExit("QMP: connection closed during " + c)
        r = json.loads(line)
        if "return" in r:
            return r["return"]
        if "error" in r:
            sys.stderr.write("QMP %s: %s\n" % (c, r["error"].get("desc", r["error"])))
            raise SystemExit(1)
json.loads(f.readline())            # the greeting
call("qmp_capabilities")
print(json.dumps(call(cmd, args)))
PY
}

# e2e_qmp_wait SOCKET-HOST-PATH [SECONDS]: wait until the QMP socket accepts connections.
e2e_qmp_wait() {
    local sock="$1" secs="${2:-30}" i
    for ((i = 0; i < secs * 10; i++)); do
        [[ -S "$sock" ]] && e2e_qmp "$sock" query-status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# e2e_migrate SRC-QMP-HOST-PATH URI [TIMEOUT-S]: start a migration on the source and poll
# query-migrate (every 0.1 s) until completed, failed or cancelled; cancels it after TIMEOUT
# (default 120 s). Prints "status=S total-time=MS downtime=MS setup-time=MS transferred=BYTES"
# (and error-desc=... on failure). Exit 0 only on "completed".
e2e_migrate() {
    python3 - "$@" <<'PY'
import json, socket, sys, time
path, uri = sys.argv[1], sys.argv[2]
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(15)
s.connect(path)
f = s.makefile("rw")
def call(c, a=None):
    m = {"execute": c}
    if a is not None:
        m["arguments"] = a
    f.write(json.dumps(m) + "\n"); f.flush()
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("QMP: connection closed during " + c)
        r = json.loads(line)
        if "return" in r:
            return r["return"]
        if "error" in r:
            print("status=qmp-error error-desc=%r" % r["error"].get("desc", ""))
            raise SystemExit(1)
json.loads(f.readline())
call("qmp_capabilities")
call("migrate", {"uri": uri})
t0 = time.time()
cancelled = False
while True:
    r = call("query-migrate")
    st = r.get("status", "none")
    if st in ("completed", "failed", "cancelled"):
        break
    if time.time() - t0 > limit and not cancelled:
        call("migrate_cancel"); cancelled = True
    if time.time() - t0 > limit + 30:
        st = "stuck"; break
    time.sleep(0.1)
ram = r.get("ram", {})
out = "status=%s total-time=%s downtime=%s setup-time=%s transferred=%s" % (
    st, r.get("total-time", "?"), r.get("downtime", "?"), r.get("setup-time", "?"),
    ram.get("transferred", "?"))
if "error-desc" in r:
    out += " error-desc=%r" % r["error-desc"]
if cancelled:
    out += " (cancelled after %gs)" % limit
print(out)
sys.exit(0 if st == "completed" else 1)
PY
}

# e2e_console_clean FILE: FILE's text without CRs and terminal escapes.
e2e_console_clean() {
    sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' "$1" 2>/dev/null || true
}

# e2e_wait_console FILE ERE SECONDS [PID...]: wait until a console line matches ERE. Returns 1 on
# timeout, 3 as soon as one of the PIDs (our children) has exited.
e2e_wait_console() {
    local file="$1" re="$2" secs="$3" i p; shift 3
    for ((i = 0; i < secs * 5; i++)); do
        e2e_console_clean "$file" | grep -qE "$re" && return 0
        for p in "$@"; do
            e2e_alive "$p" || { e2e_console_clean "$file" | grep -qE "$re" && return 0; return 3; }
        done
        sleep 0.2
    done
    return 1
}

# e2e_wait_exit PID SECONDS: wait for our child PID to exit on its own (never signals it). Returns
# 0 and sets E2E_EXIT_RC when it did (and forgets the PID); returns 1 while it still runs.
e2e_wait_exit() {
    local pid="$1" secs="$2" i
    E2E_EXIT_RC=
    for ((i = 0; i < secs * 10; i++)); do
        e2e_alive "$pid" || break
        sleep 0.1
    done
    e2e_alive "$pid" && return 1
    E2E_EXIT_RC=0
    wait "$pid" 2>/dev/null || E2E_EXIT_RC=$?
    e2e_forget_pid "$pid"
    return 0
}
