"""Portrait composites: a handful of real matted portraits turned into an endless, varied training set.

Why: a from-scratch MODNet needs many people over many backgrounds, but the data a shippable model may
learn from is small (e.g. ten MIT-licensed portraits with soft mattes).  Each sample here cuts one
portrait's person out by its matte and composites it, with strong augmentation, over a fresh
background:

* geometry: scale (log-uniform), rotation, horizontal shift, flip; the person stays anchored to the
  bottom edge like a real portrait whenever it is shrunk, so no cut-off edge floats in the frame;
* the person: its own colour jitter (other light), sometimes defocus;
* the background: either procedural (the synthetic set's textures, rooms, bokeh, tiles) or a crop of
  a real person-free photo (the portraits' own person-free regions, and a folder of license-clean
  photos with no person in them), with its own colour jitter and defocus;
* groups: sometimes two or three people, smaller, side by side (person-seg style photos);
* squash: the whole frame sometimes stretched along one axis, as a photo fed to a static square
  input is, so the matte holds when the aspect changes;
* negatives: a share of the samples is a person-free photo alone with an all-zero matte, so real
  backgrounds (tree trunks, pavement, sky) are learned as background;
* the whole frame: colour jitter, sensor noise, occasional blur.

Mixed in at ``synthetic_mix``: samples of the procedural synthetic set (true fg/bg known).
The true alpha, foreground and background of every composite are known, so the compositional loss
uses the real composition.  Every random choice comes from the per-(seed, epoch, index) generator of
:class:`~modnet_edge.training.datasets._Base`, so resume stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modnet_edge.core.images import read_image, read_matte

from modnet_edge.training.augment import AugmentConfig, apply_jitter, jitter_params
from modnet_edge.training.imaging import fit_matte, gaussian_blur, resize
from modnet_edge.training.synthetic import _background, render_portrait

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
    negatives: float = 0.0  # probability that a sample is a person-free photo alone (all-zero matte)
    groups: float = 0.0  # probability of two or three people in one frame
    squash: float = 0.0  # aspect stretch: width/height scaled by a log-uniform factor in [1/(1+s), 1+s]


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


def load_backgrounds(files: list[Path], side: int = _STORE_SIDE) -> list[np.ndarray]:
    """Person-free photos (float32 RGB in [0, 1], short side at most ``side``), whole: crops are drawn per sample."""
    out = []
    for path in files:
        rgb = read_image(path)
        out.append(_downscale(rgb, np.zeros(rgb.shape[:2], np.float32), side).rgb)
    return out


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


def place_person(p: _Portrait, size: int, rng: np.random.Generator, aug: CompositeAugment, aspect: float = 1.0,
                 shrink: float = 1.0, centre: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fg, alpha) of one portrait's person on a size x size canvas, randomly scaled, rotated and shifted.

    The scale makes the portrait's short side ``zoom * shrink * size``; when the shrunken portrait
    would leave the bottom of the frame, it is moved down so its bottom edge (where the photo cut the
    person) stays at or below the frame's bottom.  ``aspect`` > 1 stretches it horizontally (a
    squashed frame); ``centre`` fixes the horizontal centre as a fraction of the frame (groups)."""
    h, w = p.alpha.shape
    lo, hi = aug.scale_range
    zoom = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * shrink
    s = zoom * size / min(h, w)  # input px -> output px (vertical; horizontal is s * aspect)
    angle = np.deg2rad(rng.uniform(-aug.rotation, aug.rotation))
    # output centre of the portrait's centre
    cx = (size / 2 + rng.uniform(-aug.shift, aug.shift) * size if centre is None
          else size * centre + rng.uniform(-0.05, 0.05) * size)
    out_h, out_w = h * s, w * s * aspect
    if out_h <= size:  # shrunk: bottom edge at (or, when tilted, below) the frame's bottom
        push = rng.uniform(0.0, 0.1) * out_h + abs(np.sin(angle)) * out_w / 2
        cy = size - out_h / 2 + push
    else:  # larger than the frame: any vertical position that keeps the frame covered
        cy = rng.uniform(size - out_h / 2, out_h / 2)
    cos, sin = np.cos(angle), np.sin(angle)
    # inverse map: input = R^-1 diag(1 / (s * aspect), 1 / s) (out - c_out) + c_in
    a, b = cos / (s * aspect), sin / s
    d, e = -sin / (s * aspect), cos / s
    c = w / 2 - a * cx - b * cy
    f = h / 2 - d * cx - e * cy
    matrix = (a, b, c, d, e, f)
    alpha = np.clip(_affine(p.alpha, size, matrix), 0.0, 1.0)
    fg = np.clip(_affine(p.rgb, size, matrix), 0.0, 1.0)
    return fg, alpha


