"""Peak resident memory of one inference call (Linux).

``tracemalloc`` sees only Python-level allocations, not the C++ buffers of PyTorch or onnxruntime, so it
reports ~0 for a forward pass. We measure the operating system's view instead: before the call, freed
heap memory is returned to the OS (``malloc_trim``) and the process's peak-RSS watermark is reset by
writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0); after the call, ``VmHWM`` (peak RSS) minus
the ``VmRSS`` before is the extra memory the call needed: activations, backend workspaces and arenas.
Weights already loaded are not included. Where the watermark cannot be reset (not Linux, restricted
``/proc``), the result is ``None``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _malloc_trim() -> None:
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_increase_mb(fn: Callable[[], object]) -> float | None:
    """Run ``fn`` once; return its peak resident-memory increase in MiB (``None`` if not measurable)."""
    gc.collect()
    _malloc_trim()
    if not _reset_peak():
        fn()
        return None
    before = _status_kib("VmRSS")
    fn()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) / 1024.0
