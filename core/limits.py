"""Bounds on the numbers users give: image and network input sizes, thread counts, counts and thresholds.

One place, so every command refuses the same absurd values the same way (one line naming the value,
exit 2), before any work and before any allocation: a 65536x65536 static shape would try to allocate
~48 GB, ``--threads 100000`` makes runtimes start 100000 threads, and NaN slips through every
``<``/``>`` comparison.
"""

from __future__ import annotations

import math
import os
from typing import Any

from modnet_edge.core.errors import ConfigError

# Images: the smaller side at least MIN_SIDE, the larger at most MAX_SIDE, at most MAX_PIXELS in all:
# 8192 x 8192 (67 MP; phones shoot <= 50 MP).  Decoded, the largest accepted image is 192 MiB of RGB
# uint8; decoding, preprocessing and a full-size float32 alpha peak at ~505 MiB
# (tests/test_images_preprocess.py measures it).
MIN_SIDE = 32
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192

# A network input (a static shape, a benchmark size, a preprocessing reference size) at most 2048 per
# side: 4x MODNet's reference 512 per side, 16x its pixels.  Memory grows with the pixels: exporting ONNX
# fp32 peaked at 1.2 GB (RSS) at 512x512 and 3.4 GB at 1024x1024 (~2.8 GB more per megapixel; 2 cores,
# torch 2.13), so 2048x2048 needs ~12 GB and 4096x4096 ~48 GB: past this side an input is no longer a
# deployment but an allocation failure waiting to happen.
MAX_INPUT_SIDE = 2048

# Threads: a runtime starts every thread it is asked for; beyond a few per core they only contend.
THREADS_PER_CORE = 4
MIN_THREAD_CAP = 64  # a small machine may still run, e.g., a 16-thread configuration meant for a bigger one


def max_threads() -> int:
    """The largest thread count accepted on this machine (:data:`THREADS_PER_CORE` per core, at least
    :data:`MIN_THREAD_CAP`)."""
    return max(MIN_THREAD_CAP, THREADS_PER_CORE * (os.cpu_count() or 1))


def check_threads(value: Any, where: Any = None) -> int | None:
    """A thread count: None (the runtime's default) or an integer in 1..:func:`max_threads`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= max_threads():
        raise ConfigError(f"threads must be an integer from 1 to {max_threads()} ({THREADS_PER_CORE} per core of "
                          f"this machine's {os.cpu_count()}), not {value!r}", where)
    return value


def check_input_size(height: Any, width: Any, what: str = "input size", where: Any = None) -> tuple[int, int]:
    """A network input (height, width): positive integers, at most :data:`MAX_INPUT_SIDE` per side."""
    try:
        h, w = int(height), int(width)
        if isinstance(height, bool) or isinstance(width, bool) or h != height or w != width:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{what} must be two integers (height, width), not {(height, width)!r}", where) from None
    if not (1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
        raise ConfigError(f"{what} {h}x{w} is out of range: each side must be 1 to {MAX_INPUT_SIDE} px (4x "
                          f"MODNet's reference 512; larger inputs need more than 12 GB)", where)
    return h, w


def check_batch(batch: int, height: int, width: int, what: str = "batch", where: Any = None) -> int:
    """A batch of ``height`` x ``width`` inputs: at most :data:`MAX_INPUT_SIDE` squared pixels per call in
    all, the same memory bound as one large input (a batch of 100000 at 64x64 is 5 GB of input alone)."""
    if batch * height * width > MAX_INPUT_SIDE ** 2:
        raise ConfigError(f"{what} {batch} at {height}x{width} is {batch * height * width / 1e6:.0f} MP per call; "
                          f"at most {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE} pixels per call are accepted", where)
    return batch


def check_count(value: Any, name: str, where: Any = None, minimum: int = 1) -> int | None:
    """A count such as ``--limit`` or ``--iterations``: None (the default) or an integer >= ``minimum``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, not {value!r}", where)
    return value


def check_number(value: Any, name: str, low: float | None = None, high: float | None = None,
                 where: Any = None, low_open: bool = False) -> float:
    """A finite number in [``low``, ``high``] (``low_open``: ``low`` itself excluded); NaN and infinity are
    refused here because every comparison with NaN is false."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {value!r}", where)
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        span = f"{'(' if low_open else '['}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"{name} must be in {span}, not {value!r}", where)
    return float(value)
