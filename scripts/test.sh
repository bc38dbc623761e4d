#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. install what the build and tests need (scripts/setup.sh)
#   2. build with -Werror and run unit + integration tests (CTest)
#   3. the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   4. end-to-end: real QEMU 10 and a real Linux guest mounting the share
# Options (environment):
#   VFSD_SKIP_E2E=1     skip step 4 (no QEMU needed)
#   VFSD_SKIP_ASAN=1    skip step 3
#   VFSD_E2E_LONG=1     also run the long guest suites
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
jobs="$(nproc 2>/dev/null || echo 2)"
passed=0
failed=0
failures=()

step() { printf '\n==== %s ====\n' "$*"; }

run_stage() {
	local name="$1"
	shift
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$name")
	fi
}

ctest_dir() {
	local dir="$1"
	ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 300
}

step "setup"
bash scripts/setup.sh

step "build (RelWithDebInfo, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"

step "unit and integration tests"
run_stage "ctest" ctest_dir build

if [ "${VFSD_SKIP_ASAN:-0}" != 1 ]; then
	step "build with ASan + UBSan"
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVFSD_SANITIZE=ON >/dev/null
	cmake --build build-asan -j "$jobs"
	step "unit and integration tests under ASan + UBSan"
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
	run_stage "ctest-asan" ctest_dir build-asan
fi

if [ "${VFSD_SKIP_E2E:-0}" != 1 ]; then
	step "end-to-end: real QEMU and a real Linux guest"
	bash scripts/setup-e2e.sh
	run_stage "e2e" env VFSD_BIN="$repo/build/vfsd" bash tests/e2e/run-all.sh
fi

step "summary"
if [ "$failed" -gt 0 ]; then
	echo "failed stages: ${failures[*]}"
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
