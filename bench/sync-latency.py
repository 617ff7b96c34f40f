#!/usr/bin/env python3
"""The disk's cost of one durable WAL append, the way synod's log makes it.

Appends 300-byte records to a file preallocated with written zeros (as the
log's chunks are) and makes each durable, three ways: a buffered write then
fdatasync (the log before direct writes), a direct write of the record's
4 KiB block then fdatasync (the log now), and a direct write with O_DSYNC.
Prints each way's median and 90th percentile.

    python3 bench/sync-latency.py [DIR] [COUNT]

DIR (default: the current directory) must be on the disk to measure.
"""
import mmap
import os
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else "."
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
PATH = os.path.join(DIR, "sync-latency.tmp")
RECORD = 300
BLOCK = 4096


def prepare():
    fd = os.open(PATH, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"\0" * (64 << 20))
    os.fsync(fd)
    os.close(fd)


def run(name, flags, direct, sync):
    prepare()
    fd = os.open(PATH, os.O_RDWR | flags)
    # O_DIRECT needs an aligned buffer; an anonymous map is page-aligned.
    block = mmap.mmap(-1, BLOCK)
    record = b"r" * RECORD
    took = []
    for i in range(COUNT):
        offset = i * RECORD
        start = time.perf_counter()
        if direct:
            os.pwrite(fd, block, offset - offset % BLOCK)
        else:
            os.pwrite(fd, record, offset)
        if sync:
            os.fdatasync(fd)
        took.append(time.perf_counter() - start)
    os.close(fd)
    took.sort()
    print(f"{name:26s} p50 {took[COUNT // 2] * 1e6:6.0f} µs"
          f"   p90 {took[COUNT * 9 // 10] * 1e6:6.0f} µs")


try:
    run("buffered + fdatasync", 0, direct=False, sync=True)
    run("O_DIRECT + fdatasync", os.O_DIRECT, direct=True, sync=True)
    run("O_DIRECT | O_DSYNC", os.O_DIRECT | os.O_DSYNC, direct=True, sync=False)
finally:
    os.unlink(PATH)
