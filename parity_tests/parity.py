"""Parity: how far an artifact's mattes drift from the PyTorch reference, with a verdict per precision.

Two rows per artifact, because a user needs both:

* **numerics** (the verdict): the reference is the checkpoint the artifact was exported from (found
  through the artifact's own provenance, sha256-checked), run through the *same* predictor with the
  *artifact's* preprocessing, so the only difference measured is the model itself;
* **end to end** (what the user gets): the artifact's matte with its own shape and preprocessing
  against the reference network's matte of the same photo at the network's *native* preprocessing.
  For a dynamic-shape artifact both rows are the same measurement; a static-shape artifact squashes
  every photo to its shape, and this row shows what that costs.

Drift is given as alpha MSE (over all pixels and over the boundary band, where mattes matter and
quantisation hurts most) and in the terms a person sees in an 8-bit matte: the share of pixels whose
8-bit alpha changes by more than 1 and more than 4 levels, and the largest change.  The images a
verdict rests on are named, with how many of their pixels the reference itself is unsure about
(0.05 < alpha < 0.95: where a steep sigmoid turns rounding into drift) and whether the reference
network was trained on them (built-in weights record the sha256 of every image they learned from).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import ArtifactMetadata, atomic_write_text, sha256_path
from modnet_edge.core.errors import ConfigError
from modnet_edge.core.limits import check_count
from modnet_edge.core.images import list_images, read_image, unseen_images

from modnet_edge.model.weights import find_reference, seen_images
from modnet_edge.parity_tests.drift import (BAND_RADIUS, BUDGETS, Budget, Drift, boundary_band, budget_for,
                                            parse_budget)
from modnet_edge.training.synthetic import synthetic_portraits

# drift and budgets live in .drift; parity is where users look for them
__all__ = ["ArtifactParity", "BAND_RADIUS", "BUDGETS", "Budget", "Drift", "ParityReport", "boundary_band", "budget_for",
           "exposure", "image_files", "kept_higher", "load_images", "parse_budget", "run_parity"]

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
    # end to end: the artifact's matte (own shape) against the reference's at its native preprocessing
    end_to_end: Drift | None = None
    end_to_end_per_image: dict[str, Drift] = field(default_factory=dict)
    input_shape: str = "dynamic"  # "dynamic", or the static "HxW" every photo is resized to
    seen: dict[str, str] = field(default_factory=dict)  # image -> "trained on" / "validated on" by the reference

    @property
    def passed(self) -> bool:
        return self.budget.admits(self.drift)

    @property
    def worst_image(self) -> str | None:
        """The image with the largest drift (MSE): where a verdict is closest to failing."""
        return max(self.per_image, key=lambda k: self.per_image[k].mse) if self.per_image else None

    @property
    def end_to_end_is_numerics(self) -> bool:
        """Dynamic-shape artifacts are fed what the reference is fed: both rows are one measurement."""
        return self.input_shape == "dynamic"

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "format": self.format, "precision": self.precision,
                "reference": self.reference, "runtime": self.runtime, "kept_higher": self.kept,
                "budget": asdict(self.budget), "pass": self.passed, "worst_image": self.worst_image,
                "drift": asdict(self.drift), "per_image": {k: asdict(v) for k, v in self.per_image.items()},
                "input_shape": self.input_shape,
                "end_to_end": {
                    "what": ("the matte a user gets from this artifact (its own input shape) against the reference "
                             "network's matte of the same photo at its native preprocessing"),
                    "same_as_numerics": self.end_to_end_is_numerics,
                    "drift": asdict(self.end_to_end) if self.end_to_end else None,
                    "per_image": {k: asdict(v) for k, v in self.end_to_end_per_image.items()}},
                "images_seen_by_reference": self.seen}


@dataclass
class ParityReport:
    """Truthy when every artifact is within its budget."""

    results: list[ArtifactParity]
    images: list[str]
    image_source: str  # "folder <path>" or "generated (synthetic)"
    pictures: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # kept input images (RGB uint8)
    # the reference network's matte at its native preprocessing, per kept image (the end-to-end reference)
    native_mattes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def seen(self) -> dict[str, str]:
        """Images a reference network was trained or validated on (by sha256), over every artifact."""
        out: dict[str, str] = {}
        for r in self.results:
            out.update(r.seen)
        return out

    def image_rows(self) -> list[dict[str, Any]]:
        """Per image: how unsure the reference is about it and whether it was in its training data."""
        first = self.results[0] if self.results else None
        seen = self.seen
        return [{"image": n, "unsure": first.per_image[n].unsure if first and n in first.per_image else None,
                 "seen_by_reference": seen.get(n)} for n in self.images]

    def to_dict(self) -> dict[str, Any]:
        return {"pass": bool(self), "image_source": self.image_source, "images": self.image_rows(),
                "artifacts": [r.to_dict() for r in self.results]}

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

    def table(self) -> str:
        return parity_table(self)


def parity_table(report: ParityReport) -> str:
    """The drift table a console shows: the numerics row (the verdict) of each artifact, then what the
    user gets end to end where that differs, then the images the verdicts rest on."""
    rows = report.image_rows()
    unsure = [r["unsure"] for r in rows if r["unsure"] is not None]
    seen = report.seen
    lines = [f"images: {len(report.images)} from {report.image_source}"
             + (f"; the reference is unsure (0.05 < alpha < 0.95) about {min(unsure):.1%}..{max(unsure):.1%} of "
                f"their pixels" if unsure else "")]
    trained = [f"{n} ({how})" for n, how in seen.items() if how.startswith("trained")]
    validated = [n for n, how in seen.items() if how.startswith("validated")]
    if trained:
        lines.append("  WARNING: the reference network was trained on " + ", ".join(trained)
                     + ": drift on images a network learned understates drift on new photos")
    if validated:
        lines.append("  note: the reference chose its checkpoint on " + ", ".join(validated)
                     + " (validation images: never trained on)")
    head = (f"{'artifact':<30} {'prec':<6} {'MSE':>8} {'budget':>11} {'band MSE':>8} {'>1/255':>7} {'>4/255':>7} "
            f"{'max lv':>6}  {'worst image':<18} verdict  runtime")
    lines += [head, "-" * len(head)]
    for r in report.results:
        lines.append(_row(Path(r.artifact).name[:30], r.precision, r.drift, r.budget.describe().replace("MSE ", "")[:11],
                          r.worst_image or "-") + f"  {'PASS' if r.passed else 'FAIL'}     {r.runtime}")
    for r in report.results:
        if r.end_to_end is not None and not r.end_to_end_is_numerics:
            worst = max(r.end_to_end_per_image, key=lambda k: r.end_to_end_per_image[k].mse, default="-")
            lines.append(_row(f"  {Path(r.artifact).name[:13]} end to end"[:30], r.input_shape, r.end_to_end,
                              "vs native", worst) + "  (what a user gets: own input vs native; not gated)")
    for r in report.results:
        if r.kept:
            from modnet_edge.model.parts import describe_kept

            kept = describe_kept(r.kept)
            shown = ", ".join(kept[:8])
            more = f" and {len(kept) - 8} more" if len(kept) > 8 else ""
            lines.append(f"  {Path(r.artifact).name}: kept in higher precision: {shown}{more}")
    return "\n".join(lines)


def _row(name: str, precision: str, d: Drift, budget: str, worst: str) -> str:
    return (f"{name:<30} {precision:<6} {d.mse:8.1e} {budget:>11} {d.band_mse:8.1e} {d.over_1:7.2%} "
            f"{d.over_4:7.2%} {d.max_levels:6d}  {worst[:18]:<18}")


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


def image_files(images: str | Path | Sequence[str | Path] | None, limit: int | None = None) -> list[Path] | None:
    """The files a parity run reads: a folder's images, a list of files, or (None) the unseen photos
    shipped in the package; None for ``"synthetic"`` (generated portraits, no files)."""
    if isinstance(images, str) and images == "synthetic":
        return None
    if images is None:
        images = unseen_images()
    if isinstance(images, (str, Path)) and Path(images).is_dir():
        files = list_images(images)
        if not files:
            raise ConfigError(f"no images found in {images}")
    else:
        files = [Path(p) for p in ([images] if isinstance(images, (str, Path)) else images)]
    check_count(limit, "limit (how many images)")  # 0 or -1 would silently mean "all" or "all but one"
    return files[:limit] if limit else files


def load_images(images: str | Path | Sequence[str | Path] | None, limit: int | None = None,
                synthetic_count: int = 4, seed: int = 0) -> tuple[dict[str, np.ndarray], str]:
    """Images for a parity run: a folder, a list of files, ``"synthetic"`` (generated portraits), or
    None: the photos no built-in network was trained on (the package's unseen photos)."""
    files = image_files(images, limit)
    if files is None:
        gen = synthetic_portraits(synthetic_count, seed=seed)
        return gen, f"generated synthetic portraits (seed {seed})"
    if images is None:
        source = f"the package's unseen photos ({len(files)}: no built-in network was trained on them)"
    elif isinstance(images, (str, Path)) and Path(images).is_dir():
        source = f"folder {images}"
    else:
        source = "files"
    return {f.name: read_image(f) for f in files}, source


def exposure(files: Sequence[Path] | None, provenance: dict[str, Any]) -> dict[str, str]:
    """Which of ``files`` the network behind ``provenance`` was trained or validated on, by sha256
    (known for built-in weights: each row records every image it learned from)."""
    known = seen_images(provenance.get("weights")) if files else {}
    if not known:
        return {}
    out = {}
    for f in files or []:
        hit = known.get(_photo_sha256(f))
        if hit is not None:
            out[f.name] = f"{hit.role} on" + (f" as {hit.name}" if Path(hit.name).stem != f.stem else "")
    return out


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
    """Compare each artifact with its PyTorch reference on ``images`` (default: the package's unseen
    photos); returns a :class:`ParityReport` with the numerics and end-to-end rows of every artifact.

    ``keep_mattes``: True keeps every image's input, reference alpha and artifact alpha on the report
    (for visual reports); an int N keeps only the first N images, bounding memory on big folders.
    """
    from modnet_edge.core.console import progress as progress_bar

    from modnet_edge.runtimes.loader import load

    artifacts = [artifacts] if isinstance(artifacts, (str, Path)) else list(artifacts)
    if not artifacts:  # a verdict over nothing would be a pass that checked nothing
        raise ConfigError("no artifacts to check: name at least one")
    files = image_files(images, limit)
    pictures, source = load_images(images, limit)
    names = list(pictures)
    kept = set(names if keep_mattes is True else names[:int(keep_mattes)])  # False -> 0 -> none kept
    results: list[ArtifactParity] = []
    refs = _References(pictures, progress)
    native_kept: dict[str, np.ndarray] = {}
    image_ids = {n: _image_id(im) for n, im in pictures.items()}
    for artifact, options in _parity_runs([Path(a) for a in artifacts], backend_options):
        run_key = (sha256_path(artifact), json.dumps(options, sort_keys=True, default=str))
        with load(artifact, **options) as predictor:
            predictor.refuse_non_finite = False  # NaN or infinity (an FP16 overflow) is drift, measured as such
            meta = predictor.metadata
            ckpt = find_reference(meta, artifact, reference)
            # The reference runs NCHW; an NHWC artifact is fed the same pixels, only transposed.
            spec = replace(predictor.spec, layout="NCHW")
            same = refs.mattes(ckpt, spec)
            native_spec = replace(ckpt.preprocessing, layout="NCHW", fixed_size=None)
            native = same if spec == native_spec else refs.mattes(ckpt, native_spec)
            per_image, e2e, mattes, ref_mattes = {}, {}, {}, {}
            for name, im in progress_bar(pictures.items(), desc=f"parity {artifact.name}", disable=not progress,
                                         leave=False):
                alpha = _ARTIFACT_MEMO.get((*run_key, image_ids[name]))
                if alpha is None:
                    alpha = _remember_matte(_ARTIFACT_MEMO, (*run_key, image_ids[name]), predictor.predict(im))
                per_image[name] = Drift.measure(same[name], alpha)
                e2e[name] = per_image[name] if native is same else Drift.measure(native[name], alpha)
                if name in kept:
                    mattes[name], ref_mattes[name] = alpha, same[name]
                    native_kept.setdefault(name, native[name])
            shape = "x".join(map(str, spec.fixed_size)) if spec.fixed_size else "dynamic"
            results.append(ArtifactParity(
                str(artifact), meta.format, meta.precision, budget_for(meta.precision, budgets),
                Drift.pool(list(per_image.values())), per_image, reference=str(ckpt.path or ckpt.kind), mattes=mattes,
                reference_mattes=ref_mattes, runtime=predictor.backend.runtime, kept=kept_higher(meta),
                end_to_end=Drift.pool(list(e2e.values())), end_to_end_per_image=e2e, input_shape=shape,
                seen=exposure(files, ckpt.provenance)))
    return ParityReport(results, names, source, pictures={n: pictures[n] for n in names if n in kept},
                        native_mattes=native_kept)


class _References:
    """The reference network's mattes per (weights, preprocessing), computed once per parity run."""

    def __init__(self, pictures: dict[str, np.ndarray], progress: bool) -> None:
        self.pictures, self.progress = pictures, progress
        self.cache: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}

    def mattes(self, ckpt: Any, spec: Any) -> dict[str, np.ndarray]:
        from modnet_edge.core.console import progress as progress_bar

        from modnet_edge.runtimes.predictor import MattingPredictor
        from modnet_edge.runtimes.torch_backend import TorchBackend

        key = (ckpt.source_info()["weights_sha256"], json.dumps(ckpt.model_config.to_dict(), sort_keys=True),
               json.dumps(spec.to_dict(), sort_keys=True))
        if key not in self.cache:
            # a precision search runs parity once per candidate on the same photos: the reference's mattes
            # are kept process-wide (by weights, preprocessing and the image's bytes), never recomputed
            ids = {n: _image_id(im) for n, im in self.pictures.items()}
            mattes = {n: _REFERENCE_MEMO[(*key, ids[n])] for n in self.pictures
                      if (*key, ids[n]) in _REFERENCE_MEMO}
            todo = {n: im for n, im in self.pictures.items() if n not in mattes}
            if todo:
                meta = ArtifactMetadata(format="pytorch", precision="fp32", preprocessing=spec,
                                        model=ckpt.model_config.to_dict())
                with MattingPredictor(TorchBackend.from_checkpoint(ckpt), meta) as ref:
                    shape = "x".join(map(str, spec.fixed_size)) if spec.fixed_size else "native"
                    for n, im in progress_bar(todo.items(), desc=f"reference (pytorch fp32, {shape})",
                                              disable=not self.progress, leave=False):
                        mattes[n] = _remember_matte(_REFERENCE_MEMO, (*key, ids[n]), ref.predict(im))
            self.cache[key] = {n: mattes[n] for n in self.pictures}
        return self.cache[key]


