"""Float .tflite -> FP16-weight / INT8 variants with ai-edge-quantizer, calibrated on the shared source.

Why ai-edge-quantizer on the converted float model and not litert-torch's own PT2E INT8 route: the
PT2E route fails on this network, and quantising the float FlatBuffer means one slow PyTorch
conversion serves every variant.  The variants (``mode``):

=============  ===========================================================  ==========================
mode           what is stored / computed                                    precision label
=============  ===========================================================  ==========================
``fp16``       FP16 weights (conv, depthwise, FC), dequantised to FP32      ``fp16``
``dynamic``    INT8 weights; activations quantised on the fly per call      ``int8-dynamic``
``weights``    INT8 weights dequantised to FP32 (smaller file, float math)  ``int8-weights``
``static``     full integer: INT8 weights and INT8 activations, int8 I/O    ``int8``
``static16``   INT8 weights, INT16 activations (16x8), int16 I/O            ``int8-a16``
=============  ===========================================================  ==========================

Static modes calibrate activation ranges on the :class:`~modnet_edge.calibration.CalibrationSource`.
ai-edge-quantizer's default merges per-sample ranges with a moving average, which lets the first
images dominate; ``method="minmax"`` (default) keeps the true running min/max over the whole set,
``method="moving-average"`` the tool's default.  Ranges go through the calibration cache.

``keep_float`` leaves ops in float (regexes on the op's output tensor name, which carries the PyTorch
module path), with presets ``image-concat`` (the concatenations joining the raw image or its
downscaled copies to features, and the convolutions after them), ``fusion-head`` (``f_branch.conv_f``),
``instance-norm`` (the moments arithmetic of every IBNorm: in int8 the squared deviations lose the small
variances) and whole parts: ``backbone``, ``lr-branch``, ``hr-branch``, ``fusion-branch``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from modnet_edge.core.errors import BackendUnavailableError, ConfigError
from modnet_edge.core.formats import PRECISION_TABLE
from modnet_edge.model.parts import PRESETS, is_module_selector, preset_modules, selector_module
from modnet_edge.core.tools import quiet_tool

# the quantiser's modes -> the precisions they make (their names live in the precision table's rows)
MODES = {p.converter_name("tflite"): p.name for p in PRECISION_TABLE.values() if p.converter_name("tflite")}
METHODS = ("minmax", "moving-average")
KEEP_FLOAT_PRESETS = ("image-concat", *PRESETS)  # the network's presets (model.parts) and the image's Concats
SIGNATURE = "serving_default"


def _aeq() -> Any:
    try:
        import ai_edge_quantizer
    except ImportError:
        raise BackendUnavailableError("TFLite quantisation needs ai-edge-quantizer "
                                      '(pip install -c constraints.txt "modnet-edge[tflite]")') from None
    return ai_edge_quantizer


def base_recipe(mode: str) -> list[dict[str, Any]]:
    """The ai-edge-quantizer recipe of ``mode`` (before keep-float exceptions)."""
    from ai_edge_quantizer import recipe

    if mode == "fp16":
        return [{"regex": ".*", "operation": "*", "algorithm_key": "float_casting",
                 "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
                               "compute_precision": "FLOAT", "explicit_dequantize": True}}]
    recipes = {"dynamic": recipe.dynamic_wi8_afp32, "weights": recipe.weight_only_wi8_afp32,
               "static": recipe.static_wi8_ai8, "static16": recipe.static_wi8_ai16}
    return json.loads(json.dumps(recipes[mode]()))  # plain, mutable JSON (enums become strings)


def quantize_tflite(float_model: bytes, mode: str, *, source: Any = None, method: str = "minmax",
                    keep_float: str | Sequence[str] = (), cache: Any = None, threads: int = 2,
                    io_ranges: dict[str, tuple[float, float]] | None = None) -> tuple[bytes, dict[str, Any]]:
    """Quantise a float .tflite (bytes); returns (model bytes, details for the manifest).

    ``source``: a CalibrationSource bound to the model's preprocessing (static modes only).
    ``cache``: a CalibrationCache or None.  ``io_ranges``: {signature input/output or tensor name:
    (min, max)} for tensors whose range is known exactly (the normalised image or the 8-bit pixels, a
    sigmoid output, an 8-bit-input model's stem): they replace the calibrated ranges, so the int8 input
    step is the image's own and no real image can clip.
    """
    if mode not in MODES:
        raise ConfigError(f"TFLite quantisation mode must be one of {list(MODES)}, not {mode!r}")
    if method not in METHODS:
        raise ConfigError(f"TFLite calibration method must be one of {list(METHODS)}, not {method!r}")
    aeq = _aeq()
    static = PRECISION_TABLE[MODES[mode]].calibrated
    if static and source is None:
        raise ConfigError(f"TFLite {MODES[mode]} (full-integer) needs calibration data: pass calibration=")
    if not static and source is not None:
        raise ConfigError(f"mode {mode!r} quantises weights only and takes no calibration data")
    keep = [keep_float] if isinstance(keep_float, str) else list(keep_float)
    patterns = resolve_keep_float(float_model, keep)
    recipe = base_recipe(mode) + [{"regex": p, "operation": "*", "algorithm_key": "no_quantize"}
                                  for p in patterns + pixel_normalisation(float_model)]
    details: dict[str, Any] = {"tool": f"ai-edge-quantizer {_version('ai-edge-quantizer')}", "mode": mode,
                               "keep_float": keep, "float_ops_patterns": len(patterns)}
    qsvs = None
    if static:
        qsvs, details["calibration_cache"] = calibrate(float_model, source, base_recipe(mode), method, cache,
                                                       threads)
        details["method"] = method
        if io_ranges:
            qsvs = _override_ranges(float_model, qsvs, io_ranges)
            details["fixed_ranges"] = {k: list(v) for k, v in io_ranges.items()}
    quantizer = aeq.quantizer.Quantizer(bytearray(float_model), recipe)
    with quiet_tool():  # ai-edge-quantizer prints progress bars and reports
        result = quantizer.quantize(qsvs, enable_progress_report=False)
    return bytes(result.quantized_model), details


def calibrate(float_model: bytes, source: Any, recipe: list[dict[str, Any]], method: str, cache: Any,
              threads: int) -> tuple[dict[str, Any], str]:
    """Activation ranges (ai-edge-quantizer QSVs) for ``float_model`` over ``source``, via the cache."""
    from modnet_edge.calibration import CacheKey, LiteRTCalibrationData

    key = CacheKey.make(f"ai-edge-quantizer-{_version('ai-edge-quantizer')}", model_sha256(float_model),
                        source.fingerprint(), method, recipe=recipe)
    if cache is not None and cache.has(key, ".qsv.json", _check_qsvs):
        return _decode_qsvs(cache.path(key, ".qsv.json").read_text()), "hit"
    _aeq()
    from ai_edge_quantizer import calibrator, recipe_manager

    name, shape = _signature_input(float_model)
    data = LiteRTCalibrationData(source, name, shape, SIGNATURE)
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    update = _running_min_max if method == "minmax" else None
    kwargs = {"qsv_update_func": update} if update else {}
    calib = calibrator.Calibrator(bytearray(float_model), num_threads=threads, **kwargs)
    with quiet_tool():  # ai-edge-quantizer prints progress bars and reports
        calib.calibrate(data.as_mapping(), manager)
    qsvs = calib.get_model_qsvs()
    if cache is None:
        return qsvs, "disabled"
    with cache.store(key, ".qsv.json") as tmp:
        tmp.write_text(_encode_qsvs(qsvs))
    return qsvs, "miss"


def _override_ranges(float_model: bytes, qsvs: dict[str, Any], io_ranges: dict[str, tuple[float, float]]
                     ) -> dict[str, Any]:
    """``qsvs`` with the ranges of the named signature inputs/outputs replaced by known exact ones."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=float_model)
    runner = interp.get_signature_runner(SIGNATURE)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    io = {**{n: names[d["index"]] for n, d in runner.get_input_details().items()},
          **{n: names[d["index"]] for n, d in runner.get_output_details().items()}}
    out = dict(qsvs)
    tensors = set(names.values())
    for sig_name, (lo, hi) in io_ranges.items():
        if sig_name not in io and sig_name not in tensors:
            raise ConfigError(f"fixed range for unknown model input/output or tensor {sig_name!r} (has {sorted(io)})")
        tensor = io.get(sig_name, sig_name)
        old = out.get(tensor) or {"min": np.zeros(1, np.float32), "max": np.zeros(1, np.float32)}
        out[tensor] = {**old, "min": np.full_like(np.asarray(old["min"], np.float32), lo),
                       "max": np.full_like(np.asarray(old["max"], np.float32), hi)}
    return out


def _running_min_max(qsv: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Merge one sample's ranges into the running ones: the true min and max over all samples."""
    if not qsv:
        return new
    out = dict(qsv)
    out["min"] = np.minimum(qsv["min"], new["min"])
    out["max"] = np.maximum(qsv["max"], new["max"])
    if "num_samples" in qsv and "num_samples" in new:
        out["num_samples"] = np.asarray(qsv["num_samples"]) + np.asarray(new["num_samples"])
    return out


def _encode_qsvs(qsvs: dict[str, Any]) -> str:
    def enc(v: Any) -> Any:
        if isinstance(v, np.ndarray) or isinstance(v, np.generic):
            arr = np.asarray(v)
            return {"dtype": str(arr.dtype), "shape": list(arr.shape), "data": arr.ravel().tolist()}
        return v

    return json.dumps({name: {k: enc(v) for k, v in qsv.items()} for name, qsv in qsvs.items()})


def _decode_qsvs(text: str) -> dict[str, Any]:
    def dec(v: Any) -> Any:
        if isinstance(v, dict) and {"dtype", "shape", "data"} <= set(v):
            return np.asarray(v["data"], dtype=v["dtype"]).reshape(v["shape"])
        return v

    return {name: {k: dec(v) for k, v in qsv.items()} for name, qsv in json.loads(text).items()}


def _check_qsvs(data: bytes) -> None:
    """The soundness check of a cached QSV entry: decodes, and every tensor's min/max is plausible
    (:func:`~modnet_edge.calibration.cache.check_ranges`; the model's inputs and outputs get their exact
    ranges from ``io_ranges`` anyway)."""
    from modnet_edge.calibration.cache import check_ranges

    try:
        qsvs = _decode_qsvs(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ValueError(f"not a readable QSV entry ({exc})") from None
    ranges = {}
    for name, qsv in qsvs.items():
        if not isinstance(qsv, dict) or "min" not in qsv or "max" not in qsv:
            raise ValueError(f"tensor {name!r} has no min/max")
        ranges[name] = (qsv["min"], qsv["max"])
    check_ranges(ranges)


def model_sha256(float_model: bytes) -> str:
    return hashlib.sha256(float_model).hexdigest()


def _signature_input(float_model: bytes) -> tuple[str, list[int]]:
    """Name (signature key) and static shape of the model's one input."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=float_model)
    sig = interp.get_signature_runner(SIGNATURE)
    details = sig.get_input_details()
    if len(details) != 1:
        raise ConfigError(f"expected one model input, found {sorted(details)}")
    name, info = next(iter(details.items()))
    return name, [int(d) for d in info["shape"]]


# litert-torch names a module's tensors <class>_<attribute>: the scope of PixelInputMODNet.pixels
PIXEL_SCOPE = "PixelInput_pixels"


def pixel_normalisation(float_model: bytes) -> list[str]:
    """Exact-name patterns of the ops that normalise an 8-bit-input model's image for the branches that
    read it (none in a float-input model).  They stay float: each int8 op would round the image again
    (its scale is calibrated, and 127.5 is no int8 zero point), while in float the image is rounded once,
    where its readers quantise it -- as in ONNX Runtime, which leaves Div and Sub unquantised.  Not among
    them: the stem's concatenation and the ops feeding it (8-bit exact)."""
    ops = _op_outputs(float_model)
    stem: set[str] = set()
    for op, ins, outs in reversed(ops):  # the stem concatenation and everything in scope upstream of it
        if outs and PIXEL_SCOPE in outs[0] and (op == "CONCATENATION" or stem.intersection(outs)):
            stem.update(outs)
            stem.update(ins)
    return [op_scope_pattern(outs[0]) for op, _, outs in ops
            if outs and PIXEL_SCOPE in outs[0] and outs[0] not in stem]


def op_scope_pattern(tensor: str) -> str:
    """The recipe regex that selects exactly the op writing ``tensor``: ai-edge-quantizer matches recipes
    against an op's *scope*, its output tensor names each followed by ';'."""
    return "^" + re.escape(tensor) + ";$"


def _op_outputs(float_model: bytes) -> list[tuple[str, list[str], list[str]]]:
    """(op name, input tensor names, output tensor names) for every op, in execution order."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=float_model)
    names = {t["index"]: t["name"] for t in interp.get_tensor_details()}
    return [(op["op_name"], [names.get(int(i), "") for i in op["inputs"] if i >= 0],
             [names.get(int(i), "") for i in op["outputs"]]) for op in interp._get_ops_details()]


def resolve_keep_float(float_model: bytes, keep: Iterable[str], model_config: Any = None) -> list[str]:
    """Regexes (on op output tensor names) of the ops to leave in float: ``image-concat`` found in the graph,
    presets and module selectors (``module:lr_branch.conv_lr16x``) through the modules' tensor-name
    patterns (:func:`~.module_scopes.tflite_pattern`)."""
    from modnet_edge.exporters.module_scopes import tflite_pattern

    keep = [tflite_pattern(selector_module(k), model_config) if is_module_selector(k) else k for k in keep]
    if not keep:
        return []
    ops = _op_outputs(float_model)
    patterns: list[str] = []
    for item in keep:
        if item == "image-concat":
            found = [op_scope_pattern(n) for n in _image_concat_outputs(float_model, ops)]
        elif item in PRESETS:
            found = [p for p in (tflite_pattern(m, model_config) for m in preset_modules(item, model_config))
                     if any(re.search(p, o) for _, _, outs in ops for o in outs)]
        else:
            try:
                rx = re.compile(item)
            except re.error as exc:
                raise ConfigError(f"keep_float {item!r} is neither a preset {list(KEEP_FLOAT_PRESETS)} nor a "
                                  f"valid regular expression ({exc})") from None
            found = [item] if any(rx.search(o) for _, _, outs in ops for o in outs) else []
        if not found:
            raise ConfigError(f"keep_float {item!r} matches no op of the model (presets: {list(KEEP_FLOAT_PRESETS)})")
        patterns.extend(p for p in found if p not in patterns)
    return patterns


def _image_concat_outputs(float_model: bytes, ops: list[tuple[str, list[str], list[str]]]) -> list[str]:
    """Output names of the concatenations fed by the image (through layout transposes and resizes) and
    of the convolutions consuming them."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=float_model)
    image = {d["name"] for d in interp.get_input_details()}
    follow = ("TRANSPOSE", "RESIZE_BILINEAR", "RESHAPE", "MUL", "SUB", "ADD", "DIV")  # the last: 8-bit input
    for op, ins, outs in ops:
        if op in follow and ins and ins[0] in image:
            image.update(outs)
    concats = [outs[0] for op, ins, outs in ops if op == "CONCATENATION" and image.intersection(ins)
               and PIXEL_SCOPE not in outs[0]]
    convs = [outs[0] for op, ins, outs in ops if op == "CONV_2D" and set(concats).intersection(ins)]
    return concats + convs


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
