"""What the CPU can do, read from ``/proc/cpuinfo``: benchmark metadata and INT8 kernel choices depend on it."""

from __future__ import annotations

import functools
import os
import platform
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
