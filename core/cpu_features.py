"""The CPU features that decide inference speed and which quantisation settings are safe.

Shared by every stage: the INT8 exporters choose settings by them (7-bit weights only where 8-bit
ones would saturate), and every benchmark result records them beside its figures.
"""

from __future__ import annotations

import platform
from functools import lru_cache

# feature flags that decide inference speed, by the names /proc/cpuinfo uses -> the names we report
X86_FEATURES = {"avx2": "avx2", "fma": "fma", "avx512f": "avx512f", "avx512bw": "avx512bw",
                "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni", "avx512_bf16": "avx512_bf16",
                "avx512_fp16": "avx512_fp16", "amx_tile": "amx", "amx_int8": "amx_int8", "amx_bf16": "amx_bf16"}
ARM_FEATURES = {"asimd": "neon", "asimddp": "dotprod", "i8mm": "i8mm", "asimdhp": "fp16", "fphp": "fp16",
                "sve": "sve", "sve2": "sve2", "bf16": "bf16"}


def cpuinfo_text() -> str:
    """/proc/cpuinfo, or "" where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


@lru_cache(maxsize=1)
def cpu_features() -> list[str]:
    """The speed-deciding ISA features of this CPU (x86: AVX2, AVX-512, VNNI, AMX; Arm: dot product,
    i8mm, fp16), empty where the OS does not say."""
    flags: set[str] = set()
    for line in cpuinfo_text().splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features"):
            flags |= set(line.split(":", 1)[1].split())
    table = ARM_FEATURES if platform.machine().lower() in ("aarch64", "arm64") else X86_FEATURES
    if platform.machine().lower() == "arm64" and not flags:  # Apple silicon: every one of these
        return ["neon", "dotprod", "fp16", "i8mm"]
    return sorted({name for flag, name in table.items() if flag in flags})
