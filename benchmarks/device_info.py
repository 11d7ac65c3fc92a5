"""What machine a benchmark ran on, which runtimes it used, and how much memory it took.

A speed figure without its machine is meaningless, so every result records the CPU model, core count
(and how many cores this process may use), GPU, OS and the version of every runtime the format table
knows about.  Memory is read from the OS (``/proc`` or ``resource``) and, for CUDA, from ``nvidia-smi``
so it covers every runtime, not only PyTorch's own allocator.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from functools import lru_cache
from typing import Any

from modnet_edge.core import FORMATS, VERSION


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


@lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """Names of the NVIDIA GPUs visible here (empty when none or no driver)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ()
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.stdout.splitlines() if line.strip()) if out.returncode == 0 else ()


@lru_cache(maxsize=1)
def describe_device() -> dict[str, Any]:
    """The machine: CPU model and the ISA features that decide speed, logical and usable cores, GPU(s),
    OS, Python."""
    from modnet_edge.core.cpu_features import cpu_features

    return {"cpu": _cpu_model(), "cpu_features": cpu_features(), "cores": os.cpu_count(),
            "usable_cores": _usable_cores(),
            "gpu": list(gpu_names()), "os": platform.platform(), "machine": platform.machine(),
            "hostname": platform.node(), "python": platform.python_version(), "kind": "local"}


@lru_cache(maxsize=1)
def runtime_versions() -> dict[str, str]:
    """Versions of every distribution behind a format's export or runtime modules, plus numpy."""
    from importlib import metadata

    modules = {m for fmt in FORMATS.values() for m in (*fmt.runtime_requires, *fmt.export_requires)}
    modules |= {"numpy", "onnxruntime", "torch"}
    try:
        dists = metadata.packages_distributions()
    except Exception:  # very old importlib.metadata: fall back to module == distribution name
        dists = {}
    out = {"modnet-edge": VERSION}
    for module in sorted(modules):
        top = module.split(".")[0]
        for dist in dists.get(top, [top]):
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return out


def current_rss_mb() -> float | None:
    """Resident memory of this process now (MB), from /proc/self/statm; None where unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far (MB)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def gpu_memory_mb(pid: int | None = None) -> float | None:
    """GPU memory held by this process (MB) per nvidia-smi; None without an NVIDIA GPU.

    nvidia-smi sees every runtime's allocations (ONNX Runtime, TensorRT, PyTorch), unlike
    ``torch.cuda.max_memory_allocated`` which sees only PyTorch's.
    """
    if not gpu_names():
        return None
    pid = os.getpid() if pid is None else pid
    try:
        out = subprocess.run([shutil.which("nvidia-smi") or "nvidia-smi", "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    total = 0.0
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            try:
                total += float(parts[1])
            except ValueError:
                continue
    return total
