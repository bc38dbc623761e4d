#!/usr/bin/env bash
# test-state-dump.sh: vfsd-state on a real QEMU migration stream. Boots the guest with vfsd (a QMP
# socket, as test-migration.sh's source side); the guest (guest/state-dump.sh) opens and holds
# files and a directory on the share; the host saves the VM with QMP `migrate` to
# file:/run/<id>/stream.bin (the VM stops), then runs `vfsd-state validate`, `show`, `stats` and
# `--json show|validate|stats` on the saved stream (the tool must find the vhost-user-fs-backend
# subsection by itself) and compares what they say with what the guest holds. A copy of the stream
# with one byte of the blob changed must fail `validate` (exit 1) with a reason. Finally the VM is
# resumed (`cont`): the guest uses its descriptors again, closes them and powers off, and vfsd must
# exit 0 on its own. vfsd only (the blob format is vfsd's). Exit 0 = pass.
#
#   VFSD_E2E_DUMP_MANY  files the guest also looks up (default 1000: a blob of ~130 KB, more than
#                      a pipe holds, so QEMU stores it in several chunks; 0 for a small blob)
#   VFSD_STATE_BIN     the vfsd-state binary (default: tools/vfsd-state in $VFSD_BIN's build
#                      directory)
set -euo pipefail
: "${VFSD_E2E_TIMEOUT:=120}"     # hard limit for the QEMU process
# shellcheck source=scripts/e2e-lib.sh
. "$(dirname "$(readlink -f "$0")")/../../scripts/e2e-lib.sh"
: "${VFSD_STATE_BIN:=$(dirname "$VFSD_BIN")/tools/vfsd-state}"

if [[ "$VFSD_E2E_BACKEND" != vfsd ]]; then
    echo "SKIP state-dump [$VFSD_E2E_BACKEND]: the state blob in the stream is vfsd's own format"
    exit 0
fi
[[ -x "$VFSD_STATE_BIN" ]] || e2e_die "no vfsd-state binary at $VFSD_STATE_BIN (cmake --build build --target vfsd-state)"

MANY="${VFSD_E2E_DUMP_MANY:-1000}"

e2e_begin state-dump
T_ALL=$SECONDS
S="$E2E_RUNDIR/share"
G="${E2E_RUNDIR#"$E2E_ROOT"}"          # the run directory as QEMU (in the chroot) sees it
mkdir -p "$S/dump/sub" "$S/dump/heldir"
echo alpha >"$S/dump/a.txt"
echo beta >"$S/dump/sub/b.txt"
echo looked >"$S/dump/looked.txt"
touch "$S/dump/heldir/one" "$S/dump/heldir/two"
echo "not looked up by the guest" >"$S/dump/other.txt"
mkdir -p "$S/dump/many"
for ((i = 1; i <= MANY; i++)); do : >"$S/dump/many/entry-$i-with-a-longer-name-for-a-bigger-blob.dat"; done

STREAM="$E2E_RUNDIR/stream.bin"
OUT="$E2E_RUNDIR/out"
mkdir -p "$OUT"
CONSOLE="$E2E_RUNDIR/console.log"
QMP="$E2E_RUNDIR/qmp.sock"

e2e_build_initramfs "$E2E_RUNDIR/initrd.cpio.gz"
E2E_BACKEND_LOG="$E2E_LOGPFX-backend.log"
e2e_start_backend "$E2E_RUNDIR/fs.sock" "$S" "$E2E_BACKEND_LOG" || e2e_die "vfsd did not start"
BE_PID="$E2E_BACKEND_PID"
e2e_qemu_args "$G/fs.sock" "$G/initrd.cpio.gz" "vfsd.test=state-dump vfsd.many=$MANY" 2 1
e2e_qemu_mig_args "$G/qmp.sock" "$G/console.log"
: >"$CONSOLE"
e2e_qemu_start "$E2E_LOGPFX-qemu.log"
Q_PID="$E2E_QEMU_PID"

# save_console: the cleaned console into the log directory; E2E_CONSOLE for e2e_value
save_console() {
    E2E_CONSOLE="$E2E_LOGPFX-console.log"
    e2e_console_clean "$CONSOLE" >"$E2E_CONSOLE"
}

# sh_check NAME WANT-RC CMD...: CMD's stdout/stderr into $OUT/NAME.{out,err}; pass when it exits
# with WANT-RC.
sh_check() {
    local name="$1" want="$2" rc=0; shift 2
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || rc=$?
    if [[ "$rc" == "$want" ]]; then
        e2e_hpass "$name.exit-$want"
    else
        e2e_hfail "$name.exit-$want" "exit $rc: $* ($(head -c 300 "$OUT/$name.out" "$OUT/$name.err" | tr '\n' ' '))"
    fi
}

