"""INT8 for TensorRT by explicit quantization: Q/DQ placed the way TensorRT fuses them.

TensorRT >= 10 deprecates implicit INT8 calibration (``IInt8Calibrator``; removed in 11): INT8 is
what the graph's QuantizeLinear/DequantizeLinear nodes say.  TensorRT's rules for those nodes, and the
ONNX Runtime quantiser settings that follow them:

==================================================  ============================================
TensorRT rule                                       setting
==================================================  ============================================
symmetric only: zero point 0, int8 (not uint8)      ``QInt8`` activations and weights,
                                                    ``ActivationSymmetric``/``WeightSymmetric``
activations per tensor, weights per output channel  ``per_channel=True`` (axis 0 of Conv weights)
quantize operator *inputs*; TensorRT fuses          ``op_types_to_quantize=["Conv"]``,
DQ -> Conv (+ bias, ReLU, residual Add) itself      ``OpTypesToExcludeOutputQuantization=["Conv"]``;
(a residual Add reads the same DQ as the next Conv  one shared Q/DQ pair per tensor
that consumes its input, as NVIDIA recommends)      (``DedicatedQDQPair=False``)
bias stays float (no int32 dequantization)          ``QuantizeBias=False``
everything not quantized runs in float              other ops untouched; ``keep_float`` nodes too
==================================================  ============================================

The calibration itself (source, cache, bounded memory) is the one Q/DQ quantiser's (:mod:`.qdq`);
this module is the TensorRT scheme and the rewiring after it.

Why ONNX Runtime's quantiser and not NVIDIA ModelOpt: ModelOpt is not installed here and is a heavy
dependency (its ONNX PTQ pulls CUDA-specific packages); ONNX Runtime is already a dependency, writes
standard ONNX Q/DQ that TensorRT's parser reads, and the placement above is enforced afterwards by
:func:`~modnet_edge.exporters.tensorrt_onnx.check_tensorrt_ready`.  In ONNX Runtime (CPU) such a graph is
evaluated as float with quantize/dequantize rounding at exactly those points, i.e. the numerics
TensorRT's INT8 kernels implement, which is what the parity check measures.

Calibration data comes only from :mod:`modnet_edge.calibration` (the shared source, bound to this
artifact's preprocessing, through its ONNX Runtime reader and its cache).  ``keep_float`` presets and
regexes are those of :func:`modnet_edge.exporters.qdq.resolve_keep_float`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from modnet_edge.model.checkpoint import Checkpoint

from modnet_edge.exporters.qdq import QdqScheme, ort_version, pixel_stem, quantize, resolve_keep_float
from modnet_edge.exporters.tensorrt_profile import ShapeProfile

QUANTIZED_OPS = ("Conv",)
# Measured (parity_tests/test_tensorrt_onnx_parity.py, 256x256, 10 real portraits, trained checkpoint):
# full INT8 drifts ~1.3e-3 MSE, >10x the INT8 budget, and the error builds up along the MobileNetV2
# backbone; with the backbone in float it is ~5.8e-5 (within 1e-4).  The backbone holds ~10 % of the
# network's multiply-accumulates (the high-resolution branch ~48 %), so by default it stays float and
# TensorRT still runs ~90 % of the work in INT8.  keep_float=() gives full INT8.
DEFAULT_KEEP_FLOAT = ("/backbone/",)
# The module table above as a Q/DQ scheme: symmetric int8, Conv inputs only, one shared pair per tensor.
TENSORRT_SCHEME = QdqScheme("int8", symmetric_activations=True, per_channel=True, reduce_range=False,
                            op_types=QUANTIZED_OPS,
                            extra={"QuantizeBias": False, "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
                                   "DedicatedQDQPair": False})


def quantize_for_tensorrt(model: Any, checkpoint: Checkpoint, profile: ShapeProfile, calibration: Any, *,
                          calibration_size: int | None = None, calibration_seed: int = 0,
                          calibration_method: str = "minmax", percentile: float = 99.999,
                          keep_float: Sequence[str] | None = None, residual_qdq: bool = False,
                          calibration_cache: Any = None) -> tuple[Any, dict[str, Any]]:
    """Quantize the float TensorRT-ready graph ``model``; returns (Q/DQ ModelProto, details).

    ``calibration``: folder, video, ``"synthetic"`` or a ``CalibrationSource``; images are preprocessed
    with the checkpoint's spec at the profile's static size (its *opt* size for a dynamic profile: the
    shape TensorRT optimises for).  ``keep_float``: default :data:`DEFAULT_KEEP_FLOAT`; ``()``
    quantizes every Conv.  ``residual_qdq``: let residual Adds share their Conv's input Q/DQ (TensorRT
    fuses the Add into that Conv; measured no more accurate).
    """
    from modnet_edge.calibration import as_source, resolve_cache
    keep = list(DEFAULT_KEEP_FLOAT if keep_float is None else keep_float)
    size = profile.static_size or (profile.opt[2], profile.opt[3])
    spec = checkpoint.preprocessing.with_fixed_size(size)
    if pixel_stem(model) is not None:  # a graph reading the 8-bit image is calibrated on 8-bit images
        spec = dataclasses.replace(spec, input_dtype="uint8")
    source = as_source(calibration, calibration_size, calibration_seed).bind(spec)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    input_shape: list[int | str] = [d.dim_value or d.dim_param for d in dims]
    if not isinstance(input_shape[0], int) or input_shape[0] <= 0:
        input_shape[0] = 1 if profile.static_batch is None else profile.static_batch
    input_shape[2:] = list(size)
    done = quantize(model, source, input_shape, TENSORRT_SCHEME, method=calibration_method, percentile=percentile,
                    float_nodes=resolve_keep_float(model, keep, checkpoint.model_config),
                    cache=resolve_cache(calibration_cache))
    rewired = _read_float_inputs(done.model, set(done.float_nodes), residual_qdq)
    details = {
        "scheme": "explicit quantization (Q/DQ) for TensorRT",
        "tool": f"onnxruntime.quantization {ort_version()} (QDQ)",
        "weights": "int8 symmetric per-channel (axis 0)", "activations": "int8 symmetric per-tensor",
        "placement": "inputs of Conv (activation and weights); a residual Add shares its Conv's input Q/DQ "
                     "(TensorRT fuses it into that Conv); bias stays float",
        "method": calibration_method, **({"percentile": percentile} if calibration_method == "percentile" else {}),
        "keep_float": keep, "float_nodes": len(done.float_nodes), "residual_qdq": residual_qdq,
        "float_inputs_restored": rewired,
        "calibration": {**done.record, "input_size": list(size)}}
    return done.model, details


def _read_float_inputs(model: Any, excluded: set[str], residual_qdq: bool) -> int:
    """Let readers that are not quantized Convs read the float tensor instead of a shared Q/DQ pair.

    ONNX Runtime feeds *every* reader of a quantized tensor through its DQ.  Nodes ``keep_float``
    excluded would then see int8-rounded data (and TensorRT would run a Conv with int8 input and float
    weights in float anyway), so they always get the float tensor back.  Without ``residual_qdq`` the
    same holds for every non-Conv reader (residual Adds, Concats, Resizes): Q/DQ then sits only on Conv
    inputs and the residual stream stays float.  Returns the number of inputs rewired.
    """
    producers = {o: n for n in model.graph.node for o in n.output}
    count = 0
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if node.name not in excluded and (residual_qdq or node.op_type in QUANTIZED_OPS):
            continue
        for i, t in enumerate(node.input):
            dq = producers.get(t)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
                count += 1
    return count
