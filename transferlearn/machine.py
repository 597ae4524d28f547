"""The machine a run or a benchmark ran on, read without torch: CPU model, its flags, installed versions.

Why here, at the bottom: `transferlearn info`, the precision cache key and the benchmarks' result files all
name the CPU the same way, and `info` must work where importing torch is slow or broken.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata


def _cpuinfo_field(name: str) -> str | None:
    """The first `name : value` line of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model string ("Intel(R) Xeon(R) Platinum 8480+"); the platform's guess off Linux."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the kernel lists them (avx2, avx512f, avx512_bf16, amx_tile, ...); empty off Linux."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_has_amx_flag() -> bool:
    """AMX tiles in the kernel's flags: what `torch.cpu._is_amx_tile_supported()` answers, without torch."""
    return "amx_tile" in cpu_flags()


def cpu_kind(capability: str, amx: bool) -> str:
    """The folder name bench/results/ files a CPU under: avx2, avx512, avx512-amx (from torch's capability)."""
    kind = capability.lower().replace("default", "generic")
    return f"{kind}-amx" if amx else kind


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, as a container or taskset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def version_of(dist: str) -> str | None:
    """An installed distribution's version, read from its metadata (nothing is imported); None if absent."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
