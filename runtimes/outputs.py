"""Writing predictions: alpha PNGs and composites, atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from modnet_edge.core import atomic_output


def alpha_to_uint8(alpha: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)


def composite(rgb: np.ndarray, alpha: np.ndarray, color: tuple[int, int, int] = (0, 177, 64)) -> np.ndarray:
    """The foreground over a flat colour: ``alpha * image + (1 - alpha) * color``."""
    a = alpha[..., None].astype(np.float32)
    out = a * rgb.astype(np.float32) + (1.0 - a) * np.asarray(color, dtype=np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    with atomic_output(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path
