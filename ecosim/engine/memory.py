"""How much memory a task took: the peak resident set size of the process that ran it (a Ray
lineage actor, or the engine's own process without Ray), sampled while the task runs. Recorded
on every node (``peak_gb``) so that a run says what a lineage actor needs (a substrate's ``lineage_gb``)."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import resource
import sys
import threading

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_gb() -> float | None:
    """This process's resident set size now, in GB (None where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE / 1e9
    except (OSError, ValueError, IndexError):
        return None


def release() -> None:
    """Collect garbage and hand the C heap's free pages back to the system (glibc's
    ``malloc_trim``): after a task frees a model or a batch of logits, the process's resident size
    otherwise stays at its peak, and the next task's peak starts from there.

    What survives the collection is then frozen (``gc.freeze``): the next release scans only what
    came after it. torch's and transformers' imports alone leave about 0.5 M objects, and a full
    collection over them took 0.24 s a task, a quarter of the default test run's time. A model
    is freed by its reference count, frozen or not; only garbage in reference cycles waits, until
    ``thaw`` (the in-process pool's close at a run's end) or, in a Ray actor, the actor's end."""
    gc.collect()
    gc.freeze()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs a subprocess); None where
    there is none (macOS, musl): nothing to trim."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def thaw() -> None:
    """Hand what ``release`` froze back to the collector (``gc.unfreeze``): a process that goes on
    after a run (a notebook, the test session) collects it as before."""
    gc.unfreeze()


class Peak:
    """``with Peak() as p: ...`` then ``p.gb``: the largest resident set size seen while the block
    ran, sampled every ``every`` seconds by a daemon thread (a peak shorter than that can be
    missed). Without /proc: the process's lifetime peak (``ru_maxrss``), an upper bound."""

    def __init__(self, every: float = 0.05):
        self.every, self.gb = every, 0.0
        self._stop = threading.Event()

    def _sample(self):
        while True:
            self.gb = max(self.gb, rss_gb() or 0.0)
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        if rss_gb() is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self._thread = None
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.gb = max(self.gb, rss_gb() or 0.0)
        else:  # ru_maxrss is in bytes on macOS, in kB elsewhere
            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.gb = r / 1e9 if sys.platform == "darwin" else r * 1e3 / 1e9
        self.gb = round(self.gb, 3)
        return False
