"""PyTorch checkpoint -> ONNX INT8: static Q/DQ calibrated on the shared calibration source.

The FP32 graph of :func:`~.onnx_graph.float_graph` is quantised by the one Q/DQ quantiser
(:mod:`.qdq`): INT8 weights per output channel (symmetric), activations per tensor (asymmetric uint8
by default, the fast path on x86 CPUs; int8 for accelerators that want symmetric activations;
uint16 -- precision ``int8-a16`` -- when 8-bit activations drift too far, at the cost of running in
float between Q/DQ pairs).  ``keep_float`` leaves nodes unquantised (presets, module selectors or
regexes: :func:`.qdq.resolve_keep_float`).  This module adds what is ONNX Runtime-CPU specific: the
choice between 7- and 8-bit weights for the CPU the model is for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modnet_edge.core import PreprocessSpec
from modnet_edge.core.errors import ConfigError
from modnet_edge.core.spec import INPUT_DTYPES
from modnet_edge.exporters.onnx_graph import float_graph
from modnet_edge.exporters.qdq import QdqScheme, quantize, resolve_keep_float
from modnet_edge.exporters.skeleton import Converted
from modnet_edge.model.checkpoint import Checkpoint
from modnet_edge.model.pixel_input import MASK, OFFSET


def convert_onnx_int8(checkpoint: Checkpoint, precision: str, output: Path | None = None, *, opset: int = 17,
                      static_shape: tuple[int, int] | None = None, batch: int | None = None,
                      keep_float: Sequence[str] = (), calibration: Any = None, calibration_size: int | None = None,
                      calibration_seed: int = 0, calibration_cache: Any = None, calibration_method: str = "minmax",
                      percentile: float = 99.999, activation_type: str = "uint8", per_channel: bool = True,
                      reduce_range: bool | None = None, target_cpu: str | None = None,
                      input_type: str = "float32") -> Converted:
    """The ONNX ``int8`` / ``int8-a16`` converter (options checked by the format table).

    ``reduce_range``: 7-bit weights.  ONNX Runtime's u8s8 kernels on x86 CPUs without VNNI (AVX2)
    saturate 16-bit intermediate sums with full 8-bit weights: measured on MODNet (AVX2, 128x128,
    trained net) drift was 10x that of the same graph simulated in float (3.8e-3 vs 3.5e-4 MSE); with
    7-bit weights it is 3.9e-4.  VNNI (``vpdpbusd``) and Arm dot products accumulate in 32 bits, so
    there full 8-bit weights are safe and more precise, at the same speed (measured, Xeon AVX512-VNNI,
    512x512, starter weights: 139 vs 149 ms p50, isolated run).  Default (None): chosen from
    ``target_cpu`` -- "x86-vnni", "x86-avx2", "arm64", or None for this machine's features; the choice
    and its reason go into the metadata.  Activations stay uint8 (ONNX Runtime's U8S8 path): S8S8 ran
    2.6x slower on the same machine (357 vs 139 ms).
    ``input_type="uint8"``: the model reads the 8-bit image (uint8 NCHW), the normalisation folded into
    the first convolution so the input adds no rounding (:mod:`modnet_edge.model.pixel_input`; its stem
    quantised with scale 1 by :func:`.qdq.quantize`: for uint8 activations zero point 128, the pixels'
    own bytes).
    ``calibration``: a folder of images, a video, ``"synthetic"`` or a ``CalibrationSource``
    (``calibration_size`` / ``calibration_seed`` pick the samples).  ``static_shape`` (H, W): the
    calibration images are resized to it exactly as the predictor will; without it the graph stays
    dynamic and images are calibrated at the reference resize.  ``calibration_cache``: a folder,
    False to disable, or None for the user cache folder.
    """
    from modnet_edge.calibration import as_source, resolve_cache
    from modnet_edge.core.console import progress

    if precision == "int8-a16":
        activation_type = "uint16"
    keep = list(keep_float)
    target, reduce_range, range_reason = resolve_reduce_range(reduce_range, target_cpu)
    scheme = QdqScheme(activation_type, symmetric_activations=activation_type == "int8", per_channel=per_channel,
                       reduce_range=reduce_range)
    spec = input_spec(checkpoint.preprocessing.with_fixed_size(static_shape), input_type)
    pixel_input = input_type == "uint8"
    source = as_source(calibration, calibration_size, calibration_seed).bind(spec)
    with progress(total=2, desc=f"onnx {precision}/{calibration_method}", leave=False) as bar:
        bar.set_postfix_str("export float graph")
        model = float_graph(checkpoint, "fp32", opset=opset, static_shape=static_shape, batch=batch,
                            pixel_input=pixel_input)
        bar.update()
        bar.set_postfix_str(f"calibrate ({len(source)} samples) and quantise")
        input_shape = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
        done = quantize(model, source, input_shape, scheme, method=calibration_method, percentile=percentile,
                        float_nodes=resolve_keep_float(model, keep, checkpoint.model_config),
                        cache=resolve_cache(calibration_cache))
        bar.update()
    weights = f"int{7 if reduce_range else 8} symmetric " + ("per-channel" if per_channel else "per-tensor")
    extra = {"opset": opset, "io_dtype": "float32", **input_record(input_type), "quantization": {
        "scheme": "static QDQ", "reduce_range": reduce_range, "weights": weights, "target_cpu": target,
        "reduce_range_reason": range_reason, "activations": f"{activation_type} per-tensor",
        "method": calibration_method, **({"percentile": percentile} if calibration_method == "percentile" else {}),
        "keep_float": keep, "float_nodes": len(done.float_nodes)},
        "calibration": done.record}
    return Converted(done.model, spec, input_shape, extra)


def input_spec(spec: PreprocessSpec, input_type: str) -> PreprocessSpec:
    """``spec`` for a model reading ``input_type``: "float32" (the normalised image) or "uint8" pixels."""
    if input_type not in INPUT_DTYPES:
        raise ConfigError(f"input_type must be one of {list(INPUT_DTYPES)}, not {input_type!r}")
    return dataclasses.replace(spec, input_dtype=input_type)


def input_record(input_type: str, dtype: str = "uint8") -> dict[str, Any]:
    """What the metadata says about an 8-bit input (nothing for a float one)."""
    if input_type == "float32":
        return {}
    return {"io_dtype": f"{dtype} in, float32 out",
            "input": {"dtype": dtype, "what": "the 8-bit image" + (" as p - 128" if dtype == "int8" else "")
                      + ", resized and rounded; its normalisation is folded into the first convolution, exactly, "
                      "border included", "stem": f"[p - {OFFSET}, {MASK} * inside], zero padding, scale 1"}}


TARGET_CPUS = ("x86-vnni", "x86-avx2", "arm64")


def resolve_reduce_range(reduce_range: bool | None, target_cpu: str | None) -> tuple[str, bool, str]:
    """(target, reduce_range, why): 7-bit weights only where 8-bit ones would saturate (x86 without VNNI)."""
    if target_cpu is None:
        import platform

        from modnet_edge.core.cpu_features import cpu_features

        features = set(cpu_features())
        if platform.machine().lower() in ("aarch64", "arm64"):
            target_cpu = "arm64"
        else:
            target_cpu = "x86-vnni" if features & {"avx512_vnni", "avx_vnni"} else "x86-avx2"
        how = "this machine"
    elif target_cpu not in TARGET_CPUS:
        raise ConfigError(f"target_cpu must be one of {list(TARGET_CPUS)} (or omitted: this machine), "
                          f"not {target_cpu!r}")
    else:
        how = "target_cpu"
    if reduce_range is not None:
        return target_cpu, bool(reduce_range), "set explicitly"
    if target_cpu == "x86-avx2":
        return target_cpu, True, f"{target_cpu} ({how}): u8s8 without VNNI saturates 16-bit sums, 7-bit weights"
    return target_cpu, False, f"{target_cpu} ({how}): 32-bit accumulation (VNNI / dot product), full 8-bit weights"
