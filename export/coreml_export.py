"""PyTorch checkpoint -> Core ML ML Program (.mlpackage) for iOS 16 / macOS 13 and newer.

Precisions: ``fp16`` (FP16 compute, the Core ML default and what the Neural Engine runs), ``fp32``,
``int8-weights`` (int8 linear symmetric per-output-channel weights, dequantised on load) and
``palettized-6bit`` / ``palettized-4bit`` (k-means look-up tables per weight tensor; needs
scikit-learn).  Compressed variants compute in FP16 unless ``compute_precision="fp32"``, and leave
weight tensors below :data:`COMPRESS_THRESHOLD` elements uncompressed (see there why).

The input is either a normalised tensor or an RGB *image* with the [-1, 1] normalisation baked in as
Core ML image scale/bias, so an app can pass a camera pixel buffer; the metadata records which, and the
backends map the predictor's input accordingly.  Sizes: one fixed size, enumerated sizes or a bounded
range.  The package is written to a temporary directory and renamed into place, with the modnet-edge
metadata in its user-defined metadata (key ``modnet_edge``) and the manifest beside it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import METADATA_KEY, ArtifactMetadata, atomic_output, tool_versions
from modnet_edge.core.errors import BackendUnavailableError, ConfigError
from modnet_edge.model.checkpoint import Checkpoint

from modnet_edge.export.coreml_convert import DEPLOYMENT_TARGETS, convert, source_program, validate_sizes

PRECISIONS = ("fp16", "fp32", "int8-weights", "palettized-6bit", "palettized-4bit")
INPUT_TYPES = ("tensor", "image")
# Weight tensors with fewer elements than this stay FP16/FP32 (``compress_threshold`` overrides).  MODNet's
# small high-resolution and fusion convolutions carry the matte's detail and suffer most from coarse
# weights, yet the 62 tensors below 65536 elements hold only 14% of the weights.  Measured on the 10
# portraits (256x256, synthetic-trained checkpoint), threshold 2048 (coremltools' default) -> 65536:
# int8 MSE 7.3e-5 -> 3.4e-6 (+0.8 MB), 6-bit 1.2e-3 -> 5.0e-5 (+1.1 MB), 4-bit 1.2e-2 -> 6.6e-4 (+1.3 MB).
COMPRESS_THRESHOLD = 65536
COMPRESSED = ("int8-weights", "palettized-6bit", "palettized-4bit")

# The most recent (checkpoint weights, size) -> torch.export program: exporting several precisions of
# one checkpoint (the pipeline does) converts the same program; tracing it again costs ~10 s each.
_SOURCE_CACHE: dict[tuple[Any, ...], tuple[Any, str]] = {}


def export_coreml(checkpoint: Checkpoint, output: str | Path, precision: str = "fp16", *,
                  size: Sequence[int] | None = None, shapes: str = "fixed",
                  sizes: Sequence[Sequence[int]] | None = None, size_range: Sequence[int] | None = None,
                  input_type: str = "tensor", compute_precision: str | None = None,
                  deployment_target: str = "iOS16", author: str | None = None, license: str | None = None,
                  description: str | None = None, static_shape: Sequence[int] | None = None,
                  compress_threshold: int | None = None, fp32_ops: Sequence[str] = (), **unknown: Any) -> Path:
    """Export ``checkpoint`` to the .mlpackage ``output``; returns the path (manifest written beside it).

    ``size``: (H, W), the fixed size or the default shape of a flexible model (default: the checkpoint's
    fixed size, else 512x512).  ``shapes``: "fixed", "enumerated" (``sizes``, default 512x512, 512x672,
    512x896 and transposes) or "range" (``size_range`` (lower, upper) per side, default 64..1024).
    ``input_type``: "tensor" (float32, normalised) or "image" (RGB pixels, normalisation baked in).
    ``static_shape``: the (H, W) of a fixed-size model, as for the other formats (``--static-shape``).
    ``compress_threshold``: weight tensors with fewer elements stay uncompressed (default
    :data:`COMPRESS_THRESHOLD`).  ``fp32_ops`` (FP16 compute, fixed shape): FP32 islands by module
    selector (``module:lr_branch.conv_lr16x``) and ``io`` (the ops reading the input), see
    :class:`.coreml_convert.Fp32Islands`.
    """
    if static_shape is not None:
        if size is not None or shapes != "fixed":
            raise ConfigError("static_shape fixes the size; do not combine it with size= or flexible shapes")
        size = static_shape
    if unknown:
        raise ConfigError(f"unknown Core ML export option(s): {sorted(unknown)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"Core ML export precision must be one of {PRECISIONS}, not {precision!r}")
    if deployment_target not in DEPLOYMENT_TARGETS:
        raise ConfigError(f"deployment_target must be one of {DEPLOYMENT_TARGETS} (iOS 16 / macOS 13 or newer; "
                          f"iOS 18 stores compressed weights in other ops), not {deployment_target!r}")
    if input_type not in INPUT_TYPES:
        raise ConfigError(f"input_type must be one of {INPUT_TYPES}, not {input_type!r}")
    compute = compute_precision or ("fp32" if precision == "fp32" else "fp16")
    if compute not in ("fp16", "fp32") or (precision in ("fp16", "fp32") and compute != precision):
        raise ConfigError(f"compute_precision {compute_precision!r} does not fit precision {precision!r} "
                          "(fp16/fp32 only; it is a choice for the weight-compressed precisions)")
    threshold = COMPRESS_THRESHOLD if compress_threshold is None else int(compress_threshold)
    if compress_threshold is not None and (precision not in COMPRESSED or threshold < 1):
        raise ConfigError(f"compress_threshold is a positive element count for the weight-compressed "
                          f"precisions {list(COMPRESSED)}, not {compress_threshold!r} with {precision!r}")
    if precision.startswith("palettized") and importlib.util.find_spec("sklearn") is None:
        raise BackendUnavailableError('palettization (k-means) needs scikit-learn; install it with: '
                                      'pip install -c constraints.txt "modnet-edge[coreml-palettize]"')
    output = Path(output)
    if output.suffix != ".mlpackage":
        raise ConfigError(f"a Core ML ML Program is a .mlpackage directory; name the output *.mlpackage, "
                          f"not {output.name!r}")
    base = checkpoint.preprocessing
    try:
        h, w = (int(v) for v in (size or base.fixed_size or (base.ref_size, base.ref_size)))
        wanted = [(int(a), int(b)) for a, b in sizes] if sizes else None
        lo_hi = (int(size_range[0]), int(size_range[1])) if size_range else None
    except (TypeError, ValueError):
        raise ConfigError(f"size, sizes and size_range take (height, width) / (lower, upper) integer pairs, "
                          f"got size={size!r}, sizes={sizes!r}, size_range={size_range!r}") from None
    size_hw = (h, w)
    enumerated, bounds = validate_sizes(shapes, size_hw, wanted, lo_hi, base.multiple)
    spec = base.with_fixed_size(size_hw if shapes == "fixed" else None)
    if input_type == "image" and len(set(spec.std)) != 1:
        raise ConfigError(f"an image input bakes the normalisation into one Core ML scale, which needs equal "
                          f"std on all channels; this checkpoint uses std {spec.std}")
    image_scale = 1.0 / (255.0 * spec.std[0])
    image_bias = [-m / s for m, s in zip(spec.mean, spec.std)]

    from modnet_edge.runtimes.coreml_program import import_coremltools

    ct = import_coremltools()
    islands_items = [fp32_ops] if isinstance(fp32_ops, str) else list(fp32_ops)
    if islands_items and (compute != "fp16" or shapes != "fixed"):
        raise ConfigError("fp32_ops applies to FP16 compute at a fixed shape (its ops are named after the "
                          "torch.export graph, which flexible shapes do not use)")
    program, route = _source(checkpoint, size_hw, shapes != "fixed")
    islands = None
    if islands_items:
        from modnet_edge.export.coreml_convert import Fp32Islands, node_modules

        bad = [i for i in islands_items if i != "io" and not i.startswith("module:")]
        if bad:
            raise ConfigError(f"fp32_ops takes module selectors ('module:<path>') and 'io', not {bad}")
        islands = Fp32Islands(islands_items, node_modules(program))
    with _tool_progress_bars_off():
        model = convert(program, ct=ct, input_type=input_type, shapes=shapes, size=size_hw,
                        enumerated=enumerated, size_range=bounds, compute_precision=compute,
                        deployment_target=deployment_target, image_scale=image_scale, image_bias=image_bias,
                        islands=islands)
        if islands is not None and not islands.kept_ops:
            raise ConfigError(f"fp32_ops {islands_items} matched no operation of the program")
        model, weights = _compress(ct, model, precision, threshold)
    meta = ArtifactMetadata(
        format="coreml", precision=precision, preprocessing=spec, model=checkpoint.model_config.to_dict(),
        input_shape=[1, 3, *size_hw] if shapes == "fixed" else [1, 3, "height", "width"],
        source=checkpoint.source_info(), tools=tool_versions("torch", "coremltools", "scikit-learn"),
        extra={"input_type": input_type, "compute_precision": compute, "weights": weights,
               **({"fp32_ops": {"patterns": islands_items, "ops": len(islands.kept_ops)}} if islands else {}),
               "deployment_target": deployment_target, "conversion": route, "shapes": shapes,
               "enumerated_sizes": [list(s) for s in enumerated] or None,
               "size_range": list(bounds) if shapes == "range" else None, "io_dtype": "float32",
               **({"image_scale": image_scale, "image_bias": image_bias, "color_layout": "RGB"}
                  if input_type == "image" else {})})
    _describe(model, meta, author, license, description)
    with atomic_output(output, suffix=".mlpackage", manifest=lambda: meta) as tmp:
        model.save(str(tmp))
    return output


@contextlib.contextmanager
def _tool_progress_bars_off() -> Iterator[None]:
    """coremltools draws a tqdm bar per MIL pass pipeline (five per export) inside the caller's own bars.
    A bar writes to the ``sys.stderr`` of its creation, so sending ``sys.stderr`` elsewhere meanwhile
    hides the tool's bars while the caller's, made before, keep drawing; the text comes back on failure."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise


