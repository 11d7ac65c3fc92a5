"""TensorRT-ready ONNX: what a TensorRT builder takes, produced and verified on any machine.

Built on :func:`modnet_edge.exporters.onnx_graph.float_graph` (no second exporter); this module adds
what TensorRT needs on top of a plain ONNX file:

- **Shapes**: a static shape, or a min/opt/max profile recorded in the metadata (``extra.tensorrt.
  profile``) so the engine built later, anywhere, uses the same range.
- **FP32** (``precision="fp32"``): the float graph.  It feeds two builds: plain FP32 (TF32 off, so
  it matches PyTorch), and TensorRT 10's *weakly typed* FP16 (``BuilderFlag.FP16`` / ``trtexec
  --fp16``), where TensorRT picks per-layer precision itself.
- **FP16** (``precision="fp16"``): a *strongly typed* FP16 graph (the network traced in half
  precision) for ``STRONGLY_TYPED`` / ``--stronglyTyped`` builds, the only FP16 route TensorRT 11
  keeps.  InstanceNormalization runs in FP32 inside it by default (``fp32_normalization``): the
  variance of a feature map is a sum of squares that FP16 can overflow, and TensorRT honours the
  types written in a strongly typed graph, so the graph itself must say FP32 there.  Input and
  output stay float32 by default (cast inside); ``keep_float`` adds further FP32 islands by node
  name (:mod:`modnet_edge.exporters.onnx_mixed_precision`).
- **INT8** (``precision="int8"``): explicit quantization (Q/DQ) from the shared calibration source,
  see :mod:`modnet_edge.exporters.tensorrt_qdq`.  TensorRT >= 10 deprecates implicit calibration.

InstanceNormalization: TensorRT's ONNX parser maps it to the native ``INormalizationLayer`` since
TensorRT 8.6 (parser flag ``NATIVE_INSTANCENORM``, on by default in 10.x); before 8.6 it used the
``InstanceNormalization_TRT`` plugin, which cannot be used for version- or hardware-compatible
engines.  We target TensorRT >= 10 and keep the native layer; the ONNX node stays a standard
``InstanceNormalization`` with initializer scale/bias, which both paths require.

Every file passes :func:`check_tensorrt_ready` before it is written, and its parity against PyTorch
is measured in ONNX Runtime (CPU) like any other artifact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modnet_edge.core import tool_versions
from modnet_edge.core.errors import ArtifactError, ConfigError
from modnet_edge.model.checkpoint import Checkpoint

from modnet_edge.exporters.onnx_graph import float_graph, fp32_twin_weights
from modnet_edge.exporters.skeleton import Converted
from modnet_edge.exporters.onnx_mixed_precision import keep_matching_fp32, keep_nodes_fp32
from modnet_edge.exporters.tensorrt_profile import ShapeProfile

FORMAT_NAME = "tensorrt-onnx"
MIN_TENSORRT = "10.0"

# TensorRT build mode -> (ONNX precision it needs, engine precision, strongly typed, trtexec flags)
BUILD_MODES: dict[str, tuple[str, str, bool, tuple[str, ...]]] = {
    "fp32": ("fp32", "fp32", True, ("--stronglyTyped", "--noTF32")),
    "fp16-flag": ("fp32", "fp16", False, ("--fp16",)),  # weakly typed: TensorRT 10 only
    "fp16": ("fp16", "fp16", True, ("--stronglyTyped",)),
    "int8": ("int8", "int8", True, ("--stronglyTyped",)),
    # weakly typed, TensorRT 10 only: Q/DQ layers in INT8, TensorRT may run the float rest in FP16
    "int8-fp16-flag": ("int8", "int8", False, ("--int8", "--fp16")),
}
DEFAULT_BUILD_MODE = {"fp32": "fp32", "fp16": "fp16", "int8": "int8"}
# Op types the exported MODNet graphs contain, all supported by the TensorRT 10 ONNX parser (checked
# against its operator matrix).  Anything else means the graph changed and must be re-verified.
TENSORRT_OPS = frozenset({
    "Conv", "Relu", "Clip", "Slice", "Concat", "BatchNormalization", "InstanceNormalization", "Add", "Mul",
    "Resize", "MatMul", "Gemm", "Sigmoid", "GlobalAveragePool", "Flatten", "Unsqueeze", "Reshape", "Cast",
    "QuantizeLinear", "DequantizeLinear", "Identity", "Constant", "Sub", "Div",
    "Shape", "ConstantOfShape"})  # the inside mask of an 8-bit-input graph with a dynamic profile
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"}


def build_modes_for(precision: str) -> list[str]:
    """The TensorRT build modes a TensorRT-ready ONNX of ``precision`` feeds."""
    return [m for m, (onnx_prec, *_rest) in BUILD_MODES.items() if onnx_prec == precision]


def trtexec_command(onnx_path: str | Path, engine_path: str | Path, build_mode: str, profile: ShapeProfile,
                    timing_cache: str | Path | None = None, workspace_mib: int | None = None) -> str:
    """The ``trtexec`` line that builds the same engine as our Python builder (for users and CI logs).

    trtexec writes a raw plan without our metadata header; open it with
    ``load(path, preprocessing="modnet-reference")`` or rebuild with ``modnet-edge tensorrt-build``.
    """
    if build_mode not in BUILD_MODES:
        raise ConfigError(f"unknown TensorRT build mode {build_mode!r}; choose from {list(BUILD_MODES)}")
    args = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", *BUILD_MODES[build_mode][3],
            *profile.trtexec_args()]
    if timing_cache:
        args.append(f"--timingCacheFile={timing_cache}")
    if workspace_mib:
        args.append(f"--memPoolSize=workspace:{int(workspace_mib)}M")
    return " ".join(_quote(a) for a in args)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


# --------------------------------------------------------------------------------------------------
# Graph transforms and checks
# --------------------------------------------------------------------------------------------------
def keep_normalization_fp32(model: Any) -> int:
    """In an FP16 graph, run every InstanceNormalization in FP32 (Cast in, FP32 scale/bias, Cast out).

    Returns the number of nodes changed.  Strongly typed TensorRT builds follow these types exactly,
    so this is how an FP16 engine keeps its normalization statistics in FP32.
    """
    return keep_nodes_fp32(model, lambda n: n.op_type == "InstanceNormalization")


def check_tensorrt_ready(model: Any) -> dict[str, Any]:
    """Check an ONNX graph against what the TensorRT 10 ONNX parser accepts and how it fuses Q/DQ.

    Returns ``{"problems": [...], "ops": {...}, "convs": n, "quantized_convs": n}``; an empty problem
    list is the verdict "TensorRT-ready".  Checked: opset, op types, InstanceNormalization parameters
    as initializers, Resize modes, float I/O, and for Q/DQ graphs: int8 with zero point 0 everywhere
    (TensorRT supports symmetric quantization only), per-tensor activation scales, per-channel weight
    scales on the output-channel axis, no quantized bias (TensorRT has no int32 dequantization), and
    no Q/DQ on Conv outputs (TensorRT quantizes operator *inputs*; it fuses DQ -> Conv).
    """
    from onnx import TensorProto, numpy_helper

    problems: list[str] = []
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        problems.append(f"opset {opset} < 13 (per-channel Q/DQ and the ops used need >= 13)")
    inits = {i.name: i for i in graph.initializer}
    constants = {n.output[0] for n in graph.node if n.op_type == "Constant"}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    ops = Counter(n.op_type for n in graph.node)
    for n in graph.node:
        if n.domain not in ("", "ai.onnx"):
            problems.append(f"node {n.name!r} uses custom domain {n.domain!r} ({n.op_type}); TensorRT needs plugins")
        elif n.op_type not in TENSORRT_OPS:
            problems.append(f"op {n.op_type} ({n.name!r}) is outside the set verified for TensorRT 10")
    input_names = {vi.name for vi in graph.input}
    for vi in list(graph.input) + list(graph.output):
        if vi.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
            continue
        # TensorRT takes UINT8 network inputs (the 8-bit image) when a Cast converts them before any use
        readers = consumers.get(vi.name, [])
        if not (vi.name in input_names and vi.type.tensor_type.elem_type == TensorProto.UINT8 and readers
                and all(r.op_type == "Cast" for r in readers)):
            problems.append(f"graph I/O {vi.name!r} is not float32/float16 (or a uint8 input read by a Cast)")
    for n in graph.node:
        attrs = {a.name: a for a in n.attribute}
        if n.op_type == "InstanceNormalization":
            for tag, src in zip(("scale", "bias"), n.input[1:3]):
                if src not in inits and src not in constants:
                    problems.append(f"InstanceNormalization {n.name!r}: {tag} must be an initializer")
        elif n.op_type == "Resize":
            mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
            coord = (attrs["coordinate_transformation_mode"].s.decode()
                     if "coordinate_transformation_mode" in attrs else "half_pixel")
            if mode not in _RESIZE_MODES or coord not in _RESIZE_COORDS:
                problems.append(f"Resize {n.name!r}: mode {mode}/{coord} is not supported by TensorRT")
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems.extend(_check_qdq_node(n, inits, numpy_helper))
    convs = [n for n in graph.node if n.op_type == "Conv"]
    quantized = 0
    for conv in convs:
        x_src, w_src = producers.get(conv.input[0]), producers.get(conv.input[1])
        if w_src is None and conv.input[1] not in inits:
            problems.append(f"Conv {conv.name!r}: weights must be an initializer (or DQ of one)")
        if x_src is not None and x_src.op_type == "DequantizeLinear":
            quantized += 1
            if w_src is None or w_src.op_type != "DequantizeLinear":
                problems.append(f"Conv {conv.name!r}: quantized input but float weights (TensorRT needs both)")
        bias_src = producers.get(conv.input[2]) if len(conv.input) > 2 else None
        if bias_src is not None and bias_src.op_type == "DequantizeLinear":
            problems.append(f"Conv {conv.name!r}: quantized (int32) bias; TensorRT keeps bias in float")
        for q in (c for c in consumers.get(conv.output[0], []) if c.op_type == "QuantizeLinear"):
            # fine when the Q/DQ is the next Conv's input quantization (and, sharing it, the residual Add
            # TensorRT fuses into that Conv); not when it serves anything else
            dq_out = {d.output[0] for d in consumers.get(q.output[0], [])}
            users = [u for t in dq_out for u in consumers.get(t, [])]
            if not users or any(not (u.op_type == "Add" or (u.op_type == "Conv" and u.input[0] in dq_out))
                                for u in users):
                problems.append(f"Conv {conv.name!r}: output is quantized for a non-Conv consumer; place Q/DQ on "
                                "the inputs of quantized operators only")
    return {"problems": problems, "ops": dict(sorted(ops.items())), "convs": len(convs), "quantized_convs": quantized}


def _check_qdq_node(node: Any, inits: dict[str, Any], numpy_helper: Any) -> list[str]:
    from onnx import TensorProto

    out: list[str] = []
    zp_name = node.input[2] if len(node.input) > 2 else ""
    if zp_name:
        zp = inits.get(zp_name)
        if zp is None:
            out.append(f"{node.op_type} {node.name!r}: zero point must be an initializer")
        else:
            if zp.data_type != TensorProto.INT8:
                out.append(f"{node.op_type} {node.name!r}: zero point type {TensorProto.DataType.Name(zp.data_type)}"
                           " (TensorRT needs int8)")
            if numpy_helper.to_array(zp).any():
                out.append(f"{node.op_type} {node.name!r}: non-zero zero point (TensorRT is symmetric only)")
    scale = inits.get(node.input[1])
    if scale is None:
        out.append(f"{node.op_type} {node.name!r}: scale must be an initializer")
        return out
    values = numpy_helper.to_array(scale)
    if (values <= 0).any():
        out.append(f"{node.op_type} {node.name!r}: non-positive scale")
    x_init = inits.get(node.input[0])
    if node.op_type == "DequantizeLinear" and x_init is not None:
        if x_init.data_type != TensorProto.INT8:
            out.append(f"DequantizeLinear {node.name!r}: dequantizes {TensorProto.DataType.Name(x_init.data_type)}"
                       " data (TensorRT dequantizes int8 only)")
        if values.size > 1 and next((a.i for a in node.attribute if a.name == "axis"), 1) != 0:
            out.append(f"DequantizeLinear {node.name!r}: per-channel weight scales must be on axis 0")
    elif values.size != 1:
        out.append(f"{node.op_type} {node.name!r}: activation scale must be per-tensor")
    return out


# --------------------------------------------------------------------------------------------------
# The exporter
# --------------------------------------------------------------------------------------------------
def convert_tensorrt_onnx(checkpoint: Checkpoint, precision: str, output: Path, *,
                          static_shape: tuple[int, int] | None = None, batch: int | None = None,
                          profile: Any = None, keep_io_types: bool | None = None, fp32_normalization: bool = True,
                          keep_float: Sequence[str] | None = None, opset: int = 17, calibration: Any = None,
                          calibration_method: str = "minmax", input_type: str = "float32",
                          **int8_options: Any) -> Converted:
    """The TensorRT-ready ONNX converter of the format table (options checked there).

    ``static_shape`` (H, W) and ``batch``, or ``profile`` ("MIN:OPT:MAX" / dict): the input shapes
    (default static 1x3x512x512).  ``keep_io_types`` (FP16 only, default True): float32 input and
    output around the FP16 graph -- the image is cast inside the engine and the matte leaves it
    unrounded (measured: MSE 8.95e-07 with vs 1.03e-06 without, interim checkpoint, 256x256).
    ``keep_float``: FP16 -- FP32 islands (regexes on node names, which carry the module path, or module
    selectors), honoured by strongly typed builds; INT8 -- nodes left unquantised (see
    :func:`modnet_edge.exporters.tensorrt_qdq.quantize_for_tensorrt`, as are ``int8_options``).
    ``input_type="uint8"`` (fp32, int8): the graph reads the 8-bit image as uint8 (TensorRT takes UINT8
    network inputs into a Cast), the normalisation folded in exactly; in INT8 its stem ``[p - 128,
    127 * inside]`` is int8 at scale 1 and zero point 0 (:mod:`modnet_edge.model.pixel_input`).
    """
    from modnet_edge.exporters.onnx_int8 import input_record, input_spec

    keep_io_types = precision == "fp16" if keep_io_types is None else keep_io_types
    prof = ShapeProfile.resolve(static_shape, batch, profile)
    spec = input_spec(checkpoint.preprocessing.with_fixed_size(prof.static_size), input_type)
    model = float_graph(checkpoint, "fp16" if precision == "fp16" else "fp32", opset=opset,
                        keep_io_types=keep_io_types, pixel_input=input_type == "uint8", **prof.onnx_export_args())
    details: dict[str, Any] = {}
    tools: dict[str, str] = {}
    if precision == "fp16" and fp32_normalization:
        details["fp32_normalization_nodes"] = keep_normalization_fp32(model)
    if precision == "fp16" and keep_float:
        details["fp32_nodes"] = {"patterns": list(keep_float),
                                 "nodes": keep_matching_fp32(model, list(keep_float), checkpoint.model_config,
                                                             fp32_twin_weights(checkpoint, opset,
                                                                               **prof.onnx_export_args()))}
    if precision == "int8":
        from modnet_edge.exporters.tensorrt_qdq import quantize_for_tensorrt

        model, details["quantization"] = quantize_for_tensorrt(
            model, checkpoint, prof, calibration, calibration_method=calibration_method, keep_float=keep_float,
            **int8_options)
        tools = tool_versions("onnxruntime")
    report = check_tensorrt_ready(model)
    if report["problems"]:
        raise ArtifactError("the graph is not TensorRT-ready: " + "; ".join(report["problems"][:8]), output)
    n = prof.static_batch or "batch"
    h, w = prof.static_size or ("height", "width")
    extra = {"opset": opset, "io_dtype": "float32" if precision != "fp16" or keep_io_types else "float16",
             **input_record(input_type), "tensorrt": tensorrt_record(precision, prof, output, details, report)}
    return Converted(model, spec, [n, 3, h, w], extra, tools)


def tensorrt_record(precision: str, prof: ShapeProfile, output: Path, details: dict[str, Any],
                    report: dict[str, Any]) -> dict[str, Any]:
    """What an engine builder needs to know, recorded in the metadata: profile, build modes, ops, the
    trtexec command lines for this file."""
    modes = build_modes_for(precision)
    engine = output.with_name(output.name.removesuffix(".onnx").removesuffix(".trt") + ".engine")
    return {
        "profile": prof.to_dict(),
        "build_modes": modes,
        "min_tensorrt": MIN_TENSORRT,
        "instance_norm": "native INormalizationLayer (ONNX parser flag NATIVE_INSTANCENORM, TensorRT >= 8.6)",
        "graph": {"ops": report["ops"], "convs": report["convs"], "quantized_convs": report["quantized_convs"]},
        "trtexec": {m: trtexec_command(output.name, engine.name, m, prof) for m in modes},
        **details,
    }
