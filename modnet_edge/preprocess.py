"""The preprocessing and postprocessing every runtime shares, in NumPy only.

The same functions feed the PyTorch reference, every exported artifact and INT8 calibration, so the
parity check measures the model and nothing else.  NumPy-only keeps on-device runners free of torch.

'area' resampling is PyTorch's ``F.interpolate(mode="area")`` (adaptive average pooling): output
pixel ``i`` averages input pixels ``floor(i*n/m) .. ceil((i+1)*n/m) - 1``.  It is computed with
prefix sums, O(pixels) rather than a dense matrix product, so a 4K photo costs milliseconds.
"""

from __future__ import annotations

import numpy as np

from .core import PreprocessSpec


def area_resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) array with 'area' (adaptive average) resampling, float32 out."""
    out = arr.astype(np.float64, copy=False)
    if out.shape[0] != height:
        out = _area_axis(out, height, axis=0)
    if out.shape[1] != width:
        out = _area_axis(out, width, axis=1)
    return out.astype(np.float32)


def _area_axis(arr: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = arr.shape[axis]
    idx = np.arange(size)
    start = (idx * n) // size
    end = -((-(idx + 1) * n) // size)  # ceil((i+1)*n/size)
    csum = np.cumsum(arr, axis=axis)
    zero = np.zeros_like(np.take(csum, [0], axis=axis))
    csum = np.concatenate([zero, csum], axis=axis)
    total = np.take(csum, end, axis=axis) - np.take(csum, start, axis=axis)
    shape = [1] * arr.ndim
    shape[axis] = size
    return total / (end - start).reshape(shape)


def preprocess(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> network input (1, 3, h, w) or (1, h, w, 3) float32, normalised."""
    h, w = rgb.shape[:2]
    th, tw = spec.target_size(h, w)
    x = rgb.astype(np.float32) if (th, tw) == (h, w) else area_resize(rgb, th, tw)
    # the order of torchvision's ToTensor + Normalize, so unresized inputs match the official code bit for bit
    x = (x / np.float32(255.0) - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def postprocess(matte: np.ndarray, height: int, width: int, layout: str = "NCHW") -> np.ndarray:
    """One network output (1, 1, h, w) / (1, h, w, 1) / (h, w) -> alpha (height, width) float32 in [0, 1]."""
    m = np.asarray(matte, dtype=np.float32)
    if m.ndim == 4:
        m = m[0, 0] if layout == "NCHW" else m[0, ..., 0]
    elif m.ndim == 3:
        m = m[0]
    if m.ndim != 2:
        raise ValueError(f"expected a single-channel matte, got shape {np.shape(matte)}")
    if m.shape != (height, width):
        m = area_resize(m, height, width)
    return np.clip(m, 0.0, 1.0)