def _source(checkpoint: Checkpoint, size: tuple[int, int], flexible: bool) -> tuple[Any, str]:
    if flexible:  # traces are cheap (~1 s); not cached
        return source_program(checkpoint, size, flexible=True)
    key = (checkpoint.source_info()["weights_sha256"], tuple(sorted(checkpoint.model_config.to_dict().items())), size)
    if key not in _SOURCE_CACHE:
        _SOURCE_CACHE.clear()
        _SOURCE_CACHE[key] = source_program(checkpoint, size, flexible=False)
    return _SOURCE_CACHE[key]


def _compress(ct: Any, model: Any, precision: str, threshold: int) -> tuple[Any, str]:
    """Apply the weight compression of ``precision``; returns the model and a description of it."""
    import coremltools.optimize.coreml as cto

    if precision == "int8-weights":
        op_config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                                weight_threshold=threshold)
        # An all-zero output channel (a dead filter, or BatchNorm gamma 0 folded in) gets scale 0 and
        # coremltools divides 0 by 0 for it; the stored scale 0 still dequantises the channel to exactly
        # 0, so the NumPy warnings are noise, silenced here only.
        with np.errstate(divide="ignore", invalid="ignore"):
            quantized = cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=op_config))
        return quantized, f"int8 linear symmetric, per output channel (tensors >= {threshold} elements)"
    if precision.startswith("palettized-"):
        nbits = int(precision.split("-")[1].rstrip("bit"))
        op_config = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_tensor",
                                           weight_threshold=threshold)
        return (cto.palettize_weights(model, cto.OptimizationConfig(global_config=op_config)),
                f"{nbits}-bit k-means palettization, one look-up table per tensor (tensors >= {threshold} elements)")
    return model, "float16" if precision == "fp16" else "float32"


def _describe(model: Any, meta: ArtifactMetadata, author: str | None, license: str | None,
              description: str | None) -> None:
    """User-defined metadata (the JSON every artifact carries) plus the standard model fields."""
    src = meta.source
    model.author = author or "modnet-edge export of " + (src.get("checkpoint") or src.get("kind", "a checkpoint"))
    model.license = license or ("Apache-2.0 (MODNet code); weights under the terms of their checkpoint"
                                if src.get("kind") != "random-init" else "untrained random weights")
    model.short_description = description or (
        f"MODNet portrait matting ({meta.precision}, {meta.extra['compute_precision']} compute): RGB portrait "
        f"in, alpha matte out")
    model.version = meta.toolkit_version
    model.user_defined_metadata[METADATA_KEY] = meta.to_json()
    if meta.extra["input_type"] == "image":
        model.input_description["input"] = "RGB image; normalised to [-1, 1] inside the model"
    else:
        model.input_description["input"] = "RGB image as (1, 3, H, W) float32 normalised to [-1, 1]"
    model.output_description["matte"] = "alpha matte (1, 1, H, W) in [0, 1]"
