"""PyTorch checkpoint -> Core ML ML Program (.mlpackage) for iOS 16 / macOS 13 and newer.

Precisions: ``fp16`` (FP16 compute, the Core ML default and what the Neural Engine runs), ``fp32``,
``int8-weights`` (int8 linear symmetric per-output-channel weights, dequantised on load) and
``palettized-6bit`` / ``palettized-4bit`` (k-means look-up tables per weight tensor; needs
scikit-learn).  Compressed variants compute in FP16 unless ``compute_precision="fp32"``, and leave
weight tensors below :data:`COMPRESS_THRESHOLD` elements uncompressed (see there why).

The input is either a normalised tensor or an RGB *image* with the [-1, 1] normalisation baked in as
Core ML image scale/bias, so an app can pass a camera pixel buffer; the metadata records which, and the
backends map the predictor's input accordingly.  Sizes: one fixed size, enumerated sizes or a bounded
range.  The skeleton (:mod:`.skeleton`) puts the modnet-edge metadata in the package's user-defined
metadata (key ``modnet_edge``) and writes it with its manifest.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.errors import BackendUnavailableError, ConfigError
from modnet_edge.core.formats import PRECISION_TABLE
from modnet_edge.exporters.skeleton import Converted
from modnet_edge.model.checkpoint import Checkpoint

from modnet_edge.core.tools import import_coremltools, quiet_tool
from modnet_edge.exporters.coreml_convert import DEFAULT_ENUMERATED, DEFAULT_RANGE, convert, source_program, validate_sizes

# Weight tensors with fewer elements than this stay FP16/FP32 (``compress_threshold`` overrides).  MODNet's
# small high-resolution and fusion convolutions carry the matte's detail and suffer most from coarse
# weights, yet the 62 tensors below 65536 elements hold only 14% of the weights.  Measured on the 10
# portraits (256x256, synthetic-trained checkpoint), threshold 2048 (coremltools' default) -> 65536:
# int8 MSE 7.3e-5 -> 3.4e-6 (+0.8 MB), 6-bit 1.2e-3 -> 5.0e-5 (+1.1 MB), 4-bit 1.2e-2 -> 6.6e-4 (+1.3 MB).
COMPRESS_THRESHOLD = 65536

# The most recent (checkpoint weights, size) -> torch.export program: exporting several precisions of
# one checkpoint (the pipeline does) converts the same program; tracing it again costs ~10 s each.
_SOURCE_CACHE: dict[tuple[Any, ...], tuple[Any, str]] = {}
# The most recent plain (fixed-shape, no FP32 islands) conversion, by everything it was converted from:
# the weight-compressed variants compress exactly that model, so int8-weights after the FP16 search's
# plain candidate skips a second conversion (~8 s).  Compression builds a new model from its spec; the
# fields this module and the container write are set again on every export.
_CONVERTED: dict[tuple[Any, ...], Any] = {}


def convert_coreml(checkpoint: Checkpoint, precision: str, output: Path, *,
                   static_shape: Sequence[int] | None = None, shapes: str = "fixed",
                   sizes: Sequence[Sequence[int]] | None = None, size_range: Sequence[int] | None = None,
                   input_type: str = "tensor", compute_precision: str | None = None,
                   deployment_target: str = "iOS16", author: str | None = None, license: str | None = None,
                   description: str | None = None, compress_threshold: int | None = None,
                   keep_float: Sequence[str] = ()) -> Converted:
    """The Core ML converter of the format table (options checked there).

    ``static_shape``: (H, W), the fixed size or the default shape of a flexible model (default: the
    checkpoint's fixed size, else 512x512).  ``shapes``: "fixed", "enumerated" (``sizes``, default
    512x512, 512x672, 512x896 and transposes) or "range" (``size_range`` (lower, upper) per side,
    default 64..1024).  ``input_type``: "tensor" (float32, normalised) or "image" (RGB pixels,
    normalisation baked in).  ``compress_threshold``: weight tensors with fewer elements stay
    uncompressed (default :data:`COMPRESS_THRESHOLD`).  ``keep_float`` (FP16 compute, fixed shape): FP32
    islands by module selector (``module:lr_branch.conv_lr16x``) and ``io`` (the ops reading the input),
    see :class:`.coreml_convert.Fp32Islands`.
    """
    if output.suffix != ".mlpackage":
        raise ConfigError(f"a Core ML ML Program is a .mlpackage directory; name the output *.mlpackage, "
                          f"not {output.name!r}")
    compute = compute_precision or ("fp32" if precision == "fp32" else "fp16")
    threshold = COMPRESS_THRESHOLD if compress_threshold is None else int(compress_threshold)
    if threshold < 1:
        raise ConfigError(f"compress_threshold is a positive element count, not {compress_threshold!r}")
    if PRECISION_TABLE[precision].palette_bits and importlib.util.find_spec("sklearn") is None:
        raise BackendUnavailableError('palettization (k-means) needs scikit-learn; install it with: '
                                      'pip install -c constraints.txt "modnet-edge[coreml-palettize]"')
    base = checkpoint.preprocessing
    wanted = [(int(a), int(b)) for a, b in sizes] if sizes else None
    lo_hi = (int(size_range[0]), int(size_range[1])) if size_range else None
    if shapes != "fixed" and static_shape is not None:
        raise ConfigError("static_shape fixes the size; a flexible model takes sizes= (enumerated) or size_range=")
    size_hw = _default_shape(shapes, static_shape or base.fixed_size, wanted, lo_hi, base.ref_size, base.multiple)
    enumerated, bounds = validate_sizes(shapes, size_hw, wanted, lo_hi, base.multiple)
    spec = base.with_fixed_size(size_hw if shapes == "fixed" else None)
    if input_type == "image" and len(set(spec.std)) != 1:
        raise ConfigError(f"an image input bakes the normalisation into one Core ML scale, which needs equal "
                          f"std on all channels; this checkpoint uses std {spec.std}")
    image_scale = 1.0 / (255.0 * spec.std[0])
    image_bias = [-m / s for m, s in zip(spec.mean, spec.std)]
    ct = import_coremltools()
    islands_items = list(keep_float)
    if islands_items and shapes != "fixed":
        raise ConfigError("keep_float applies at a fixed shape (its ops are named after the torch.export graph, "
                          "which flexible shapes do not use)")
    program, route = _source(checkpoint, size_hw, shapes != "fixed")
    islands = None
    if islands_items:
        from modnet_edge.exporters.coreml_convert import Fp32Islands, node_modules

        from modnet_edge.model.parts import PRESETS, is_module_selector, preset_selectors

        bad = [i for i in islands_items if i != "io" and i not in PRESETS and not is_module_selector(i)]
        if bad:
            raise ConfigError(f"Core ML keep_float takes module selectors ('module:<path>'), presets {list(PRESETS)} "
                              f"and 'io', not {bad}")
        expanded = [s for i in islands_items for s in (preset_selectors(i, checkpoint.model_config)
                                                       if i in PRESETS else [i])]
        islands = Fp32Islands(expanded, node_modules(program))
    plain = (_source_key(checkpoint, size_hw), input_type, compute, deployment_target, image_scale,
             tuple(image_bias)) if shapes == "fixed" and islands is None else None
    with quiet_tool():  # coremltools draws a tqdm bar per MIL pass pipeline (five per export)
        model = _CONVERTED.get(plain) if plain is not None else None
        if model is None:
            model = convert(program, ct=ct, input_type=input_type, shapes=shapes, size=size_hw,
                            enumerated=enumerated, size_range=bounds, compute_precision=compute,
                            deployment_target=deployment_target, image_scale=image_scale, image_bias=image_bias,
                            islands=islands)
            if plain is not None:
                _CONVERTED.clear()
                _CONVERTED[plain] = model
        if islands is not None and not islands.kept_ops:
            raise ConfigError(f"keep_float {islands_items} matched no operation of the program")
        model, weights = _compress(ct, model, precision, threshold)
    extra = {"input_type": input_type, "compute_precision": compute, "weights": weights,
             **({"fp32_ops": {"patterns": islands_items, "ops": len(islands.kept_ops)}} if islands else {}),
             "deployment_target": deployment_target, "conversion": route, "shapes": shapes,
             "enumerated_sizes": [list(s) for s in enumerated] or None,
             "size_range": list(bounds) if shapes == "range" else None, "io_dtype": "float32",
             **({"image_scale": image_scale, "image_bias": image_bias, "color_layout": "RGB"}
                if input_type == "image" else {})}
    _describe(model, checkpoint.source_info(), precision, compute, input_type, author, license, description)
    return Converted(model, spec, [1, 3, *size_hw] if shapes == "fixed" else [1, 3, "height", "width"], extra)


def _default_shape(shapes: str, fixed: Sequence[int] | None, sizes: list[tuple[int, int]] | None,
                   size_range: tuple[int, int] | None, ref: int, multiple: int) -> tuple[int, int]:
    """The shape a model is traced at and Xcode shows: the fixed one, the first enumerated size, or the
    reference size clamped into the range (a multiple of ``multiple``)."""
    if shapes == "enumerated":
        return sizes[0] if sizes else DEFAULT_ENUMERATED[0]
    if shapes == "range":
        lo, hi = size_range or DEFAULT_RANGE
        side = min(max(ref, lo), hi)
        side = max(side - side % multiple, multiple)
        return side, side
    h, w = fixed or (ref, ref)
    return int(h), int(w)


def _source(checkpoint: Checkpoint, size: tuple[int, int], flexible: bool) -> tuple[Any, str]:
    if flexible:  # traces are cheap (~1 s); not cached
        return source_program(checkpoint, size, flexible=True)
    key = _source_key(checkpoint, size)
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
    nbits = PRECISION_TABLE[precision].palette_bits
    if nbits is not None:
        op_config = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_tensor",
                                           weight_threshold=threshold)
        return (cto.palettize_weights(model, cto.OptimizationConfig(global_config=op_config)),
                f"{nbits}-bit k-means palettization, one look-up table per tensor (tensors >= {threshold} elements)")
    return model, "float16" if precision == "fp16" else "float32"


def _describe(model: Any, src: dict[str, Any], precision: str, compute: str, input_type: str,
              author: str | None, license: str | None, description: str | None) -> None:
    """The standard model fields an app and Xcode show (the metadata JSON goes in with the container)."""
    from modnet_edge.core import VERSION

    model.author = author or "modnet-edge export of " + (src.get("checkpoint") or src.get("kind", "a checkpoint"))
    model.license = license or ("Apache-2.0 (MODNet code); weights under the terms of their checkpoint"
                                if src.get("kind") != "random-init" else "untrained random weights")
    model.short_description = description or (
        f"MODNet portrait matting ({precision}, {compute} compute): RGB portrait in, alpha matte out")
    model.version = VERSION
    if input_type == "image":
        model.input_description["input"] = "RGB image; normalised to [-1, 1] inside the model"
    else:
        model.input_description["input"] = "RGB image as (1, 3, H, W) float32 normalised to [-1, 1]"
    model.output_description["matte"] = "alpha matte (1, 1, H, W) in [0, 1]"


def _source_key(checkpoint: Checkpoint, size: tuple[int, int]) -> tuple[Any, ...]:
    """What a fixed-shape source program depends on: the weights, the network's configuration, the size."""
    return (checkpoint.source_info()["weights_sha256"], tuple(sorted(checkpoint.model_config.to_dict().items())),
            tuple(size))
