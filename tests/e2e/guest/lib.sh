# Guest-side helpers (busybox ash), sourced before each /tests/NAME.sh.
E2E_FAILS=0
E2E_PASSES=0

pass() { E2E_PASSES=$((E2E_PASSES + 1)); echo "E2E-PASS $1"; }
fail() { E2E_FAILS=$((E2E_FAILS + 1)); echo "E2E-FAIL $1: $2"; }
info() { echo "E2E-INFO $*"; }
# value KEY VALUE: a result the host driver compares against its own view.
value() { echo "E2E-VALUE $1=$2"; }

# check NAME CMD...: pass when CMD succeeds; on failure show its output.
check() {
    _n="$1"; shift
    if _o=$("$@" 2>&1); then pass "$_n"; else fail "$_n" "'$*' failed: $(echo "$_o" | tail -n 3 | tr '\n' ' ')"; fi
}

# check_fails NAME PATTERN CMD...: pass when CMD fails and its message matches PATTERN (errno text).
check_fails() {
    _n="$1"; _p="$2"; shift 2
    if _o=$("$@" 2>&1); then
        fail "$_n" "'$*' succeeded but should have failed with '$_p'"
    elif echo "$_o" | grep -qi "$_p"; then
        pass "$_n"
    else
        fail "$_n" "'$*' failed with '$(echo "$_o" | tail -n 1)', expected '$_p'"
    fi
}

# eq NAME ACTUAL EXPECTED
eq() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2', expected '$3'"; fi
}

md5() { md5sum "$1" 2>/dev/null | cut -d' ' -f1; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

e2e_end() {
    info "$E2E_PASSES checks passed, $E2E_FAILS failed"
    [ "$E2E_FAILS" -eq 0 ]
}
