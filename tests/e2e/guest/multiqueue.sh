# multiqueue: one writer then one reader per vCPU, each pinned with taskset, so with
# num-request-queues = vCPUs every request queue carries traffic. The host driver
# (test-multiqueue.sh) checks every file. VFSD_QUEUES comes from vfsd.queues= on the command line.
M=/mnt/mq
N=$(nproc)
Q=${VFSD_QUEUES:-1}
eq mq.cpus "$N" "${VFSD_CPUS:-$N}"
info "$N vCPUs, $Q request queue(s)"
mkdir -p $M

# irq_counts: "NAME TOTAL" for each virtio-fs request queue vector (per-queue MSI-X vectors).
irq_counts() {
    awk -v n="$N" '/requests/ { s = 0; for (i = 2; i <= n + 1; i++) s += $i; print $NF, s }' /proc/interrupts
}
irq_counts > /tmp/irq.before

eq mq.taskset "$(taskset -c 2 grep Cpus_allowed_list /proc/self/status | awk '{print $2}')" 2

t0=$(uptime_s)
c=0
while [ $c -lt "$N" ]; do
    taskset -c $c sh /tests/mq-writer.sh $M $c &
    c=$((c + 1))
done
wait
info "$N parallel writers took $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN{print b-a}') s"

drop_caches
t0=$(uptime_s)
c=0
while [ $c -lt "$N" ]; do
    r=$(( (c + 1) % N ))
    taskset -c $r sh -c "md5sum $M/w$c/big | cut -d' ' -f1 > /tmp/r$c.md5; cat $M/w$c/s* | wc -l > /tmp/r$c.count" &
    c=$((c + 1))
done
wait
info "$N parallel readers took $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN{print b-a}') s"

c=0
while [ $c -lt "$N" ]; do
    eq "mq.writer$c.cpu" "$(cat /tmp/w$c.cpu 2>/dev/null)" "$c"
    eq "mq.writer$c.size" "$(stat -c %s $M/w$c/big 2>/dev/null)" 4194304
    eq "mq.reader$c.md5" "$(cat /tmp/r$c.md5)" "$(cat /tmp/w$c.md5)"
    eq "mq.reader$c.small-files" "$(cat /tmp/r$c.count)" 50
    value "md5.w$c" "$(cat /tmp/w$c.md5)"
    c=$((c + 1))
done

irq_counts > /tmp/irq.after
busy=0
while read -r name after; do
    before=$(awk -v q="$name" '$1 == q { print $2 }' /tmp/irq.before)
    d=$((after - ${before:-0}))
    value "irq.$name" "$d"
    [ "$d" -gt 0 ] && busy=$((busy + 1))
done < /tmp/irq.after
value queues.busy "$busy"
if [ ! -s /tmp/irq.after ]; then
    info "no per-queue interrupt vectors in /proc/interrupts: queue use not checked"
elif [ "$Q" -gt 1 ]; then
    if [ "$busy" -ge 2 ]; then pass mq.queues-used; else fail mq.queues-used "only $busy request queue(s) raised interrupts"; fi
fi
