"""The one table of formats: how each is recognised, exported, run and installed, and which options and
precision variants its exporter accepts.

Everything that needs to know about formats asks this table: the exporter skeleton validates options
against it, the CLI builds ``modnet-edge export``'s flags and ``--help`` choices from it, the pipeline
reads which precisions need calibration data from it, and ``modnet-edge formats`` prints it.  Stages
are named by dotted ``module:attribute`` strings resolved on use, so listing formats never imports
torch, onnxruntime or a converter.  Adding a format is one row here, one converter module and one
backend module (and a container module in :mod:`modnet_edge.core.containers` when its file keeps
metadata in a way no existing container writes).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modnet_edge.core.errors import ConfigError
from modnet_edge.core.limits import check_input_size, check_number


# --------------------------------------------------------------------------------------------------
# Precision variants and export options
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Precision:
    """One precision variant, named the same in every format that has it (``int8-a16`` is INT8 weights
    with 16-bit activations wherever it exists), with every fact that depends on the precision alone:
    parity's drift budget, the precision doctor's per-layer threshold, whether it needs calibration data,
    and what a converter calls it where the converter's own vocabulary differs.  Stages read this row
    instead of keeping their own tables keyed by name prefixes."""

    name: str
    help: str
    family: str  # what it is a variant of ("int8" for every INT8 variant): what a device target may name
    budget_mse: float  # parity: the largest alpha MSE against the PyTorch reference
    doctor_threshold: float  # the doctor: the relative L2 error above which one layer counts as drifted
    budget_band_mse: float | None = None  # parity: the largest MSE inside the boundary band, where set
    calibrated: bool = False  # activations quantised ahead of time from calibration data
    activation_bits: int | None = None  # the calibrated variants: 8- or 16-bit activations
    palette_bits: int | None = None  # look-up-table weights: bits per weight index
    converter_names: tuple[tuple[str, str], ...] = ()  # (format, the converter's own name for it)

    def converter_name(self, format_name: str) -> str | None:
        """What ``format_name``'s converter calls this precision (None where it has no name of its own)."""
        return dict(self.converter_names).get(format_name)


# Budgets sit a few times above what healthy exports of trained networks show (README, "Parity budgets",
# measures what they mean in 8-bit levels on unseen photos); doctor thresholds a few times above what a
# healthy layer of that precision shows (fp16: ~1e-3 per layer).
_INT8 = dict(family="int8", budget_mse=1e-4, budget_band_mse=1e-3, doctor_threshold=5e-2)

# The precision names of the whole toolkit: every format picks its variants from here.
PRECISION_TABLE: dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", "float32 weights and compute", family="fp32", budget_mse=1e-9, doctor_threshold=1e-3),
    Precision("fp16", "float16 weights and compute", family="fp16", budget_mse=1e-6, doctor_threshold=1e-2,
              converter_names=(("tflite", "fp16"),)),
    Precision("int8", "INT8 weights and 8-bit activations (static, calibrated)", **_INT8, calibrated=True,
              activation_bits=8, converter_names=(("tflite", "static"),)),
    Precision("int8-a16", "INT8 weights, 16-bit activations (static, calibrated)", **_INT8, calibrated=True,
              activation_bits=16, converter_names=(("tflite", "static16"),)),
    Precision("int8-dynamic", "INT8 weights, activations quantised at run time (dynamic range)", **_INT8,
              converter_names=(("tflite", "dynamic"),)),
    Precision("int8-weights", "INT8 weights stored, float compute (weight-only)", **_INT8,
              converter_names=(("tflite", "weights"),)),
    # palettized weights (Core ML k-means look-up tables) are weight compression like int8-weights
    Precision("palettized-6bit", "6-bit k-means look-up-table weights, float compute", family="palettized",
              budget_mse=1e-4, budget_band_mse=1e-3, doctor_threshold=5e-2, palette_bits=6),
    # 4-bit tables (16 weight values per tensor) cannot meet that; this sits ~3x above healthy Core ML
    # exports of two trained checkpoints (10 portraits, 256x256: 3.7e-4 / 6.6e-4; 6-bit: 2.0e-5 / 5.0e-5),
    # so a broken decode or too coarse a table (4-bit with the small layers palettized too: 1.2e-2) fails.
    Precision("palettized-4bit", "4-bit k-means look-up-table weights, float compute", family="palettized",
              budget_mse=2e-3, budget_band_mse=2e-2, doctor_threshold=5e-2, palette_bits=4),
)}


