#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# CTest for the vfsd-state tool: test-vfsd-state.sh VFSD_STATE DATA_DIR
set -u
TOOL=$1
DATA=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
BASIC=$DATA/state-v1.0-basic.jsonl
ORPH=$DATA/state-v1.0-orphans-handles.jsonl
LOST=$DATA/state-v1.1-lost.jsonl
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_rc() { # want cmd...
	local want=$1; shift
	"$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
	[ "$rc" = "$want" ] || fail "exit $rc, not $want: $* ($(head -c 300 "$TMP/out" "$TMP/err"))"
}
expect_out() { # pattern
	grep -qF -- "$1" "$TMP/out" || fail "output lacks '$1': $(head -c 400 "$TMP/out")"
}
json_ok() {
	python3 -m json.tool "$TMP/out" >/dev/null || fail "not JSON: $(head -c 300 "$TMP/out")"
}

# validate
expect_rc 0 "$TOOL" validate "$BASIC";   expect_out "valid: version 1.0, 5 inodes, 3 handles"
expect_rc 0 "$TOOL" validate "$ORPH"
expect_rc 0 "$TOOL" validate - <"$BASIC"
expect_rc 0 "$TOOL" --json validate "$BASIC"; json_ok; expect_out '"valid":true'
head -c 400 "$BASIC" >"$TMP/trunc.jsonl"
expect_rc 1 "$TOOL" validate "$TMP/trunc.jsonl"; expect_out "truncated"
# several problems, every one printed
sed -e 's/"id":3,/"id":2,/' -e 's/"inode":5,/"inode":55,/' "$BASIC" >"$TMP/bad.jsonl"
expect_rc 1 "$TOOL" validate "$TMP/bad.jsonl"
expect_out "line 5: inode: id: duplicate id 2"
expect_out "line 10: handle: inode: no inode 55"
expect_out "trailer: checksum"
expect_out "line 5: inode: parent: 2 is the inode itself"
expect_out "invalid: 5 problems"
expect_rc 1 "$TOOL" --json validate "$TMP/bad.jsonl"; json_ok; expect_out '"valid":false'
expect_rc 2 "$TOOL" validate "$TMP/does-not-exist"
expect_rc 2 "$TOOL" frobnicate "$BASIC"
expect_rc 2 "$TOOL"
expect_rc 0 "$TOOL" --help; expect_out "convert --to=VER"

# show
expect_rc 0 "$TOOL" show "$BASIC"
expect_out "docs/readme.txt"; expect_out "O_RDWR|O_APPEND"; expect_out "FUSE 7.38"
expect_out "[dir offset 3]"
expect_rc 0 "$TOOL" show "$ORPH"
expect_out '[orphan: unlinked, kept as "5"]'; expect_out 'data/\xff\x01raw'
expect_out "required features: orphans, file-handles"
expect_rc 0 "$TOOL" --json show "$ORPH"; json_ok; expect_out '"path":"data"'
expect_rc 1 "$TOOL" show "$TMP/bad.jsonl"; expect_out "duplicate id 2"

# stats
expect_rc 0 "$TOOL" stats "$BASIC"; expect_out "inode               5            412"
expect_rc 0 "$TOOL" --json stats "$BASIC"; json_ok; expect_out '"total_bytes":985'

# diff
expect_rc 0 "$TOOL" diff "$BASIC" "$BASIC"; expect_out "no differences"
expect_rc 1 "$TOOL" diff "$BASIC" "$ORPH"
expect_out "- inode 2 docs"; expect_out "+ inode 7 <handle>"; expect_out "~ inode 3: path: docs/readme.txt -> data"
expect_rc 1 "$TOOL" --json diff "$BASIC" "$ORPH"; json_ok; expect_out '"equal":false'

# convert: re-encoding our own blob is byte-identical
for f in "$BASIC" "$ORPH"; do
	expect_rc 0 "$TOOL" convert --to=1.0 "$f" "$TMP/conv.jsonl"
	cmp -s "$f" "$TMP/conv.jsonl" || fail "convert of $f is not byte-identical"
