"""Process-wide memory tuning, in one place: how the C heap keeps and returns freed memory.

Two settings that work together, not against each other:

- :func:`tune_allocator`, once per process at the entry points (the CLI, :func:`run_night`,
  which the Prefect flows and ``crossmatch run`` call, and the benchmarks that stand in for
  them): glibc keeps freed memory for reuse instead of handing it back to the OS after every
  free. Ingest allocates and frees a few large buffers per 32 MB batch; by default glibc serves
  them with ``mmap`` and unmaps them on free, so every batch page-faults its memory again
  (measured: 6 s of system time per 1.7M rows, 1 s with these settings).
- :func:`release_memory`, at the few points where a large Python-side peak is over and a
  county-wide DuckDB step follows (resolve, before publishing): collect, then hand the freed
  heap back explicitly. ``malloc_trim`` ignores the trim threshold set above, so the memory
  kept for reuse is returned exactly where it is known to be no longer needed (3M persons:
  peak RSS 7.7 GB -> 5.8 GB, ``identity.pipeline.resolve_identities``).

Both are no-ops off glibc (macOS, musl, Windows). polars' own allocator (jemalloc) is tuned by
the ``_RJEM_MALLOC_CONF`` environment variable instead (:data:`POLARS_MALLOC_CONF`), which it
reads once when it loads: ``crossmatch.cli`` sets it before importing anything that loads
polars.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os

log = logging.getLogger(__name__)

#: jemalloc (polars) keeps freed pages for reuse for 10 s instead of returning them at once:
#: the same reasoning as the glibc settings, for polars' batches.
POLARS_MALLOC_CONF = "dirty_decay_ms:10000,muzzy_decay_ms:10000"

#: glibc's ``mallopt`` parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Serve blocks below 1 GB from the heap (reused after free) rather than from their own ``mmap``
#: (unmapped on free, faulted in again by the next batch). Above 1 GB a block is rare and
#: worth returning at once.
MMAP_THRESHOLD = 1 << 30
#: Never shrink the heap top on free below 2 GB of free memory: the next batch wants it back.
#: :func:`release_memory` trims explicitly when a peak is over.
TRIM_THRESHOLD = 1 << 31

_tuned = False


def glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None when the C library is another one (or none is found)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL("libc.so.6")
    except (AttributeError, ValueError, OSError):  # no confstr / name unknown / not glibc
        return None


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for this process (see the module docstring);
    once per process, later calls do nothing. True when the settings are in place (now or
    before), False off glibc."""
    global _tuned
    if _tuned:
        return True
    libc = glibc()
    if libc is None:
        return False
    try:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except AttributeError:  # a libc without mallopt: nothing to tune
        log.debug("mallopt unavailable", exc_info=True)
        return False
    _tuned = True
    return True


def release_memory() -> None:
    """Collect Python's garbage, then hand the heap's free memory back to the OS
    (``malloc_trim``; glibc keeps freed blocks otherwise, all the more after
    :func:`tune_allocator`). The collection costs 0.1-0.3 s in a process holding many modules:
    call it after a peak of hundreds of MB, not after every step."""
    gc.collect()
    libc = glibc()
    if libc is not None:
        with contextlib.suppress(AttributeError):
            libc.malloc_trim(0)
