"""Parity: how far an artifact's mattes drift from the PyTorch reference, with a verdict per precision.

The reference is the checkpoint the artifact was exported from (found through the artifact's own
provenance, sha256-checked), run through the *same* predictor with the *artifact's* preprocessing, so
the only difference measured is the model itself.  Metrics are over all pixels and, separately, over
the boundary band (where mattes matter and quantisation hurts most).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import ArtifactMetadata, atomic_write_text
from modnet_edge.core.errors import ConfigError
from modnet_edge.core.limits import check_count, check_number
from modnet_edge.core.images import list_images, read_image

from modnet_edge.model.weights import find_reference
from modnet_edge.train.synthetic import synthetic_portraits


@dataclass(frozen=True)
class Budget:
    """Largest acceptable drift: global alpha MSE and, when set, MSE inside the boundary band."""

    mse: float
    band_mse: float | None = None

    def __post_init__(self) -> None:  # NaN would pass every comparison: a budget that judges nothing
        check_number(self.mse, "drift budget (MSE)", 0.0)
        if self.band_mse is not None:
            check_number(self.band_mse, "boundary-band drift budget (MSE)", 0.0)


# The one table of drift budgets, by artifact precision (prefix match: "int8-weights" -> "int8").
BUDGETS: dict[str, Budget] = {
    "fp32": Budget(mse=1e-9),
    "fp16": Budget(mse=1e-6),
    "int8": Budget(mse=1e-4, band_mse=1e-3),
    # palettized weights (Core ML k-means look-up tables) are weight compression like int8-weights
    "palettized": Budget(mse=1e-4, band_mse=1e-3),
    # 4-bit tables (16 weight values per tensor) cannot meet that; this sits ~3x above healthy Core ML
    # exports of two trained checkpoints (10 portraits, 256x256: 3.7e-4 / 6.6e-4; 6-bit: 2.0e-5 / 5.0e-5),
    # so a broken decode or too coarse a table (4-bit with the small layers palettized too: 1.2e-2) fails.
    "palettized-4bit": Budget(mse=2e-3, band_mse=2e-2),
}

BAND_RADIUS = 7  # px: how far the boundary band extends around soft alpha


def budget_for(precision: str, budgets: dict[str, Budget] | None = None) -> Budget:
    table = budgets or BUDGETS
    if precision in table:
        return table[precision]
    for key in sorted(table, key=len, reverse=True):
        if precision.startswith(key):
            return table[key]
    raise ConfigError(f"no drift budget for precision {precision!r}; budgets exist for {sorted(table)}")


def boundary_band(reference: np.ndarray, radius: int = BAND_RADIUS) -> np.ndarray:
    """Pixels whose reference alpha is strictly between 0 and 1 at 8-bit precision, dilated by ``radius``."""
    soft = (reference > 0.5 / 255.0) & (reference < 1.0 - 0.5 / 255.0)
    return _dilate(soft, radius)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for axis in (0, 1):  # a square structuring element is separable: dilate rows, then columns
        src, acc = out, out.copy()
        for shift in range(1, radius + 1):
            fwd = [slice(None)] * 2
            bwd = [slice(None)] * 2
            fwd[axis], bwd[axis] = slice(shift, None), slice(None, -shift)
            acc[tuple(fwd)] |= src[tuple(bwd)]
            acc[tuple(bwd)] |= src[tuple(fwd)]
        out = acc
    return out


@dataclass
class Drift:
    """Drift of one matte (or of all mattes pooled) against the reference."""

    mse: float
    mad: float
    max_abs: float
    p99_abs: float
    band_mse: float
    band_pixels: int
    pixels: int

    @classmethod
    def measure(cls, reference: np.ndarray, candidate: np.ndarray, radius: int = BAND_RADIUS) -> Drift:
        if reference.shape != candidate.shape:
            raise ValueError(f"matte shapes differ: {reference.shape} vs {candidate.shape}")
        err = candidate.astype(np.float64) - reference.astype(np.float64)
        sq, ab = err * err, np.abs(err)
        band = boundary_band(reference, radius)
        return cls(mse=float(sq.mean()), mad=float(ab.mean()), max_abs=float(ab.max()),
                   p99_abs=float(np.percentile(ab, 99)),
                   band_mse=float(sq[band].mean()) if band.any() else 0.0,
                   band_pixels=int(band.sum()), pixels=int(err.size))

    @classmethod
    def pool(cls, items: Sequence[Drift]) -> Drift:
        """Pixel-weighted pooling (so MSE is over all pixels of all images); p99 is the worst image's."""
        n = sum(d.pixels for d in items)
        nb = sum(d.band_pixels for d in items)
        return cls(mse=sum(d.mse * d.pixels for d in items) / n, mad=sum(d.mad * d.pixels for d in items) / n,
                   max_abs=max(d.max_abs for d in items), p99_abs=max(d.p99_abs for d in items),
                   band_mse=sum(d.band_mse * d.band_pixels for d in items) / nb if nb else 0.0,
                   band_pixels=nb, pixels=n)