done
# 1.1 re-encodes as itself; down to 1.0 the lost inodes and the handles on them go
expect_rc 0 "$TOOL" convert --to=1.1 "$LOST" "$TMP/conv.jsonl"
cmp -s "$LOST" "$TMP/conv.jsonl" || fail "convert of $LOST is not byte-identical"
expect_rc 0 "$TOOL" convert --to=1.0 "$LOST" "$TMP/lost10.jsonl"
grep -qF "dropped 2 lost inodes and 1 handle on them" "$TMP/err" || fail "convert --to=1.0 does not say what it dropped: $(cat "$TMP/err")"
expect_rc 0 "$TOOL" validate "$TMP/lost10.jsonl"; expect_out "valid: version 1.0, 4 inodes, 2 handles"
grep -q '"lost"' "$TMP/lost10.jsonl" && fail "a 1.0 blob with lost records or the lost feature"
expect_rc 0 "$TOOL" --json convert --to=1.0 "$LOST" "$TMP/lost10.jsonl"; json_ok
expect_out '"dropped":{"lost_inodes":2,"handles":1}'
# a 1.0 blob goes up to 1.1 unchanged but for the version
expect_rc 0 "$TOOL" convert --to=1.1 "$BASIC" "$TMP/up.jsonl"
expect_rc 0 "$TOOL" validate "$TMP/up.jsonl"; expect_out "valid: version 1.1, 5 inodes, 3 handles"
expect_rc 0 "$TOOL" convert --to=1.0 "$TMP/up.jsonl" "$TMP/down.jsonl"
cmp -s "$BASIC" "$TMP/down.jsonl" || fail "1.0 -> 1.1 -> 1.0 differs from the original"
expect_rc 2 "$TOOL" convert --to=1.2 "$BASIC" "$TMP/conv2.jsonl"
expect_rc 2 "$TOOL" convert --to=2.0 "$BASIC" "$TMP/conv2.jsonl"
expect_rc 2 "$TOOL" convert "$BASIC" "$TMP/conv2.jsonl"
# a newer minor with optional extras converts down to 1.0
python3 - "$BASIC" "$TMP/newer.body" <<'PY'
import sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-2]
lines[0] = lines[0].replace(b'"1.0"', b'"1.4"').replace(b'"optional_features":[]', b'"optional_features":["lock"]')
lines.insert(4, b'{"kind":"lock","inode":2,"owner":7}')
lines[2] = lines[2][:-1] + b',"future":{"x":1}}'
open(sys.argv[2], 'wb').write(b''.join(l + b'\n' for l in lines))
PY
python3 - "$TMP/newer.body" "$TMP/newer.jsonl" <<'PY'
import sys
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff
body = open(sys.argv[1], 'rb').read()
recs = body.count(b'\n') - 1
inodes = body.count(b'"kind":"inode"'); handles = body.count(b'"kind":"handle"')
t = '{"kind":"trailer","records":%d,"inodes":%d,"handles":%d,"checksum":"crc32c:%08x"}\n' % (recs, inodes, handles, crc32c(body))
open(sys.argv[2], 'wb').write(body + t.encode())
PY
expect_rc 0 "$TOOL" validate "$TMP/newer.jsonl"
expect_rc 0 "$TOOL" stats "$TMP/newer.jsonl"; expect_out "other               1"
expect_rc 0 "$TOOL" convert --to=1.0 "$TMP/newer.jsonl" "$TMP/down.jsonl"
cmp -s "$BASIC" "$TMP/down.jsonl" || fail "1.4 -> 1.0 conversion differs from the 1.0 original"

# lost inodes (1.1)
reseal() { # IN OUT: drop the trailer of IN and write OUT with a correct one
python3 - "$1" "$2" <<'PY'
import sys
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-2]
body = b''.join(l + b'\n' for l in lines)
recs = len(lines) - 1
inodes = body.count(b'"kind":"inode"'); handles = body.count(b'"kind":"handle"')
t = '{"kind":"trailer","records":%d,"inodes":%d,"handles":%d,"checksum":"crc32c:%08x"}\n' % (recs, inodes, handles, crc32c(body))
open(sys.argv[2], 'wb').write(body + t.encode())
PY
}
expect_rc 0 "$TOOL" validate "$LOST"; expect_out "valid: version 1.1, 6 inodes (2 lost), 3 handles"
expect_rc 0 "$TOOL" --json validate "$LOST"; json_ok; expect_out '"lost_inodes":2'
expect_rc 0 "$TOOL" show "$LOST"
expect_out "counts: 6 inodes (2 lost), 3 handles"
expect_out "<lost>  [lost: unlinked]  [ino 140]"; expect_out "<lost>  [lost: not-found]"
expect_out "O_WRONLY|O_APPEND            <lost>"
expect_rc 0 "$TOOL" --json show "$LOST"; json_ok
expect_out '"path":"<lost>","lost":"unlinked","ino":140'; expect_out '"lost_inodes":2'
expect_rc 0 "$TOOL" stats "$LOST"; expect_out "lost inodes: 1 unlinked, 1 not-found"
expect_rc 0 "$TOOL" stats "$BASIC"; expect_out "lost inodes: 0 unlinked, 0 not-found"
expect_rc 0 "$TOOL" --json stats "$LOST"; json_ok; expect_out '"lost_inodes":{"unlinked":1,"not_found":1}'
sed -e 's/"lost":"unlinked"/"lost":"not-found"/' "$LOST" >"$TMP/lost2.raw"; reseal "$TMP/lost2.raw" "$TMP/lost2.jsonl"
expect_rc 1 "$TOOL" diff "$LOST" "$TMP/lost2.jsonl"; expect_out "~ inode 4: lost: unlinked -> not-found"
expect_rc 1 "$TOOL" --json diff "$LOST" "$TMP/lost2.jsonl"; json_ok
expect_out '{"what":"inode","id":4,"field":"lost","a":"unlinked","b":"not-found"}'
expect_rc 1 "$TOOL" diff "$LOST" "$TMP/lost10.jsonl"; expect_out "- inode 6 <lost>"; expect_out "- handle 3 <lost>"
# the problems validate reports
sed -e 's/"required_features":\["lost"\]/"required_features":[]/' \
    -e 's/"lost":"not-found"/"lost":"gone"/' "$LOST" >"$TMP/lostbad.raw"
