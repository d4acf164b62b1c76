"""Giving memory back to the system after a crowd of clients has left.

CPython frees objects to glibc's malloc, which keeps freed pages in its arenas (one per thread
that allocated) instead of returning them: after an attack the process would stay at its peak.
`malloc_trim(0)` returns the free pages of every arena. Elsewhere than glibc it is not there and
nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

_libc = None


def _malloc_trim():
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc.malloc_trim.restype = ctypes.c_int
        except (OSError, AttributeError):
            _libc = False
    return _libc.malloc_trim if _libc else None


def give_back_memory() -> None:
    """Collect cyclic garbage, then return malloc's free pages to the system."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def settle_at_start() -> None:
    """Move what the start made (modules, the app, templates) out of the garbage collector's way."""
    gc.collect()
    gc.freeze()
