"""How far from the machine's limit a result is: the network's work per frame and the CPU's peak.

*Work*: MODNet's multiply-accumulates counted from its convolutions and linear layers at the measured
input size (2 FLOPs per MAC; normalisation, activations and resizes are a few percent and left out),
so a latency becomes GFLOP/s.  *Peak*: cores used x FMA units per core x SIMD lanes x 2 FLOPs x clock,
from the CPU's features; it is an upper bound (turbo, memory bandwidth and the FMA unit count, which
the CPU does not report, all move it), so the share of peak says "how far from the limit", not "how
good the kernels are" to the last percent.  INT8: AVX512-VNNI / AVX-VNNI (``vpdpbusd``) and Arm dot
product do 4 int8 MACs per fp32 lane per instruction, so their INT8 peak is 4x the FP32 one; AVX2
without VNNI needs three instructions for the same work (``vpmaddubsw`` + ``vpmaddwd`` + ``vpaddd``),
about 2x FP32.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from modnet_edge.core.cpu_features import cpuinfo_text, cpu_features
from modnet_edge.core.formats import PRECISION_TABLE

FMA_UNITS = 2  # per core: server x86 since Haswell and big Arm cores have two; some parts have one


def _clock_ghz() -> tuple[float | None, str]:
    for path in ("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq",):
        try:
            with open(path, encoding="utf-8") as fh:
                return int(fh.read().strip()) / 1e6, "cpufreq cpuinfo_max_freq"
        except (OSError, ValueError):
            pass
    for line in cpuinfo_text().splitlines():
        if line.lower().startswith("cpu mhz"):
            try:
                return float(line.split(":", 1)[1]) / 1000.0, "'cpu MHz' in /proc/cpuinfo (no turbo)"
            except ValueError:
                break
    return None, "unknown"


def peak(threads: int | None = None) -> dict[str, Any]:
    """FP32 and INT8 peak of the cores a run uses (``threads``, default all usable), with its derivation."""
    features = set(cpu_features())
    ghz, clock_source = _clock_ghz()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    cores = min(threads or usable, usable)
    if "avx512f" in features:
        lanes, isa = 16, "AVX-512"
    elif "avx2" in features or "fma" in features:
        lanes, isa = 8, "AVX2"
    elif "neon" in features or "sve" in features:
        lanes, isa = 4, "NEON"
    else:
        return {"fp32_gflops": None, "int8_gops": None, "derivation": "unknown SIMD width", "features": sorted(features)}
    int8_factor, int8_how = (4, "VNNI / dot product: 4x FP32") if features & {"avx512_vnni", "avx_vnni", "dotprod"} \
        else (2, "no VNNI: ~2x FP32 (three-instruction int8 dot product)")
    if ghz is None:
        return {"fp32_gflops": None, "int8_gops": None, "derivation": "clock unknown", "features": sorted(features)}
    fp32 = cores * FMA_UNITS * lanes * 2 * ghz
    return {"fp32_gflops": round(fp32, 1), "int8_gops": round(fp32 * int8_factor, 1),
            "derivation": f"{cores} core(s) x {FMA_UNITS} FMA units (assumed) x {lanes} fp32 lanes ({isa}) x 2 FLOPs x "
                          f"{ghz:.2f} GHz ({clock_source}); INT8 {int8_how}",
            "features": sorted(features)}


@lru_cache(maxsize=16)
def gflops_per_frame(height: int, width: int, lr_block: str = "se") -> float:
    """MODNet's convolution and linear work for one (height, width) frame, in GFLOPs (2 per MAC)."""
    import torch

    from modnet_edge.model.network import MODNet, ModelConfig

    net = MODNet(ModelConfig(lr_block=lr_block)).eval()
    macs = 0

    def count(module: Any, _inp: Any, out: Any) -> None:
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            per_out = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
            macs += out.numel() * per_out
        elif isinstance(module, torch.nn.Linear):
            macs += out.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, 3, height, width))
    for h in handles:
        h.remove()
    return 2 * macs / 1e9


def share_of_peak(precision: str, latency_ms: float, size: tuple[int, int], batch: int = 1,
                  threads: int | None = None) -> dict[str, Any]:
    """GFLOP/s achieved and its share of the peak that applies (INT8 peak for full-integer artifacts)."""
    work = gflops_per_frame(int(size[0]), int(size[1])) * batch
    achieved = work / (latency_ms / 1000.0) if latency_ms > 0 else 0.0
    top = peak(threads)
    row = PRECISION_TABLE.get(precision)
    integer = row is not None and row.calibrated  # integer arithmetic: activations quantised ahead of time
    limit = top["int8_gops"] if integer else top["fp32_gflops"]
    return {"gflops_per_frame": round(work / batch, 2), "achieved_gflops": round(achieved, 1),
            "peak": limit, "peak_kind": "int8" if integer else "fp32",
            "share": round(achieved / limit, 3) if limit else None, "derivation": top["derivation"]}
