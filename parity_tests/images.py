"""Generated stand-in images for parity runs when no real photos are available.

Deterministic from a seed: a textured background, a head-and-shoulders silhouette with soft edges, in
a few aspect ratios (so dynamic shapes and the resize rule are exercised).  They are synthetic, and
every report that uses them says so.
"""

from __future__ import annotations

import numpy as np

SIZES = ((480, 640), (640, 480), (512, 512), (720, 1280))


def synthetic_portraits(count: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(count):
        h, w = SIZES[i % len(SIZES)]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        bg = np.stack([(xx / w) * rng.uniform(60, 200), (yy / h) * rng.uniform(60, 200),
                       np.full_like(xx, rng.uniform(40, 220))], axis=2)
        bg += rng.normal(0, 12, (h, w, 3)).astype(np.float32)
        cx, cy, r = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.3, 0.4), min(h, w) * rng.uniform(0.14, 0.2)
        head = ((xx - cx) / r) ** 2 + ((yy - cy) / (1.25 * r)) ** 2
        shoulders = ((xx - cx) / (2.6 * r)) ** 2 + ((yy - h) / (1.6 * r)) ** 2
        dist = np.minimum(head, shoulders)
        alpha = np.clip((1.15 - dist) / 0.3, 0.0, 1.0)[..., None]  # soft rim
        skin = np.asarray(rng.uniform(90, 230, 3), dtype=np.float32)
        fg = skin + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
        img = alpha * fg + (1 - alpha) * bg
        out[f"synthetic_{i:02d}_{w}x{h}.png"] = np.clip(img, 0, 255).astype(np.uint8)
    return out
