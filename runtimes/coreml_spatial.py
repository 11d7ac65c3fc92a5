"""The spatial MIL operations in NumPy: conv (grouped, depthwise, dilated, strided), avg_pool and
upsample_bilinear, with the padding and coordinate rules of the MIL op definitions.

A dense convolution is im2col plus one BLAS matrix product per chunk of output rows (the chunks keep
the column buffer under 64 MB: a whole 3x3 layer at 512x512 would need ~300 MB); a depthwise one is
one broadcast multiply per kernel tap.  A 512x512 MODNet forward takes a few seconds on one core.  Everything accumulates in float32; the executor
rounds each op's result to the dtype the program declares (float16 in an FP16 program).
"""

from __future__ import annotations

import math

import numpy as np


def _pads_1d(pad_type: str, size: int, kernel: int, stride: int, dilation: int, custom: tuple[int, int],
             ceil_mode: bool = False) -> tuple[int, int]:
    """(before, after) padding of one spatial axis for a MIL ``pad_type``."""
    if pad_type == "valid":
        return 0, 0
    if pad_type == "custom":
        return custom
    if pad_type in ("same", "same_lower"):
        effective = (kernel - 1) * dilation + 1
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + effective - size, 0)
        small, large = total // 2, total - total // 2
        return (small, large) if pad_type == "same" else (large, small)
    raise ValueError(f"unsupported pad_type {pad_type!r}")


def _geometry(x_shape: tuple[int, ...], kernel: tuple[int, int], strides: np.ndarray | None,
              dilations: np.ndarray | None, pad_type: str, pad: np.ndarray | None
              ) -> tuple[tuple[int, int], tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]:
    s = tuple(int(v) for v in (strides if strides is not None else (1, 1)))
    d = tuple(int(v) for v in (dilations if dilations is not None else (1, 1)))
    p = [int(v) for v in (pad if pad is not None else (0, 0, 0, 0))]
    h, w = x_shape[-2:]
    ph = _pads_1d(pad_type, h, kernel[0], s[0], d[0], (p[0], p[1]))
    pw = _pads_1d(pad_type, w, kernel[1], s[1], d[1], (p[2], p[3]))
    return s, d, (ph, pw)  # type: ignore[return-value]


def _taps(xp: np.ndarray, kh: int, kw: int, s: tuple[int, int], d: tuple[int, int], ho: int, wo: int):
    """Yield (i, j, view) with view[..., y, x] = xp[..., y*s0 + i*d0, x*s1 + j*d1]."""
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * d[0], j * d[1]
            yield i, j, xp[..., y0:y0 + s[0] * (ho - 1) + 1:s[0], x0:x0 + s[1] * (wo - 1) + 1:s[1]]


_COLUMN_BUDGET = 1 << 24  # floats per im2col chunk (64 MB): bounds memory at any image size