# ---- 1. boot; the guest holds its descriptors -----------------------------------------------
e2e_qmp_wait "$QMP" 30 || e2e_die "QEMU: no QMP socket ($(tail -n 3 "$E2E_LOGPFX-qemu.log"))"
e2e_msg "vfsd pid $BE_PID, QEMU pid $Q_PID; waiting for the guest to hold its descriptors"
ready=0
if e2e_wait_console "$CONSOLE" '^DUMP-READY$' 60 "$Q_PID"; then
    ready=1; e2e_hpass guest.ready
else
    e2e_hfail guest.ready "no DUMP-READY from the guest within 60 s"
    e2e_console_clean "$CONSOLE" | tail -n 15 | sed 's/^/    /' >&2
fi

if [[ "$ready" == 1 ]]; then
    # ---- 2. save the VM to a file ------------------------------------------------------------
    t0="$(e2e_now)"
    if mig="$(e2e_migrate "$QMP" "file:$G/stream.bin" 60 2>&1)"; then
        e2e_hpass migrate.completed
    else
        e2e_hfail migrate.completed "$mig"
    fi
    e2e_msg "migrate to file: $mig (host wall $(e2e_elapsed "$t0") s, $(du -h "$STREAM" 2>/dev/null | cut -f1) on disk)"
    st="$(e2e_qmp "$QMP" query-status 2>&1 || true)"
    if [[ "$st" == *'"status": "postmigrate"'* ]]; then e2e_hpass vm.stopped
    else e2e_hfail vm.stopped "query-status after the migration: $st"; fi

    save_console
    HELD="$(e2e_value held)"
    DIRS="$(e2e_value dirs)"
    LOOKED="$(e2e_value looked)"
    e2e_msg "the guest holds: $HELD (directories: $DIRS); looked up: $LOOKED"

    # ---- 3. vfsd-state on the saved stream ---------------------------------------------------
    VS="$VFSD_STATE_BIN"
    sh_check validate 0 "$VS" validate "$STREAM"
    e2e_hcheck validate.says-valid grep -qE '^.*stream\.bin: valid: version 1\.1, [0-9]+ inodes, [0-9]+ handles$' "$OUT/validate.out"
    sh_check show 0 "$VS" show "$STREAM"
    sh_check stats 0 "$VS" stats "$STREAM"
    sh_check json-show 0 "$VS" --json show "$STREAM"
    sh_check json-validate 0 "$VS" --json validate "$STREAM"
    sh_check json-stats 0 "$VS" --json stats "$STREAM"
    e2e_hcheck show.from-migration-stream grep -q '(migration stream, blob chunks at offset [0-9]*)' "$OUT/show.out"
    e2e_hcheck show.no-candidates-warning test ! -s "$OUT/show.err"

    # Everything else in one place: the JSON parses; the text and the JSON agree with each other
    # and with what the guest holds.
    while IFS= read -r line; do
        case "$line" in
        PASS\ *) e2e_hpass "${line#PASS }" ;;
        FAIL\ *) n="${line#FAIL }"; e2e_hfail "${n%%: *}" "${n#*: }" ;;
        *) echo "$line" ;;
        esac
    done < <(python3 - "$OUT" "$HELD" "$DIRS" "$LOOKED" "$(e2e_value many)" "$MANY" <<'PY' || echo "FAIL checker: python3 exited $?"
import json, re, sys
out, held, dirs, looked = sys.argv[1], sys.argv[2].split(), set(sys.argv[3].split()), sys.argv[4].split()
many_guest, many = sys.argv[5], int(sys.argv[6])

def ok(name, cond, why=""):
    print(("PASS %s" if cond else "FAIL %s: " + why) % name)

def load(name):
    try:
        with open("%s/%s.out" % (out, name)) as f:
            v = json.load(f)
        ok("%s.parses" % name, True)
        return v
    except Exception as e:  # noqa
        ok("%s.parses" % name, False, "python3 json: %s" % e)
        return None

text = open("%s/show.out" % out).read()
show, val, stats = load("json-show"), load("json-validate"), load("json-stats")
ok("guest.reported", len(held) == 4 and len(looked) == 1 and many_guest == str(many),
   "held %r looked %r many %r" % (held, looked, many_guest))
# the inodes the guest must have: every looked-up path and its parents (plus the root, id 1)
many_paths = ["dump/many/entry-%d-with-a-longer-name-for-a-bigger-blob.dat" % i for i in range(1, many + 1)]
want_inodes, want_dirs = set(), set(dirs)
for p in held + looked + many_paths:
    parts = p.split("/")
    for i in range(1, len(parts) + 1):
        want_inodes.add("/".join(parts[:i]))
        if i < len(parts):
            want_dirs.add("/".join(parts[:i]))
core = sorted(p for p in want_inodes if not p.startswith("dump/many/"))
want_handles = sorted(held)
if show:
    src = show.get("source", {})
    ok("json.source", src.get("migration_stream") is True and src.get("candidates") == 1,
       "source %r" % src)
    ok("json.version", show["header"]["version"] == "1.1", show["header"]["version"])
    ok("json.session", show["session"].get("initialized") is True and
       show["session"].get("migration_mode") == "find-paths", "%r" % show["session"])
    inodes = {i["path"]: i for i in show["inodes"] if i["id"] != 1}
    roots = [i for i in show["inodes"] if i["id"] == 1]
    ok("json.root", len(roots) == 1 and roots[0]["type"] == "dir", "%r" % roots)
    ok("json.inode-paths", set(inodes) == want_inodes,
       "blob %s, guest %s" % (sorted(inodes), sorted(want_inodes)))
    ok("json.counts.inodes", show["counts"]["inodes"] == len(want_inodes) + 1 == len(show["inodes"]),
       "counts %r, %d records, guest looked up %d + the root" % (show["counts"], len(show["inodes"]), len(want_inodes)))
    ok("json.counts.handles", show["counts"]["handles"] == len(want_handles) == len(show["handles"]),
       "counts %r, %d records, guest holds %d" % (show["counts"], len(show["handles"]), len(want_handles)))
    ok("json.nlookup", all(i["nlookup"] >= 1 for i in show["inodes"]),
       "%r" % [(i["path"], i["nlookup"]) for i in show["inodes"] if i["nlookup"] < 1])
    types = {p: inodes[p]["type"] for p in inodes}
    want_types = {p: ("dir" if p in want_dirs else "reg") for p in want_inodes}
    ok("json.inode-types", types == want_types, "%r vs %r" % (types, want_types))
    ids = {i["id"] for i in show["inodes"]}
    ok("json.ids-below-next", max(ids) < show["session"]["next_nodeid"],
       "max id %d, next_nodeid %d" % (max(ids), show["session"]["next_nodeid"]))
    hs = show["handles"]
    ok("json.handle-paths", sorted(h["path"] for h in hs) == want_handles,
       "blob %r, guest %r" % (sorted(h["path"] for h in hs), want_handles))
    ok("json.handles-refer-to-inodes", all(h["inode"] in ids for h in hs), "%r" % hs)
    ok("json.fhs-below-next", all(h["fh"] < show["session"]["next_fh"] for h in hs), "%r" % hs)
    dirh = [h["path"] for h in hs if h["dir"]]
    ok("json.dir-handle", sorted(dirh) == sorted(dirs), "dir handles %r, guest dirs %r" % (dirh, sorted(dirs)))
    byp = {h["path"]: h for h in hs}
    acc = lambda p: byp.get(p, {}).get("flags_text", "?").split("|")[0]
    ok("json.flags.ro", acc("dump/a.txt") == "O_RDONLY", acc("dump/a.txt"))
    ok("json.flags.rw", acc("dump/sub/b.txt") == "O_RDWR", acc("dump/sub/b.txt"))
    ok("json.flags.append", acc("dump/new.txt") in ("O_WRONLY", "O_RDWR"), acc("dump/new.txt"))
    # the text output lists the same
    m = re.search(r"^counts: (\d+) inodes \(0 lost\), (\d+) handles$", text, re.M)
    ok("show.counts", m is not None and (int(m.group(1)), int(m.group(2))) == (len(want_inodes) + 1, len(want_handles)),
       "%r" % (m.group(0) if m else "no counts line"))
    inode_part, _, handle_part = text.partition("\nhandles:\n")
    for p in core:
        shown = p + "/" if want_types[p] == "dir" else p
        ok("show.inode.%s" % p, re.search(r"^\s+\d+ (dir|reg)\s+\d+\s+%s(\s|$)" % re.escape(shown), inode_part, re.M) is not None,
           "no inode line for %s" % shown)
    for p in want_handles:
        kind = "dir " if p in dirs else "file"
        ok("show.handle.%s" % p, re.search(r"^\s+\d+\s+\d+ %s O_\S+\s+%s(\s|$)" % (kind, re.escape(p)), handle_part, re.M) is not None,
           "no %s handle line for %s" % (kind.strip(), p))
    n_many = len(re.findall(r"^\s+\d+ reg\s+\d+  dump/many/entry-\d+-with-a-longer-name-for-a-bigger-blob\.dat  \[ino \d+\]$", inode_part, re.M))
    ok("show.inode.dump/many/*", n_many == many, "%d lines for dump/many/entry-*, guest looked up %d" % (n_many, many))
    ok("show.not-looked-up-absent", "other.txt" not in text, "dump/other.txt is listed")
    ok("show.flags.append-decoded", re.search(r"O_APPEND\S*\s+dump/new\.txt", handle_part) is not None,
       "new.txt's flags: %r" % [l for l in handle_part.splitlines() if "new.txt" in l])
if val:
    ok("json-validate.valid", val.get("valid") is True and val.get("problems") == [], "%r" % val)
    ok("json-validate.counts", (val.get("inodes"), val.get("handles")) == (len(want_inodes) + 1, len(want_handles)), "%r" % val)
if stats:
    k = stats["kinds"]
    ok("json-stats.records", (k["header"]["records"], k["session"]["records"], k["inode"]["records"],
                              k["handle"]["records"], k["trailer"]["records"])
       == (1, 1, len(want_inodes) + 1, len(want_handles), 1), "%r" % k)
    ok("json-stats.valid", stats["valid"] is True and stats["problems"] == 0, "%r" % stats)
    st = open("%s/stats.out" % out).read()
    rows = {l.split()[0]: l.split()[1:] for l in st.splitlines() if l.strip()}
    ok("stats.text.inode", rows.get("inode", [None])[0] == str(len(want_inodes) + 1), "%r" % rows.get("inode"))
    ok("stats.text.handle", rows.get("handle", [None])[0] == str(len(want_handles)), "%r" % rows.get("handle"))
    ok("stats.text.total", rows.get("total", [None])[0] == str(stats["total_bytes"]), "%r vs %r" % (rows.get("total"), stats["total_bytes"]))
    if show:
        print("BLOB offset=%s bytes=%s" % (show["source"]["offset"], stats["total_bytes"]))
PY
    )
    e2e_msg "show (dump/many/* left out):"; grep -v ' dump/many/entry-' "$OUT/show.out" | sed 's/^/    /' >&2

    # ---- 4. the chunks, walked here independently, hold exactly the blob `convert` extracts ----
    off="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["source"]["offset"])' "$OUT/json-show.out" 2>/dev/null || true)"
    total="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_bytes"])' "$OUT/json-stats.out" 2>/dev/null || true)"
    sh_check convert 0 "$VS" convert --to=1.1 "$STREAM" "$OUT/blob.jsonl"
    sh_check convert-validate 0 "$VS" validate "$OUT/blob.jsonl"
    # prints: CHUNKS SIZES FILE-OFFSET-OF-A-BYTE-IN-THE-MIDDLE-OF-THE-BLOB (not a newline)
    walk="$(python3 - "$STREAM" "${off:-0}" "$OUT/walked.jsonl" <<'PY' 2>&1 || true
