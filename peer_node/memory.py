"""How the C allocator behind a download is set up: one arena, so freed chunk buffers are reused.

glibc gives each thread that allocates its own malloc arena (up to 8 per core). A download's
threads (gRPC's, the swarm workers, the writer) each allocate and free 1 MiB chunk buffers; what
one arena frees, another cannot reuse, so the process's peak RSS grew with the length of the
download. With one arena, a 4-source `p2p get` of 1 GiB peaked at 99-101 MiB instead of
120-126 MiB, and at 64 MiB at 94-97 MiB instead of 107-110, no slower (measured 2026-12-04;
the same as MALLOC_ARENA_MAX=1, but set from inside, since the variable is read at exec).
"""
import ctypes
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # <malloc.h>


def use_one_arena():
    """Ask glibc for one malloc arena from now on; answers whether it took (False off glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    took = mallopt(M_ARENA_MAX, 1) == 1
    log.debug("malloc arenas limited to one: %s", took)
    return took
