# demo: what scripts/demo.sh shows a newcomer. Lines starting "guest| " are echoed live.
say() { echo "guest| $*"; }
show() { sed 's/^/guest|     /'; }
say "Linux $(uname -r) is up with $(nproc) vCPUs; the share is mounted:"
grep ' /mnt ' /proc/mounts | show
say ""
say "\$ ls -la /mnt"
ls -la /mnt | show
say ""
say "\$ cat /mnt/hello.txt"
cat /mnt/hello.txt | show
[ -s /mnt/hello.txt ] && pass demo.read-hello || fail demo.read-hello "cannot read /mnt/hello.txt"
say ""
say "\$ echo ... > /mnt/from-guest.txt"
{
    echo "Hello from the guest!"
    echo "Written by Linux $(uname -r) at $(date -u '+%Y-%m-%d %H:%M:%S UTC'),"
    echo "through virtio-fs, into the host's shared directory."
} > /mnt/from-guest.txt && sync /mnt/from-guest.txt
say "\$ cat /mnt/from-guest.txt"
cat /mnt/from-guest.txt | show
grep -q "Hello from the guest" /mnt/from-guest.txt && pass demo.write || fail demo.write "cannot write /mnt/from-guest.txt"
say ""
say "powering off"