import sys
path, off, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
chunks, blob = [], bytearray()
with open(path, "rb") as f:
    f.seek(off)
    while True:
        n = int.from_bytes(f.read(4), "big")
        if n == 0:
            break
        chunks.append((f.tell(), n))
        blob += f.read(n)
open(dst, "wb").write(blob)
i = len(blob) // 2
while blob[i:i + 1] == b"\n":
    i += 1
for start, n in chunks:
    if i < n:
        break
    i -= n
print(len(chunks), ",".join(str(n) for _, n in chunks), start + i)
PY
)"
    read -r nchunks sizes cpos <<<"$walk"
    e2e_msg "blob: $total bytes at offset $off, in $nchunks chunk(s) of $sizes bytes"
    e2e_hcheck convert.same-as-chunks cmp -s "$OUT/walked.jsonl" "$OUT/blob.jsonl"
    e2e_heq chunks.bytes "$(stat -c %s "$OUT/walked.jsonl" 2>/dev/null)" "$total"
    # How many chunks QEMU cut the blob into depends on how its read()s met our writes (a
    # 137 KB blob came as 1 to 5 chunks in repeated runs), so the count is reported above, not
    # checked.

    # ---- 5. one byte changed inside the blob: validate must fail with a reason ---------------
    if [[ "$cpos" =~ ^[0-9]+$ ]]; then
        cp "$STREAM" "$E2E_RUNDIR/corrupt.bin"
        was="$(python3 - "$E2E_RUNDIR/corrupt.bin" "$cpos" <<'PY'
