"""Matting accuracy of any artifact or checkpoint against ground-truth mattes (MSE, MAD, SAD, Grad, Conn).

The model runs through the same predictor every deployment uses (:func:`modnet_edge.runtimes.load`),
at each image's own resolution, so the numbers describe what users get from that artifact.  The
metric definitions and scaling are those of :mod:`modnet_edge.train.metrics` (standard matting
benchmark conventions, whole image evaluated).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from modnet_edge.core.limits import check_count
from modnet_edge.core import atomic_write_text
from modnet_edge.core.errors import DataError
from modnet_edge.core.images import read_image, read_matte
from modnet_edge.core.preprocess import area_resize
from modnet_edge.train.datasets import check_matte_header, find_layout, pair_by_stem
from modnet_edge.train.imaging import fit_matte
from modnet_edge.train.metrics import METRIC_NAMES, matting_metrics, mean_metrics


def evaluation_pairs(data_dir: str | Path) -> list[tuple[Path, Path]]:
    """(image, matte) pairs of an ``image/`` + ``matte/`` (or ``alpha/``, or binary ``mask/``) folder."""
    kind, folders = find_layout(data_dir)
    if kind == "composite":
        raise DataError("evaluation needs image/ + matte/ (or alpha/) pairs, not a fg/alpha/bg folder", data_dir)
    target = folders.get("matte") or folders["mask"]
    pairs = pair_by_stem(folders["image"], target, "matte")
    for img, matte in pairs:
        check_matte_header(img, matte)
    return pairs


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
            rgb = read_image(img_path)
            gt = read_matte(matte_path)
            pred = predictor.predict(rgb)
            if gt.shape != pred.shape:  # a scaled-down ground truth: compare at its resolution
                fit_matte(gt, rgb.shape[0], rgb.shape[1], matte_path)  # refuses a matte of another shape
                pred = area_resize(pred, gt.shape[0], gt.shape[1])
            per_image[img_path.name] = matting_metrics(pred, gt)
        meta = predictor.metadata
    summary = mean_metrics(list(per_image.values()))
    result = {k: summary[k] for k in METRIC_NAMES}
    if json_path is not None:
        report = {"artifact": str(artifact_or_checkpoint), "format": meta.format, "precision": meta.precision,
                  "data": str(data_dir), "images": len(per_image), "metrics": result, "per_image": per_image,
                  "definitions": "mse, mad: per-pixel means; sad, grad, conn: sums / 1000 (whole image); "
                                 "averaged over images; see modnet_edge.train.metrics",
                  "host": platform.node()}
        atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    return result
