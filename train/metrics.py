"""Matting error metrics in pure NumPy, defined as in the standard matting benchmarks.

All take a predicted and a ground-truth alpha as float arrays in [0, 1] of the same (H, W) shape and
evaluate *every* pixel (trimap-free matting has no unknown region to restrict to); pass ``mask`` to
restrict them (e.g. to a trimap's unknown region) as trimap-based benchmarks do.

* ``mse``  mean of (p - g)^2 over the evaluated pixels (unscaled).
* ``mad``  mean of |p - g| (unscaled; papers, MODNet's included, often print MSE and MAD x 1000).
* ``sad``  sum of |p - g|, divided by 1000 (the alphamatting.com / Deep Image Matting convention).
* ``grad`` sum of (|grad p| - |grad g|)^2, divided by 1000; gradients are first-order Gaussian
  derivative filters with sigma 1.4, each 2-D filter scaled to unit L2 norm (Rhemann et al. 2009).
* ``conn`` connectivity error, divided by 1000 (Rhemann et al. 2009): for thresholds 0.1, 0.2, ... 1
  the largest 4-connected region where both mattes are >= the threshold is found; each pixel's level
  l is the last threshold (minus one step) at which it still belonged to that region; with
  d = alpha - l, phi = 1 - d * [d >= 0.15]; the error is sum |phi_p - phi_g|.
"""

from __future__ import annotations

import math

import numpy as np

METRIC_NAMES = ("mse", "mad", "sad", "grad", "conn")


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if p.shape != g.shape or p.ndim != 2:
        raise ValueError(f"mattes must be 2-D and equal in shape, got {p.shape} and {g.shape}")
    return p, g


def _mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, bool) if mask is None else np.asarray(mask, bool)


def mse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    p, g = _check(pred, gt)
    m = _mask(mask, p.shape)
    return float(((p - g) ** 2)[m].mean()) if m.any() else 0.0


def mad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    p, g = _check(pred, gt)
    m = _mask(mask, p.shape)
    return float(np.abs(p - g)[m].mean()) if m.any() else 0.0


def sad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    p, g = _check(pred, gt)
    return float(np.abs(p - g)[_mask(mask, p.shape)].sum() / 1000.0)


def _gauss_taps(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian and its derivative, half-size where the Gaussian falls to 1% of its peak density."""
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(x * x) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    dg = -x / (sigma * sigma) * g
    return g, dg


def _filter(arr: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    r = len(kernel) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    padded = np.pad(arr, pad, mode="edge")
    n = arr.shape[axis]
    out = np.zeros_like(arr)
    for i, w in enumerate(kernel[::-1]):  # convolution (flipped kernel), like imfilter with 'conv'
        out += w * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


def gradient_magnitude(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    g, dg = _gauss_taps(sigma)
    scale = np.linalg.norm(g) * np.linalg.norm(dg)  # unit L2 norm of the separable 2-D filter
    gx = _filter(_filter(alpha, dg, 1), g, 0) / scale
    gy = _filter(_filter(alpha, dg, 0), g, 1) / scale
    return np.sqrt(gx * gx + gy * gy)


def grad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, sigma: float = 1.4) -> float:
    p, g = _check(pred, gt)
    diff = (gradient_magnitude(p, sigma) - gradient_magnitude(g, sigma)) ** 2
    return float(diff[_mask(mask, p.shape)].sum() / 1000.0)


def label_components(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels (label = smallest flat index in the component; -1 outside).

    Vectorised min-label hooking with pointer jumping: each round every edge pulls the larger of its
    two roots onto the smaller, then paths are compressed; it converges in a few dozen rounds."""
    h, w = mask.shape
    idx = np.arange(h * w).reshape(h, w)
    right = mask[:, :-1] & mask[:, 1:]
    down = mask[:-1] & mask[1:]
    u = np.concatenate([idx[:, :-1][right], idx[:-1][down]])
    v = np.concatenate([idx[:, 1:][right], idx[1:][down]])
    lab = np.arange(h * w)
    while u.size:
        lu, lv = lab[u], lab[v]
        low = np.minimum(lu, lv)
        new = lab.copy()
        np.minimum.at(new, lu, low)
        np.minimum.at(new, lv, low)
        while True:  # pointer jumping until every node points at its root
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, lab):
            break
        lab = new
    out = lab.reshape(h, w)
    return np.where(mask, out, -1)


def largest_component(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    labels = label_components(mask)
    values, counts = np.unique(labels[mask], return_counts=True)
    return labels == values[np.argmax(counts)]


def conn(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, step: float = 0.1,
         theta: float = 0.15) -> float:
    p, g = _check(pred, gt)
    level = np.full(p.shape, -1.0)
    for t in np.arange(step, 1.0 + step / 2, step):
        omega = largest_component((p >= t) & (g >= t))
        fresh = (level == -1.0) & ~omega
        level[fresh] = t - step
    level[level == -1.0] = 1.0
    dp, dg = p - level, g - level
    phi_p = 1.0 - dp * (dp >= theta)
    phi_g = 1.0 - dg * (dg >= theta)
    return float(np.abs(phi_p - phi_g)[_mask(mask, p.shape)].sum() / 1000.0)


def matting_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                    names: tuple[str, ...] = METRIC_NAMES) -> dict[str, float]:
    """The requested metrics for one matte pair."""
    funcs = {"mse": mse, "mad": mad, "sad": sad, "grad": grad, "conn": conn}
    unknown = set(names) - set(funcs)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {list(funcs)}")
    return {n: funcs[n](pred, gt, mask) for n in names}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-image metrics averaged over images (each image counts once, whatever its size)."""
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
