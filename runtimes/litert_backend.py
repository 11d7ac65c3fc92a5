"""LiteRT (TensorFlow Lite) backend: runs any .tflite, float or quantised, NCHW or NHWC.

The interpreter comes from ai-edge-litert, else tflite-runtime, else tensorflow.lite, whichever the
device has (``interpreter=`` forces one).  XNNPACK, the CPU delegate every modern build applies by
default, can be switched off to compare with the reference kernels.

Quantised inputs and outputs are handled from the model's *own* tensor parameters (scale, zero point
per tensor): :meth:`prepare_input` quantises float32 data, :meth:`dequantize_output` turns integer
outputs back into real values, so the predictor feeds an int8 model exactly like a float one.  Names
are the signature's (``input``/``matte`` for our models) when the model has one signature, else the
tensor names.  Metadata is read from the FlatBuffer with the standard library, so a device with only
tflite-runtime still gets the artifact's preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.console import quiet_native_logs
from modnet_edge.core import ArtifactMetadata
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError, FeedError
from modnet_edge.core.limits import check_threads

from modnet_edge.runtimes.base import Backend, TensorInfo

INTERPRETERS = ("ai-edge-litert", "tflite-runtime", "tensorflow")


def _interpreter_module(name: str) -> Any:
    if name == "ai-edge-litert":
        from ai_edge_litert import interpreter as mod
    elif name == "tflite-runtime":
        from tflite_runtime import interpreter as mod
    else:
        import tensorflow as tf

        mod = tf.lite
    return mod


def find_interpreter(preferred: str | None = None) -> tuple[str, Any]:
    """(name, module providing ``Interpreter``): the preferred one, or the first installed of :data:`INTERPRETERS`."""
    if preferred is not None and preferred not in INTERPRETERS:
        raise ConfigError(f"interpreter must be one of {list(INTERPRETERS)}, not {preferred!r}")
    for name in [preferred] if preferred else INTERPRETERS:
        try:
            return name, _interpreter_module(name)
        except ImportError:
            continue
    wanted = preferred or " / ".join(INTERPRETERS)
    raise BackendUnavailableError(f"no TFLite interpreter installed ({wanted}); install one with: "
                                  'pip install -c constraints.txt "modnet-edge[tflite]" (or tflite-runtime)')


class LiteRTBackend(Backend):
    """Runs any .tflite model.  ``threads``: CPU threads (None: the interpreter's default);
    ``xnnpack``: use the XNNPACK delegate (default True); ``interpreter``: force ai-edge-litert,
    tflite-runtime or tensorflow."""

    format = "tflite"
    runtime = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, xnnpack: bool = True,
                 interpreter: str | None = None) -> None:
        super().__init__(path)
        from modnet_edge.core.containers.tflite_file import check_tflite_bytes, read_modnet_metadata

        check_threads(threads, self.path)
        self.interpreter_name, module = find_interpreter(interpreter)
        if self.path.is_dir():
            raise ArtifactError("is a folder, not a TFLite file", self.path)
        if not self.path.is_file():
            raise ArtifactError("TFLite file does not exist", self.path)
        data = self.path.read_bytes()
        if not data:
            raise ArtifactError("TFLite file is empty (0 bytes)", self.path)
        check_tflite_bytes(data, self.path)
        kwargs: dict[str, Any] = {"model_content": data}
        if threads:
            kwargs["num_threads"] = int(threads)
        if not xnnpack:
            resolver = getattr(getattr(module, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
            if resolver is None:
                raise BackendUnavailableError(f"{self.interpreter_name} cannot disable XNNPACK (no op resolver choice)")
            kwargs["experimental_op_resolver_type"] = resolver
        self._module, self._kwargs = module, kwargs
        try:
            with quiet_native_logs():  # LiteRT announces its XNNPACK delegate on fd 2, in every log
                self._interp = module.Interpreter(**kwargs)
            dynamic = any(int(v) < 0 for d in self._interp.get_input_details()
                          for v in d.get("shape_signature", d["shape"]))
            if not dynamic:  # a dynamic model is allocated at its first call, for the shape fed
                with quiet_native_logs():
                    self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"LiteRT cannot load this model (truncated, corrupt or uses unsupported ops): "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
                                self.path) from None
        self.threads, self.xnnpack = threads, xnnpack
        self._in_details, self._out_details = self._io_details()
        self.inputs = [self._info(n, d) for n, d in self._in_details.items()]
        self.outputs = [self._info(n, d) for n, d in self._out_details.items()]
        raw = read_modnet_metadata(data, self.path)
        self.embedded_metadata = ArtifactMetadata.from_json(raw, self.path) if raw is not None else None
        self._allocated_shapes: dict[str, tuple[int, ...] | None] = {
            n: None if dynamic else tuple(int(v) for v in d["shape"]) for n, d in self._in_details.items()}

    # -- model I/O ------------------------------------------------------------------------------
    def _io_details(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """{name: tensor details} for inputs and outputs, named by the single signature when there is one."""
        ins = {d["name"]: d for d in self._interp.get_input_details()}
        outs = {d["name"]: d for d in self._interp.get_output_details()}
        try:
            signatures = self._interp.get_signature_list()
        except (AttributeError, ValueError, RuntimeError):
            signatures = {}
        if len(signatures) == 1:
            runner = self._interp.get_signature_runner(next(iter(signatures)))
            by_index_in = {d["index"]: d for d in ins.values()}
            by_index_out = {d["index"]: d for d in outs.values()}
            sig_in = {n: by_index_in[d["index"]] for n, d in runner.get_input_details().items()
                      if d["index"] in by_index_in}
            sig_out = {n: by_index_out[d["index"]] for n, d in runner.get_output_details().items()
                       if d["index"] in by_index_out}
            if len(sig_in) == len(ins) and len(sig_out) == len(outs):
                return sig_in, sig_out
        return ins, outs

    @staticmethod
    def _info(name: str, d: dict[str, Any]) -> TensorInfo:
        sig = d.get("shape_signature")
        dims = sig if sig is not None and len(sig) == len(d["shape"]) else d["shape"]
        shape = tuple(int(v) if int(v) >= 0 else None for v in dims)
        return TensorInfo(name, shape, np.dtype(d["dtype"]))

    @staticmethod
    def _qparams(d: dict[str, Any]) -> tuple[float, int] | None:
        """Per-tensor (scale, zero point) of a quantised tensor, None for a float one."""
        q = d.get("quantization_parameters") or {}
        scales, zeros = np.asarray(q.get("scales", [])), np.asarray(q.get("zero_points", []))
        if scales.size == 0:
            scale, zero = d.get("quantization", (0.0, 0))
            return (float(scale), int(zero)) if scale else None
        if scales.size != 1:
            return None
        return float(scales[0]), int(zeros[0]) if zeros.size else 0

    def quantization(self, name: str) -> tuple[float, int] | None:
        """(scale, zero point) of input or output ``name``; None when it is float."""
        details = self._in_details.get(name) or self._out_details.get(name)
        if details is None:
            raise FeedError(f"model has no tensor '{name}'", self.path)
        return self._qparams(details)

    def prepare_input(self, name: str, array: np.ndarray) -> np.ndarray:
        """Float32 data for input ``name`` -> the model's input type, quantised with the input's own params."""
        info = self._input(name)
        if np.issubdtype(info.dtype, np.floating):
            return array.astype(info.dtype, copy=False)
        q = self._qparams(self._in_details[name])
        if q is None:
            raise FeedError(f"input '{name}' is {info.dtype} without per-tensor quantisation parameters; "
                            "cannot convert float data to it", self.path)
        scale, zero = q
        limits = np.iinfo(info.dtype)
        quantised = np.rint(np.asarray(array, np.float32) / scale) + zero
        return np.clip(quantised, limits.min, limits.max).astype(info.dtype)

    def dequantize_output(self, name: str, array: np.ndarray) -> np.ndarray:
        """An output of the model as float32 real values (integer outputs dequantised with their own params)."""
        details = self._out_details.get(name)
        if details is None or not np.issubdtype(np.asarray(array).dtype, np.integer):
            return np.asarray(array).astype(np.float32, copy=False)
        q = self._qparams(details)
        if q is None:
            raise FeedError(f"output '{name}' is {array.dtype} without per-tensor quantisation parameters", self.path)
        scale, zero = q
        return ((array.astype(np.float32) - zero) * scale).astype(np.float32)

    # -- running ---------------------------------------------------------------------------------
    def _run_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        changed = {n: a.shape for n, a in feed.items() if tuple(a.shape) != self._allocated_shapes[n]}
        if changed:  # only dynamic-shape models get here
            self._resize({n: tuple(a.shape) for n, a in feed.items()})
        for name, arr in feed.items():
            self._interp.set_tensor(self._in_details[name]["index"], np.ascontiguousarray(arr))
        self._interp.invoke()
        return {name: self._interp.get_tensor(d["index"]).copy() for name, d in self._out_details.items()}

    def _resize(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Re-plan a dynamic model for new input shapes.  XNNPACK cannot always re-plan a graph it has
        already prepared, so a failure is retried once on a fresh interpreter before it is reported."""
        fresh = all(v is None for v in self._allocated_shapes.values())
        for attempt in ("current", "fresh"):
            if attempt == "fresh":
                if fresh:
                    break
                with quiet_native_logs():
                    self._interp = self._module.Interpreter(**self._kwargs)
            try:
                for name, shape in shapes.items():
                    self._interp.resize_tensor_input(self._in_details[name]["index"], list(shape), strict=True)
                with quiet_native_logs():
                    self._interp.allocate_tensors()
                self._allocated_shapes.update(shapes)
                return
            except (ValueError, RuntimeError) as exc:
                error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self._allocated_shapes = {n: None for n in self._allocated_shapes}
        raise FeedError(f"LiteRT cannot run this model at input shape(s) {shapes} (the model may fix its "
                        f"shape internally): {error}", self.path)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(interpreter=self.interpreter_name, threads=self.threads, xnnpack=self.xnnpack)
        for t in out["inputs"] + out["outputs"]:
            q = self.quantization(t["name"])
            if q is not None:
                t["quantization"] = {"scale": q[0], "zero_point": q[1]}
        return out

    def close(self) -> None:
        self._interp = None
