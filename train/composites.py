"""Portrait composites: a handful of real matted portraits turned into an endless, varied training set.

Why: a from-scratch MODNet needs many people over many backgrounds, but the data a shippable model may
learn from is small (e.g. ten MIT-licensed portraits with soft mattes).  Each sample here cuts one
portrait's person out by its matte and composites it, with strong augmentation, over a fresh
background:

* geometry: scale (log-uniform), rotation, horizontal shift, flip; the person stays anchored to the
  bottom edge like a real portrait whenever it is shrunk, so no cut-off edge floats in the frame;
* the person: its own colour jitter (other light), sometimes defocus;
* the background: either procedural (the synthetic set's textures, rooms, bokeh, tiles) or a crop of
  *another* portrait's person-free region (real walls, sky, foliage), with its own colour jitter and
  defocus;
* the whole frame: colour jitter, sensor noise, occasional blur.

Mixed in at ``synthetic_mix``: samples of the procedural synthetic set (true fg/bg known).
The true alpha, foreground and background of every composite are known, so the compositional loss
uses the real composition.  Every random choice comes from the per-(seed, epoch, index) generator of
:class:`~modnet_edge.train.datasets._Base`, so resume stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modnet_edge.core.images import read_image, read_matte

from modnet_edge.train.augment import AugmentConfig, apply_jitter, jitter_params
from modnet_edge.train.imaging import fit_matte, gaussian_blur, resize
from modnet_edge.train.synthetic import _background, render_portrait

# Working resolution of the in-memory portraits (short side); samples are drawn at <= this size.
_STORE_SIDE = 640


@dataclass(frozen=True)
class CompositeAugment:
    """The strength of each augmentation (defaults: the starter recipe's)."""

    scale_range: tuple[float, float] = (0.55, 1.5)  # person size relative to filling the frame's short side
    rotation: float = 15.0  # degrees, uniform in +-rotation
    shift: float = 0.3  # horizontal shift, fraction of the frame
    real_background: float = 0.5  # probability of a crop of another portrait's background
    blur_prob: float = 0.3  # probability of a defocused background (always) and sometimes a soft frame
    noise: float = 0.03  # max std of additive sensor noise in [0, 1] units
    color_jitter: float = 0.3


@dataclass
class _Portrait:
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray  # (H, W) float32 in [0, 1]


def _downscale(rgb: np.ndarray, alpha: np.ndarray, side: int) -> _Portrait:
    h, w = alpha.shape
    scale = min(1.0, side / min(h, w))
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rgb32 = rgb.astype(np.float32) / 255.0
    if (nh, nw) != (h, w):
        rgb32 = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BOX), dtype=np.float32) / 255.0
        alpha = resize(alpha, nh, nw, "bilinear")
    return _Portrait(np.ascontiguousarray(rgb32), np.clip(alpha, 0.0, 1.0).astype(np.float32))


def background_region(alpha: np.ndarray, min_fraction: float = 0.2, grid: int = 48) -> tuple[int, int, int, int] | None:
    """The largest axis-aligned rectangle (y0, y1, x0, x1) free of the person (alpha < 0.02 after a
    safety margin), or None when none has both sides >= ``min_fraction`` of the image.

    Found on a coarse grid by the classic largest-rectangle-in-a-histogram scan, O(grid^2)."""
    h, w = alpha.shape
    gh, gw = grid, max(1, round(grid * w / h))
    coarse = resize(alpha.astype(np.float32), gh, gw, "bilinear")
    free = np.ones((gh, gw), bool)
    occupied = coarse >= 0.02
    # a margin of one cell around the person (hair wisps below the threshold)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            free &= ~np.roll(np.roll(occupied, dy, 0), dx, 1)
    heights = np.zeros(gw, int)
    best, best_area = None, 0
    for row in range(gh):
        heights = np.where(free[row], heights + 1, 0)
        stack: list[int] = []
        for col in range(gw + 1):
            cur = heights[col] if col < gw else 0
            while stack and heights[stack[-1]] >= cur:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = heights[top] * (col - left)
                if area > best_area:
                    best_area, best = area, (row - heights[top] + 1, row + 1, left, col)
            stack.append(col)
    if best is None:
        return None
    y0, y1, x0, x1 = best
    if (y1 - y0) < min_fraction * gh or (x1 - x0) < min_fraction * gw:
        return None
    sy, sx = h / gh, w / gw
    return int(y0 * sy), int(y1 * sy), int(x0 * sx), int(x1 * sx)


def load_portraits(pairs: list[tuple[Path, Path]], side: int = _STORE_SIDE) -> tuple[list[_Portrait], list[np.ndarray]]:
    """The portraits (downscaled, in memory) and the person-free background crops found in them."""
    portraits, backgrounds = [], []
    for img_path, matte_path in pairs:
        rgb = read_image(img_path)
        alpha = fit_matte(read_matte(matte_path), rgb.shape[0], rgb.shape[1], matte_path)
        p = _downscale(rgb, alpha, side)
        portraits.append(p)
        box = background_region(p.alpha)
        if box is not None:
            y0, y1, x0, x1 = box
            backgrounds.append(np.ascontiguousarray(p.rgb[y0:y1, x0:x1]))
    return portraits, backgrounds


def _affine(arr: np.ndarray, size: int, matrix: tuple[float, ...]) -> np.ndarray:
    """Warp float (H, W[, C]) into a size x size canvas; ``matrix`` maps output to input (PIL's convention)."""
    chans = [arr] if arr.ndim == 2 else [arr[..., c] for c in range(arr.shape[2])]
    out = [np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F").transform(
        (size, size), Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=0.0)) for c in chans]
    return out[0] if arr.ndim == 2 else np.stack(out, axis=2)