reseal "$TMP/lostbad.raw" "$TMP/lostbad.jsonl"
expect_rc 1 "$TOOL" validate "$TMP/lostbad.jsonl"
expect_out 'line 6: inode: lost: used without "lost" in required_features'
expect_out 'line 7: inode: lost: "gone" is not one of unlinked, not-found'
sed -e 's/"parent":2,"name":"current"/"parent":4,"name":"current"/' \
    -e 's/"lost":"not-found"}/"lost":"not-found","path":"x"}/' "$LOST" >"$TMP/lostbad.raw"
reseal "$TMP/lostbad.raw" "$TMP/lostbad.jsonl"
expect_rc 1 "$TOOL" validate "$TMP/lostbad.jsonl"
expect_out 'line 7: inode: lost: a lost inode has no location, but this record has "path"'
expect_out "line 8: inode: parent: parent 4 is lost"
expect_out "invalid: 2 problems"
sed -e 's/"version":"1.1"/"version":"1.0"/' "$LOST" >"$TMP/lost10bad.raw"; reseal "$TMP/lost10bad.raw" "$TMP/lost10bad.jsonl"
expect_rc 1 "$TOOL" validate "$TMP/lost10bad.jsonl"
expect_out "line 1: header: required_features: required feature 'lost' is defined by version 1.1"

# extraction from a synthetic QEMU migration stream (odd chunk sizes, a decoy in "RAM")
python3 - "$ORPH" "$TMP/mig.bin" <<'PY'
import random, struct, sys
blob = open(sys.argv[1], 'rb').read()
rnd = random.Random(7)
out = bytearray(b'QEVM\x00\x00\x00\x03')
out += bytes(rnd.getrandbits(8) for _ in range(10000))
out += b'\x05\x15vhost-user-fs-backend' + struct.pack('>I', 0) + struct.pack('>I', 3) + b'{x}' + struct.pack('>I', 0)
out += bytes(rnd.getrandbits(8) for _ in range(3000))
out += b'\x05\x15vhost-user-fs-backend' + struct.pack('>I', 0)
i = 0
for n in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987] * 10:
    if i >= len(blob): break
    chunk = blob[i:i + n]; i += len(chunk)
    out += struct.pack('>I', len(chunk)) + chunk
assert i == len(blob)
out += struct.pack('>I', 0) + b'\x04\x00\x00\x00\x09' + bytes(100)
open(sys.argv[2], 'wb').write(out)
PY
expect_rc 0 "$TOOL" validate "$TMP/mig.bin"
expect_rc 0 "$TOOL" show "$TMP/mig.bin"; expect_out "migration stream"; expect_out "data/"
expect_rc 0 "$TOOL" show - <"$TMP/mig.bin"
expect_rc 0 "$TOOL" --json show "$TMP/mig.bin"; json_ok; expect_out '"migration_stream":true'
expect_rc 0 "$TOOL" convert --to=1.0 "$TMP/mig.bin" "$TMP/fromMig.jsonl"
cmp -s "$ORPH" "$TMP/fromMig.jsonl" || fail "blob extracted from the migration stream differs"
expect_rc 0 "$TOOL" diff "$TMP/mig.bin" "$ORPH"
expect_rc 1 "$TOOL" --from-migration-stream validate "$BASIC"
head -c 11000 "$TMP/mig.bin" >"$TMP/mig-cut.bin"
expect_rc 1 "$TOOL" validate "$TMP/mig-cut.bin"

# no privilege and no io_uring/seccomp/capability libraries
if command -v ldd >/dev/null; then
	ldd "$TOOL" | grep -Eq 'liburing|libseccomp|libcap-ng' && fail "links a daemon-only library"
fi

[ "$fails" = 0 ] && echo "test-vfsd-state: all passed" || echo "test-vfsd-state: $fails failed"
[ "$fails" = 0 ]
