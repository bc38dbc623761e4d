# smoke: the everyday filesystem operations, checked in the guest; the host driver
# (test-smoke.sh) pre-created the share and checks the guest's changes and E2E-VALUE lines.
M=/mnt

# --- what the host put there ---------------------------------------------------------------
for f in hello.txt exec.sh ro.txt host-random.bin dir300 nonempty renameme.txt renamedir \
         unlinkme.txt truncme.txt patch.bin link-to-hello; do
    [ -e "$M/$f" ] || [ -L "$M/$f" ] || fail "list.$f" "$f missing from ls: $(ls $M | tr '\n' ' ')"
done
pass list.host-files
eq read.hello "$(cat $M/hello.txt)" "hello from the host"
for f in hello.txt exec.sh ro.txt host-random.bin dir300 link-to-hello; do
    value "stat.$f" "$(stat -c '%a %s %F' $M/$f)"
done
value mtime.hello.txt "$(stat -c '%Y' $M/hello.txt)"
value md5.host-random.bin "$(md5 $M/host-random.bin)"
eq symlink.readlink "$(readlink $M/link-to-hello)" "hello.txt"
eq symlink.follow "$(cat $M/link-to-hello)" "hello from the host"
eq exec.from-share "$($M/exec.sh 2>&1)" "run from the share"

# --- writes, modes, times, owners ---------------------------------------------------------
printf 'written by the guest\n' > $M/from-guest.txt
chmod 640 $M/from-guest.txt
touch -d "2001-02-03 04:05:06" $M/from-guest.txt
eq write.stat "$(stat -c '%a %s %Y' $M/from-guest.txt)" "640 21 981173106"
eq write.readback "$(cat $M/from-guest.txt)" "written by the guest"
echo one > $M/append.txt
echo two >> $M/append.txt
eq append.readback "$(cat $M/append.txt | tr '\n' ' ')" "one two "
echo owned > $M/owned.txt
check chown chown 1234:5678 $M/owned.txt
eq chown.stat "$(stat -c '%u:%g' $M/owned.txt)" "1234:5678"
printf 'PATCH' | dd of=$M/patch.bin bs=1 seek=10000 conv=notrunc 2>/dev/null
eq pwrite.size "$(stat -c %s $M/patch.bin)" 65536

# --- directories ---------------------------------------------------------------------------
check mkdir.p mkdir -p $M/newdir/sub/deeper
check mkdir.mode mkdir -m 750 $M/newdir/mode750
eq mkdir.mode.stat "$(stat -c %a $M/newdir/mode750)" 750
check rmdir rmdir $M/newdir/sub/deeper
[ ! -e $M/newdir/sub/deeper ] && pass rmdir.gone || fail rmdir.gone "deeper still there"
check mkdir.gone mkdir $M/gone
check rmdir.gone2 rmdir $M/gone

# --- rename, unlink, links, special files ---------------------------------------------------
check rename.file mv $M/renameme.txt $M/renamed.txt
eq rename.file.content "$(cat $M/renamed.txt)" "rename me"
[ ! -e $M/renameme.txt ] && pass rename.file.old-gone || fail rename.file.old-gone "old name still there"
check rename.dir mv $M/renamedir $M/renamed-dir
eq rename.dir.inner "$(cat $M/renamed-dir/inner.txt)" "inner"
echo replacement > $M/replace-src.txt
echo original > $M/replace-dst.txt
check rename.replace mv -f $M/replace-src.txt $M/replace-dst.txt
eq rename.replace.content "$(cat $M/replace-dst.txt)" "replacement"
check unlink rm $M/unlinkme.txt
[ ! -e $M/unlinkme.txt ] && pass unlink.gone || fail unlink.gone "still there"
check link.hard ln $M/hello.txt $M/hardlink.txt
eq link.hard.nlink "$(stat -c %h $M/hello.txt)" 2
check link.sym ln -s hello.txt $M/guest-link
eq link.sym.read "$(readlink $M/guest-link)" hello.txt
check mkfifo mkfifo $M/fifo
eq mkfifo.type "$(stat -c %F $M/fifo)" "fifo"

# --- truncate -------------------------------------------------------------------------------
check truncate.shrink truncate -s 10 $M/truncme.txt
eq truncate.shrink.content "$(cat $M/truncme.txt)" "aaaaaaaaaa"
check truncate.grow truncate -s 5M $M/sparse.bin
eq truncate.grow.size "$(stat -c %s $M/sparse.bin)" 5242880

# --- a large file, read back past the page cache -------------------------------------------
t0=$(uptime_s)
dd if=/dev/urandom of=$M/big-guest.bin bs=1M count=8 2>/dev/null
sum1=$(md5 $M/big-guest.bin)
drop_caches
sum2=$(md5 $M/big-guest.bin)
info "8 MiB write + 2 reads took $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN{print b-a}') s"
eq big.size "$(stat -c %s $M/big-guest.bin)" 8388608
eq big.md5-after-drop-caches "$sum2" "$sum1"
value md5.big-guest.bin "$sum1"
drop_caches
value md5.host-random.bin.uncached "$(md5 $M/host-random.bin)"

# --- readdir ------------------------------------------------------------------------------
eq readdir.count "$(ls $M/dir300 | wc -l)" 300
eq readdir.plus.count "$(ls -la $M/dir300 | grep -c ' f[0-9]')" 300
value ls.dir300 "$(ls $M/dir300 | md5sum | cut -d' ' -f1)"
eq readdir.content "$(cat $M/dir300/f150)" "f150"
mkdir $M/gdir300
i=0
while [ $i -lt 300 ]; do echo "g$i" > $M/gdir300/g$i; i=$((i + 1)); done
eq readdir.guest-made "$(ls $M/gdir300 | wc -l)" 300

# --- statfs ----------------------------------------------------------------------------------
check statfs.df df $M
eq statfs.type "$(stat -f -c %t $M)" 65735546
value statfs "$(stat -f -c '%b %S %l' $M)"

# --- errors carry the right errno ----------------------------------------------------------
check_fails errno.ENOTEMPTY "not empty" rmdir $M/nonempty
check_fails errno.ENOENT "No such file" cat $M/does-not-exist
check_fails errno.EEXIST "exists" mkdir $M/nonempty
check_fails errno.ENOTDIR "Not a directory" ls $M/hello.txt/x
check_fails errno.ENOTDIR.rmdir "Not a directory" rmdir $M/hello.txt
check_fails errno.EISDIR "Is a directory" unlink $M/nonempty

# --- fsync, fdatasync, syncfs ---------------------------------------------------------------
check fsync sync $M/from-guest.txt
check fdatasync sync -d $M/big-guest.bin
check syncfs sync -f $M
