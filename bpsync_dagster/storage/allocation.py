"""Freed copy buffers go back to the operating system at once."""

import ctypes
import ctypes.util
import functools

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


@functools.cache
def return_large_buffers_when_freed() -> bool:
    """Have the C library serve allocations of MMAP_THRESHOLD_BYTES or more with their own mappings,
    unmapped when freed. glibc otherwise raises that threshold (up to 32 MiB) after the first such
    free, and then keeps the freed read chunks and parts of many copy threads in its per-thread
    arenas: the process's RSS grows well past the copy buffers in use. False where the C library
    has no such setting."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
