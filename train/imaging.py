"""Small NumPy image operations the datasets need (blur, resize, grey morphology), kept dependency-free.

Datasets run inside DataLoader workers and must be deterministic and cheap; these helpers avoid
pulling SciPy or OpenCV into the install just for a blur and a max filter.  Everything works on
float32 arrays of shape (H, W) or (H, W, C).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from modnet_edge.core.errors import DataError


def gaussian_kernel1d(sigma: float, radius: int | None = None) -> np.ndarray:
    """Normalised 1-D Gaussian taps; radius defaults to ceil(3 sigma) (99.7% of the mass)."""
    radius = int(np.ceil(3.0 * sigma)) if radius is None else int(radius)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the first two axes with reflected borders."""
    if sigma <= 0:
        return arr.astype(np.float32, copy=False)
    k = gaussian_kernel1d(sigma)
    r = len(k) // 2
    out = arr.astype(np.float32, copy=False)
    for axis in (0, 1):
        n = out.shape[axis]
        if n <= r:  # tiny axis: reflection would run out of pixels; clamp the radius instead
            rr = max(n - 1, 0)
            kk = gaussian_kernel1d(sigma, rr) if rr else np.ones(1, np.float32)
        else:
            rr, kk = r, k
        pad = [(0, 0)] * out.ndim
        pad[axis] = (rr, rr)
        padded = np.pad(out, pad, mode="reflect") if rr else out
        acc = np.zeros_like(out)
        for i, w in enumerate(kk):
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return out


def resize(arr: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """Resize a float (H, W) or (H, W, C) array with Pillow ('bilinear', 'bicubic' or 'nearest')."""
    resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[method]
    if arr.shape[0] == height and arr.shape[1] == width:
        return arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((width, height), resample))
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., c], dtype=np.float32), mode="F")
                        .resize((width, height), resample)) for c in range(arr.shape[2])]
    return np.stack(chans, axis=2)


def max_filter(arr: np.ndarray, size: int) -> np.ndarray:
    """Grey dilation with a ``size`` x ``size`` square (separable: rows, then columns)."""
    if size <= 1:
        return arr
    out = arr
    r0, r1 = size // 2, size - 1 - size // 2
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r0, r1)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        acc = np.take(padded, np.arange(0, n), axis=axis)
        for i in range(1, size):
            acc = np.maximum(acc, np.take(padded, np.arange(i, i + n), axis=axis))
        out = acc
    return out


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise in [0, 1]: random values on a coarse grid, bicubically upsampled."""
    gh = max(2, int(round(height / max(height, width) * cells)))
    gw = max(2, int(round(width / max(height, width) * cells)))
    coarse = rng.random((gh, gw, channels)).astype(np.float32)
    up = resize(coarse, height, width, "bicubic")
    return np.clip(up if channels > 1 else up[..., 0], 0.0, 1.0)


def same_aspect(a: tuple[int, int], b: tuple[int, int], tolerance: float = 0.01) -> bool:
    """Whether two (W, H) sizes have the same aspect ratio within ``tolerance`` (relative)."""
    return abs(a[0] / a[1] - b[0] / b[1]) <= tolerance * (a[0] / a[1])


def fit_matte(alpha: np.ndarray, height: int, width: int, where: Path) -> np.ndarray:
    """A matte at its image's size: resized (bilinear) when it is a scaled copy, else an error."""
    if alpha.shape == (height, width):
        return alpha
    if not same_aspect((width, height), (alpha.shape[1], alpha.shape[0])):
        raise DataError(f"matte is {alpha.shape[1]}x{alpha.shape[0]} but its image is {width}x{height} "
                        "after orientation", where)
    return np.clip(resize(alpha, height, width, "bilinear"), 0.0, 1.0)