def draw_background(backgrounds: list[np.ndarray], size: int, rng: np.random.Generator,
                    aug: CompositeAugment, aspect: float = 1.0, real: float | None = None) -> np.ndarray:
    """A size x size background: a random crop of a real person-free photo (probability ``real``,
    default the augmentation's), or a procedural texture.  ``aspect`` > 1: the crop is that much
    narrower than it is tall before it fills the square, so its content looks stretched sideways."""
    if backgrounds and rng.random() < (aug.real_background if real is None else real):
        src = backgrounds[int(rng.integers(len(backgrounds)))]
        h, w = src.shape[:2]
        crop = min(h, w) * rng.uniform(0.5, 1.0)
        ch, cw = crop * min(1.0, aspect), crop / max(1.0, aspect)  # height / width of the crop = aspect
        ch, cw = max(8, min(h, int(ch))), max(8, min(w, int(cw)))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        bg = resize(src[y0:y0 + ch, x0:x0 + cw], size, size, "bilinear")
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


def _people(portraits: list[_Portrait], index: int, size: int, rng: np.random.Generator, aug: CompositeAugment,
            aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """(fg, alpha) of one person, or of a group of two or three (probability ``aug.groups``) placed
    side by side, smaller, each composited over the ones behind it."""
    count = 1 if aug.groups <= 0 or rng.random() >= aug.groups else int(rng.integers(2, 4))
    fg = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    slots = rng.permutation(count) if count > 1 else [0]
    for k in range(count):
        p = portraits[(index + k) % len(portraits)]
        if count == 1:
            f, a = place_person(p, size, rng, aug, aspect)
        else:
            f, a = place_person(p, size, rng, aug, aspect, shrink=rng.uniform(0.45, 0.8),
                                centre=(slots[k] + 0.5) / count)
        if rng.random() < 0.5:
            f, a = np.ascontiguousarray(f[:, ::-1]), np.ascontiguousarray(a[:, ::-1])
        f = apply_jitter(f, jitter_params(rng, aug.color_jitter * 0.7), 0.5)
        # "over": the new person in front; fg is the alpha-weighted mix of everyone's colour
        total = a + (1.0 - a) * alpha
        mix = a[..., None] * f + ((1.0 - a) * alpha)[..., None] * fg
        fg = np.where(total[..., None] > 1e-6, mix / np.maximum(total, 1e-6)[..., None], 0.0).astype(np.float32)
        alpha = total.astype(np.float32)
    return fg, alpha


def compose_sample(portraits: list[_Portrait], backgrounds: list[np.ndarray], index: int, size: int,
                   rng: np.random.Generator, aug: CompositeAugment,
                   photos: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One composite: {"rgb", "alpha", "fg", "bg"} float32 at size x size.

    ``photos``: person-free photos; with probability ``aug.negatives`` the sample is a crop of one of
    them alone (all-zero matte: nothing in it is a person)."""
    aspect = float(np.exp(rng.uniform(-np.log1p(aug.squash), np.log1p(aug.squash)))) if aug.squash > 0 else 1.0
    if photos and rng.random() < aug.negatives:
        fg = np.zeros((size, size, 3), np.float32)
        alpha = np.zeros((size, size), np.float32)
        bg = draw_background(photos, size, rng, aug, aspect, real=0.9)
    else:
        fg, alpha = _people(portraits, index, size, rng, aug, aspect)
        bg = draw_background(backgrounds, size, rng, aug, aspect)
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
                          aug: AugmentConfig, composite: CompositeAugment | None = None, photos: int = 0) -> str:
    extras = []
    if composite is not None and photos:
        extras.append(f"{photos} person-free photos ({composite.negatives:.0%} of samples alone, all-zero matte)")
    if composite is not None and composite.groups:
        extras.append(f"{composite.groups:.0%} groups of 2-3")
    if composite is not None and composite.squash:
        extras.append(f"aspect stretched up to x{1 + composite.squash:g}")
    return (f"composites of {len(pairs)} matted portraits ({', '.join(p.stem for p, _ in pairs)}) over procedural "
            f"and {backgrounds} real person-free backgrounds, {samples} samples/epoch at {aug.size}px"
            + (f", {synthetic_mix:.0%} synthetic portraits mixed in" if synthetic_mix else "")
            + "".join(f", {e}" for e in extras))
