"""The preprocessing and postprocessing every runtime shares, in NumPy only.

The same functions feed the PyTorch reference, every exported artifact and INT8 calibration, so the
parity check measures the model and nothing else.  NumPy-only keeps on-device runners free of torch.

'area' resampling is PyTorch's ``F.interpolate(mode="area")`` (adaptive average pooling): output
pixel ``i`` averages input pixels ``floor(i*n/m) .. ceil((i+1)*n/m) - 1``.  It is computed with
prefix sums, O(pixels) rather than a dense matrix product, so a 4K photo costs milliseconds.
"""

from __future__ import annotations

import numpy as np

from modnet_edge.core import PreprocessSpec


# Elements (of the axis being resized x the others) handled per block: bounds the float64 working
# memory of a resize to ~16 MB per array whatever the image size.
_BLOCK_ELEMENTS = 1 << 21


def area_resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) array with 'area' (adaptive average) resampling, float32 out.

    8-bit images (up to 2^31 / 255 pixels per window row or column) take an integer path: window sums
    in int32, exact, then one division per output value (2x faster than float64 on a 720p frame, which
    matters to video).  Other inputs sum in float64, block by block, so a full-size photo is never
    turned into float64 as a whole (a 16K x 16K image would need 6 GiB)."""
    if arr.dtype == np.uint8 and arr.shape[0] * arr.shape[1] <= _INT_PATH_PIXELS:
        return _area_uint8(arr, height, width)
    out = arr
    if out.shape[0] != height:
        out = _area_axis_blocked(out, height, axis=0)
    if out.shape[1] != width:
        out = _area_axis_blocked(out, width, axis=1)
    return out.astype(np.float32, copy=False)


# int32 window sums of uint8 stay exact while a column of the image sums below 2^31 (255 x 8.4M rows);
# bounding the pixel count keeps the int32 cumulative arrays small as well
_INT_PATH_PIXELS = 1 << 24


def _windows(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(size)
    return (idx * n) // size, -((-(idx + 1) * n) // size)  # floor(i*n/size), ceil((i+1)*n/size)


def _area_uint8(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """'area' resize of a uint8 image with exact integer window sums (see :func:`area_resize`)."""
    h_in, w_in = arr.shape[:2]
    s0, e0 = _windows(h_in, height)
    s1, e1 = _windows(w_in, width)
    rows = np.zeros((h_in + 1, *arr.shape[1:]), np.int32)
    np.cumsum(arr, axis=0, dtype=np.int32, out=rows[1:])
    band = rows[e0] - rows[s0]  # (height, W[, C]) sums over each output row's window
    cols = np.zeros((height, w_in + 1, *arr.shape[2:]), np.int32)
    np.cumsum(band, axis=1, dtype=np.int32, out=cols[:, 1:])
    sums = (cols[:, e1] - cols[:, s1]).astype(np.float32)
    count = ((e0 - s0)[:, None] * (e1 - s1)[None, :]).astype(np.float32)
    return sums / (count[..., None] if arr.ndim == 3 else count)


def _area_axis_blocked(arr: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``_area_axis`` over slices of the other spatial axis, each converted to float64 on its own."""
    other = 1 - axis
    n_other = arr.shape[other]
    per_line = max(arr.shape[axis], size) * int(np.prod(arr.shape[2:], dtype=np.int64))  # in or out, the larger
    step = max(1, _BLOCK_ELEMENTS // per_line)
    shape = list(arr.shape)
    shape[axis] = size
    result = np.empty(shape, np.float32)
    for start in range(0, n_other, step):
        index = [slice(None)] * arr.ndim
        index[other] = slice(start, min(start + step, n_other))
        result[tuple(index)] = _area_axis(arr[tuple(index)].astype(np.float64), size, axis)
    return result


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


def resize_pixels(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """'area' resize of an 8-bit (H, W[, C]) image, rounded half up to 8 bits, in exact integers.

    Each output pixel is ``floor(sum / count + 1/2)`` of its window, computed as ``(2 sum + count) //
    (2 count)``: no float rounding, so every machine and any runner (C, Kotlin, Swift) that follows the
    rule gets the same bytes.  Half up rather than half to even: the rule is then one integer expression.
    Window sums run in blocks (int32 per column, int64 across a row), so memory stays bounded for the
    largest accepted image."""
    if rgb.dtype != np.uint8:
        raise ValueError(f"resize_pixels takes an 8-bit image, not {rgb.dtype}")
    h_in, w_in = rgb.shape[:2]
    if (h_in, w_in) == (height, width):
        return rgb.copy()
    s0, e0 = _windows(h_in, height)
    s1, e1 = _windows(w_in, width)
    tail = rgb.shape[2:]
    per_col = h_in * int(np.prod(tail, dtype=np.int64))
    band = np.empty((height, w_in, *tail), np.int32)  # column sums over each output row's window (<= 255 * h_in)
    step = max(1, _BLOCK_ELEMENTS // per_col)
    for c in range(0, w_in, step):
        rows = np.zeros((h_in + 1, min(step, w_in - c), *tail), np.int32)
        np.cumsum(rgb[:, c:c + step], axis=0, dtype=np.int32, out=rows[1:])
        band[:, c:c + step] = rows[e0] - rows[s0]
    out = np.empty((height, width, *tail), np.uint8)
    count = ((e0 - s0)[:, None] * (e1 - s1)[None, :]).astype(np.int64)
    count = count[..., None] if tail else count
    per_row = w_in * int(np.prod(tail, dtype=np.int64))
    step = max(1, _BLOCK_ELEMENTS // per_row)
    for r in range(0, height, step):
        cols = np.zeros((min(step, height - r), w_in + 1, *tail), np.int64)
        np.cumsum(band[r:r + step], axis=1, dtype=np.int64, out=cols[:, 1:])
        sums = cols[:, e1] - cols[:, s1]
        n = count[r:r + step]
        out[r:r + step] = (2 * sums + n) // (2 * n)
    return out


def normalise(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """8-bit pixels (any shape) -> float32 ``(p / 255 - mean) / std``, channels last or per ``spec.layout``
    for a 4-D batch: what a float-input network (the PyTorch reference) reads for an 8-bit-input spec."""
    shape = (1, 3, 1, 1) if pixels.ndim == 4 and spec.layout == "NCHW" else (3,)
    mean = np.asarray(spec.mean, np.float32).reshape(shape)
    std = np.asarray(spec.std, np.float32).reshape(shape)
    # the order of torchvision's ToTensor + Normalize, so unresized inputs match the official code bit for bit
    return np.ascontiguousarray((pixels.astype(np.float32) / np.float32(255.0) - mean) / std, dtype=np.float32)


def preprocess(rgb: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> network input (1, 3, h, w) or (1, h, w, 3): float32 normalised, or for an
    8-bit-input spec (``input_dtype="uint8"``) the resized pixels as uint8 (:func:`resize_pixels`)."""
    h, w = rgb.shape[:2]
    th, tw = spec.target_size(h, w)
    if spec.input_dtype == "uint8":
        x = resize_pixels(rgb, th, tw)
    else:
        x = rgb.astype(np.float32) if (th, tw) == (h, w) else area_resize(rgb, th, tw)
        x = normalise(x, spec)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


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
        m = area_resize(m, height, width)  # a fresh array: clipped in place (a full-size alpha is big)
        return np.clip(m, 0.0, 1.0, out=m)
    return np.clip(m, 0.0, 1.0)