@dataclass
class ArtifactParity:
    artifact: str
    format: str
    precision: str
    budget: Budget
    drift: Drift
    per_image: dict[str, Drift] = field(default_factory=dict)
    reference: str = ""
    # with run_parity(keep_mattes=...): the artifact's and the reference's alpha per kept image (for reports)
    mattes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    reference_mattes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    runtime: str = ""  # which runtime produced the numbers (e.g. Core ML's 'coreml' or its NumPy 'reference')
    kept: list[str] = field(default_factory=list)  # parts kept in higher precision (from the artifact's metadata)

    @property
    def passed(self) -> bool:
        ok = self.drift.mse <= self.budget.mse
        if self.budget.band_mse is not None:
            ok = ok and self.drift.band_mse <= self.budget.band_mse
        return ok and math.isfinite(self.drift.mse)

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "format": self.format, "precision": self.precision,
                "reference": self.reference, "runtime": self.runtime, "kept_higher": self.kept,
                "budget": asdict(self.budget), "pass": self.passed,
                "drift": asdict(self.drift), "per_image": {k: asdict(v) for k, v in self.per_image.items()}}


@dataclass
class ParityReport:
    """Truthy when every artifact is within its budget."""

    results: list[ArtifactParity]
    images: list[str]
    image_source: str  # "folder <path>" or "generated (synthetic)"
    pictures: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # kept input images (RGB uint8)

    def __bool__(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"pass": bool(self), "image_source": self.image_source, "images": self.images,
                "artifacts": [r.to_dict() for r in self.results]}

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

    def table(self) -> str:
        head = f"{'artifact':<34} {'prec':<6} {'MSE':>9} {'budget':>8} {'band MSE':>9} {'MAD':>9} {'max':>8} {'p99':>8}  verdict  runtime"
        lines = [f"images: {len(self.images)} from {self.image_source}", head, "-" * len(head)]
        for r in self.results:
            d = r.drift
            budget = f"{r.budget.mse:.0e}" + (f"/{r.budget.band_mse:.0e}" if r.budget.band_mse else "")
            lines.append(f"{Path(r.artifact).name[:34]:<34} {r.precision:<6} {d.mse:9.2e} {budget:>8} "
                         f"{d.band_mse:9.2e} {d.mad:9.2e} {d.max_abs:8.1e} {d.p99_abs:8.1e}  "
                         f"{'PASS' if r.passed else 'FAIL'}  {r.runtime}")
        for r in self.results:
            if r.kept:
                from modnet_edge.export.module_scopes import describe_kept

                kept = describe_kept(r.kept)
                shown = ", ".join(kept[:8])
                more = f" and {len(kept) - 8} more" if len(kept) > 8 else ""
                lines.append(f"  {Path(r.artifact).name}: kept in higher precision: {shown}{more}")
        return "\n".join(lines)


def kept_higher(meta: ArtifactMetadata) -> list[str]:
    """What an artifact keeps above its precision (FP32 islands of an FP16 graph, float nodes of an
    INT8 one), as its exporter recorded it: presets, module selectors or node-name patterns."""
    extra = meta.extra or {}
    places = [extra, extra.get("tensorrt") or {}]
    kept: list[str] = []
    for place in places:
        kept += list((place.get("fp32_nodes") or {}).get("patterns") or [])
        kept += list((place.get("fp32_ops") or {}).get("patterns") or [])
        kept += list((place.get("quantization") or {}).get("keep_float") or [])
        if place.get("fp32_normalization_nodes"):
            kept.append(f"InstanceNormalization ({place['fp32_normalization_nodes']} nodes)")
    return list(dict.fromkeys(kept))


