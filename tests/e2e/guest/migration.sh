# migration: the guest side of tests/e2e/test-migration.sh (live migration between QEMU
# processes, a back-end on each side). Kernel command line: vfsd.mig=main|unlinked vfsd.hops=H
# vfsd.helper=/path/to/migration-fds (a static binary in the initramfs).
#
# main, first boot: a background loop writes/reads/creates files with md5s (and runs short fio jobs
# with --verify when fio is in the initramfs) while migration-fds holds descriptors open across H
# migrations (it prints MIG-READY k for the host and checks every descriptor after each hop).
# Then every byte is checked after drop_caches, /mnt/mig/phase1-done is written and the guest
# reboots through sysrq. main, second boot (phase1-done exists): a fresh FUSE session must see
# everything that was written. unlinked: only the unlinked-while-open file, H hops.
D=/mnt/mig
H="${VFSD_HOPS:-1}"
HELPER="${VFSD_HELPER:-}"
MODE="${VFSD_MIG:-main}"

if [ -z "$HELPER" ] || [ ! -x "$HELPER" ]; then
    fail mig.helper "no migration-fds binary at '$HELPER'"
    return 1 2>/dev/null || exit 1
fi

io_loop() {
    i=0; bad=0
    : > /tmp/io.md5
    mkdir -p $D/io
    while [ ! -e /tmp/io-stop ]; do
        if [ $i -ge 400 ]; then
            # enough files (checking thousands after drop_caches takes minutes under TCG): from
            # now on only re-read old ones
            j=$(( $(date +%s) % 400 + 1 ))
            want=$(sed -n "${j}p" /tmp/io.md5 | cut -d' ' -f1)
            got=$(md5 $D/io/f$j)
            if [ "$want" != "$got" ]; then echo "E2E-FAIL mig.io.reread.f$j: $got, expected $want"; bad=$((bad + 1)); fi
            echo 1 > /proc/sys/vm/drop_caches
            sleep 0.2
            continue
        fi
        i=$((i + 1))
        dd if=/dev/urandom of=/tmp/io.src bs=4096 count=$((1 + i % 16)) 2>/dev/null
        m=$(md5 /tmp/io.src)
        cp /tmp/io.src $D/io/f$i          # files created during the migrations
        m2=$(md5 $D/io/f$i)
        if [ "$m" != "$m2" ]; then echo "E2E-FAIL mig.io.f$i: read back $m2, wrote $m"; bad=$((bad + 1)); fi
        echo "$m  f$i" >> /tmp/io.md5
        if [ $((i % 8)) = 0 ]; then
            # force reads through the back-end (whichever side is live now) and re-check old files
            echo 1 > /proc/sys/vm/drop_caches
            mkdir $D/io/d$i && echo "$i" > $D/io/d$i/x || { echo "E2E-FAIL mig.io.mkdir$i: mkdir or write failed"; bad=$((bad + 1)); }
            j=$((i - 7))
            want=$(sed -n "${j}p" /tmp/io.md5 | cut -d' ' -f1)
            got=$(md5 $D/io/f$j)
            if [ "$want" != "$got" ]; then echo "E2E-FAIL mig.io.reread.f$j: $got, expected $want"; bad=$((bad + 1)); fi
        fi
    done
    echo "$i $bad" > /tmp/io.result
}

fio_loop() {
    n=0; fbad=0
    while [ ! -e /tmp/io-stop ]; do
        n=$((n + 1))
        if ! fio --name=mig$n --filename=$D/fio.dat --size=2M --bs=4k --rw=randwrite --ioengine=psync \
                --verify=crc32c --verify_backlog=16 --verify_fatal=1 --time_based --runtime=3 \
                --output=/tmp/fio.out >/dev/null 2>&1; then
            echo "E2E-FAIL mig.fio.run$n: $(grep -iE 'verify|error|bad' /tmp/fio.out | head -n 3 | tr '\n' ' ')"
            fbad=$((fbad + 1))
        fi
    done
    echo "$n $fbad" > /tmp/fio.result
}

phase1() {
    info "migration phase 1: $H hops, helper $HELPER"
    rm -f /tmp/io-stop
    io_loop &
    iopid=$!
    fiopid=
    if command -v fio >/dev/null 2>&1; then fio_loop & fiopid=$!; fi
    "$HELPER" main $D "$H"
    hrc=$?
    eq mig.helper.rc "$hrc" 0
    touch /tmp/io-stop
    wait $iopid
    [ -n "$fiopid" ] && wait $fiopid
    read -r n bad < /tmp/io.result
    info "io loop: $n files written during the migrations, $bad bad"
    eq mig.io.inline "$bad" 0
    check mig.io.min-files test "$n" -ge 4
    if [ -n "$fiopid" ]; then
        read -r fn fbad < /tmp/fio.result
        info "fio: $fn verified jobs during the migrations, $fbad failed"
        eq mig.fio.verify "$fbad" 0
    fi
    drop_caches
    check mig.io.md5-after-drop-caches sh -c "cd $D/io && md5sum -c -s /tmp/io.md5"
    cp /tmp/io.md5 $D/io.md5
    value io.files "$n"
    for f in wr.bin hl-link app.log ro.bin; do value "md5.$f" "$(md5 $D/$f)"; done
    value md5.ren "$(md5 $D/ren-$((H + 1)))"
    value md5.inner "$(md5 $D/rdir-1/inner)"
    echo "$E2E_PASSES $E2E_FAILS" > $D/phase1-done
    sync
    info "phase 1: $E2E_PASSES checks passed, $E2E_FAILS failed (the helper's counted on its own)"
    echo "MIG-REBOOTING"
    # Let the serial console drain first: a reset drops what the UART has not sent yet,
    # and the host waits for the line above (seen once: the line was cut by the reset).
    sleep 2
    echo b > /proc/sysrq-trigger
    sleep 30
    fail mig.reboot "still running 30 s after sysrq b"
}

phase2() {
    info "migration phase 2: after the guest reboot, a fresh FUSE session"
    pass mig.reboot.mounted
    eq mig.reboot.listing "$(ls $D/list | wc -l)" 200
    check mig.reboot.io-md5 sh -c "cd $D/io && md5sum -c -s ../io.md5"
    for f in wr.bin hl-link app.log; do value "md5.reboot.$f" "$(md5 $D/$f)"; done
    value md5.reboot.ren "$(md5 $D/ren-$((H + 1)))"
    check mig.reboot.hl-orig-gone test ! -e $D/hl-orig
    echo "after reboot" > $D/after-reboot.txt
    eq mig.reboot.write "$(cat $D/after-reboot.txt)" "after reboot"
    check mig.reboot.rename mv $D/after-reboot.txt $D/after-reboot-renamed.txt
    echo MIG-PHASE2-DONE
}

case "$MODE" in
main)
    if [ -e $D/phase1-done ]; then phase2; else phase1; fi
    ;;
unlinked)
    "$HELPER" unlinked $D/unl "$H"
    eq mig.unlinked.helper.rc "$?" 0
    ;;
*) fail mig.mode "unknown vfsd.mig=$MODE" ;;
esac
