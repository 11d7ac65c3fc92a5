"""``modnet_edge.qat``: quantisation-aware fine-tuning for one INT8 artifact format, with its drift
before and after measured on exported artifacts.

The fine-tuning itself is the training stage's (:mod:`modnet_edge.training.qat`: a simulated-INT8 copy
of the network distilled from the float network on unlabeled images).  This top-floor function adds
what needs the stages above training: the calibration source (its images are the unlabeled set, and
they calibrate the artifacts), the exporter's own settings for the format (which exporter is
simulated, 7- or 8-bit weights for the target CPU), and the verdicts -- the INT8 artifact of the
initial weights and of the fine-tuned weights, each exported by the format's converter with the same
calibration and options, judged by the parity check against the *initial* float network (what the
artifact replaces) on photos none of them saw (default: the package's unseen photos; never the
calibration images).  The record is ``qat_summary.json`` in the run folder and a ``drift`` entry in
its ``log.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from modnet_edge.core import FORMATS, atomic_write_text, get_format
from modnet_edge.core.errors import ConfigError



@dataclass(frozen=True)
class Simulated:
    """How QAT simulates one format's INT8 exporter, and how that format's artifact is judged: the one
    place that knows the formats QAT covers (nothing below compares format names)."""

    schemes: dict[str | None, str]  # quant_sim scheme by the export's activation_type (None: no choice)
    default_activation: str | None = None  # the exporter's activation_type when none is given
    weights_for_target_cpu: bool = False  # 7- or 8-bit weights chosen for the target CPU (ONNX Runtime's u8s8)
    keep_float_default: str | None = None  # "module:attr" of the exporter's own default keep-float set

    def scheme(self, options: dict[str, Any]) -> str:
        key = options.get("activation_type", self.default_activation) if self.default_activation else None
        return self.schemes[key]


SIMULATED = {
    "onnx": Simulated({"uint8": "onnx", "int8": "onnx-int8"}, default_activation="uint8",
                      weights_for_target_cpu=True),
    "tflite": Simulated({None: "tflite"}),
    "tensorrt-onnx": Simulated({None: "tensorrt-onnx"},
                               keep_float_default="modnet_edge.exporters.tensorrt_qdq:DEFAULT_KEEP_FLOAT"),
}
# export options that only shape the artifact, not what the fine-tuning simulates
_SHARED = ("static_shape", "keep_float", "input_type", "calibration_size", "calibration_seed", "calibration_cache",
           "calibration_method", "percentile", "activation_type", "per_channel", "reduce_range", "target_cpu",
           "layout", "threads", "opset", "batch", "residual_qdq")


def qat(init: Any = None, output: str | Path = "runs/qat", *, calibration: Any = None, format: str = "onnx",
        images: Any = None, steps: int | None = None, size: int | None = None, lr: float | None = None,
        batch_size: int | None = None, resume: bool = False, measure: bool = True, progress: bool = True,
        **options: Any) -> Path:
    """Fine-tune ``init`` (a checkpoint path, built-in weights name, or None: the starter) for ``format``'s
    INT8 (onnx, tflite or tensorrt-onnx); returns the fine-tuned float checkpoint (``output/qat.pt``).

    ``calibration``: the unlabeled images (folder, video, ``"synthetic"`` or a CalibrationSource), which
    also calibrate the measured artifacts.  ``options``: the format's INT8 export options
    (``static_shape`` -- default 512x512, the shape the images are resized to --, ``keep_float``,
    ``input_type``, ``target_cpu``/``reduce_range``, ``activation_type``, calibration settings...): the
    fine-tuning simulates exactly the quantisation they ask for, and the artifacts are exported with
    them.  ``steps``/``size``/``lr``/``batch_size``: the fine-tuning's (see
    :class:`~modnet_edge.training.qat.QatConfig`; defaults bounded for a CPU).  ``images``: the photos the
    drift is measured on (default: the package's unseen photos).  ``measure=False`` skips the
    exports and parity runs (the fine-tuning alone).  ``resume``: continue ``output/last.pt`` exactly.
    """
    from modnet_edge.calibration import as_source
    from modnet_edge.model.weights import resolve_checkpoint
    from modnet_edge.training.qat import fine_tune, qat_config

    fmt = get_format(format)
    if format not in SIMULATED:
        raise ConfigError(f"quantisation-aware training covers the INT8 of {sorted(SIMULATED)}, not {format!r}")
    unknown = sorted(set(options) - set(_SHARED))
    if unknown:
        raise ConfigError(f"qat takes the INT8 export options {sorted(_SHARED)}; not {unknown}")
    export_options = fmt.check_options("int8", {**options, "calibration": calibration})
    if calibration is None:
        raise ConfigError("quantisation-aware training needs unlabeled images: pass calibration= a folder, a video, "
                          "'synthetic' or a CalibrationSource (they calibrate the INT8 artifacts as well)")
    ckpt = resolve_checkpoint(init)
    source = as_source(calibration, export_options.get("calibration_size"), export_options.get("calibration_seed", 0))
    export_options["calibration"] = source
    shape = tuple(export_options.get("static_shape") or (512, 512))
    export_options["static_shape"] = shape
    config = qat_config(scheme=_scheme(format, export_options), weight_max=_weight_max(format, export_options),
                        keep_float=list(export_options.get("keep_float") or _default_keep_float(format)),
                        input_type=export_options.get("input_type", "float32"), shape=shape, steps=steps, size=size,
                        lr=lr, batch_size=batch_size, progress=progress)
    out = Path(output)
    parity_files = _held_out(images, source)
    record: dict[str, Any] = {"init": ckpt.source_info(), "format": format, "precision": "int8",
                              "export_options": _printable(export_options), "config": config.to_dict(),
                              "calibration": source.describe()}
    before = None
    if measure:
        before = _measure(ckpt, None, fmt, export_options, out / "before", parity_files, ckpt, progress)
    path = fine_tune(ckpt, (rgb for _, rgb in source.images()), out, config, resume=resume)
    if measure:
        tuned = resolve_checkpoint(path)
        record["drift"] = {"before": before,
                           "after": _measure(tuned, path, fmt, export_options, out / "after", parity_files, ckpt,
                                             progress)}
        from modnet_edge.training.logs import RunLog

        log = RunLog(out, tensorboard=False)
        log.record("drift", before=before["int8"], after=record["drift"]["after"]["int8"])
        log.close()
    record["checkpoint"] = str(path)
    atomic_write_text(out / "qat_summary.json", json.dumps(record, indent=2, default=str) + "\n")
    return path


def _scheme(format: str, options: dict[str, Any]) -> str:
    return SIMULATED[format].scheme(options)


def _weight_max(format: str, options: dict[str, Any]) -> int:
    """7-bit weights (64) where the exporter chooses them for the target CPU, else 8-bit (127)."""
    if not SIMULATED[format].weights_for_target_cpu:
        return 127
    from modnet_edge.exporters.onnx_int8 import resolve_reduce_range

    _, reduce_range, _ = resolve_reduce_range(options.get("reduce_range"), options.get("target_cpu"))
    return 64 if reduce_range else 127


def _default_keep_float(format: str) -> tuple[str, ...]:
    """The exporter's own default keep-float set (TensorRT-ready INT8 keeps the backbone float), in the
    network's part names."""
    where = SIMULATED[format].keep_float_default
    if where is None:
        return ()
    import importlib

    module, attr = where.split(":")
    return tuple("backbone" if k == "/backbone/" else k for k in getattr(importlib.import_module(module), attr))


def _held_out(images: Any, source: Any) -> list[Path]:
    """The photos drift is measured on, refused when any is a calibration (training) image."""
    import hashlib

    import numpy as np

    from modnet_edge.parity_tests.parity import image_files, load_images

    files = image_files(images)
    if files is None:
        raise ConfigError("the QAT drift is measured on photo files: pass images= a folder or files")
    digest = lambda im: hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest()  # noqa: E731
    seen = {digest(rgb) for _, rgb in source.images()}
    shared = [name for name, rgb in load_images(files)[0].items() if digest(rgb) in seen]
    if shared:
        raise ConfigError(f"the drift images {shared[:3]} are calibration images too: QAT learns from those; "
                          "measure on photos it never saw")
    return files


def _measure(ckpt: Any, ckpt_path: Path | None, fmt: Any, options: dict[str, Any], folder: Path,
             files: list[Path], original: Any, progress: bool) -> dict[str, Any]:
    """The format's INT8 artifact of ``ckpt`` (and its FP32 for the float drift) judged against the
    original float network on ``files``."""
    from modnet_edge import export
    from modnet_edge.model.weights import weights_file
    from modnet_edge.parity_tests.parity import run_parity

    folder.mkdir(parents=True, exist_ok=True)
    suffix = fmt.suffixes[0]
    int8 = export(ckpt_path or ckpt, fmt.name, "int8", folder / f"model.int8{suffix}", **options)
    reference = original.path or (weights_file(str(original.provenance["weights"]))
                                  if original.provenance.get("weights") else None)
    if reference is None:  # an in-memory network: the verdicts need it as a file
        from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint

        reference = folder.parent / "init.pt"
        if not reference.is_file():
            save_checkpoint(reference, build_from_checkpoint(original), preprocessing=original.preprocessing,
                            provenance=original.provenance)
    row: dict[str, Any] = {"artifact": str(int8)}
    runtime_opts, row["measured_as"] = _as_the_target_computes(fmt.name, options)
    report = run_parity([int8], images=files, reference=reference, progress=progress, **runtime_opts)
    row["int8"] = _drift(report.results[0])
    if ckpt_path is not None:  # the fine-tuned float network itself, against the original
        fp32_opts = {k: v for k, v in options.items() if k in ("static_shape",)}
        twin = next(f for f in FORMATS.values() if f.search_twin)  # the float yardstick every search uses
        fp32 = export(ckpt_path, twin.name, "fp32", folder / f"model.fp32{twin.suffixes[0]}", **fp32_opts)
        row["float_vs_original"] = _drift(run_parity([fp32], images=files, reference=reference,
                                                     progress=progress).results[0])
        row["int8_vs_own_float"] = _drift(run_parity([int8], images=files, progress=progress,
                                                     **runtime_opts).results[0])
    return row


def _as_the_target_computes(format: str, options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(parity runtime options, what they mean): an ONNX INT8 artifact with full 8-bit weights is made for a
    CPU with 32-bit integer accumulation (x86 VNNI, Arm dot product).  On an x86 CPU without VNNI, ONNX
    Runtime's fused u8s8 kernels saturate 16-bit sums with such weights (about ten times the drift on
    MODNet), which is this machine's arithmetic, not the target's: then the artifact is run with graph
    optimisations off, each Q/DQ step exact and every operator in float, which is what the target
    computes up to float rounding."""
    if not SIMULATED[format].weights_for_target_cpu:
        return {}, "as exported, in this machine's runtime"
    from modnet_edge.exporters.onnx_int8 import resolve_reduce_range

    _, seven_bit, _ = resolve_reduce_range(options.get("reduce_range"), options.get("target_cpu"))
    _, host_needs_seven_bit, host = resolve_reduce_range(None, None)
    if host_needs_seven_bit and not seven_bit:
        return {"optimization": "none"}, (f"exact Q/DQ (ONNX Runtime graph optimisations off): 8-bit weights target "
                                          f"32-bit integer accumulation, and this CPU is {host.split(' (')[0]}")
    return {}, "as exported, in this machine's runtime"


def _drift(result: Any) -> dict[str, Any]:
    d = result.drift
    return {"mse": d.mse, "band_mse": d.band_mse, "over_1": d.over_1, "over_4": d.over_4, "max_levels": d.max_levels,
            "worst_image": result.worst_image, "passed": result.passed, "images": sorted(result.per_image),
            "reference": result.reference}


def _printable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.describe() if hasattr(v, "describe") else v) for k, v in options.items()}
