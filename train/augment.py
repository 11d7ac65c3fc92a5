"""Training augmentation: random rescale + crop to the training size, horizontal flip, colour jitter.

Every random choice comes from a generator the dataset seeds with ``(seed, epoch, index)``, so a
sample's augmentation does not depend on worker count, process rank or how often the run was
interrupted and resumed -- the basis of exact resume.

The same geometric and colour transform is applied to image, foreground and background (colour jitter
is per-pixel affine, so the composition ``alpha * fg + (1 - alpha) * bg`` stays equal to the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modnet_edge.training.imaging import resize

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    size: int
    scale_range: tuple[float, float] = (0.8, 1.25)  # zoom of the short side relative to ``size`` (< 1 clamps to 1)
    flip: bool = True
    color_jitter: float = 0.2  # max relative change of brightness, contrast and saturation


def fit_crop(arrays: dict[str, np.ndarray], size: int, rng: np.random.Generator | None,
             scale_range: tuple[float, float] = (1.0, 1.0)) -> dict[str, np.ndarray]:
    """Rescale so the short side is ``size`` x zoom (zoom >= 1), then crop ``size`` x ``size``.

    With ``rng=None`` the zoom is 1 and the crop centred (validation).  Arrays must share H and W."""
    h, w = next(iter(arrays.values())).shape[:2]
    zoom = 1.0 if rng is None else max(1.0, float(rng.uniform(*scale_range)))
    scale = size * zoom / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    if rng is None:
        y0, x0 = (nh - size) // 2, (nw - size) // 2
    else:
        y0, x0 = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    out = {}
    for key, arr in arrays.items():
        big = resize(arr, nh, nw, "bilinear")
        out[key] = np.ascontiguousarray(big[y0:y0 + size, x0:x0 + size])
    return out


def jitter_params(rng: np.random.Generator, strength: float) -> tuple[float, float, float]:
    if strength <= 0:
        return 1.0, 1.0, 1.0
    return tuple(float(v) for v in rng.uniform(1 - strength, 1 + strength, 3))  # type: ignore[return-value]


def apply_jitter(rgb: np.ndarray, params: tuple[float, float, float], pivot: float) -> np.ndarray:
    """Brightness x b, contrast around the constant ``pivot``, saturation around per-pixel luma."""
    b, c, s = params
    luma = (rgb @ _LUMA)[..., None]
    out = luma + s * (rgb - luma)
    out = (out - pivot) * c + pivot
    return np.clip(out * b, 0.0, 1.0).astype(np.float32)


def augment(arrays: dict[str, np.ndarray], rng: np.random.Generator, cfg: AugmentConfig,
            colour_keys: tuple[str, ...] = ("rgb", "fg", "bg"), crop: bool = True) -> dict[str, np.ndarray]:
    """Crop/rescale (unless ``crop`` is False: the sample is already at size), flip, jitter."""
    out = fit_crop(arrays, cfg.size, rng, cfg.scale_range) if crop else dict(arrays)
    if cfg.flip and rng.random() < 0.5:
        out = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in out.items()}
    params = jitter_params(rng, cfg.color_jitter)
    if params != (1.0, 1.0, 1.0):
        pivot = float(out["rgb"].mean())
        for key in colour_keys:
            if key in out:
                out[key] = apply_jitter(out[key], params, pivot)
    return out