def precision_row(name: str) -> Precision:
    """The row of precision ``name``; an unknown name is a clear error naming the known ones."""
    row = PRECISION_TABLE.get(name)
    if row is None:
        raise ConfigError(f"unknown precision {name!r}; precisions: {', '.join(PRECISION_TABLE)}")
    return row


PRECISIONS = tuple(PRECISION_TABLE)


OptionKind = Literal["int", "float", "str", "bool", "size", "sizes", "pair", "list", "path", "cache", "source"]


@dataclass(frozen=True)
class Option:
    """One export option.  ``name`` is the keyword of ``export()`` and, hyphenated, the CLI flag.

    ``kind`` (:data:`OptionKind`): "int", "float", "str", "bool", "size" ((H, W)), "sizes" (list of (H, W)),
    "pair" (two ints), "list" (strings), "path", "cache" (a folder, or False / "off"), or "source"
    (calibration data: folder, video, "synthetic" or a ``CalibrationSource``).  ``precisions``: the variants
    it applies to (None: all of the format's).  ``default`` is what the exporter uses when the option is not
    given (shown by ``--help``).
    """

    name: str
    kind: OptionKind
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    precisions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KIND_CHECKS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}; kinds: {sorted(_KIND_CHECKS)}")

    def applies_to(self, precision: str) -> bool:
        return self.precisions is None or precision in self.precisions

    def check(self, value: Any, format_name: str) -> Any:
        """``value`` checked against the kind and choices (None passes: the exporter's default)."""
        if value is None:
            return None
        what = f"{format_name} option {self.name}"
        value = _KIND_CHECKS[self.kind](value, what, ConfigError(f"{what}={value!r}: expected {_KIND_WORDS[self.kind]}"))
        if self.choices and value not in self.choices:
            raise ConfigError(f"{format_name} option {self.name}={value!r}: choose from {list(self.choices)}")
        return value


def _check_int(value: Any, what: str, bad: ConfigError) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad
    return value


def _check_float(value: Any, what: str, bad: ConfigError) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    check_number(value, what)
    return value


def _check_type(*types: type) -> Callable[[Any, str, ConfigError], Any]:
    def check(value: Any, what: str, bad: ConfigError) -> Any:
        if not isinstance(value, types):
            raise bad
        return value
    return check


def _check_cache(value: Any, what: str, bad: ConfigError) -> Any:
    if value is False or value == "off":
        return False
    if not isinstance(value, (str, Path)) and not hasattr(value, "store"):
        raise bad
    return value


def _check_pair(value: Any, what: str, bad: ConfigError) -> Any:
    if isinstance(value, (str, bytes)) or not _int_pair(value):
        raise bad
    return int(value[0]), int(value[1])


def _check_size(value: Any, what: str, bad: ConfigError) -> Any:
    value = _check_pair(value, what, bad)
    check_input_size(*value, what=what)  # before any tensor of that size is allocated
    return value


def _check_sizes(value: Any, what: str, bad: ConfigError) -> Any:
    if isinstance(value, (str, bytes)) or not all(_int_pair(v) for v in value):
        raise bad
    return [check_input_size(h, w, what=what) for h, w in value]


def _check_list(value: Any, what: str, bad: ConfigError) -> Any:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise bad
    return list(value)


# kind -> (value, what, the error for a wrong type) -> the checked value; "source" is checked by the
# calibration stage when it opens the data
_KIND_CHECKS: dict[str, Callable[[Any, str, ConfigError], Any]] = {
    "int": _check_int, "float": _check_float, "str": _check_type(str), "bool": _check_type(bool),
    "size": _check_size, "sizes": _check_sizes, "pair": _check_pair, "list": _check_list,
    "path": _check_type(str, Path), "cache": _check_cache, "source": lambda value, what, bad: value,
}

