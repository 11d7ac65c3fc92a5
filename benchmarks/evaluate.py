"""Matting accuracy of any artifact or checkpoint against ground-truth mattes (MSE, MAD, SAD, Grad, Conn).

The model runs through the same predictor every deployment uses (:func:`modnet_edge.runtimes.load`),
at each image's own resolution, so the numbers describe what users get from that artifact.  The
metric definitions and scaling are those of :mod:`modnet_edge.training.metrics` (standard matting
benchmark conventions, whole image evaluated).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.limits import check_count
from modnet_edge.core import atomic_write_text
from modnet_edge.core.errors import DataError
from modnet_edge.core.images import read_image, read_matte
from modnet_edge.core.preprocess import area_resize
from modnet_edge.training.datasets import check_matte_header, find_layout, pair_by_stem
from modnet_edge.training.imaging import fit_matte
from modnet_edge.training.metrics import METRIC_NAMES, matting_metrics, mean_metrics


def evaluation_pairs(data_dir: str | Path, kind: str | None = None) -> list[tuple[Path, Path]]:
    """(image, truth) pairs of an ``image/`` + ``matte/`` (or ``alpha/``) or ``image/`` + binary ``mask/``
    folder, each truth's header checked against its image; ``kind`` ("matting" or "segmentation") requires
    that layout.  The one pairing of ``evaluate`` and ``quality``."""
    found, folders = find_layout(data_dir)
    if found == "composite":
        raise DataError("evaluation needs image/ + matte/ (or alpha/) pairs, not a fg/alpha/bg folder", data_dir)
    if kind is not None and found != kind:
        target_name = "mask" if kind == "segmentation" else "matte"
        raise DataError(f"expected a {kind} folder (image/ + {target_name}/), found a {found} folder", data_dir)
    target = folders.get("matte") or folders["mask"]
    pairs = pair_by_stem(folders["image"], target, "matte" if "matte" in folders else "mask")
    for img, matte in pairs:
        check_matte_header(img, matte)
    return pairs


def predicted_at_truth(predictor: Any, image: Path, truth: Path) -> tuple[np.ndarray, np.ndarray]:
    """(the predictor's matte, the truth) for one pair, at the truth's resolution: a scaled-down truth (same
    aspect ratio) gets a scaled prediction; any other size difference is refused, naming the file.  The
    one scoring path of ``evaluate`` and ``quality``."""
    rgb = read_image(image)
    gt = read_matte(truth)
    pred = predictor.predict(rgb)
    if gt.shape != pred.shape:
        fit_matte(gt, rgb.shape[0], rgb.shape[1], truth)  # refuses a truth of another shape
        pred = area_resize(pred, gt.shape[0], gt.shape[1])
    return pred, gt


def evaluate(artifact_or_checkpoint: str | Path, data_dir: str | Path, json_path: str | Path | None = None,
             limit: int | None = None, progress: bool = True, runtime: str | None = None,
             **backend_options: Any) -> dict[str, float]:
    """Mean MSE, MAD, SAD, Grad and Conn of the artifact's mattes over the folder's images.

    Metrics are computed at the ground truth's resolution (a scaled-down matte gets a scaled prediction).

    Returns ``{"mse", "mad", "sad", "grad", "conn"}``; ``json_path`` also receives per-image values and
    the conditions (artifact, data, image count, host)."""
    from modnet_edge.core.console import progress as progress_bar

    from modnet_edge.runtimes.loader import load

    check_count(limit, "limit (how many pairs)")
    pairs = evaluation_pairs(data_dir)[:limit] if limit is not None else evaluation_pairs(data_dir)
    per_image: dict[str, dict[str, float]] = {}
    with load(artifact_or_checkpoint, runtime=runtime, **backend_options) as predictor:
        for img_path, matte_path in progress_bar(pairs, desc=f"evaluate {Path(artifact_or_checkpoint).name}",
                                                 unit="img", disable=not progress):
            per_image[img_path.name] = matting_metrics(*predicted_at_truth(predictor, img_path, matte_path))
        meta = predictor.metadata
    summary = mean_metrics(list(per_image.values()))
    result = {k: summary[k] for k in METRIC_NAMES}
    if json_path is not None:
        report = {"artifact": str(artifact_or_checkpoint), "format": meta.format, "precision": meta.precision,
                  "data": str(data_dir), "images": len(per_image), "metrics": result, "per_image": per_image,
                  "definitions": "mse, mad: per-pixel means; sad, grad, conn: sums / 1000 (whole image); "
                                 "averaged over images; see modnet_edge.training.metrics",
                  "host": platform.node()}
        atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    return result
