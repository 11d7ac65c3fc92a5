"""The built-in SYNTHETIC portrait set: procedurally drawn people over textured backgrounds.

It exists so that every command (train, export, parity, evaluate) works on a fresh machine with no
downloads.  Each sample is a pure function of ``(seed, index, size)``: a head-and-shoulders silhouette
with an anti-aliased rim, soft hair-like strands and sometimes defocused (semi-transparent) edges, a
translucent scarf or a held object, composited over a textured background.  Because the foreground,
background and alpha are all known, the compositional loss can use the true composition.

The data is synthetic and is labelled so wherever it appears (checkpoint provenance, logs, reports);
a network trained only on it is a well-behaved default for the toolchain, not a portrait matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modnet_edge.training.imaging import gaussian_blur, smooth_noise

SYNTHETIC_LABEL = "synthetic (built-in procedural portraits; not real data)"

_SKIN = np.array([[255, 224, 196], [234, 192, 160], [198, 146, 110], [160, 108, 74], [110, 72, 48],
                  [80, 52, 36]], dtype=np.float32) / 255.0
_HAIR = np.array([[20, 16, 14], [60, 40, 28], [110, 72, 40], [170, 130, 80], [220, 190, 130],
                  [120, 118, 116], [150, 40, 30]], dtype=np.float32) / 255.0


@dataclass
class PortraitSample:
    """One synthetic sample: ``rgb`` uint8 (H, W, 3); ``alpha`` (H, W), ``fg``/``bg`` (H, W, 3) float32 in [0, 1]."""

    rgb: np.ndarray
    alpha: np.ndarray
    fg: np.ndarray
    bg: np.ndarray


def render_portrait(seed: int, index: int, height: int, width: int) -> PortraitSample:
    """Draw sample ``index`` of the set with ``seed``, deterministically, at ``height`` x ``width``."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0x5EED])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    bg = _background(rng, height, width, yy, xx)
    alpha, fg = _person(rng, height, width, yy, xx)
    img = alpha[..., None] * fg + (1.0 - alpha[..., None]) * bg
    img = img + rng.normal(0.0, rng.uniform(0.0, 0.02), img.shape).astype(np.float32)  # sensor noise
    rgb = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return PortraitSample(rgb, alpha.astype(np.float32), fg.astype(np.float32), bg.astype(np.float32))


# Stand-in photos: a few aspect ratios, so dynamic shapes and the resize rule are exercised
STAND_IN_SIZES = ((480, 640), (640, 480), (512, 512), (720, 1280))