import sys
path, pos = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(pos)
    b = f.read(1)[0]
    nb = ord("x") if b != ord("x") else ord("y")   # printable, never a newline
    f.seek(pos)
    f.write(bytes([nb]))
print("%r -> %r" % (chr(b), chr(nb)))
PY
)"
        e2e_msg "corrupted the copy at offset $cpos ($was)"
        sh_check corrupt-validate 1 "$VS" validate "$E2E_RUNDIR/corrupt.bin"
        e2e_hcheck corrupt-validate.reason grep -qE 'corrupt\.bin: line [0-9]+: [a-z]+: .+' "$OUT/corrupt-validate.out"
        e2e_hcheck corrupt-validate.summary grep -qE 'corrupt\.bin: invalid: [1-9][0-9]* problems?$' "$OUT/corrupt-validate.out"
        sh_check corrupt-show 1 "$VS" show "$E2E_RUNDIR/corrupt.bin"
        sh_check corrupt-json-validate 1 "$VS" --json validate "$E2E_RUNDIR/corrupt.bin"
        e2e_hcheck corrupt-json-validate.parses-invalid python3 -c \
            'import json,sys; v=json.load(open(sys.argv[1])); sys.exit(0 if v["valid"] is False and v["problems"] and all(p["reason"] for p in v["problems"]) else 1)' \
            "$OUT/corrupt-json-validate.out"
        e2e_msg "validate on the corrupted copy:"; sed 's/^/    /' "$OUT/corrupt-validate.out" >&2
        # and the blob's first byte: the subsection is found, but holds no vfsd blob
        printf 'x' | dd of="$E2E_RUNDIR/corrupt.bin" bs=1 seek=$((off + 4)) conv=notrunc status=none
        sh_check corrupt-start-validate 1 "$VS" validate "$E2E_RUNDIR/corrupt.bin"
        e2e_hcheck corrupt-start-validate.reason grep -q "subsection (chunks at offset $off) does not hold a vfsd state blob" "$OUT/corrupt-start-validate.err"
        rm -f "$E2E_RUNDIR/corrupt.bin"
    else
        e2e_hfail corrupt "could not walk the chunks: $walk"
    fi
    [[ "$VFSD_E2E_KEEP" == 1 ]] || rm -f "$STREAM"     # ~100 MB

    # ---- 6. resume the VM: the guest uses its descriptors again, then powers off --------------
    if e2e_qmp "$QMP" cont >/dev/null 2>&1; then e2e_hpass vm.cont; else e2e_hfail vm.cont "QMP cont failed"; fi
    touch "$S/dump/go"
    if e2e_wait_console "$CONSOLE" '^E2E-DONE rc=' 60 "$Q_PID"; then
        e2e_hpass guest.done
    else
        e2e_hfail guest.done "the guest did not finish after cont"
    fi
