"""Matting quality side by side: our networks and a peer model on the same real images, in one table.

Why: a drift verdict says an artifact computes what its network does; it says nothing about whether
that network mattes.  This measures it, on labelled folders a user points at:

* portraits (``image/`` + ``matte/``): MSE, MAD, SAD, Grad, Conn against the soft mattes, and the share of
  *unsure* pixels (alpha strictly between 0.05 and 0.95: a good matte is unsure only at the boundary);
  images a built-in network was trained on are reported apart from unseen ones (never mixed);
* person segmentation (``image/`` + ``mask/``): intersection over union at alpha >= 0.5;
* person-free photos (a folder of photos with nobody in them): the share of pixels marked person
  (alpha >= 0.5) -- tree trunks, pavement and sky must stay background;
* shape stability (our networks): the same photo at the network's native input and squashed or
  letterboxed to the 512x512 static shape most mobile artifacts take, MSE between the mattes -- a
  network whose matte changes with the input shape makes every static-shape artifact worse.

Every subject runs through the same predictor users get (:func:`modnet_edge.runtimes.load`).  A peer
that carries no modnet-edge metadata is fed as its authors document (``PEERS``), e.g. MediaPipe's selfie
segmentation model (Apache-2.0; ``selfie_segmentation.tflite`` inside the ``mediapipe`` 0.10.x wheels):
RGB stretched to 256x256, values in [0, 1], NHWC, one sigmoid channel out.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.limits import check_count
from modnet_edge.core import PreprocessSpec, atomic_write_text
from modnet_edge.core.errors import ConfigError
from modnet_edge.core.images import read_image
from modnet_edge.benchmarks.evaluate import evaluation_pairs, predicted_at_truth

UNSURE = (0.05, 0.95)
STATIC = (512, 512)  # the static shape of the mobile artifacts (TFLite, Core ML, TensorRT-ready defaults)


@dataclass(frozen=True)
class Peer:
    """A foreign model compared against ours: how to feed it, and where it comes from."""

    name: str
    preprocessing: PreprocessSpec
    source: str
    license: str


PEERS: dict[str, Peer] = {
    "mediapipe-selfie": Peer(
        "mediapipe-selfie",
        PreprocessSpec(ref_size=256, fixed_size=(256, 256), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layout="NHWC"),
        "MediaPipe selfie segmentation (general 256x256 model), mediapipe/modules/selfie_segmentation/"
        "selfie_segmentation.tflite in the mediapipe 0.10.x wheels", "Apache-2.0"),
}


@dataclass
class Compared:
    """One model in the comparison: a label, the file, and (peers) the preprocessing to state."""

    label: str
    path: Path
    preprocessing: PreprocessSpec | None = None
    seen: frozenset[str] = frozenset()  # stems of images it was trained on (built-in weights record them)


@dataclass
class QualityReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    conditions: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        head = (f"{'model':<28} {'images':<22} {'n':>3} {'MSE':>9} {'MAD':>9} {'SAD':>8} {'Grad':>8} {'Conn':>8} "
                f"{'unsure':>7} {'IoU':>6} {'person':>7} {'squash':>7} {'letterbox':>9}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            m = r["metrics"]
            cell = lambda k, f: f"{m[k]:{f}}" if k in m else "-"  # noqa: E731
            lines.append(f"{r['model'][:28]:<28} {r['images'][:22]:<22} {r['count']:>3} {cell('mse', '9.5f'):>9} "
                         f"{cell('mad', '9.5f'):>9} {cell('sad', '8.2f'):>8} {cell('grad', '8.2f'):>8} "
                         f"{cell('conn', '8.2f'):>8} {cell('unsure', '7.3f'):>7} {cell('iou', '6.3f'):>6} "
                         f"{cell('person', '7.2%'):>7} {cell('squash_mse', '7.4f'):>7} {cell('letterbox_mse', '9.4f'):>9}")
        lines.append("MSE, MAD: per-pixel means vs soft mattes; SAD, Grad, Conn: sums / 1000; unsure: share of pixels "
                     f"with alpha in ({UNSURE[0]}, {UNSURE[1]}); IoU at alpha >= 0.5 vs binary masks; person: share of "
                     "pixels with alpha >= 0.5 on photos with nobody in them; squash / letterbox: mean MSE between the "
                     f"matte at the native input and at {STATIC[0]}x{STATIC[1]} (squashed, or padded to a square)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "conditions": self.conditions}

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)


def make_subject(spec: str) -> Compared:
    """``PATH`` (our artifact or checkpoint, or a built-in weights name), or ``PEER=PATH`` for a peer model."""
    name, sep, rest = spec.partition("=")
    if sep:
        if name not in PEERS:
            raise ConfigError(f"unknown peer {name!r}; known peers: {sorted(PEERS)}")
        path = Path(rest)
        if not path.is_file():
            raise ConfigError(f"peer model file does not exist: {path}")
        return Compared(name, path, PEERS[name].preprocessing)
    from modnet_edge.model.weights import get_weights, is_weights_name, resolve_checkpoint

    if is_weights_name(spec) and not Path(spec).exists():
        w = get_weights(spec)
        return Compared(f"{spec} (built-in)", Path(spec), None, frozenset(w.training_images))
    ckpt_like = Path(spec)
    if not ckpt_like.exists():
        raise ConfigError(f"no such artifact, checkpoint or built-in weights: {spec}")
    seen: frozenset[str] = frozenset()
    if ckpt_like.suffix in (".pt", ".pth", ".ckpt"):
        seen = frozenset(resolve_checkpoint(ckpt_like).provenance.get("training_images") or ())
    return Compared(ckpt_like.name, ckpt_like, None, seen)


def _predictor(subject: Compared, scratch: Path) -> Any:
    from modnet_edge.runtimes.loader import load

    if subject.preprocessing is not None:
        return load(subject.path, preprocessing=subject.preprocessing)
    if not subject.path.exists():  # a built-in weights name: written as a float32 checkpoint for the run
        from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint
        from modnet_edge.model.weights import load_weights

        ckpt = load_weights(str(subject.path))
        subject.path = save_checkpoint(scratch / f"{subject.path}.pt", build_from_checkpoint(ckpt),
                                       preprocessing=ckpt.preprocessing, provenance=ckpt.provenance)
    return load(subject.path)


def matting_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    from modnet_edge.training.metrics import matting_metrics

    scores = matting_metrics(pred, gt)
    scores["unsure"] = float(np.mean((pred > UNSURE[0]) & (pred < UNSURE[1])))
    return scores


def iou(pred: np.ndarray, mask: np.ndarray) -> float:
    p, m = pred >= 0.5, mask >= 0.5
    union = np.logical_or(p, m).sum()
    return float(np.logical_and(p, m).sum() / union) if union else 1.0


def compare_quality(subjects: list[str], portraits: str | Path | None = None,
                    segmentation: str | Path | None = None, limit: int | None = None,
                    progress: bool = True, person_free: str | Path | None = None,
                    stability: str | Path | None = None) -> QualityReport:
    """Every subject on every folder given; returns a :class:`QualityReport` (``.table()`` to print).

    ``person_free``: a folder of photos with nobody in them.  ``stability``: a folder of photos for the
    shape-stability figure of our networks (default, when any other folder is given: the package's
    unseen photos)."""
    from modnet_edge.core.images import list_images, unseen_images

    if not subjects:
        raise ConfigError("name at least one model to evaluate")
    if portraits is None and segmentation is None and person_free is None:
        raise ConfigError("give a portraits folder (image/ + matte/), a segmentation folder (image/ + mask/) and/or "
                          "a folder of person-free photos")
    made = [make_subject(s) for s in subjects]
    matting = evaluation_pairs(portraits, "matting") if portraits else []
    check_count(limit, "limit (how many segmentation images)")
    seg = evaluation_pairs(segmentation, "segmentation")[:limit] if segmentation else []
    empty = list_images(person_free) if person_free else []
    steady = list_images(stability if stability is not None else unseen_images())
    report = QualityReport(conditions={"portraits": str(portraits) if portraits else None,
                                       "segmentation": str(segmentation) if segmentation else None,
                                       "segmentation_images": len(seg),
                                       "person_free": str(person_free) if person_free else None,
                                       "stability": str(stability or unseen_images()), "static_shape": list(STATIC),
                                       "peers": {
                                           s.label: {"source": PEERS[s.label].source, "license": PEERS[s.label].license}
                                           for s in made if s.label in PEERS}})
    with tempfile.TemporaryDirectory(prefix="modnet-edge-quality-") as scratch:
        for subject in made:
            _evaluate_subject(subject, Path(scratch), matting, seg, report, progress)
            if empty:
                _person_free(subject, Path(scratch), empty, report, progress)
            if subject.preprocessing is None:  # our networks: dynamic input, so a native matte exists
                _stability(subject, Path(scratch), steady, report, progress)
    return report


def _person_free(subject: Compared, scratch: Path, files: list[Path], report: QualityReport, progress: bool) -> None:
    from modnet_edge.core.console import progress as progress_bar

    with _predictor(subject, scratch) as predictor:
        shares = [float(np.mean(predictor.predict(read_image(f)) >= 0.5))
                  for f in progress_bar(files, desc=f"{subject.label}: person-free", disable=not progress, unit="img")]
    report.rows.append({"model": subject.label, "images": "person-free photos", "count": len(shares),
                        "metrics": {"person": float(np.mean(shares)), "person_max": float(np.max(shares)),
                                    "photos_over_1pct": int(sum(s > 0.01 for s in shares))}})


def letterboxed(rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo padded to a square by repeating its edge pixels, and where the photo sits in it
    (top, left, height, width): fed to a square static input, it is resized without distortion."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    padded = np.pad(rgb, ((top, side - h - top), (left, side - w - left), (0, 0)), mode="edge")
    return padded, (top, left, h, w)


def _stability(subject: Compared, scratch: Path, files: list[Path], report: QualityReport, progress: bool) -> None:
    """Mean MSE between the native matte and the 512x512 squashed / letterboxed one (edge-padded
    letterboxing measured best of the padding choices on unseen photos with starter-v1)."""
    from dataclasses import replace

    from modnet_edge.core.console import progress as progress_bar
    from modnet_edge.runtimes.predictor import MattingPredictor

    with _predictor(subject, scratch) as native:
        # the same network (one backend) fed the static shape, as a static-shape artifact would be
        static = MattingPredictor(native.backend, replace(native.metadata,
                                                          preprocessing=native.spec.with_fixed_size(STATIC)))
        rows = []
        for f in progress_bar(files, desc=f"{subject.label}: shape stability", disable=not progress, unit="img"):
            rgb = read_image(f)
            ref = native.predict(rgb)
            padded, (top, left, h, w) = letterboxed(rgb)
            boxed = static.predict(padded)[top:top + h, left:left + w]
            rows.append((float(np.mean((static.predict(rgb) - ref) ** 2)), float(np.mean((boxed - ref) ** 2))))
    report.rows.append({"model": subject.label, "images": "shape stability", "count": len(rows),
                        "metrics": {"squash_mse": float(np.mean([r[0] for r in rows])),
                                    "squash_mse_max": float(np.max([r[0] for r in rows])),
                                    "letterbox_mse": float(np.mean([r[1] for r in rows])),
                                    "letterbox_mse_max": float(np.max([r[1] for r in rows]))},
                        "per_image": {f.name: {"squash_mse": a, "letterbox_mse": b}
                                      for f, (a, b) in zip(files, rows)}})


def _evaluate_subject(subject: Compared, scratch: Path, matting: list[tuple[Path, Path]],
                      seg: list[tuple[Path, Path]], report: QualityReport, progress: bool) -> None:
    from modnet_edge.core.console import progress as progress_bar

    if not matting and not seg:
        return
    with _predictor(subject, scratch) as predictor:
        groups: dict[str, list[dict[str, float]]] = {}
        for img, matte in progress_bar(matting, desc=f"{subject.label}: portraits", disable=not progress, unit="img"):
            pred, gt = predicted_at_truth(predictor, img, matte)
            key = "seen in training" if img.stem in subject.seen else "unseen portraits"
            groups.setdefault(key, []).append(matting_scores(pred, gt))
        for key, rows in sorted(groups.items(), key=lambda kv: kv[0] != "unseen portraits"):
            report.rows.append({"model": subject.label, "images": key, "count": len(rows),
                                "metrics": {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}})
        ious = []
        for img, mask in progress_bar(seg, desc=f"{subject.label}: segmentation", disable=not progress, unit="img"):
            ious.append(iou(*predicted_at_truth(predictor, img, mask)))
        if ious:
            report.rows.append({"model": subject.label, "images": "person masks", "count": len(ious),
                                "metrics": {"iou": float(np.mean(ious)),
                                            "iou_median": float(np.median(ious))}})