def synthetic_portraits(count: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` RGB images of the set, named like files: the stand-in photos of parity runs and
    benchmarks when no real images are given (every report that uses them says so)."""
    out = {}
    for i in range(count):
        h, w = STAND_IN_SIZES[i % len(STAND_IN_SIZES)]
        out[f"synthetic_{i:02d}_{w}x{h}.png"] = render_portrait(seed, i, h, w).rgb
    return out


# ------------------------------------------------------------------------------------------------
# Backgrounds
# ------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, h: int, w: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A mix of one or two texture families plus fine grain, so the network cannot key on flat colour."""
    kinds = rng.choice(5, size=int(rng.integers(1, 3)), replace=False)
    layers = [_texture(int(k), rng, h, w, yy, xx) for k in kinds]
    bg = layers[0] if len(layers) == 1 else 0.5 * (layers[0] + layers[1])
    bg = bg + (smooth_noise(rng, h, w, max(h, w) // 3, 3) - 0.5) * rng.uniform(0.0, 0.15)
    return np.clip(bg, 0.0, 1.0)


def _texture(kind: int, rng: np.random.Generator, h: int, w: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    s = float(max(h, w))
    if kind == 0:  # blotchy colour clouds (walls, foliage out of focus)
        return smooth_noise(rng, h, w, int(rng.integers(3, 10)), 3)
    if kind == 1:  # stripes / planks at a random angle
        theta = rng.uniform(0, np.pi)
        period = s * rng.uniform(0.03, 0.25)
        phase = (np.cos(theta) * xx + np.sin(theta) * yy) / period * 2 * np.pi
        wave = 0.5 + 0.5 * np.sin(phase)[..., None]
        c1, c2 = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
        return wave * c1 + (1 - wave) * c2
    if kind == 2:  # a room: a vertical gradient with random furniture-like rectangles
        top, bottom = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
        t = (yy / h)[..., None]
        out = t * bottom + (1 - t) * top
        for _ in range(int(rng.integers(2, 7))):
            x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
            x1, y1 = x0 + rng.uniform(0.1, 0.6) * w, y0 + rng.uniform(0.1, 0.6) * h
            box = ((xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)).astype(np.float32)
            box = gaussian_blur(box, rng.uniform(0.0, 2.0))[..., None]
            out = box * rng.random(3).astype(np.float32) + (1 - box) * out
        return out
    if kind == 3:  # bokeh: soft bright discs over a dark gradient
        out = np.broadcast_to(rng.random(3).astype(np.float32) * 0.4, (h, w, 3)).copy()
        for _ in range(int(rng.integers(5, 25))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), s * rng.uniform(0.02, 0.12)
            disc = np.clip((r - np.hypot(xx - cx, yy - cy)) / (0.3 * r), 0, 1)[..., None]
            out = out + disc * rng.random(3).astype(np.float32) * rng.uniform(0.2, 0.7)
        return np.clip(out, 0, 1)
    # kind 4: tiles / checkerboard with grout, slightly rotated
    theta = rng.uniform(-0.3, 0.3)
    cell = s * rng.uniform(0.04, 0.2)
    u = (np.cos(theta) * xx + np.sin(theta) * yy) / cell
    v = (-np.sin(theta) * xx + np.cos(theta) * yy) / cell
    check = ((np.floor(u) + np.floor(v)) % 2)[..., None]
    c1, c2 = rng.random(3).astype(np.float32), rng.random(3).astype(np.float32)
    return check * c1 + (1 - check) * c2


# ------------------------------------------------------------------------------------------------
# The person
# ------------------------------------------------------------------------------------------------


def _coverage(dist_px: np.ndarray, softness: float) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside); ``softness`` widens
    the ramp to imitate defocus or motion blur (semi-transparent edges)."""
    return np.clip(0.5 - dist_px / max(softness, 1e-3), 0.0, 1.0).astype(np.float32)


def _ellipse_dist(xx, yy, cx, cy, rx, ry, angle=0.0, power=2.0):
    """Approximate signed distance (pixels) to a rotated (super)ellipse."""
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    e = (np.abs(u / rx) ** power + np.abs(v / ry) ** power) ** (1.0 / power)
    return (e - 1.0) * min(rx, ry)


def _over(dst: np.ndarray, colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return dst * (1 - weight[..., None]) + colour * weight[..., None]


def _person(rng: np.random.Generator, h: int, w: int, yy: np.ndarray, xx: np.ndarray):
    s = float(min(h, w))
    soft = 1.0 if rng.random() < 0.7 else rng.uniform(2.0, 0.02 * s + 3.0)  # defocused edges sometimes
    cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.2, 0.42)
    r = s * rng.uniform(0.1, 0.19)
    ry = r * rng.uniform(1.15, 1.35)
    tilt = rng.uniform(-0.25, 0.25)

    head = _coverage(_ellipse_dist(xx, yy, cx, cy, r, ry, tilt), soft)
    neck_w, neck_top, neck_bot = r * rng.uniform(0.35, 0.5), cy + 0.5 * ry, cy + ry + 0.6 * r
    neck_d = np.maximum(np.abs(xx - cx) - neck_w, np.maximum(neck_top - yy, yy - neck_bot))
    neck = _coverage(neck_d, soft)
    tb = r * rng.uniform(1.2, 2.2)
    tx, ty = cx + r * rng.uniform(-0.4, 0.4), cy + ry + 0.35 * r + tb
    torso = _coverage(_ellipse_dist(xx, yy, tx, ty, r * rng.uniform(2.0, 3.3), tb, rng.uniform(-0.1, 0.1),
                                    rng.uniform(2.2, 4.0)), soft)

    # hair: a cap over the head (sometimes long, down to the shoulders) plus loose strands
    hx, hy = r * rng.uniform(1.03, 1.22), ry * rng.uniform(1.0, 1.12)
    cap = _coverage(_ellipse_dist(xx, yy, cx, cy - 0.08 * ry, hx, hy, tilt), soft)
    long_hair = rng.random() < 0.35
    cut = cy + (rng.uniform(0.8, 2.2) if long_hair else rng.uniform(-0.3, 0.2)) * ry
    if long_hair:
        drape = _coverage(np.maximum(np.abs(xx - cx) - hx * 1.05, yy - cut), soft)
        cap = np.maximum(cap * (yy < cy).astype(np.float32), drape * (yy >= cy - 0.08 * ry))
    else:
        cap = cap * np.clip((cut - yy) / 2.0 + 0.5, 0, 1)
    strands = _strands(rng, h, w, cx, cy - 0.08 * ry, hx, hy, r, long_hair)
    hair = np.maximum(cap, strands)

    alpha_parts = [head, neck, torso, hair]
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.85, 1.1)
    hair_col = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2)
    fg = _clothes(rng, h, w, yy, xx)
    fg = _over(fg, np.clip(skin, 0, 1), np.maximum(head, neck * (1 - torso)))
    face = (_coverage(_ellipse_dist(xx, yy, cx - 0.35 * r, cy - 0.05 * ry, 0.12 * r, 0.07 * r), 1.0)
            + _coverage(_ellipse_dist(xx, yy, cx + 0.35 * r, cy - 0.05 * ry, 0.12 * r, 0.07 * r), 1.0)
            + _coverage(_ellipse_dist(xx, yy, cx, cy + 0.5 * ry, 0.3 * r, 0.06 * r), 1.0))
    fg = _over(fg, np.clip(skin * 0.45, 0, 1), np.clip(face, 0, 1) * head)
    fg = _over(fg, np.clip(hair_col, 0, 1), hair)

    if rng.random() < 0.3:  # a translucent scarf / veil reaching beyond the silhouette
        veil = _coverage(_ellipse_dist(xx, yy, tx + r * rng.uniform(-1.5, 1.5), cy + ry + r * rng.uniform(0.5, 1.5),
                                       r * rng.uniform(0.8, 1.8), r * rng.uniform(0.3, 0.7), rng.uniform(-0.6, 0.6)),
                         rng.uniform(1.0, 4.0)) * rng.uniform(0.3, 0.7)
        fg = _over(fg, rng.random(3).astype(np.float32), veil / np.maximum(veil.max(), 1e-6) * 0.8)
        alpha_parts.append(veil)
    if rng.random() < 0.35:  # a held object (phone, book, cup) sticking out of the silhouette
        side = rng.choice([-1.0, 1.0])
        ox, oy = tx + side * r * rng.uniform(1.4, 2.6), ty - tb * rng.uniform(0.1, 0.6)
        if rng.random() < 0.5:
            obj = _coverage(_ellipse_dist(xx, yy, ox, oy, r * rng.uniform(0.3, 0.6), r * rng.uniform(0.4, 0.9),
                                          rng.uniform(-0.8, 0.8), 8.0), soft)
        else:
            obj = _coverage(_ellipse_dist(xx, yy, ox, oy, r * rng.uniform(0.3, 0.6), r * rng.uniform(0.3, 0.6)), soft)
        hand = _coverage(_ellipse_dist(xx, yy, ox - side * 0.3 * r, oy + 0.3 * r, 0.3 * r, 0.22 * r), soft)
        fg = _over(fg, rng.random(3).astype(np.float32), obj)
        fg = _over(fg, np.clip(skin, 0, 1), hand * (1 - obj))
        alpha_parts += [obj, hand]

    alpha = 1.0 - np.prod([1.0 - a for a in alpha_parts], axis=0)  # union of (partly) transparent layers
    shade = 1.0 + rng.uniform(-0.25, 0.25) * ((xx - cx) / w)[..., None]  # side lighting
    return np.clip(alpha, 0, 1).astype(np.float32), np.clip(fg * shade, 0, 1).astype(np.float32)


def _clothes(rng: np.random.Generator, h: int, w: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    base = rng.random(3).astype(np.float32)
    if rng.random() < 0.4:
        period = min(h, w) * rng.uniform(0.02, 0.08)
        stripe = (0.5 + 0.5 * np.sign(np.sin((yy + rng.uniform(0, 1) * xx) / period * np.pi)))[..., None]
        return stripe * base + (1 - stripe) * rng.random(3).astype(np.float32)
    tex = smooth_noise(rng, h, w, int(rng.integers(8, 30)), 1)[..., None]
    return np.clip(base * (0.75 + 0.5 * tex), 0, 1)


def _strands(rng: np.random.Generator, h: int, w: int, cx: float, cy: float, rx: float, ry: float, r: float,
             long_hair: bool) -> np.ndarray:
    """Thin curved semi-transparent strands leaving the hair outline: the hard part of portrait matting."""
    layer = np.zeros((h, w), np.float32)
    n = int(rng.integers(10, 60))
    lo, hi = (-np.pi, 0.0) if not long_hair else (-np.pi * 1.25, np.pi * 0.25)
    for _ in range(n):
        t = rng.uniform(lo, hi)
        start = np.array([cx + rx * np.cos(t) * 0.97, cy + ry * np.sin(t) * 0.97])
        normal = np.array([np.cos(t) * ry, np.sin(t) * rx])
        normal /= np.linalg.norm(normal) + 1e-6
        length = r * rng.uniform(0.12, 0.7)
        bend = np.array([-normal[1], normal[0]]) * length * rng.uniform(-0.6, 0.6)
        ctrl = start + normal * length * 0.5 + bend
        end = start + normal * length + bend * rng.uniform(0.5, 1.5) + np.array([0.0, length * 0.3])
        steps = max(int(length * 2.5), 4)
        q = np.linspace(0.0, 1.0, steps)[:, None]
        pts = (1 - q) ** 2 * start + 2 * (1 - q) * q * ctrl + q ** 2 * end  # quadratic Bezier
        xi, yi = np.rint(pts[:, 0] - 0.5).astype(int), np.rint(pts[:, 1] - 0.5).astype(int)
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        fade = np.linspace(1.0, rng.uniform(0.1, 0.6), steps).astype(np.float32) * rng.uniform(0.4, 1.0)
        np.maximum.at(layer, (yi[ok], xi[ok]), fade[ok])
    return np.clip(gaussian_blur(layer, 0.6) * 1.6, 0.0, 1.0)
