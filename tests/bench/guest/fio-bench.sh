# fio-bench: sourced by the e2e guest's /init (tests/e2e/guest/init) with tests/e2e/guest/lib.sh,
# for tests/bench/guest-fio.sh. Runs the same small fio jobs on the virtio-fs share and reports
# bandwidth (KiB/s) and IOPS as E2E-VALUE lines. O_DIRECT so every request reaches the back-end
# instead of the guest's page cache. Sizes are small: the guest runs under TCG.
SIZE="${VFSD_FIO_SIZE:-16M}"   # from vfsd.fio_size= on the kernel command line
RUNTIME="${VFSD_FIO_RUNTIME:-8}"
if ! command -v fio >/dev/null 2>&1; then
    fail fio.present "no fio in the initramfs (VFSD_E2E_FIO=1)"
    return 0 2>/dev/null || exit 0
fi
fio_job() { # NAME RW BS: one job, terse output; values NAME.bw_kib and NAME.iops
    name="$1" rw="$2" bs="$3"
    out="$(fio --name="$name" --filename=/mnt/fio.dat --size="$SIZE" --rw="$rw" --bs="$bs" \
        --direct=1 --ioengine=psync --runtime="$RUNTIME" --time_based --output-format=terse 2>&1)"
    line="$(echo "$out" | grep '^3;' | tail -n 1)"
    if [ -z "$line" ]; then
        fail "fio.$name" "$(echo "$out" | tail -n 3 | tr '\n' ' ')"
        return
    fi
    case "$rw" in
    *write) bw="$(echo "$line" | cut -d';' -f48)" iops="$(echo "$line" | cut -d';' -f49)" ;;
    *) bw="$(echo "$line" | cut -d';' -f7)" iops="$(echo "$line" | cut -d';' -f8)" ;;
    esac
    value "$name.bw_kib" "$bw"
    value "$name.iops" "$iops"
    pass "fio.$name"
}
# Lay the file out first (not measured), so the read jobs read data.
fio --name=layout --filename=/mnt/fio.dat --size="$SIZE" --rw=write --bs=1M --direct=1 \
    --ioengine=psync --output-format=terse >/dev/null 2>&1 || fail fio.layout "fio layout failed"
fio_job seqwrite-1m write 1M
fio_job seqread-1m read 1M
fio_job randread-4k randread 4k
fio_job randwrite-4k randwrite 4k
rm -f /mnt/fio.dat
