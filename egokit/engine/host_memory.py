"""Keep freed host memory inside the process while a model runs on the CPU.

A training step frees and re-allocates the same activations every step. glibc's malloc hands large freed blocks
back to the kernel (every allocation above its mmap threshold is a mapping of its own, and the heap top is trimmed),
so each step page-faults all of them in again, zero-filled by the kernel: 0.2-0.6 million minor faults and 1.2-5.5 s
of kernel time per base bf16 step on the reference machine (a 7-8 s step). With per-allocation mappings and
trimming off, steps run without page faults (4.7-4.9 s) at the same peak RSS, since freed memory is reused.

Set ``EGOKIT_KEEP_HOST_MEMORY=0`` to leave the allocator alone (say, to hand memory back between phases of a
long-lived process). Other allocators (jemalloc, tcmalloc via ``LD_PRELOAD``) and other C libraries are left
alone too: the call reports that it did nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
NEVER_TRIM = -1  # mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely"


def keep_freed_host_memory() -> bool:
    """Make glibc malloc reuse freed memory instead of returning it to the kernel. Idempotent; returns whether the
    setting is in effect (False off Linux/glibc, or when ``EGOKIT_KEEP_HOST_MEMORY=0``)."""
    if os.environ.get("EGOKIT_KEEP_HOST_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # present in glibc only (musl has mallopt as a no-op stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Large blocks come from the heap (glibc still maps memory itself if the heap cannot grow), and freed heap
    # memory stays mapped for the next step.
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
