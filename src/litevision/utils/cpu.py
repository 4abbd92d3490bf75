"""What the CPU can do, read from ``/proc/cpuinfo``: benchmark metadata and INT8 kernel choices depend on it."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import time
from pathlib import Path


def _read_cpuinfo(cpuinfo: str | os.PathLike[str]) -> str:
    try:
        return Path(cpuinfo).read_text()
    except OSError:
        return ""


@functools.cache
def _cached_cpuinfo() -> str:
    return _read_cpuinfo("/proc/cpuinfo")


def _text(cpuinfo: str | os.PathLike[str]) -> str:
    return _cached_cpuinfo() if str(cpuinfo) == "/proc/cpuinfo" else _read_cpuinfo(cpuinfo)


def _flags_of(text: str) -> set[str]:
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[1].split()) if ":" in line else set()


def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (x86 ``flags`` line); empty where unreadable."""
    return _flags_of(_text(cpuinfo))


def cpu_description(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """``"<model name>, <arch>, <widest SIMD>[, VNNI][, AMX]"`` for benchmark metadata: absolute timings are
    only comparable on the same kind of CPU (e.g. onnxruntime's INT8 gains need VNNI)."""
    text = _text(cpuinfo)
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
                platform.processor() or "unknown CPU")
    flags = _flags_of(text)
    simd = next((s for s in ("avx512f", "avx2", "avx", "sse2") if s in flags), None)
    parts = [name, platform.machine()] + ([simd.removesuffix("f")] if simd else [])
    if {"avx512_vnni", "avx_vnni"} & flags:
        parts.append("VNNI")
    if "amx_int8" in flags:
        parts.append("AMX")
    return ", ".join(parts)


def cpu_lacks_vnni(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> bool:
    """True on an x86-64 CPU without VNNI (``avx512_vnni`` / ``avx_vnni`` / AMX), where onnxruntime's
    u8×s8 kernels can saturate; False elsewhere (VNNI CPUs, ARM, or no ``/proc/cpuinfo`` to read)."""
    flags = cpu_flags(cpuinfo)
    if "sse2" not in flags:  # not an x86 CPU (ARM lists "Features"), or nothing to read
        return False
    return not {"avx512_vnni", "avx_vnni", "amx_int8"} & flags


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; all CPUs where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_ticks() -> int | None:
    """Busy CPU time of the whole machine in clock ticks (``/proc/stat``: all but idle and iowait)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)


def _own_ticks() -> int:
    t = os.times()
    return round((t.user + t.system + t.children_user + t.children_system) * os.sysconf("SC_CLK_TCK"))


def cpu_ticks() -> tuple[int | None, int]:
    """(busy ticks of the whole machine, ticks of this process and its children): take two, then
    :func:`foreign_cpus`."""
    return _busy_ticks(), _own_ticks()


def foreign_cpus(start: tuple[int | None, int], end: tuple[int | None, int], seconds: float) -> float | None:
    """CPUs kept busy by other processes between two :func:`cpu_ticks` readings ``seconds`` apart."""
    if start[0] is None or end[0] is None or seconds <= 0:
        return None
    ticks = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, ticks / os.sysconf("SC_CLK_TCK") / seconds)


def machine_load(interval: float = 0.5) -> dict[str, float | int | None]:
    """What else the machine is doing: ``foreign_cpus`` (CPUs kept busy by other processes over ``interval``
    seconds, from ``/proc/stat`` minus this process), the 1-minute load average and the usable CPUs.
    Timings taken while ``foreign_cpus`` is well above 0 measure the machine's neighbours as much as the model."""
    start, t0 = cpu_ticks(), time.perf_counter()
    time.sleep(interval)
    foreign = foreign_cpus(start, cpu_ticks(), time.perf_counter() - t0)
    try:
        loadavg: float | None = os.getloadavg()[0]
    except OSError:
        loadavg = None
    return {"foreign_cpus": None if foreign is None else round(foreign, 2), "loadavg_1m": loadavg,
            "usable_cpus": usable_cpus()}


def load_warning(load: dict[str, float | int | None], threads: int) -> str | None:
    """A sentence saying why timings taken under ``load`` with ``threads`` threads are unreliable, or None."""
    cpus = int(load["usable_cpus"] or 1)
    foreign = load["foreign_cpus"]
    if threads > cpus:
        return f"{threads} threads on {cpus} usable CPU(s): oversubscribed, timings are unreliable"
    if foreign is not None and foreign > 0.3 and foreign + threads > cpus:
        return (f"other processes keep {foreign:.1f} CPU(s) busy (load average {load['loadavg_1m']:.1f}) and "
                f"{threads} thread(s) need {threads} of {cpus}: timings are unreliable; measure on a quiet machine "
                "or with fewer --threads")
    return None


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process: no ``mmap`` for large blocks (``M_MMAP_MAX=0``) and
    no returning of the heap's top to the system (``M_TRIM_THRESHOLD=-1``), as ``MALLOC_MMAP_MAX_=0`` and a huge
    ``MALLOC_TRIM_THRESHOLD_`` in the environment would. By default a block over the mmap threshold (at most
    32 MB) is a fresh ``mmap``: the kernel zeroes its pages on first touch and unmaps them on free, and a CPU
    training step of a detector at 320x320 spends as much time in the kernel as in the network. Process-wide,
    for the rest of the process; the peak memory stays reserved (1.4-1.5x the resident peak on SSDLite training).
    True where applied (Linux with glibc), False elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))  # -1: never trim (man mallopt)
