# hello: the minimal guest test (mount works, a file can be written and read back).
echo "hello from the guest" > /mnt/hello-guest.txt
eq hello.readback "$(cat /mnt/hello-guest.txt)" "hello from the guest"
ls -la /mnt
if command -v fio >/dev/null 2>&1; then
    check fio.runs fio --name=e2e --filename=/mnt/fio.dat --size=4M --rw=randrw --bs=4k --ioengine=psync --minimal
fi
