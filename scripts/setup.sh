#!/usr/bin/env bash
# Install every Debian package vfsd's build and tests need. Idempotent: does
# nothing when everything is there. apt-get only; nothing downloaded otherwise.
# The end-to-end guest environment (QEMU 10, a 6.12 kernel) is set up by
# scripts/setup-e2e.sh.
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config clang-format
	liburing-dev libfuse3-dev libjson-c-dev libseccomp-dev libcap-ng-dev libcriterion-dev
	debootstrap cpio gzip python3 util-linux procps psmisc
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "setup: all ${#PACKAGES[@]} packages are installed"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