_KIND_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "size": "(height, width) integers", "sizes": "a list of (height, width) pairs",
               "pair": "two integers", "list": "a list of strings", "path": "a path",
               "cache": "a folder, a CalibrationCache, or false / 'off' to disable",
               "source": "a folder, a video, 'synthetic' or a CalibrationSource"}


def _int_pair(value: Any) -> bool:
    try:
        a, b = value
        return all(not isinstance(v, bool) and int(v) == v for v in (a, b))
    except (TypeError, ValueError):
        return False


# Options that mean the same in every format that has them (one name, one help text).
def _shape(default: str) -> Option:
    return Option("static_shape", "size", f"fixed input (height, width), multiples of 32 ({default})")


def _calibration(precisions: tuple[str, ...]) -> tuple[Option, ...]:
    return (
        Option("calibration", "source", "calibration data: image folder, video, 'synthetic' or a CalibrationSource "
               "(required by these precisions)", precisions=precisions),
        Option("calibration_size", "int", "how many calibration samples (default: all images; 64 frames of a "
               "video or synthetic)", precisions=precisions),
        Option("calibration_seed", "int", "seed choosing the calibration samples", 0, precisions=precisions),
        Option("calibration_cache", "cache", "calibration cache folder, or 'off' (default: the user cache folder)",
               precisions=precisions),
    )


def _keep_float(precisions: tuple[str, ...], what: str) -> Option:
    return Option("keep_float", "list", f"parts kept in float32 ({what}): module selectors such as "
                  "'module:backbone' or 'module:lr_branch.conv_lr16x', presets (backbone, lr-branch, hr-branch, "
                  "fusion-branch, fusion-head, instance-norm), or regexes on node names",
                  precisions=precisions)


_STATIC_INT8 = ("int8", "int8-a16")  # the calibrated variants (ONNX and TFLite)


def _input_type(precisions: tuple[str, ...]) -> Option:
    return Option("input_type", "str", "what the model reads: the normalised float image, or the 8-bit image "
                  "(uint8; int8 p-128 in TFLite) with the normalisation folded into the first convolution, exactly",
                  "float32", ("float32", "uint8"), precisions=precisions)
_TFLITE_QUANTISED = ("fp16", "int8", "int8-a16", "int8-dynamic", "int8-weights")

ONNX_OPTIONS = (
    _shape("default: dynamic batch, height and width"),
    Option("batch", "int", "fixed batch size (default: dynamic)"),
    Option("opset", "int", "ONNX opset", 17),
    Option("simplify", "bool", "simplify the graph with onnxslim", True, precisions=("fp32", "fp16")),
    Option("keep_io_types", "bool", "float32 input and output around the FP16 graph", False, precisions=("fp16",)),
    _keep_float(("fp16", *_STATIC_INT8), "FP32 islands in FP16; unquantised nodes in INT8"),
    *_calibration(_STATIC_INT8),
    Option("calibration_method", "str", "how activation ranges are calibrated", "minmax",
           ("minmax", "entropy", "percentile"), precisions=_STATIC_INT8),
    Option("percentile", "float", "percentile of the 'percentile' calibration method", 99.999, precisions=_STATIC_INT8),
    Option("activation_type", "str", "8-bit activation type (uint8: ONNX Runtime's fast x86 path)", "uint8",
           ("uint8", "int8"), precisions=("int8",)),
    Option("per_channel", "bool", "per-output-channel weight scales", True, precisions=_STATIC_INT8),
    Option("reduce_range", "bool", "7-bit weights (default: chosen from target_cpu)", precisions=_STATIC_INT8),
    Option("target_cpu", "str", "CPU the INT8 model is for (default: this machine)", None,
           ("x86-vnni", "x86-avx2", "arm64"), precisions=_STATIC_INT8),
    _input_type(("fp32", "int8")),
)

