"""The process's memory allocator, tuned for the kit's training and embedding loops."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # mallopt parameters of glibc's malloc.h
KEEP_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS at once.

    Each step allocates and frees full-batch tensors (15 MB of floats for 16 posters). With
    glibc's defaults such blocks are unmapped or trimmed when freed, and the kernel zero-fills
    fresh pages for the next step: a third of a LeNet training step and 40% of an EfficientNet
    embedding batch on 2 cores. The process keeps its peak memory instead. Returns whether the
    allocator took the setting (False where the C library is not glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                         KEEP_BYTES))
