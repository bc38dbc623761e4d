# mq-writer.sh DIR N: one writer of the multiqueue test (run pinned by taskset, not a test itself).
d=$1/w$2
mkdir -p $d
dd if=/dev/urandom of=$d/big bs=64k count=64 2>/dev/null
i=0
while [ $i -lt 50 ]; do echo "w$2-$i" > $d/s$i; i=$((i + 1)); done
sync $d/big
md5sum $d/big | cut -d' ' -f1 > /tmp/w$2.md5
grep Cpus_allowed_list /proc/self/status | awk '{print $2}' > /tmp/w$2.cpu