TENSORRT_ONNX_OPTIONS = (
    _shape("default: 512x512"),
    Option("batch", "int", "fixed batch size (default: 1)"),
    Option("profile", "str", "dynamic shape profile MIN:OPT:MAX, each NxCxHxW (instead of static_shape)"),
    Option("opset", "int", "ONNX opset", 17),
    Option("keep_io_types", "bool", "float32 input and output around the FP16 graph", True, precisions=("fp16",)),
    Option("fp32_normalization", "bool", "InstanceNormalization in FP32 inside the FP16 graph", True,
           precisions=("fp16",)),
    _keep_float(("fp16", "int8"), "FP32 islands in FP16; unquantised nodes in INT8"),
    *_calibration(("int8",)),
    Option("calibration_method", "str", "how activation ranges are calibrated", "minmax",
           ("minmax", "entropy", "percentile"), precisions=("int8",)),
    Option("percentile", "float", "percentile of the 'percentile' calibration method", 99.999, precisions=("int8",)),
    Option("residual_qdq", "bool", "Q/DQ on residual additions too", False, precisions=("int8",)),
    _input_type(("fp32", "int8")),
)

TENSORRT_OPTIONS = (
    # an engine's uint8 input (input_type) is not built or run on hardware here yet: not offered
    *(o for o in TENSORRT_ONNX_OPTIONS if o.name not in ("opset", "input_type")),
    Option("build_mode", "str", "TensorRT build mode (default: the precision's strongly typed mode)", None,
           ("fp32", "fp16", "fp16-flag", "int8", "int8-fp16-flag")),
    Option("keep_onnx", "bool", "keep the TensorRT-ready ONNX beside the engine", True),
    Option("timing_cache", "path", "TensorRT timing cache file (read and updated)"),
    Option("workspace_mib", "int", "builder workspace limit in MiB"),
    Option("optimization_level", "int", "builder optimisation level 0-5 (default: TensorRT's, 3)"),
    Option("allow_tf32", "bool", "allow TF32 tactics for FP32 layers", False),
    Option("version_compatible", "bool", "engine loadable by later TensorRT versions", False),
    Option("hardware_compatibility", "str", "build an engine that also runs on other GPU architectures", None,
           ("ampere+",)),
    Option("device", "str", "GPU to build on: cuda or cuda:N", "cuda"),
    Option("verbose", "bool", "print every TensorRT builder message", False),
)

TFLITE_OPTIONS = (
    _shape("default: 512x512"),
    Option("layout", "str", "input/output layout", "NCHW", ("NCHW", "NHWC")),
    _keep_float(_TFLITE_QUANTISED, "unquantised ops"),
    *_calibration(_STATIC_INT8),
    Option("calibration_method", "str", "how activation ranges are calibrated", "minmax",
           ("minmax", "moving-average"), precisions=_STATIC_INT8),
    Option("threads", "int", "interpreter threads used while calibrating", 2, precisions=_STATIC_INT8),
    _input_type(("int8",)),
)

COREML_OPTIONS = (
    _shape("default: the checkpoint's, else 512x512; the default shape of a flexible model"),
    Option("shapes", "str", "fixed shape, enumerated sizes or a size range", "fixed", ("fixed", "enumerated", "range")),
    Option("sizes", "sizes", "the sizes of an enumerated-shape model (default 512x512, 512x672, 512x896 and "
           "transposes)"),
    Option("size_range", "pair", "lower and upper side of a range-shaped model (default 64 1024)"),
    Option("input_type", "str", "float32 tensor, or RGB image with the normalisation baked in", "tensor",
           ("tensor", "image")),
    Option("compute_precision", "str", "compute precision of the weight-compressed variants (default: fp16)",
           None, ("fp16", "fp32"), precisions=("int8-weights", "palettized-6bit", "palettized-4bit")),
    Option("deployment_target", "str", "minimum OS", "iOS16", ("iOS16", "iOS17", "macOS13", "macOS14")),
    Option("compress_threshold", "int", "weight tensors with fewer elements stay uncompressed", 65536,
           precisions=("int8-weights", "palettized-6bit", "palettized-4bit")),
    _keep_float(("fp16",), "FP32 islands in FP16 compute: module selectors, presets and 'io'"),
    Option("author", "str", "model author field"),
    Option("license", "str", "model license field"),
    Option("description", "str", "model description field"),
)


