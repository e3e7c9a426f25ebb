"""One malloc arena for a download: counted in glibc's own report, in a process of its own."""
import ctypes
import os
import subprocess
import sys

import pytest

from tests.procs import ROOT

# Threads that allocate and free chunk-sized buffers, as a download's do; then glibc's
# malloc_info report, whose <heap nr="..."> elements are the arenas in use.
PROGRAM = r"""
import ctypes, sys, tempfile, threading
from peer_node.memory import use_one_arena
took = use_one_arena() if sys.argv[1] == "one" else None

def churn():
    for _ in range(50):
        bufs = [bytearray(1 << 20) for _ in range(4)]
        del bufs

threads = [threading.Thread(target=churn) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
with tempfile.NamedTemporaryFile() as report:
    fh = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, fh)
    libc.fclose(fh)
    print(took, open(report.name).read().count("<heap nr="))
"""


def arenas(mode):
    """(what use_one_arena answered, arenas in use) after the churn, with mode "one" or "default"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # glibc's defaults
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    return out[0], int(out[1])


def test_after_use_one_arena_every_thread_allocates_from_the_main_arena():
    if not hasattr(ctypes.CDLL(None), "malloc_info"):
        pytest.skip("not glibc: there is no arena to limit")
    took, heaps = arenas("one")
    assert took == "True" and heaps == 1
    _, default_heaps = arenas("default")
    assert default_heaps > 1  # the threads did get arenas of their own without it
