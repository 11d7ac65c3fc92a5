"""PyTorch checkpoint -> ONNX INT8: static QDQ quantisation calibrated on the shared calibration source.

The float graph is exported exactly as :func:`~.onnx_export.export_onnx` does, then ONNX Runtime's
static quantiser inserts QuantizeLinear/DequantizeLinear pairs: INT8 weights per output channel
(symmetric), activations per tensor (asymmetric uint8 by default, the fast path on x86 CPUs; int8 for
accelerators that want symmetric activations; uint16 -- precision label ``int8-a16`` -- when 8-bit
activations drift too far, at the cost of running in float between Q/DQ pairs).  Activation ranges come from
:class:`~modnet_edge.calibration.CalibrationSource` (bound to this artifact's preprocessing), through
the calibration cache, with one of three methods: ``minmax``, ``entropy`` (KL divergence) or
``percentile``.

``keep_float`` leaves chosen nodes unquantised, by preset or by regular expression on node names
(which carry the PyTorch module path, e.g. ``/net/f_branch/conv_f/...``):

* ``image-concat``: the concatenations that join the raw image (or its downscaled copies) to feature
  maps, and the convolutions right after them.  A Concat in QDQ shares one scale across its inputs,
  so the image ([-1, 1]) would be quantised with the features' much larger range.
* ``fusion-head``: the last fusion convolutions (``f_branch.conv_f``), which write the matte.
* ``instance-norm``: the IBNorm instance normalisations (ONNX Runtime computes them in float between
  Q/DQ pairs anyway; excluding them removes that requantisation).
* ``backbone``, ``lr-branch``, ``hr-branch``, ``fusion-branch``: a whole part of the network (to find
  where the drift comes from, and what keeping that part in float costs).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import logging
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from modnet_edge.core import ArtifactMetadata, atomic_output, tool_versions
from modnet_edge.core.errors import BackendUnavailableError, ConfigError
from modnet_edge.model.checkpoint import Checkpoint

from modnet_edge.export.onnx_export import embed_metadata, export_onnx

METHODS = ("minmax", "entropy", "percentile")
# Presets of ``keep_float`` besides the structural ``image-concat``: node-name patterns (module paths).
_PRESET_PATTERNS = {"fusion-head": "/f_branch/conv_f/", "instance-norm": "/inorm/", "backbone": "/backbone/",
                    "lr-branch": "/lr_branch/", "hr-branch": "/hr_branch/", "fusion-branch": "/f_branch/"}
KEEP_FLOAT_PRESETS = ("image-concat", *_PRESET_PATTERNS)
ACTIVATION_TYPES = ("uint8", "int8", "uint16")


def export_onnx_int8(checkpoint: Checkpoint, output: str | Path, precision: str = "int8", *, calibration: Any = None,
                     calibration_size: int | None = None, calibration_seed: int = 0, method: str = "minmax",
                     keep_float: str | Sequence[str] = (), activation_type: str = "uint8", per_channel: bool = True,
                     percentile: float = 99.999, reduce_range: bool | None = None, target_cpu: str | None = None,
                     static_shape: tuple[int, int] | None = None, batch: int | None = None,
                     opset: int = 17, calibration_cache: Any = None, progress: bool = True,
                     **unknown: Any) -> Path:
    """Export ``checkpoint`` as a static-QDQ INT8 ONNX model; returns ``output`` (manifest written beside it).

    ``reduce_range``: 7-bit weights.  ONNX Runtime's u8s8 kernels on x86 CPUs without VNNI (AVX2)
    saturate 16-bit intermediate sums with full 8-bit weights: measured on MODNet (AVX2, 128x128,
    trained net) drift was 10x that of the same graph simulated in float (3.8e-3 vs 3.5e-4 MSE); with
    7-bit weights it is 3.9e-4.  VNNI (``vpdpbusd``) and Arm dot products accumulate in 32 bits, so
    there full 8-bit weights are safe and more precise, at the same speed (measured, Xeon AVX512-VNNI,
    512x512, starter weights: 139 vs 149 ms p50, isolated run).  Default (None): chosen from
    ``target_cpu`` -- "x86-vnni", "x86-avx2", "arm64", or None for this machine's features; the choice
    and its reason go into the metadata.  Activations stay uint8 (ONNX Runtime's U8S8 path): S8S8 ran
    2.6x slower on the same machine (357 vs 139 ms).
    ``calibration``: a folder of images, a video, ``"synthetic"`` or a ``CalibrationSource``
    (``calibration_size`` / ``calibration_seed`` pick the samples).  ``static_shape`` (H, W): the
    calibration images are resized to it exactly as the predictor will; without it the graph stays
    dynamic and images are calibrated at the reference resize.  ``calibration_cache``: a folder,
    False to disable, or None for the user cache folder.
    """
    from modnet_edge.calibration import CacheKey, OrtCalibrationReader, as_source, resolve_cache

    if unknown:
        raise ConfigError(f"unknown ONNX INT8 export option(s): {sorted(unknown)}")
    if precision != "int8":
        raise ConfigError(f"export_onnx_int8 makes int8 models, not {precision!r}")
    if method not in METHODS:
        raise ConfigError(f"calibration method must be one of {list(METHODS)}, not {method!r}")
    if activation_type not in ACTIVATION_TYPES:
        raise ConfigError(f"activation_type must be one of {list(ACTIVATION_TYPES)}, not {activation_type!r}")
    if not 90.0 <= float(percentile) < 100.0:
        raise ConfigError(f"percentile must be in [90, 100), got {percentile}")
    keep = [keep_float] if isinstance(keep_float, str) else list(keep_float)
    target, reduce_range, range_reason = resolve_reduce_range(reduce_range, target_cpu)
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise BackendUnavailableError("ONNX INT8 export needs onnxruntime (pip install onnxruntime)") from None
    import onnx

    from tqdm import tqdm

    spec = checkpoint.preprocessing.with_fixed_size(static_shape)
    source = as_source(calibration, calibration_size, calibration_seed).bind(spec)
    cache = resolve_cache(calibration_cache)
    output = Path(output)
    bar = tqdm(total=3, desc=f"onnx int8/{method}", disable=not progress, leave=False)
    bar.set_postfix_str("read calibration data")
    data_sha256 = source.fingerprint()  # reads and checks every sample before the slow steps
    with tempfile.TemporaryDirectory(prefix="modnet-int8-") as work, bar:
        bar.update()
        bar.set_postfix_str("export float graph")
        float_path = _float_onnx(checkpoint, Path(work) / "float.onnx", opset, static_shape, batch)
        bar.update()
        bar.set_postfix_str(f"calibrate ({len(source)} samples) and quantise")
        model = onnx.load(str(float_path))
        input_shape = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
        excluded = resolve_keep_float(model, keep, checkpoint.model_config)
        reader = OrtCalibrationReader(source, model.graph.input[0].name, input_shape)
        ort_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                      "percentile": CalibrationMethod.Percentile}[method]
        extra: dict[str, Any] = {"ActivationSymmetric": activation_type == "int8", "WeightSymmetric": True}
        if activation_type == "uint16":  # 16-bit Q/DQ needs ONNX Runtime's contrib ops below opset 21
            extra["UseQDQContribOps"] = True
        extra.update(calibration_memory_options(method, len(reader)))
        if method == "percentile":
            extra.update(CalibPercentile=float(percentile), CalibTensorRangeSymmetric=False)
        key = CacheKey.make(f"onnxruntime-{_ort_version()}", graph_sha256(model), data_sha256, method,
                            percentile=percentile if method == "percentile" else None,
                            symmetric=activation_type == "int8", chunk=extra.get("CalibStridedMinMax"))
        # (reduce_range changes the weights only, not the activation ranges: it is not part of the key)
        supports_cache = "calibration_cache_path" in inspect.signature(quantize_static).parameters
        cache_state = "disabled" if cache is None or not supports_cache else (
            "hit" if cache.has(key, ".ort.json") else "miss")
        kwargs: dict[str, Any] = dict(
            quant_format=QuantFormat.QDQ, per_channel=per_channel, reduce_range=reduce_range,
            activation_type={"uint8": QuantType.QUInt8, "int8": QuantType.QInt8,
                             "uint16": QuantType.QUInt16}[activation_type],
            weight_type=QuantType.QInt8, nodes_to_exclude=excluded, calibrate_method=ort_method, extra_options=extra)
        quantized = Path(work) / "int8.onnx"
        with quiet_quantizer():
            if cache_state == "hit":
                quantize_static(str(float_path), str(quantized), None,
                                calibration_cache_path=str(cache.path(key, ".ort.json")), **kwargs)
            elif cache_state == "miss":
                with cache.store(key, ".ort.json") as tmp_cache:
                    quantize_static(str(float_path), str(quantized), reader, calibration_cache_path=str(tmp_cache),
                                    **kwargs)
            else:
                quantize_static(str(float_path), str(quantized), reader, **kwargs)
        qmodel = onnx.load(str(quantized))
        weights = f"int{7 if reduce_range else 8} symmetric " + ("per-channel" if per_channel else "per-tensor")
        meta = ArtifactMetadata(
            format="onnx", precision="int8-a16" if activation_type == "uint16" else "int8", preprocessing=spec,
            model=checkpoint.model_config.to_dict(), input_shape=input_shape, source=checkpoint.source_info(),
            tools=tool_versions("torch", "onnx", "onnxslim", "onnxruntime"),
            extra={"opset": opset, "io_dtype": "float32", "quantization": {
                "scheme": "static QDQ", "reduce_range": reduce_range, "weights": weights,
                "target_cpu": target, "reduce_range_reason": range_reason,
                "activations": f"{activation_type} per-tensor", "method": method,
                **({"percentile": percentile} if method == "percentile" else {}),
                "keep_float": keep, "float_nodes": len(excluded)},
                "calibration": {**source.describe(), "cache": cache_state, "cache_key": key.digest}})
        embed_metadata(qmodel, meta)
        with atomic_output(output, manifest=lambda: meta) as tmp:
            onnx.save(qmodel, str(tmp))
        bar.update()
    return output


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


def _float_onnx(checkpoint: Checkpoint, path: Path, opset: int, static_shape: tuple[int, int] | None,
                batch: int | None) -> Path:
    """The float graph to quantise, exported like ``export_onnx`` does (which memoises the traced graph
    in-process, so quantising one checkpoint several ways traces once)."""
    export_onnx(checkpoint, path, "fp32", opset=opset, static_shape=static_shape, batch=batch)
    path.with_name(path.name + ".manifest.json").unlink(missing_ok=True)
    return path


def calibration_memory_options(method: str, batches: int) -> dict[str, Any]:
    """ONNX Runtime calibrators keep every intermediate tensor of every sample until they compute
    ranges (gigabytes for 100 images at 512x512), so calibrate in even chunks of <= 8 batches
    (``CalibStridedMinMax``): min/max ranges and histograms are merged chunk by chunk, same result.

    Not ``CalibMaxIntermediateOutputs``: in onnxruntime 1.31 its MinMax path *discards* each full
    group of outputs without merging it (only the last partial group is used; a set that is an exact
    multiple raises "No data is collected"), so ranges would come from a few images only.
    ``method`` is accepted for symmetry: every method needs the same treatment."""
    from modnet_edge.calibration.adapters import chunk_size

    del method
    return {"CalibStridedMinMax": chunk_size(batches)}


def resolve_keep_float(model: Any, keep: Iterable[str], model_config: Any = None) -> list[str]:
    """Node names to leave in float: presets (see the module docstring), module selectors
    (``module:lr_branch.conv_lr16x``, see :mod:`.module_scopes`) or regexes on node names."""
    from modnet_edge.export.module_scopes import is_module_selector, onnx_nodes_in, selector_module

    nodes = list(model.graph.node)
    names: list[str] = []
    for item in keep:
        if is_module_selector(item):
            found = onnx_nodes_in(model, [selector_module(item)], model_config)
        elif item == "image-concat":
            found = _image_concat_nodes(model)
        elif item in _PRESET_PATTERNS:
            found = [n.name for n in nodes if _PRESET_PATTERNS[item] in n.name]
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
    """Concats fed by the graph input (directly or through Resize) and the Convs consuming them."""
    image = {model.graph.input[0].name}
    for node in model.graph.node:  # topological order: downscaled copies of the image
        if node.op_type == "Resize" and node.input and node.input[0] in image:
            image.update(node.output)
    concats = [n for n in model.graph.node if n.op_type == "Concat" and image.intersection(n.input)]
    outputs = {o for n in concats for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and outputs.intersection(n.input)]
    return [n.name for n in concats + convs]


def graph_sha256(model: Any) -> str:
    """sha256 of the graph (nodes, weights, I/O), not of metadata: the model half of a calibration key."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


@contextlib.contextmanager
def quiet_quantizer():
    """ONNX Runtime's quantiser logs advice through the root logger and prints; keep the console clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
