"""The one Q/DQ quantiser: calibrate a float ONNX graph on the shared calibration source and insert
QuantizeLinear/DequantizeLinear pairs with ONNX Runtime's static quantiser.

ONNX INT8 (:mod:`.onnx_int8`) and TensorRT-ready INT8 (:mod:`.tensorrt_qdq`) differ only in the
*scheme* (:class:`QdqScheme`: activation type, symmetry, which op types, extra placement rules); the
calibration around it is the same and lives here once:

- data from :class:`~modnet_edge.calibration.CalibrationSource` through its ONNX Runtime reader;
- ranges cached by (ONNX Runtime version, graph, data, method, scheme) in the calibration cache;
- memory bounded: ONNX Runtime's calibrators keep every intermediate tensor of every sample until
  they compute ranges (gigabytes for 100 images at 512x512), so calibration runs in even chunks of at
  most 8 batches (``CalibStridedMinMax``; ranges and histograms are merged chunk by chunk, same result).
  Not ``CalibMaxIntermediateOutputs``: in onnxruntime 1.31 its MinMax path *discards* each full group
  of outputs without merging it, so ranges would come from a few images only.

``keep_float`` (nodes left in float) is resolved here too, for both: module selectors
(``module:lr_branch.conv_lr16x``), presets, or regular expressions on node names (which carry the
PyTorch module path, e.g. ``/net/f_branch/conv_f/...``).  Presets:

* ``image-concat``: the concatenations that join the raw image (or its downscaled copies) to feature
  maps, and the convolutions right after them.  A Concat in QDQ shares one scale across its inputs,
  so the image ([-1, 1]) would be quantised with the features' much larger range.
* ``fusion-head``: the last fusion convolutions (``f_branch.conv_f``), which write the matte.
* ``instance-norm``: the IBNorm instance normalisations.
* ``backbone``, ``lr-branch``, ``hr-branch``, ``fusion-branch``: a whole part of the network.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.errors import BackendUnavailableError, ConfigError
from modnet_edge.core.tools import quiet_tool
from modnet_edge.model.parts import PRESETS, is_module_selector, preset_modules, selector_module

METHODS = ("minmax", "entropy", "percentile")
ACTIVATION_TYPES = ("uint8", "int8", "uint16")
KEEP_FLOAT_PRESETS = ("image-concat", *PRESETS)  # the network's presets (model.parts) and the image's Concats


@dataclass(frozen=True)
class QdqScheme:
    """Where and how Q/DQ go.  ``op_types``: the op types quantised (empty: every one ONNX Runtime can);
    ``extra``: further ONNX Runtime ``extra_options`` (placement rules of a target such as TensorRT)."""

    activation_type: str = "uint8"
    symmetric_activations: bool = False
    per_channel: bool = True
    reduce_range: bool = False
    op_types: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.activation_type not in ACTIVATION_TYPES:
            raise ConfigError(f"activation_type must be one of {list(ACTIVATION_TYPES)}, "
                              f"not {self.activation_type!r}")


@dataclass(frozen=True)
class Calibrated:
    """A quantised graph and what the metadata records about how it was calibrated."""

    model: Any
    float_nodes: list[str]
    record: dict[str, Any]  # the source's description, cache state and key


def quantize(model: Any, source: Any, input_shape: list[int | str], scheme: QdqScheme, *,
             method: str = "minmax", percentile: float = 99.999, float_nodes: Iterable[str] = (),
             cache: Any = None) -> Calibrated:
    """Calibrate ``model`` (a float ``onnx.ModelProto``) on ``source`` (a bound
    :class:`~modnet_edge.calibration.CalibrationSource`) fed as ``input_shape``, and quantise it by
    ``scheme``, leaving ``float_nodes`` in float.  ``cache``: a
    :class:`~modnet_edge.calibration.CalibrationCache` or None.

    An 8-bit-input graph (:func:`pixel_stem` finds its stem) gets the stem's input quantised with
    scale 1 whatever the calibration saw: its values are integers of the activation type's range, so
    they stay exact (the ops that make it, a Cast and a Concat, stay float and cost nothing)."""
    from modnet_edge.calibration import CacheKey, OrtCalibrationReader
    from modnet_edge.calibration.adapters import chunk_size

    check_method(method, percentile)
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise BackendUnavailableError('INT8 Q/DQ export needs onnxruntime: pip install -c constraints.txt '
                                      '"modnet-edge[torch]"') from None
    import onnx

    from modnet_edge.core.console import quiet_onnxruntime

    quiet_onnxruntime()  # the calibration sessions' coloured warnings would reach logs and pipes

    excluded = list(float_nodes)
    data_sha256 = source.fingerprint()  # reads and checks every sample before the slow steps
    reader = OrtCalibrationReader(source, model.graph.input[0].name, input_shape, _input_dtype(model))
    extra: dict[str, Any] = {"ActivationSymmetric": scheme.symmetric_activations, "WeightSymmetric": True,
                             "CalibStridedMinMax": chunk_size(len(reader)), **scheme.extra}
    stem = pixel_stem(model)
    if stem is not None:
        nodes, tensor = stem
        excluded += [n for n in nodes if n not in excluded]
        # [p - 128, 127 * inside] in [-128, 127]: uint8 zero point 128 (its bytes are the pixels), int8 0
        zero = {"uint8": np.array(128, np.uint8), "int8": np.array(0, np.int8)}.get(scheme.activation_type)
        if zero is None:
            raise ConfigError(f"an 8-bit-input graph takes 8-bit activations, not {scheme.activation_type}")
        extra["TensorQuantOverrides"] = {tensor: [{"scale": np.array(1.0, np.float32), "zero_point": zero}]}
    if scheme.activation_type == "uint16":  # 16-bit Q/DQ needs ONNX Runtime's contrib ops below opset 21
        extra["UseQDQContribOps"] = True
    if method == "percentile":
        extra.update(CalibPercentile=float(percentile), CalibTensorRangeSymmetric=False)
    # reduce_range and per_channel change the weights only, not the activation ranges: not in the key
    key = CacheKey.make(f"onnxruntime-{ort_version()}", graph_sha256(model), data_sha256, method,
                        percentile=percentile if method == "percentile" else None,
                        symmetric=scheme.symmetric_activations, activations=scheme.activation_type,
                        op_types=list(scheme.op_types), chunk=extra["CalibStridedMinMax"])
    supports_cache = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    check = ort_cache_check(model.graph.input[0].name, getattr(source, "spec", None))
    state = "disabled" if cache is None or not supports_cache else (
        "hit" if cache.has(key, ".ort.json", check) else "miss")
    kwargs: dict[str, Any] = dict(
        quant_format=QuantFormat.QDQ, per_channel=scheme.per_channel, reduce_range=scheme.reduce_range,
        activation_type={"uint8": QuantType.QUInt8, "int8": QuantType.QInt8,
                         "uint16": QuantType.QUInt16}[scheme.activation_type],
        weight_type=QuantType.QInt8, nodes_to_exclude=excluded, extra_options=extra,
        calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                          "percentile": CalibrationMethod.Percentile}[method])
    if scheme.op_types:
        kwargs["op_types_to_quantize"] = list(scheme.op_types)
    with tempfile.TemporaryDirectory(prefix="modnet-qdq-") as work:
        float_path, quantized = Path(work) / "float.onnx", Path(work) / "qdq.onnx"
        onnx.save(model, str(float_path))
        with quiet_tool(loggers=("",)):  # the quantiser logs advice through the root logger
            if state == "hit":
                quantize_static(str(float_path), str(quantized), None,
                                calibration_cache_path=str(cache.path(key, ".ort.json")), **kwargs)
            elif state == "miss":
                with cache.store(key, ".ort.json") as tmp_cache:
                    quantize_static(str(float_path), str(quantized), reader, calibration_cache_path=str(tmp_cache),
                                    **kwargs)
            else:
                quantize_static(str(float_path), str(quantized), reader, **kwargs)
        qmodel = onnx.load(str(quantized))
    return Calibrated(qmodel, excluded, {**source.describe(), "cache": state, "cache_key": key.digest})


def ort_cache_check(input_name: str, spec: Any = None) -> Callable[[bytes], None]:
    """The soundness check of an ONNX Runtime calibration cache entry (its ``TensorsData`` JSON): the
    schema ONNX Runtime reads back, plausible ranges (:func:`~modnet_edge.calibration.cache.check_ranges`),
    and the model input within what the preprocessing ``spec`` can produce."""
    from modnet_edge.calibration.cache import check_ranges, input_bounds

    def values(v: Any) -> Any:
        return v.get("data") if isinstance(v, dict) else v

    def check(data: bytes) -> None:
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        tensors = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(tensors, dict) or "calibration_method" not in payload:
            raise ValueError("not ONNX Runtime's calibration JSON (TensorsData)")
        ranges = {}
        for name, entry in tensors.items():
            if not isinstance(entry, dict) or "lowest" not in entry or "highest" not in entry:
                raise ValueError(f"tensor {name!r} has no lowest/highest")
            ranges[name] = (values(entry["lowest"]), values(entry["highest"]))
        check_ranges(ranges, {input_name: input_bounds(spec)} if spec is not None else None)

    return check


def check_method(method: str, percentile: float) -> None:
    if method not in METHODS:
        raise ConfigError(f"calibration method must be one of {list(METHODS)}, not {method!r}")
    if not 90.0 <= float(percentile) < 100.0:
        raise ConfigError(f"percentile must be in [90, 100), got {percentile}")


def resolve_keep_float(model: Any, keep: Iterable[str], model_config: Any = None) -> list[str]:
    """Node names to leave in float: presets (see the module docstring), module selectors
    (``module:lr_branch.conv_lr16x``, see :mod:`.module_scopes`) or regexes on node names."""
    from modnet_edge.exporters.module_scopes import onnx_nodes_in

    nodes = list(model.graph.node)
    names: list[str] = []
    for item in keep:
        if is_module_selector(item):
            found = onnx_nodes_in(model, [selector_module(item)], model_config)
        elif item == "image-concat":
            found = _image_concat_nodes(model)
        elif item in PRESETS:
            found = onnx_nodes_in(model, preset_modules(item, model_config), model_config)
        else:
            try:
                pattern = re.compile(item)
            except re.error as exc:
                raise ConfigError(f"keep_float {item!r} is neither a preset {list(KEEP_FLOAT_PRESETS)} nor a "
                                  f"valid regular expression ({exc})") from None
            found = [n.name for n in nodes if pattern.search(n.name)]
        if not found:
            raise ConfigError(f"keep_float {item!r} matches no node of the graph (presets: {list(KEEP_FLOAT_PRESETS)})")
        names.extend(n for n in found if n not in names)
    return names


def _image_concat_nodes(model: Any) -> list[str]:
    """Concats fed by the image (the graph input, directly or through Resize; in an 8-bit-input graph
    through the ops normalising it) and the Convs consuming them; not the 8-bit stem's Concat."""
    image = {model.graph.input[0].name}
    follow = ("Resize", "Cast", "Sub", "Div", "Mul", "Add")
    for node in model.graph.node:  # topological order: downscaled copies of the image
        if node.op_type in follow and node.input and node.input[0] in image:
            image.update(node.output)
    concats = [n for n in model.graph.node if n.op_type == "Concat" and image.intersection(n.input)
               and PIXEL_SCOPE not in n.name]
    outputs = {o for n in concats for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and outputs.intersection(n.input)]
    return [n.name for n in concats + convs]


