"""How much memory a phase needs at its peak: allocated tensors on a GPU, the resident set on Linux CPUs."""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Callable
from pathlib import Path

import torch

from helpers.benchmark.common import sync


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc on Linux, where the peak RSS (VmHWM) can be reset through /proc/self/clear_refs; else None."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_method() -> str:
    if torch.cuda.is_available():
        return ("torch.cuda.max_memory_allocated during the phase minus memory allocated before it: tensors only "
                "(weights, gradients, optimizer state, activations), not the CUDA context or allocator cache")
    if _glibc() is not None:
        return ("resident set size: the process's peak (VmHWM, reset before the phase via /proc/self/clear_refs) "
                "minus its RSS before the phase, after gc and malloc_trim; includes building the phase's models")
    return "not measured: needs a GPU or Linux's /proc/self/clear_refs"


def peak_memory_mb(phase: Callable[[], object]) -> float:
    """Extra memory (MB) that ``phase()`` needs at its peak, over what the process held before it (nan where it
    cannot be read: a CPU without Linux's /proc)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        phase()
        sync()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    if _glibc() is None:
        return float("nan")
    _glibc().malloc_trim(0)  # hand freed heap back, so the phase's allocations show up as new resident pages
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    before = _rss_mb("VmRSS")
    phase()
    return _rss_mb("VmHWM") - before