def place_person(p: _Portrait, size: int, rng: np.random.Generator, aug: CompositeAugment) -> tuple[np.ndarray, np.ndarray]:
    """(fg, alpha) of one portrait's person on a size x size canvas, randomly scaled, rotated and shifted.

    The scale makes the portrait's short side ``zoom * size``; when the shrunken portrait would leave
    the bottom of the frame, it is moved down so its bottom edge (where the photo cut the person) stays
    at or below the frame's bottom."""
    h, w = p.alpha.shape
    lo, hi = aug.scale_range
    zoom = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    s = zoom * size / min(h, w)  # input px -> output px
    angle = np.deg2rad(rng.uniform(-aug.rotation, aug.rotation))
    # output centre of the portrait's centre
    cx = size / 2 + rng.uniform(-aug.shift, aug.shift) * size
    out_h, out_w = h * s, w * s
    if out_h <= size:  # shrunk: bottom edge at (or, when tilted, below) the frame's bottom
        push = rng.uniform(0.0, 0.1) * out_h + abs(np.sin(angle)) * out_w / 2
        cy = size - out_h / 2 + push
    else:  # larger than the frame: any vertical position that keeps the frame covered
        cy = rng.uniform(size - out_h / 2, out_h / 2)
    cos, sin = np.cos(angle) / s, np.sin(angle) / s
    # inverse map: input = R^-1 (out - c_out) / s + c_in
    a, b = cos, sin
    d, e = -sin, cos
    c = w / 2 - a * cx - b * cy
    f = h / 2 - d * cx - e * cy
    matrix = (a, b, c, d, e, f)
    alpha = np.clip(_affine(p.alpha, size, matrix), 0.0, 1.0)
    fg = np.clip(_affine(p.rgb, size, matrix), 0.0, 1.0)
    return fg, alpha


def draw_background(backgrounds: list[np.ndarray], size: int, rng: np.random.Generator,
                    aug: CompositeAugment) -> np.ndarray:
    """A size x size background: a random crop of a real person-free region, or a procedural texture."""
    if backgrounds and rng.random() < aug.real_background:
        src = backgrounds[int(rng.integers(len(backgrounds)))]
        h, w = src.shape[:2]
        crop = int(min(h, w) * rng.uniform(0.5, 1.0))
        y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        bg = resize(src[y0:y0 + crop, x0:x0 + crop], size, size, "bilinear")
        if rng.random() < 0.5:
            bg = bg[:, ::-1]
    else:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        bg = _background(rng, size, size, yy, xx)
    bg = apply_jitter(np.ascontiguousarray(bg, dtype=np.float32), jitter_params(rng, aug.color_jitter),
                      float(bg.mean()))
    if rng.random() < aug.blur_prob:  # a defocused background, as in most portraits
        bg = gaussian_blur(bg, rng.uniform(1.0, 4.0) * size / 256)
    return bg.astype(np.float32)


def compose_sample(portraits: list[_Portrait], backgrounds: list[np.ndarray], index: int, size: int,
                   rng: np.random.Generator, aug: CompositeAugment) -> dict[str, np.ndarray]:
    """One composite: {"rgb", "alpha", "fg", "bg"} float32 at size x size."""
    p = portraits[index % len(portraits)]
    fg, alpha = place_person(p, size, rng, aug)
    if rng.random() < 0.5:
        fg, alpha = np.ascontiguousarray(fg[:, ::-1]), np.ascontiguousarray(alpha[:, ::-1])
    fg = apply_jitter(fg, jitter_params(rng, aug.color_jitter * 0.7), 0.5)
    bg = draw_background(backgrounds, size, rng, aug)
    rgb = alpha[..., None] * fg + (1.0 - alpha[..., None]) * bg
    params = jitter_params(rng, aug.color_jitter * 0.5)
    pivot = float(rgb.mean())
    rgb, fg, bg = (apply_jitter(x, params, pivot) for x in (rgb, fg, bg))
    if rng.random() < aug.blur_prob * 0.3:  # a slightly soft whole frame (motion, cheap lens)
        sigma = rng.uniform(0.3, 1.0) * size / 256
        rgb = gaussian_blur(rgb, sigma)
    if aug.noise > 0:
        rgb = rgb + rng.normal(0.0, rng.uniform(0.0, aug.noise), rgb.shape).astype(np.float32)
    return {"rgb": np.clip(rgb, 0.0, 1.0).astype(np.float32), "alpha": alpha.astype(np.float32),
            "fg": fg.astype(np.float32), "bg": bg.astype(np.float32)}


def synthetic_sample(seed: int, index: int, size: int) -> dict[str, np.ndarray]:
    s = render_portrait(seed, index, size, size)
    return {"rgb": s.rgb.astype(np.float32) / 255.0, "alpha": s.alpha, "fg": s.fg, "bg": s.bg}


def composite_description(pairs: list[tuple[Path, Path]], backgrounds: int, samples: int, synthetic_mix: float,
                          aug: AugmentConfig) -> str:
    return (f"composites of {len(pairs)} matted portraits ({', '.join(p.stem for p, _ in pairs)}) over procedural "
            f"and {backgrounds} real person-free backgrounds, {samples} samples/epoch at {aug.size}px"
            + (f", {synthetic_mix:.0%} synthetic portraits mixed in" if synthetic_mix else ""))
