"""The one table of formats: how each is recognised, exported, run and installed.

Stages are named by dotted ``module:attribute`` strings resolved on use, so listing formats never
imports torch, onnxruntime or a converter.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ConfigError


@dataclass(frozen=True)
class Format:
    """One deployable format: how to recognise it, export it and run it.

    ``exporter`` and each backend are ``module:attribute`` names resolved on use, so listing formats
    never imports a heavy framework.  ``backends`` maps a runtime name to its backend class, the first
    being the default.  ``export_requires`` / ``runtime_requires`` are importable module names; the
    format is exportable / runnable (by its default runtime) here when all of them are installed.
    """

    name: str
    suffixes: tuple[str, ...]
    precisions: tuple[str, ...]
    backends: tuple[tuple[str, str], ...]
    exporter: str | None
    export_requires: tuple[str, ...]
    runtime_requires: tuple[str, ...]
    extra: str | None  # pip extra that installs it
    description: str
    is_dir: bool = False  # the artifact is a directory (e.g. .mlpackage)
    pipeline_precisions: tuple[str, ...] = ()  # what `modnet-edge pipeline` exports by default

    def can_export(self) -> bool:
        return self.exporter is not None and all(_installed(m) for m in self.export_requires)

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

    def install_hint(self) -> str:
        extra = f"[{self.extra}]" if self.extra else ""
        return f'pip install -c constraints.txt "modnet-edge{extra}"'


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("pytorch", (".pt", ".pth", ".ckpt", ".pt2"), ("fp32", "fp16"),
               (("torch", "modnet_edge.runtimes.torch_backend:TorchBackend"),), None,
               ("torch",), ("torch",), None,
               "PyTorch checkpoint (official MODNet or modnet-edge) or torch.export program"),
        Format("onnx", (".onnx",), ("fp32", "fp16", "int8"),
               (("onnxruntime", "modnet_edge.runtimes.onnxruntime_backend:OnnxRuntimeBackend"),),
               "modnet_edge.export.onnx_export:export_onnx", ("torch", "onnx"), ("onnxruntime",), None,
               "ONNX, run by ONNX Runtime (CPU, CUDA, TensorRT or CoreML execution providers)",
               pipeline_precisions=("fp32", "fp16")),
        Format("tflite", (".tflite",), ("fp32", "fp16", "int8"),
               (("litert", "modnet_edge.runtimes.litert_backend:LiteRTBackend"),),
               "modnet_edge.export.tflite_export:export_tflite", ("torch", "litert_torch", "ai_edge_quantizer"),
               ("ai_edge_litert",), "tflite",
               "TFLite / LiteRT FlatBuffer from litert-torch (no TensorFlow): FP32, FP16 weights, INT8 "
               "(static full-integer with calibration, int16 activations, dynamic range, weight-only); NCHW or NHWC",
               pipeline_precisions=("fp32", "fp16")),
        Format("tensorrt-onnx", (".trt.onnx",), ("fp32", "fp16", "int8"),
               (("onnxruntime", "modnet_edge.runtimes.onnxruntime_backend:OnnxRuntimeBackend"),),
               "modnet_edge.export.tensorrt_onnx:export_tensorrt_onnx", ("torch", "onnx", "onnxruntime"),
               ("onnxruntime",), None,
               "TensorRT-ready ONNX (static shape or min/opt/max profile; strongly typed FP16; INT8 Q/DQ), "
               "verified in ONNX Runtime here, built into an engine where TensorRT is installed",
               pipeline_precisions=("fp32", "fp16", "int8")),
        Format("tensorrt", (".engine", ".plan"), ("fp32", "fp16", "int8"),
               (("tensorrt", "modnet_edge.runtimes.tensorrt_backend:TensorRTBackend"),),
               "modnet_edge.export.tensorrt_build:export_tensorrt_engine", ("torch", "onnx", "tensorrt"),
               ("tensorrt",), "tensorrt",
               "TensorRT engine (tied to the TensorRT version and GPU that built it), from the TensorRT-ready ONNX",
               pipeline_precisions=("fp16", "int8")),
        Format("coreml", (".mlpackage",), ("fp16", "fp32", "int8-weights", "palettized-6bit", "palettized-4bit"),
               (("coreml", "modnet_edge.runtimes.coreml_backend:CoreMLBackend"),
                ("reference", "modnet_edge.runtimes.coreml_reference:CoreMLReferenceBackend")),
               "modnet_edge.export.coreml_export:export_coreml", ("torch", "coremltools"), ("coremltools",),
               "coreml",
               "Core ML ML Program (.mlpackage, iOS 16 / macOS 13+); Core ML runs it on macOS, the NumPy "
               "reference execution of its program anywhere (runtime 'reference')",
               is_dir=True, pipeline_precisions=("fp16", "int8-weights")),
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