fi

# ---- 7. QEMU powers off (or is told to quit); vfsd must leave on its own, with 0 -----------------
if ! e2e_wait_exit "$Q_PID" 15; then
    e2e_qmp "$QMP" quit >/dev/null 2>&1 || true
    e2e_wait_exit "$Q_PID" 10 || { e2e_kill_pid "$Q_PID"; e2e_forget_pid "$Q_PID"; }
fi
if e2e_wait_exit "$BE_PID" 10; then
    e2e_heq backend.exit-code "$E2E_EXIT_RC" 0
    E2E_BACKEND_RC="$E2E_EXIT_RC"
else
    e2e_hfail backend.exits "vfsd still running 10 s after QEMU exited"
    e2e_kill_pid "$BE_PID"; e2e_forget_pid "$BE_PID"
fi
rm -f "$E2E_RUNDIR/fs.sock" "$QMP"
save_console
e2e_heq host.b-after-resume "$(cat "$S/dump/sub/b.txt")" "Beta"
e2e_heq host.new-after-resume "$(cat "$S/dump/new.txt" 2>&1)" "appended after resume"

E2E_GUEST_SECONDS=$((SECONDS - T_ALL)) E2E_QEMU_RC=0 E2E_BACKEND_DIED=0
grc=0
e2e_guest_verdict || grc=$?
echo "$((E2E_GUEST_PASSES + E2E_HOST_PASSES)) passed, $((E2E_GUEST_FAILS + E2E_HOST_FAILS)) failed (total $((SECONDS - T_ALL)) s)"
e2e_finish "$grc"