def load_images(images: str | Path | Sequence[str | Path] | None, limit: int | None = None,
                synthetic_count: int = 4, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Images for a parity run: a folder, a list of files, or (None) generated synthetic portraits."""
    check_count(limit, "limit (how many images)")  # 0 or -1 would silently mean "all" or "all but one"
    if images is None:
        gen = synthetic_portraits(synthetic_count, seed=seed)
        return gen, f"generated synthetic portraits (seed {seed}; no real images given)"
    if isinstance(images, (str, Path)) and Path(images).is_dir():
        files = list_images(images)
        if not files:
            raise ConfigError(f"no images found in {images}")
        source = f"folder {images}"
    else:
        files = [Path(p) for p in ([images] if isinstance(images, (str, Path)) else images)]
        source = "files"
    files = files[:limit] if limit is not None else files
    return {f.name: read_image(f) for f in files}, source


def _parity_runs(artifacts: list[Path], options: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """(artifact, load options) per measurement.  A format with a 'reference' runtime (Core ML: NumPy
    execution of the ML Program) is measured by it on every system, and by its native runtime as well
    where that runs (Core ML on macOS); elsewhere the reference alone gates it.  An explicit
    ``runtime=`` measures just that runtime."""
    from modnet_edge.core.errors import BackendUnavailableError
    from modnet_edge.runtimes.loader import detect_format, open_backend

    runs: list[tuple[Path, dict[str, Any]]] = []
    for artifact in artifacts:
        if options.get("runtime") is not None or "reference" not in dict(detect_format(artifact).backends):
            runs.append((artifact, options))
            continue
        try:
            open_backend(artifact, **options).close()
            runs.append((artifact, options))
        except BackendUnavailableError:
            pass  # the native runtime cannot run here (Core ML off macOS)
        runs.append((artifact, {"runtime": "reference"}))
    return runs


def run_parity(artifacts: Iterable[str | Path], images: Any = None, reference: str | Path | None = None,
               budgets: dict[str, Budget] | None = None, limit: int | None = None, progress: bool = True,
               keep_mattes: bool | int = False, **backend_options: Any) -> ParityReport:
    """Compare each artifact with its PyTorch reference on ``images``; returns a :class:`ParityReport`.

    ``keep_mattes``: True keeps every image's input, reference alpha and artifact alpha on the report
    (for visual reports); an int N keeps only the first N images, bounding memory on big folders.
    """
    from modnet_edge.core.console import progress as progress_bar

    from modnet_edge.runtimes.loader import load
    from modnet_edge.runtimes.predictor import MattingPredictor
    from modnet_edge.runtimes.torch_backend import TorchBackend

    artifacts = [artifacts] if isinstance(artifacts, (str, Path)) else list(artifacts)
    if not artifacts:  # a verdict over nothing would be a pass that checked nothing
        raise ConfigError("no artifacts to check: name at least one")
    pictures, source = load_images(images, limit)
    names = list(pictures)
    kept = set(names if keep_mattes is True else names[:int(keep_mattes)])  # False -> 0 -> none kept
    results: list[ArtifactParity] = []
    ref_cache: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for artifact, options in _parity_runs([Path(a) for a in artifacts], backend_options):
        with load(artifact, **options) as predictor:
            meta = predictor.metadata
            ckpt = find_reference(meta, artifact, reference)
            # The reference runs NCHW; an NHWC artifact is fed the same pixels, only transposed.
            ref_spec = replace(predictor.spec, layout="NCHW")
            key = (ckpt.source_info()["weights_sha256"], json.dumps(ref_spec.to_dict(), sort_keys=True))
            if key not in ref_cache:
                ref_backend = TorchBackend.from_checkpoint(ckpt)
                ref_meta = ArtifactMetadata(format="pytorch", precision="fp32", preprocessing=ref_spec,
                                            model=meta.model)
                with MattingPredictor(ref_backend, ref_meta) as ref:
                    ref_cache[key] = {n: ref.predict(im) for n, im in
                                      progress_bar(pictures.items(), desc="reference (pytorch fp32)",
                                                   disable=not progress, leave=False)}
            refs = ref_cache[key]
            per_image, mattes, ref_mattes = {}, {}, {}
            for name, im in progress_bar(pictures.items(), desc=f"parity {artifact.name}", disable=not progress,
                                         leave=False):
                alpha = predictor.predict(im)
                per_image[name] = Drift.measure(refs[name], alpha)
                if name in kept:
                    mattes[name], ref_mattes[name] = alpha, refs[name]
            results.append(ArtifactParity(str(artifact), meta.format, meta.precision,
                                          budget_for(meta.precision, budgets), Drift.pool(list(per_image.values())),
                                          per_image, reference=str(ckpt.path or ckpt.kind), mattes=mattes,
                                          reference_mattes=ref_mattes, runtime=predictor.backend.runtime,
                                          kept=kept_higher(meta)))
    return ParityReport(results, names, source, pictures={n: pictures[n] for n in names if n in kept})