# the scope of the ops that turn 8-bit pixels into the stem's input and the normalised image
PIXEL_SCOPE = "/pixels/"


def pixel_stem(model: Any) -> tuple[list[str], str] | None:
    """(the nodes that prepare an 8-bit-input graph's pixels, the tensor its first Conv reads), or None
    for a graph that reads a float image.  The nodes: the input's Cast and everything in the
    :class:`~modnet_edge.model.pixel_input.PixelInput` scope."""
    from onnx import TensorProto

    if model.graph.input[0].type.tensor_type.elem_type != TensorProto.UINT8:
        return None
    name = model.graph.input[0].name
    nodes = [n for n in model.graph.node if PIXEL_SCOPE in n.name or (n.op_type == "Cast" and name in n.input)]
    stems = [n.output[0] for n in nodes if n.op_type == "Concat"]
    if len(stems) != 1:
        raise ConfigError(f"an 8-bit-input graph has one stem Concat in {PIXEL_SCOPE}, found {len(stems)}")
    return [n.name for n in nodes], stems[0]


def _input_dtype(model: Any) -> Any:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(model.graph.input[0].type.tensor_type.elem_type))


def graph_sha256(model: Any) -> str:
    """sha256 of the graph (nodes, weights, I/O), not of metadata: the model half of a calibration key."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