def _dense_conv(xp: np.ndarray, weight: np.ndarray, s: tuple[int, int], d: tuple[int, int], ho: int,
                wo: int) -> np.ndarray:
    """groups=1 convolution as im2col + one matrix product per chunk of output rows.

    One large product is several times faster than a product per kernel tap (the taps' small products
    are memory bound); chunking the rows keeps the column buffer under :data:`_COLUMN_BUDGET`.
    """
    n, cin = xp.shape[:2]
    cout, _, kh, kw = weight.shape
    w2 = np.ascontiguousarray(weight.reshape(cout, cin * kh * kw))
    out = np.empty((n, cout, ho, wo), dtype=np.float32)
    if kh == kw == 1 and s == (1, 1) and xp.shape[2:] == (ho, wo):
        for b in range(n):
            out[b] = (w2 @ xp[b].reshape(cin, ho * wo)).reshape(cout, ho, wo)
        return out
    rows = max(1, _COLUMN_BUDGET // (cin * kh * kw * wo))
    for b in range(n):
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            band = xp[b, :, r0 * s[0]:, :]  # output row r0 reads input rows from r0 * stride on
            cols = np.stack([view for _, _, view in _taps(band, kh, kw, s, d, r1 - r0, wo)], axis=1)
            out[b, :, r0:r1] = (w2 @ cols.reshape(cin * kh * kw, (r1 - r0) * wo)).reshape(cout, r1 - r0, wo)
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, strides: np.ndarray | None,
           dilations: np.ndarray | None, pad_type: str, pad: np.ndarray | None, groups: int) -> np.ndarray:
    """MIL ``conv`` for 2-D inputs (N, Cin, H, W) and weights (Cout, Cin/groups, KH, KW)."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"only 2-D convolution is supported (x rank {x.ndim}, weight rank {weight.ndim})")
    n, cin, h, w = x.shape
    cout, cig, kh, kw = weight.shape
    if cin != cig * groups or cout % groups:
        raise ValueError(f"conv channels do not match: x has {cin}, weight {weight.shape}, groups {groups}")
    s, d, ((pt, pb), (pl, pr)) = _geometry(x.shape, (kh, kw), strides, dilations, pad_type, pad)
    ho = (h + pt + pb - (kh - 1) * d[0] - 1) // s[0] + 1
    wo = (w + pl + pr - (kw - 1) * d[1] - 1) // s[1] + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr))) if pt or pb or pl or pr else x
    weight = weight.astype(np.float32, copy=False)
    if groups == 1:
        out = _dense_conv(xp, weight, s, d, ho, wo)
    elif cig == 1 and cout == groups:  # depthwise: one filter per channel, no channel mixing
        out = np.zeros((n, cout, ho, wo), dtype=np.float32)
        for i, j, view in _taps(xp, kh, kw, s, d, ho, wo):
            out += view * weight[:, 0, i, j][None, :, None, None]
    else:  # general grouped convolution: a batch of per-group matrix products
        cog = cout // groups
        wg = weight.reshape(groups, cog, cig, kh, kw)
        out = np.zeros((n, groups, cog, ho * wo), dtype=np.float32)
        for i, j, view in _taps(xp, kh, kw, s, d, ho, wo):
            out += np.matmul(wg[:, :, :, i, j], view.reshape(n, groups, cig, ho * wo))
    out = out.reshape(n, cout, ho, wo)  # no-op for the dense path
    if bias is not None:
        out += bias.astype(np.float32)[None, :, None, None]
    return out


def avg_pool2d(x: np.ndarray, kernel: np.ndarray, strides: np.ndarray | None, pad_type: str,
               pad: np.ndarray | None, exclude_padding: bool, ceil_mode: bool) -> np.ndarray:
    """MIL ``avg_pool`` over the last two axes."""
    kh, kw = (int(v) for v in kernel)
    s, d, ((pt, pb), (pl, pr)) = _geometry(x.shape, (kh, kw), strides, None, pad_type, pad)
    h, w = x.shape[-2:]
    rnd = math.ceil if ceil_mode else math.floor
    ho = int(rnd((h + pt + pb - kh) / s[0])) + 1
    wo = int(rnd((w + pl + pr - kw) / s[1])) + 1
    # extra bottom/right padding so ceil_mode windows stay inside the array (never counted)
    eb = max((ho - 1) * s[0] + kh - (h + pt + pb), 0)
    er = max((wo - 1) * s[1] + kw - (w + pl + pr), 0)
    lead = [(0, 0)] * (x.ndim - 2)
    xp = np.pad(x, lead + [(pt, pb + eb), (pl, pr + er)])
    ones = np.pad(np.ones((h, w), np.float32), [(pt, pb + eb), (pl, pr + er)])
    if not exclude_padding:  # explicit padding counts, the ceil_mode overhang does not
        ones[: h + pt + pb, : w + pl + pr] = 1.0
    total = np.zeros(x.shape[:-2] + (ho, wo), dtype=np.float32)
    count = np.zeros((ho, wo), dtype=np.float32)
    for _, _, view in _taps(xp, kh, kw, s, (1, 1), ho, wo):
        total += view
    for _, _, view in _taps(ones, kh, kw, s, (1, 1), ho, wo):
        count += view
    return total / count


def _bilinear_axis(x: np.ndarray, axis: int, out_size: int, align_corners: bool,
                   half_pixel_centers: bool) -> np.ndarray:
    """Linear interpolation along one axis with the MIL grid rules (see ``upsample_bilinear``)."""
    size = x.shape[axis]
    if out_size == size:  # every grid rule maps i -> i
        return x
    i = np.arange(out_size, dtype=np.float64)
    if align_corners:
        grid = i * ((size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(1)
    else:
        spacing = size / out_size  # the scale is recomputed from the sizes
        grid = (i + 0.5) * spacing - 0.5 if half_pixel_centers else i * spacing
    grid = np.clip(grid, 0.0, size - 1)
    lo = np.floor(grid).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    frac_shape = [1] * x.ndim
    frac_shape[axis] = out_size
    frac = (grid - lo).astype(np.float32).reshape(frac_shape)
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return a + (b - a) * frac


def upsample_bilinear(x: np.ndarray, scale_h: float, scale_w: float, align_corners: bool,
                      half_pixel_centers: bool) -> np.ndarray:
    """MIL ``upsample_bilinear``: output size floor(H * scale); sampling grid as in the op definition:
    align_corners -> i * (Hin-1)/(Hout-1); otherwise with half-pixel centres
    (i + 0.5) * Hin/Hout - 0.5, clamped to [0, Hin-1]."""
    h, w = x.shape[-2:]
    out_h, out_w = int(math.floor(h * scale_h + 1e-6)), int(math.floor(w * scale_w + 1e-6))
    y = _bilinear_axis(x.astype(np.float32, copy=False), x.ndim - 2, out_h, align_corners, half_pixel_centers)
    return _bilinear_axis(y, x.ndim - 1, out_w, align_corners, half_pixel_centers)
