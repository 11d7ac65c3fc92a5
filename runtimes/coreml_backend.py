"""Core ML backends: what both share (features, metadata, image inputs) and the real MLModel runtime.

An .mlpackage's input is either a tensor (already normalised to [-1, 1]) or an *image* whose [-1, 1]
normalisation is baked into the program (scale/bias), so an iOS app can hand over a camera pixel
buffer.  Behind the predictor both look the same: for an image input, :meth:`prepare_input` maps the
predictor's normalised float32 array back to pixel values by undoing the artifact's own mean/std.  Core
ML itself takes 8-bit pictures, so the real backend rounds them to uint8, the quantisation an app's
pixel buffer has.  The reference execution by default hands the program the unrounded pixel values
(Core ML turns the picture into exactly such a float tensor before the program's scale/bias), so its
parity isolates the converted model; ``round_pixels=True`` reproduces the device's uint8 input instead.

:class:`CoreMLBackend` runs the model with Core ML itself and therefore needs macOS; elsewhere it stops
with a clear error pointing to ``runtime="reference"`` (:mod:`modnet_edge.runtimes.coreml_reference`).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import METADATA_KEY, ArtifactMetadata
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError, FeedError

from modnet_edge.runtimes.base import Backend, TensorInfo
from modnet_edge.core.tools import import_coremltools
from modnet_edge.runtimes.coreml_program import Feature, MLProgram

# Short names users type -> coremltools ComputeUnit members.
COMPUTE_UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}


class CoreMLBackendBase(Backend):
    """Shared by the real and the reference Core ML backends: reads the package's description."""

    format = "coreml"
    round_pixels = True  # image inputs are fed as uint8 pictures

    def _describe(self, program: MLProgram) -> None:
        self.program_inputs: dict[str, Feature] = {f.name: f for f in program.inputs}
        self.program_outputs: dict[str, Feature] = {f.name: f for f in program.outputs}
        self.inputs = [TensorInfo(f.name, f.shape, f.dtype) for f in program.inputs]
        self.outputs = [TensorInfo(f.name, f.shape, f.dtype) for f in program.outputs]
        raw = program.user_metadata.get(METADATA_KEY)
        self.embedded_metadata = ArtifactMetadata.from_json(raw, self.path) if raw is not None else None

    def prepare_input(self, name: str, array: np.ndarray) -> np.ndarray:
        """Tensor inputs: the array in the model's dtype.  Image inputs: the normalised array mapped
        back to pixel values 0..255 with the artifact's own mean/std, as uint8 when ``round_pixels``
        (what a pixel buffer holds), else as float32 (what the program receives from Core ML)."""
        feature = self.program_inputs.get(name)
        if feature is None or feature.kind != "image":
            return super().prepare_input(name, array)
        if self.embedded_metadata is None:
            raise FeedError(f"input '{name}' is an image and the model carries no modnet-edge metadata to "
                            "undo the normalisation with; feed uint8 RGB pixels (1, 3, H, W) directly", self.path)
        spec = self.embedded_metadata.preprocessing
        std = np.asarray(spec.std, np.float32) * 255.0
        mean = np.asarray(spec.mean, np.float32) * 255.0
        axis_shape = (1, 3, 1, 1) if spec.layout == "NCHW" else (1, 1, 1, 3)
        pixels = array.astype(np.float32) * std.reshape(axis_shape) + mean.reshape(axis_shape)
        if spec.layout == "NHWC":
            pixels = pixels.transpose(0, 3, 1, 2)
        if not self.round_pixels:
            return np.ascontiguousarray(pixels, dtype=np.float32)
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)

    def _check_shapes(self, feed: dict[str, np.ndarray]) -> None:
        """Flexible inputs: the shape must be enumerated / in range and, for MODNet, a multiple of the
        artifact's size multiple (the network needs it; Core ML's range cannot express it)."""
        multiple = self.embedded_metadata.preprocessing.multiple if self.embedded_metadata else None
        for name, arr in feed.items():
            feature = self.program_inputs[name]
            problem = feature.check_shape(tuple(arr.shape))
            if problem is None and multiple and feature.ranges and any(
                    d % multiple for d in arr.shape[2:4]):
                problem = f"height and width must be multiples of {multiple}, got {tuple(arr.shape[2:4])}"
            if problem:
                raise FeedError(f"input '{name}': {problem}", self.path)


class CoreMLBackend(CoreMLBackendBase):
    """Runs an .mlpackage with Core ML (macOS only).

    ``compute_units``: "all" (default), "cpu_only", "cpu_and_gpu" or "cpu_and_ne" (Neural Engine).
    """

    runtime = "coreml"

    def __init__(self, path: str | Path, compute_units: str = "all") -> None:
        super().__init__(path)
        key = str(compute_units).lower()
        if key not in COMPUTE_UNITS:
            raise ConfigError(f"compute_units must be one of {sorted(COMPUTE_UNITS)}, not {compute_units!r}")
        if sys.platform != "darwin":
            raise BackendUnavailableError(
                f"Core ML executes models only on macOS (this system is {platform.system()}); to run this "
                f".mlpackage here use the NumPy reference execution of its ML Program: "
                f"modnet_edge.load(path, runtime='reference') or --runtime reference")
        program = MLProgram.read(self.path, decode_weights=False)
        self._describe(program)
        ct = import_coremltools()
        try:
            self._model = ct.models.MLModel(str(self.path), compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[key]))
        except Exception as exc:  # compilation failures, missing framework
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"Core ML cannot load this model: {reason}", self.path) from None
        if getattr(self._model, "__proxy__", None) is None:
            raise BackendUnavailableError("coremltools could not load the Core ML framework on this Mac "
                                          "(libcoremlpython missing?); reinstall coremltools")
        self.compute_units = key
        self.device = f"coreml:{key}"

    def _run_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_shapes(feed)
        from PIL import Image

        inputs: dict[str, Any] = {}
        for name, arr in feed.items():
            feature = self.program_inputs[name]
            if feature.kind == "image":
                # an RGB picture; Core ML converts it to the model's colour space (RGB or BGR) itself
                inputs[name] = Image.fromarray(np.ascontiguousarray(arr[0].transpose(1, 2, 0)))
            else:
                inputs[name] = arr
        result = self._model.predict(inputs)
        return {o.name: np.asarray(result[o.name]) for o in self.outputs}

    def close(self) -> None:
        self._model = None