#: (weights sha256, model, preprocessing, image sha256) -> the reference matte
_REFERENCE_MEMO: dict[tuple[str, ...], np.ndarray] = {}
#: (artifact sha256, runtime options, image sha256) -> the artifact's matte.  The same bytes run by the same
#: runtime on the same pixels compute the same matte, so the pipeline's parity of a searched artifact reuses
#: what the search measured on those photos (choose and verify images: all of them), the Core ML reference
#: execution included (about 2 s an image).
_ARTIFACT_MEMO: dict[tuple[str, ...], np.ndarray] = {}
_MEMO_BYTES = 512 * 2**20  # per memo; the oldest go first beyond it


_PHOTO_SHA: dict[tuple[str, int, int, int], str] = {}


def _photo_sha256(path: Path) -> str:
    """sha256 of a photo file, remembered while the file is unchanged (a precision search labels the same
    photos about 60 times)."""
    from modnet_edge.core.files import file_identity

    key = file_identity(path)
    if key not in _PHOTO_SHA:
        _PHOTO_SHA[key] = sha256_path(path)
    return _PHOTO_SHA[key]


def _image_id(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def _remember_matte(memo: dict[tuple[str, ...], np.ndarray], key: tuple[str, ...], matte: np.ndarray) -> np.ndarray:
    matte.setflags(write=False)  # shared between runs: nobody may change it
    memo[key] = matte
    while sum(m.nbytes for m in memo.values()) > _MEMO_BYTES and len(memo) > 1:
        memo.pop(next(iter(memo)))
    return matte
