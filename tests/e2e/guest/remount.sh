# remount: unmount and mount the share again (a fresh FUSE INIT, the back-end must reset its
# session), twice, checking that what was written before survives and the tree stays usable.
# The host driver (test-remount.sh) pre-created host.txt and checks round1/2/3 afterwards.
M=/mnt
mounted() { grep -q " $M virtiofs " /proc/mounts; }

eq remount.host-file "$(cat $M/host.txt)" "from the host"
mkdir -p $M/remount
echo "round 1" > $M/remount/round1.txt
cd / || true
round=2
while [ $round -le 3 ]; do
    check "remount.$round.umount" umount $M
    if mounted; then fail "remount.$round.unmounted" "still in /proc/mounts"; else pass "remount.$round.unmounted"; fi
    [ -e $M/remount ] && fail "remount.$round.empty-mountpoint" "/mnt/remount visible while unmounted" \
                      || pass "remount.$round.empty-mountpoint"
    check "remount.$round.mount" mount -t virtiofs share $M
    mounted && pass "remount.$round.mounted" || fail "remount.$round.mounted" "not in /proc/mounts"
    prev=$((round - 1))
    eq "remount.$round.previous-file" "$(cat $M/remount/round$prev.txt 2>&1)" "round $prev"
    eq "remount.$round.host-file" "$(cat $M/host.txt 2>&1)" "from the host"
    eq "remount.$round.readdir" "$(ls $M/remount | wc -l)" "$prev"
    echo "round $round" > $M/remount/round$round.txt
    eq "remount.$round.readback" "$(cat $M/remount/round$round.txt)" "round $round"
    check "remount.$round.mkdir" mkdir $M/remount/dir$round
    check "remount.$round.rename" mv $M/remount/dir$round $M/remount/dir$round.renamed
    check "remount.$round.rmdir" rmdir $M/remount/dir$round.renamed
    round=$((round + 1))
done
# After the last mount: an fd opened now reads fine (OPEN/READ/RELEASE on the new session).
exec 3< $M/remount/round1.txt
eq remount.open-fd "$(cat <&3)" "round 1"
exec 3<&-