@dataclass(frozen=True)
class Search:
    """How the precision search (:mod:`modnet_edge.precision_search`) treats one precision of a format.

    ``extra_group``: the group it may keep in higher precision besides the network's parts: ``io`` (the
    FP16 input and output) or ``image-concat`` (the INT8 Q/DQ pair the image shares with features); None
    where the format keeps it already (a TensorRT-ready FP16 graph has float32 I/O).  ``extra_option``:
    the exporter option that keeps it (ONNX FP16: ``keep_io_types``); otherwise it is a ``keep_float``
    item after the module selectors."""

    extra_group: str | None
    extra_option: str | None = None


_INT8_SEARCH = Search("image-concat")


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Format:
    """One deployable format: how to recognise it, export it and run it.

    ``converter`` and each backend are ``module:attribute`` names resolved on use.  ``backends`` maps a
    runtime name to its backend class, the first being the default.  ``export_requires`` /
    ``runtime_requires`` are importable module names; ``export_extra`` / ``run_extra`` the pip extras that
    install them (running an artifact needs only its runtime).  ``variants`` are the precisions the
    exporter makes (``runtime_precisions`` those a backend runs without an exporter, e.g. PyTorch).
    """

    name: str
    suffixes: tuple[str, ...]
    variants: tuple[str, ...]
    backends: tuple[tuple[str, str], ...]
    converter: str | None
    export_requires: tuple[str, ...]
    runtime_requires: tuple[str, ...]
    export_extra: str | None
    run_extra: str | None
    description: str
    options: tuple[Option, ...] = ()
    tools: tuple[str, ...] = ()  # distributions whose versions the artifact records
    container: str | None = None  # module of modnet_edge.core.containers that embeds/reads its metadata
    is_dir: bool = False  # the artifact is a directory (e.g. .mlpackage)
    pipeline_precisions: tuple[str, ...] = ()  # what `modnet-edge pipeline` exports by default
    # why the format's other precisions are exported only on request (`--formats onnx:int8`): the pipeline
    # says so in its log, manifest and report instead of leaving them out silently
    on_request_why: str = ""
    runtime_precisions: tuple[str, ...] = ()
    # runtimes that run this format here only to verify its numerics: their speed says nothing about the
    # runtime it is deployed on, so no speed target judges it (a TensorRT-ready ONNX in ONNX Runtime's CPU)
    proxy_runtimes: tuple[str, ...] = ()
    # the precisions the precision search covers, and how
    searched: tuple[tuple[str, Search], ...] = ()
    # the format the search ranks the network's groups on, for every format of a precision (one row has
    # it: it exports in seconds, and a ranking only orders the groups)
    search_twin: bool = False

    @property
    def precisions(self) -> tuple[str, ...]:
        return self.variants or self.runtime_precisions

    def search(self, precision: str) -> Search | None:
        """How the precision search treats ``precision`` of this format (None: not searched)."""
        return dict(self.searched).get(precision)

    def calibrated(self, precision: str) -> bool:
        """Whether exporting ``precision`` needs calibration data."""
        known = PRECISION_TABLE.get(precision)
        return known is not None and known.calibrated and any(o.name == "calibration" and o.applies_to(precision)
                                                             for o in self.options)

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise ConfigError(f"{self.name} export has no option {name!r}; options: {[o.name for o in self.options]}")

    def check_options(self, precision: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` checked against this row: known names, right kinds and choices, and only those that
        apply to ``precision``; None values are dropped (the exporter's default applies)."""
        if precision not in self.variants:
            raise ConfigError(f"format {self.name!r} exports precisions {list(self.variants)}, not {precision!r}")
        known = {o.name: o for o in self.options}
        checked: dict[str, Any] = {}
        for name, value in options.items():
            if name not in known:
                raise ConfigError(f"unknown {self.name} export option {name!r}; options: {sorted(known)}")
            opt = known[name]
            if value is None:
                continue
            if not opt.applies_to(precision):
                raise ConfigError(f"{self.name} option {name!r} applies to precision "
                                  f"{' or '.join(opt.precisions or ())}, not {precision!r}")
            checked[name] = opt.check(value, self.name)
        return checked

    def can_export(self) -> bool:
        return self.converter is not None and all(_installed(m) for m in self.export_requires)

    def can_run(self) -> bool:
        return all(_installed(m) for m in self.runtime_requires)

    def backend(self, runtime: str | None = None) -> str:
        """The ``module:Class`` of the backend for ``runtime`` (default: the format's first runtime)."""
        if runtime is None:
            return self.backends[0][1]
        for name, target in self.backends:
            if name == runtime:
                return target
        raise ConfigError(f"format {self.name!r} has no runtime {runtime!r}; "
                          f"choose from {[n for n, _ in self.backends]}")

    def install_hint(self, role: str = "export") -> str:
        extra = self.export_extra if role == "export" else self.run_extra
        return f'pip install -c constraints.txt "modnet-edge{f"[{extra}]" if extra else ""}"'


_ORT = "modnet_edge.runtimes.onnxruntime_backend:OnnxRuntimeBackend"
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="pytorch",
            suffixes=(".pt", ".pth", ".ckpt", ".pt2"),
            variants=(),
            backends=(("torch", "modnet_edge.runtimes.torch_backend:TorchBackend"),),
            converter=None,
            export_requires=("torch",),
            runtime_requires=("torch",),
            export_extra=None,
            run_extra="torch",
            description="PyTorch checkpoint (official MODNet or modnet-edge) or torch.export program",
            runtime_precisions=("fp32", "fp16"),
        ),
        Format(
            name="onnx",
            suffixes=(".onnx",),
            variants=("fp32", "fp16", "int8", "int8-a16"),
            backends=(("onnxruntime", _ORT),),
            converter="modnet_edge.exporters.onnx_export:convert_onnx",
            export_requires=("torch", "onnx"),
            runtime_requires=("onnxruntime", "onnx"),
            export_extra="torch",
            run_extra="onnxruntime",
            description="ONNX, run by ONNX Runtime (CPU, CUDA, TensorRT or CoreML execution providers)",
            options=ONNX_OPTIONS,
            tools=("torch", "onnx", "onnxslim", "onnxruntime"),
            container="onnx_file",
            pipeline_precisions=("fp32", "fp16"),
            searched=(("fp16", Search("io", "keep_io_types")), ("int8", _INT8_SEARCH), ("int8-a16", _INT8_SEARCH)),
            search_twin=True,
            on_request_why="as exported, INT8 drifts 4.6e-3 on unseen photos (46x its budget) and its precision "
                           "search keeps most of the network float; int8-a16 computes in float between its "
                           "Q/DQ pairs",
        ),
        Format(
            name="tflite",
            suffixes=(".tflite",),
            variants=("fp32", "fp16", "int8", "int8-a16", "int8-dynamic", "int8-weights"),
            backends=(("litert", "modnet_edge.runtimes.litert_backend:LiteRTBackend"),),
            converter="modnet_edge.exporters.tflite_export:convert_tflite",
            export_requires=("torch", "litert_torch", "ai_edge_quantizer"),
            runtime_requires=("ai_edge_litert",),
            export_extra="tflite",
            run_extra="litert",
            description="TFLite / LiteRT FlatBuffer from litert-torch (no TensorFlow): FP32, FP16 weights, INT8 "
                        "(static full-integer, 16-bit activations, dynamic range, weight-only); NCHW or NHWC",
            options=TFLITE_OPTIONS,
            tools=("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert"),
            container="tflite_file",
            pipeline_precisions=("fp32", "fp16"),
            searched=(("int8", _INT8_SEARCH), ("int8-a16", _INT8_SEARCH)),
            on_request_why="full INT8 drifts 6.1e-3 on unseen photos (its int8 input cannot hold the normalised "
                           "image exactly) and its search finds no variant within budget; int8-a16 runs in "
                           "reference kernels (seconds a frame); int8-dynamic and int8-weights shrink the file "
                           "but are no faster than fp32 in XNNPACK",
        ),
        Format(
            name="tensorrt-onnx",
            suffixes=(".trt.onnx",),
            variants=("fp32", "fp16", "int8"),
            backends=(("onnxruntime", _ORT),),
            converter="modnet_edge.exporters.tensorrt_onnx:convert_tensorrt_onnx",
            export_requires=("torch", "onnx", "onnxruntime"),
            runtime_requires=("onnxruntime", "onnx"),
            export_extra="torch",
            run_extra="onnxruntime",
            description="TensorRT-ready ONNX (static shape or min/opt/max profile; strongly typed FP16; INT8 Q/DQ), "
                        "verified in ONNX Runtime here, built into an engine where TensorRT is installed",
            options=TENSORRT_ONNX_OPTIONS,
            tools=("torch", "onnx", "onnxslim", "onnxruntime"),
            container="onnx_file",
            pipeline_precisions=("fp32", "fp16", "int8"),
            proxy_runtimes=("onnxruntime",),
            searched=(("fp16", Search(None)), ("int8", _INT8_SEARCH)),
        ),
        Format(
            name="tensorrt",
            suffixes=(".engine", ".plan"),
            variants=("fp32", "fp16", "int8"),
            backends=(("tensorrt", "modnet_edge.runtimes.tensorrt_backend:TensorRTBackend"),),
            converter="modnet_edge.exporters.tensorrt_build:convert_tensorrt_engine",
            export_requires=("torch", "onnx", "tensorrt"),
            runtime_requires=("tensorrt",),
            export_extra="tensorrt",
            run_extra="tensorrt",
            description="TensorRT engine (tied to the TensorRT version and GPU that built it), from the "
                        "TensorRT-ready ONNX",
            options=TENSORRT_OPTIONS,
            tools=("tensorrt",),
            container="engine_file",
            pipeline_precisions=("fp16", "int8"),
            on_request_why="an fp32 engine is the float baseline, not a deployment choice",
        ),
        Format(
            name="coreml",
            suffixes=(".mlpackage",),
            variants=("fp16", "fp32", "int8-weights", "palettized-6bit", "palettized-4bit"),
            backends=(("coreml", "modnet_edge.runtimes.coreml_backend:CoreMLBackend"),
                      ("reference", "modnet_edge.runtimes.coreml_reference:CoreMLReferenceBackend")),
            converter="modnet_edge.exporters.coreml_export:convert_coreml",
            export_requires=("torch", "coremltools"),
            runtime_requires=("coremltools",),
            export_extra="coreml",
            run_extra="coreml",
            description="Core ML ML Program (.mlpackage, iOS 16 / macOS 13+); Core ML runs it on macOS, the NumPy "
                        "reference execution of its program anywhere (runtime 'reference')",
            options=COREML_OPTIONS,
            tools=("torch", "coremltools", "scikit-learn"),
            is_dir=True,
            container="coreml_file",
            pipeline_precisions=("fp16", "int8-weights"),
            searched=(("fp16", Search("io")),),
            on_request_why="fp32 runs on a phone's CPU and GPU only (the Neural Engine computes in fp16) at "
                           "twice the size; the palettized variants are size experiments (k-means, needs "
                           "scikit-learn)",
        ),
    )
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown format {name!r}; known formats: {', '.join(FORMATS)}") from None


def format_of_path(path: str | Path) -> Format | None:
    """The format whose suffix ``path`` has (None when no format claims it)."""
    name = Path(path).name.lower()
    matches = [(len(s), fmt) for fmt in FORMATS.values() for s in fmt.suffixes if name.endswith(s)]
    return max(matches, key=lambda m: m[0])[1] if matches else None  # longest suffix: .trt.onnx over .onnx


def resolve(dotted: str) -> Any:
    """Import ``package.module:attribute`` lazily."""
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
