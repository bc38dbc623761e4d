#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the seed corpus for fuzz_fuse into corpus/fuse/ (next to this script).

Each seed is one byte of chain shape (see fuzz_fuse.c) followed by FUSE
requests back to back. Re-run after changing it and commit the output.
"""
import os
import struct

FUSE = dict(LOOKUP=1, FORGET=2, GETATTR=3, SETATTR=4, MKDIR=9, UNLINK=10, RMDIR=11,
            RENAME=12, OPEN=14, READ=15, WRITE=16, STATFS=17, RELEASE=18, FSYNC=20,
            FLUSH=25, INIT=26, OPENDIR=27, READDIR=28, RELEASEDIR=29, CREATE=35,
            INTERRUPT=36, DESTROY=38, BATCH_FORGET=42, READDIRPLUS=44, RENAME2=45,
            SETUPMAPPING=48, READLINK=5, SYMLINK=6, MKNOD=8, LINK=13)

_unique = [0x10]


def req(op, nodeid=1, body=b"", len_delta=0):
    """fuse_in_header (40 bytes) + body; len_delta makes len lie."""
    _unique[0] += 2
    hlen = 40 + len(body) + len_delta
    hdr = struct.pack("<IIQQIIIHH", hlen & 0xffffffff, FUSE.get(op, op) if isinstance(op, str) else op,
                      _unique[0], nodeid, 1000, 1000, 77, 0, 0)
    return hdr + body


def name(*names):
    return b"".join(n.encode() + b"\0" for n in names)


def read_in(fh=1, offset=0, size=4096):
    return struct.pack("<QQIIQII", fh, offset, size, 0, 0, 0, 0)


def init_in(major=7, minor=38, flags=0xffffffff, full=True):
    body = struct.pack("<IIII", major, minor, 131072, flags)
    if full:
        body += struct.pack("<I", 0) + b"\0" * 44
    return body


SHAPE_INIT = 0x00      # k=1, no room... see fuzz_fuse.c: bits 4-6 room, bit 7 no auto-INIT
ROOM_4K = 0x50
ROOM_64K = 0x60

seeds = {
    "init_38": bytes([0x80 | ROOM_4K]) + req("INIT", 0, init_in()),
    "init_31_compat": bytes([0x83 | ROOM_4K]) + req("INIT", 0, init_in(minor=31, flags=0x3fffffff, full=False)),
    "init_major8_then_7": bytes([0x80 | ROOM_4K]) + req("INIT", 0, init_in(major=8)) + req("INIT", 0, init_in()),
    "init_old_minor": bytes([0x80 | ROOM_4K]) + req("INIT", 0, init_in(minor=20, full=False)),
    "before_init": bytes([0x80 | ROOM_4K]) + req("GETATTR", 1, struct.pack("<IIQ", 0, 0, 0)),
    "lookup": bytes([0x05 | ROOM_4K]) + req("LOOKUP", 1, name("hello.txt")) + req("LOOKUP", 1, name("xmissing")),
    "getattr_setattr": bytes([0x02 | ROOM_4K]) + req("GETATTR", 1, struct.pack("<IIQ", 1, 0, 5))
    + req("SETATTR", 2, struct.pack("<IIQQQQQQIIIIIIII", 8, 0, 5, 1000, 0, 0, 0, 0, 0, 0, 0, 0o644, 0, 0, 0, 0)),
    "mkdir_create": bytes([0x07 | ROOM_4K]) + req("MKDIR", 1, struct.pack("<II", 0o755, 0o22) + name("dir"))
    + req("CREATE", 1, struct.pack("<IIII", 0o102, 0o644, 0o22, 0) + name("file")),
    "unlink_rmdir": bytes([0x01 | ROOM_4K]) + req("UNLINK", 1, name("file")) + req("RMDIR", 3, name("dir")),
    "rename_rename2": bytes([0x0b | ROOM_4K]) + req("RENAME", 1, struct.pack("<Q", 1) + name("old", "new"))
    + req("RENAME2", 1, struct.pack("<QII", 1, 1, 0) + name("a", "b")),
    "open_read_release": bytes([0x04 | ROOM_64K]) + req("OPEN", 2, struct.pack("<II", 0, 0))
    + req("READ", 2, read_in(fh=1, offset=5000, size=65536))
    + req("READ", 2, read_in(fh=2, offset=100, size=100))
    + req("FLUSH", 3, struct.pack("<QIIQ", 2, 0, 0, 0))
    + req("RELEASE", 3, struct.pack("<QIIQ", 2, 0, 0, 0)),
    "write": bytes([0x09 | ROOM_4K]) + req("WRITE", 2, struct.pack("<QQIIQII", 2, 0, 300, 0, 0, 0, 0) + bytes(range(256)) + b"x" * 44)
    + req("FSYNC", 3, struct.pack("<QII", 2, 1, 0)),
    "write_size_lies": bytes([0x03 | ROOM_4K]) + req("WRITE", 2, struct.pack("<QQIIQII", 2, 0, 400, 0, 0, 0, 0) + b"y" * 300),
    "readdir": bytes([0x06 | ROOM_64K]) + req("OPENDIR", 1, struct.pack("<II", 0, 0))
    + req("READDIR", 1, read_in(size=4096)) + req("READDIRPLUS", 1, read_in(offset=2, size=300))
    + req("RELEASEDIR", 1, struct.pack("<QIIQ", 1, 0, 0, 0)),
    "forgets": bytes([0x0f | 0x00]) + req("FORGET", 5, struct.pack("<Q", 2))
    + req("BATCH_FORGET", 0, struct.pack("<II", 2, 0) + struct.pack("<QQQQ", 5, 1, 6, 2))
    + req("BATCH_FORGET", 0, struct.pack("<II", 0x10000001, 0) + struct.pack("<QQ", 5, 1)),
    "statfs_interrupt_unknown": bytes([0x08 | ROOM_4K]) + req("STATFS", 1) + req("INTERRUPT", 0, struct.pack("<Q", 5))
    + req(7, 1, b"\0" * 8) + req("SETUPMAPPING", 1, b"\0" * 40),
    "bad_names": bytes([0x0a | ROOM_4K]) + req("LOOKUP", 1, b"a/b\0") + req("LOOKUP", 1, b"..\0")
    + req("LOOKUP", 1, b"\0") + req("LOOKUP", 1, b"x" * 256 + b"\0") + req("LOOKUP", 1, b"nonul"),
    "len_lies": bytes([0x0c | ROOM_4K]) + req("GETATTR", 1, struct.pack("<IIQ", 0, 0, 0), len_delta=-20)
    + req("SETATTR", 1, b"\0" * 8) + req("LOOKUP", 1, name("tail"), len_delta=1000),
    "small_room": bytes([0x01 | 0x30]) + req("LOOKUP", 1, name("hello")) + req("READ", 2, read_in(size=1000)),
    "links": bytes([0x05 | ROOM_4K]) + req("READLINK", 3) + req("SYMLINK", 1, name("ln", "target/dir"))
    + req("SYMLINK", 1, name("ln", "")) + req("SYMLINK", 1, b"ln\0nonul")
    + req("MKNOD", 1, struct.pack("<IIII", 0o10644, 0, 0o22, 0) + name("fifo"))
    + req("LINK", 1, struct.pack("<Q", 2) + name("hard")) + req("LINK", 1, struct.pack("<Q", 0) + name("zero")),
    "destroy_then_op": bytes([0x0d | ROOM_4K]) + req("DESTROY", 0) + req("LOOKUP", 1, name("a"))
    + req("INIT", 0, init_in(minor=36)) + req("LOOKUP", 1, name("a")),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuse")
os.makedirs(out, exist_ok=True)
for fn, data in seeds.items():
    with open(os.path.join(out, fn), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {out}")
