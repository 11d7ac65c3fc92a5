"""ONNX Runtime backend, with selectable execution providers (CPU, CUDA, TensorRT EP, CoreML EP)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modnet_edge.core import METADATA_KEY, ArtifactMetadata
from modnet_edge.core.console import quiet_native_logs, quiet_onnxruntime
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError, MetadataError
from modnet_edge.core.limits import check_threads

from modnet_edge.runtimes.base import Backend, TensorInfo

# Short names users type -> ONNX Runtime execution provider names.
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider", "coreml": "CoreMLExecutionProvider"}
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
              "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


class OnnxRuntimeBackend(Backend):
    """Runs any ONNX model.  ``providers``: names from :data:`PROVIDERS` or full EP names, in order of
    preference; each must be available in the installed onnxruntime (a clear error says which are).
    ``threads``: intra-op threads (None: ONNX Runtime's default)."""

    format = "onnx"
    runtime = "onnxruntime"

    def __init__(self, path: str | Path, providers: str | list[str] | None = None, threads: int | None = None,
                 optimization: str = "all") -> None:
        super().__init__(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError('onnxruntime is not installed: pip install -c constraints.txt '
                                          '"modnet-edge[onnxruntime]"') from None
        quiet_onnxruntime()  # its coloured warnings would reach logs and pipes
        if self.path.is_dir():
            raise ArtifactError("is a folder, not an ONNX file", self.path)
        if not self.path.is_file():
            raise ArtifactError("ONNX file does not exist", self.path)
        if self.path.stat().st_size == 0:
            raise ArtifactError("ONNX file is empty (0 bytes)", self.path)
        levels = ("none", "basic", "extended", "all")
        if optimization not in levels:
            raise ConfigError(f"optimization must be one of {list(levels)}, not {optimization!r}", self.path)
        check_threads(threads, self.path)
        wanted = [providers] if isinstance(providers, str) else list(providers or ["cpu"])
        names = [PROVIDERS.get(p.lower(), p) for p in wanted]
        available = ort.get_available_providers()
        missing = [n for n in names if n not in available]
        if missing:
            raise BackendUnavailableError(f"execution provider(s) {missing} not available in this onnxruntime "
                                          f"build (available: {available})")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings come as colour codes on fd 2
        if threads:
            options.intra_op_num_threads = int(threads)
        options.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
        try:
            with quiet_native_logs():  # its warnings reach stderr again, without their colour codes
                self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=names)
        except Exception as exc:  # InvalidProtobuf, Fail, NotImplemented ... all mean "bad model file"
            raise ArtifactError(f"ONNX Runtime cannot load this model (truncated or invalid ONNX?): "
                                f"{str(exc).strip().splitlines()[0]}", self.path) from None
        self.providers = self._session.get_providers()
        self.device = "cuda" if self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        self.inputs = [self._info(a) for a in self._session.get_inputs()]
        self.outputs = [self._info(a) for a in self._session.get_outputs()]
        try:
            raw = self._session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        except UnicodeDecodeError:  # ONNX Runtime decodes every entry: a corrupted byte lands here
            raise MetadataError("the model's metadata is not valid UTF-8 (corrupted or tampered)", self.path) from None
        self.embedded_metadata = ArtifactMetadata.from_json(raw, self.path) if raw is not None else None

    @staticmethod
    def _info(arg) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
        return TensorInfo(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))

    def _run_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.outputs]
        return dict(zip(names, self._session.run(names, feed)))

    def close(self) -> None:
        self._session = None
