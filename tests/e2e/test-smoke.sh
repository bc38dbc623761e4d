#!/usr/bin/env bash
# test-smoke.sh: everyday filesystem operations through a real guest, checked on both sides.
# Back-end: $VFSD_E2E_BACKEND (vfsd | virtiofsd). Exit 0 = pass.
set -euo pipefail
# shellcheck source=scripts/e2e-lib.sh
. "$(dirname "$(readlink -f "$0")")/../../scripts/e2e-lib.sh"

e2e_begin smoke
S="$E2E_RUNDIR/share"
mkdir -p "$S"

# --- the host's side of the share ---------------------------------------------------------
printf 'hello from the host\n' >"$S/hello.txt"
chmod 644 "$S/hello.txt"
touch -d '2020-01-02 03:04:05 UTC' "$S/hello.txt"
printf '#!/bin/sh\necho run from the share\n' >"$S/exec.sh"
chmod 755 "$S/exec.sh"
printf 'read only\n' >"$S/ro.txt"
chmod 400 "$S/ro.txt"
head -c $((1024 * 1024 + 123)) /dev/urandom >"$S/host-random.bin"
mkdir "$S/dir300"
for i in $(seq -w 0 299); do echo "f$i" >"$S/dir300/f$i"; done
mkdir "$S/nonempty"
echo keep >"$S/nonempty/keep.txt"
echo 'rename me' >"$S/renameme.txt"
mkdir "$S/renamedir"
echo inner >"$S/renamedir/inner.txt"
echo 'unlink me' >"$S/unlinkme.txt"
head -c 1000 /dev/zero | tr '\0' a >"$S/truncme.txt"
head -c 65536 /dev/zero | tr '\0' x >"$S/patch.bin"
ln -s hello.txt "$S/link-to-hello"

grc=0
e2e_run_guest smoke --smp 2 || grc=$?

# --- what the host sees afterwards ----------------------------------------------------------
for f in hello.txt exec.sh ro.txt host-random.bin dir300 link-to-hello; do
    e2e_heq "stat.$f" "$(e2e_value "stat.$f")" "$(stat -c '%a %s %F' "$S/$f")"
done
e2e_heq mtime.hello.txt "$(e2e_value mtime.hello.txt)" "$(stat -c %Y "$S/hello.txt")"
e2e_heq md5.host-random.bin "$(e2e_value md5.host-random.bin)" "$(e2e_md5 "$S/host-random.bin")"
e2e_heq md5.host-random.bin.uncached "$(e2e_value md5.host-random.bin.uncached)" "$(e2e_md5 "$S/host-random.bin")"

e2e_heq from-guest.content "$(cat "$S/from-guest.txt" 2>&1)" "written by the guest"
e2e_heq from-guest.stat "$(stat -c '%a %s %Y' "$S/from-guest.txt" 2>&1)" \
    "640 21 $(date -u -d '2001-02-03 04:05:06' +%s)"
e2e_heq append.content "$(tr '\n' ' ' <"$S/append.txt" 2>&1)" "one two "
e2e_heq chown.owner "$(stat -c '%u:%g' "$S/owned.txt" 2>&1)" "1234:5678"
expected_patch="$( (head -c 10000 /dev/zero | tr '\0' x; printf PATCH; head -c $((65536 - 10005)) /dev/zero | tr '\0' x) | md5sum | cut -d' ' -f1)"
e2e_heq pwrite.content "$(e2e_md5 "$S/patch.bin")" "$expected_patch"

e2e_hcheck mkdir.p test -d "$S/newdir/sub"
e2e_hcheck rmdir.gone test ! -e "$S/newdir/sub/deeper"
e2e_heq mkdir.mode "$(stat -c %a "$S/newdir/mode750" 2>&1)" 750
e2e_hcheck rmdir.gone2 test ! -e "$S/gone"

e2e_hcheck rename.file.old-gone test ! -e "$S/renameme.txt"
e2e_heq rename.file.content "$(cat "$S/renamed.txt" 2>&1)" "rename me"
e2e_hcheck rename.dir.old-gone test ! -e "$S/renamedir"
e2e_heq rename.dir.inner "$(cat "$S/renamed-dir/inner.txt" 2>&1)" inner
e2e_hcheck rename.replace.src-gone test ! -e "$S/replace-src.txt"
e2e_heq rename.replace.content "$(cat "$S/replace-dst.txt" 2>&1)" replacement
e2e_hcheck unlink.gone test ! -e "$S/unlinkme.txt"
e2e_heq link.hard.inode "$(stat -c '%i %h' "$S/hardlink.txt" 2>&1)" "$(stat -c '%i %h' "$S/hello.txt")"
e2e_heq link.hard.nlink "$(stat -c %h "$S/hello.txt")" 2
e2e_heq link.sym "$(readlink "$S/guest-link" 2>&1)" hello.txt
e2e_hcheck mkfifo test -p "$S/fifo"

e2e_heq truncate.shrink "$(cat "$S/truncme.txt" 2>&1)" aaaaaaaaaa
e2e_heq truncate.grow "$(stat -c %s "$S/sparse.bin" 2>&1)" 5242880

e2e_heq big.size "$(stat -c %s "$S/big-guest.bin" 2>&1)" 8388608
e2e_heq big.md5 "$(e2e_md5 "$S/big-guest.bin")" "$(e2e_value md5.big-guest.bin)"
e2e_hcheck big.md5-present test -n "$(e2e_value md5.big-guest.bin)"

e2e_heq readdir.host-listing "$(e2e_value ls.dir300)" "$(cd "$S/dir300" && LC_ALL=C ls | md5sum | cut -d' ' -f1)"
e2e_heq readdir.guest-made "$(find "$S/gdir300" -type f | wc -l)" 300
e2e_heq readdir.guest-made.content "$(cat "$S/gdir300/g299" 2>&1)" g299

e2e_heq statfs "$(e2e_value statfs)" "$(stat -f -c '%b %S %l' "$S")"

e2e_finish "$grc"
