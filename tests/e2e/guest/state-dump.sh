# state-dump: the guest side of tests/e2e/test-state-dump.sh. Holds descriptors on the share while
# the host saves the VM to a file (QMP "migrate" to file:...) and inspects vfsd's state blob in the
# saved stream with vfsd-state; then, after the host resumed the VM ("cont") and dropped
# dump/go, uses the descriptors again and closes them.
#
# The host made dump/{a.txt,sub/b.txt,looked.txt,heldir/}. Nothing here lists a directory
# (READDIRPLUS would look up every entry), so the back-end's inode table holds exactly the root,
# the paths below and their parents: dump, dump/a.txt, dump/sub, dump/sub/b.txt, dump/new.txt,
# dump/heldir, dump/looked.txt, plus dump/many and the VFSD_MANY files in it (looked up one by one,
# so that the blob is larger than a pipe's 64 KiB and QEMU stores it in several chunks).
D=/mnt/dump
MANY="${VFSD_MANY:-0}"

exec 3<"$D/a.txt"              # FUSE_OPEN, O_RDONLY
exec 4<>"$D/sub/b.txt"         # FUSE_OPEN, O_RDWR
exec 5>>"$D/new.txt"           # FUSE_CREATE, O_WRONLY|O_APPEND|O_CREAT (a new file)
exec 6<"$D/heldir"             # FUSE_OPENDIR
if [ -f "$D/looked.txt" ]; then pass dump.lookup; else fail dump.lookup "no $D/looked.txt"; fi

# what this shell holds on the share, as the kernel sees it (the host compares the blob with it)
held=""
for fd in 3 4 5 6; do
    t=$(readlink "/proc/$$/fd/$fd")
    case "$t" in
    /mnt/*) held="$held ${t#/mnt/}"; pass "dump.fd$fd.held" ;;
    *) fail "dump.fd$fd.held" "fd $fd is '$t', not on the share" ;;
    esac
done
value held "${held# }"
value dirs "dump/heldir"
value looked "dump/looked.txt"
i=1; k=0
while [ $i -le "$MANY" ]; do
    [ -e "$D/many/entry-$i-with-a-longer-name-for-a-bigger-blob.dat" ] && k=$((k + 1))
    i=$((i + 1))
done
eq dump.many-looked-up "$k" "$MANY"
value many "$k"
echo "DUMP-READY"

# The VM stops here while the host saves it; the host resumes it, then creates dump/go.
n=0
while [ ! -e "$D/go" ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
if [ -e "$D/go" ]; then pass dump.resumed; else fail dump.resumed "no $D/go after 120 s"; fi

# The same descriptors work on the resumed VM (saving the state did not change the back-end's).
read -r l <&3
eq dump.after.read-held-ro "$l" "alpha"
printf 'B' >&4                 # offset 0 of b.txt: "beta" -> "Beta"
echo "appended after resume" >&5
check dump.after.dirfd-is-dir test -d "/proc/$$/fd/6"
exec 3<&- 4>&- 5>&- 6<&-
eq dump.after.b "$(cat "$D/sub/b.txt")" "Beta"
eq dump.after.new "$(cat "$D/new.txt")" "appended after resume"
