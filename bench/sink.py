"""Read stdin in 1 MiB blocks, hash with SHA-256 while writing to a file; print the digest and the byte count.

The reference sink of the transfer benchmark: `curl -s URL | python bench/sink.py OUT [--fsync]`.
"""
import hashlib
import logging
import os
import sys

log = logging.getLogger(__name__)
BLOCK = 1024 * 1024


def main(argv=None) -> int:
    """Copy stdin to the named file, hashing on the way; exit 0 after printing 'SHA256 BYTES'."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: sink.py OUT [--fsync]", file=sys.stderr)
        return 2
    out_path = argv[0]
    do_fsync = "--fsync" in argv[1:]
    digest = hashlib.sha256()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    total = 0
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    with open(out_path, "wb", buffering=0) as out:
        while True:
            # fill a whole block when the pipe allows, so hashing and writing see 1 MiB at a time
            n = stdin.readinto(view)
            if not n:
                break
            while n < BLOCK:
                more = stdin.readinto(view[n:])
                if not more:
                    break
                n += more
            digest.update(view[:n])
            out.write(view[:n])
            total += n
            if n < BLOCK:
                break
        if do_fsync:
            os.fsync(out.fileno())
    print(digest.hexdigest(), total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
