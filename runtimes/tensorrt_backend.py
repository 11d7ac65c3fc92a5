"""TensorRT backend: run a serialized engine on an NVIDIA GPU (TensorRT >= 10, ``execute_async_v3``).

GPU memory: input and output buffers are **PyTorch CUDA tensors** (torch is already a dependency, so
no cuda-python/pycuda is needed); their ``data_ptr()`` is handed to ``set_tensor_address``, the work is
enqueued on a dedicated ``torch.cuda.Stream`` and the host waits only when copying the outputs back.
Buffers are allocated once per input shape and reused.  With ``cuda_graph=True`` the enqueue is
captured once per shape into a CUDA graph and replayed (fewer launches: it matters at batch 1).

Before TensorRT sees the plan, the engine's header is checked against this machine (TensorRT version,
GPU model and compute capability, see :func:`~modnet_edge.core.containers.engine_file.check_compatible`)
so a foreign engine fails with a clear message.  Raw plans (``trtexec --saveEngine``) are accepted
without that check; they carry no metadata, so ``load`` needs ``preprocessing="modnet-reference"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError, FeedError
from modnet_edge.core.tools import gpu_environment, import_tensorrt, make_logger
from modnet_edge.core.containers.engine_file import check_compatible, read_engine_file

from modnet_edge.runtimes.base import Backend, TensorInfo

MAX_CACHED_SHAPES = 8  # distinct input shapes whose buffers (and graphs) are kept on the GPU


@dataclass
class _Bound:
    """GPU buffers for one set of input shapes (and the CUDA graph captured over them, if any)."""

    inputs: dict[str, Any]
    outputs: dict[str, Any]
    graph: Any = None


def _device_index(device: int | str) -> int:
    if isinstance(device, int):
        return device
    text = str(device)
    if text == "cuda":
        return 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    raise ConfigError(f"TensorRT runs on a CUDA device: use an index or 'cuda:N', not {device!r}")


class TensorRTBackend(Backend):
    """Runs a TensorRT engine (``.engine``/``.plan``, with or without the modnet-edge header).

    ``device``: GPU index or ``"cuda:N"``; ``cuda_graph``: capture and replay the enqueue;
    ``allow_other_gpu``: accept an engine built on another GPU model of the same compute capability
    (TensorRT does not support it; a warning is kept in ``self.warnings``).
    """

    format = "tensorrt"
    runtime = "tensorrt"

    def __init__(self, path: str | Path, device: int | str = 0, cuda_graph: bool = False,
                 allow_other_gpu: bool = False, verbose: bool = False) -> None:
        super().__init__(path)
        meta, plan = read_engine_file(self.path)
        trt = import_tensorrt()
        import torch

        index = _device_index(device)
        env = gpu_environment(index)
        info = (meta.extra.get("tensorrt") or {}) if meta is not None else {}
        self.warnings: list[str] = (
            check_compatible(info, env, self.path, allow_other_gpu) if meta is not None
            else ["raw TensorRT plan without a modnet-edge header: build environment unchecked"])
        self.embedded_metadata = meta
        self.device = f"cuda:{index}"
        self.cuda_graph = bool(cuda_graph)
        self._torch, self._trt = torch, trt
        torch.cuda.set_device(index)
        self._logger = make_logger(trt, verbose)
        self._runtime = trt.Runtime(self._logger)
        if info.get("version_compatible"):
            self._runtime.engine_host_code_allowed = True  # version-compatible plans embed a lean runtime
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise ArtifactError("TensorRT could not deserialize this engine (" + ("; ".join(self._logger.errors)
                                or "corrupt, or built by another TensorRT version or for another GPU") + ")",
                                self.path)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailableError("TensorRT could not create an execution context (out of GPU memory?)",
                                          self.path)
        self._stream = torch.cuda.Stream(device=self.device)
        self._profiles: dict[str, tuple[tuple[int, ...], ...]] = {}
        self.inputs, self.outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            tensor = TensorInfo(name, tuple(int(d) if d >= 0 else None for d in self._engine.get_tensor_shape(name)),
                                self._numpy_dtype(name))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(tensor)
                self._profiles[name] = self._profile_of(name, tensor.shape)
            else:
                self.outputs.append(tensor)
        self._bound: dict[tuple, _Bound] = {}

    # -- helpers ----------------------------------------------------------------------------------
    def _numpy_dtype(self, name: str) -> np.dtype:
        trt_dtype = self._engine.get_tensor_dtype(name)
        try:
            return np.dtype(self._trt.nptype(trt_dtype))
        except (TypeError, KeyError):
            raise ArtifactError(f"engine tensor {name!r} has type {trt_dtype}, which this backend cannot "
                                "exchange with NumPy", self.path) from None

    def _profile_of(self, name: str, shape: tuple[int | None, ...]) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) of an input: from optimisation profile 0, or the static shape itself."""
        try:
            shapes = self._engine.get_tensor_profile_shape(name, 0)
            return tuple(tuple(int(d) for d in s) for s in shapes)
        except (RuntimeError, TypeError, ValueError):
            if any(d is None for d in shape):
                raise ArtifactError(f"dynamic input {name!r} has no optimisation profile", self.path) from None
            static = tuple(int(d) for d in shape)  # type: ignore[arg-type]
            return static, static, static

    def _torch_dtype(self, dtype: np.dtype) -> Any:
        t = self._torch
        table = {np.dtype(np.float32): t.float32, np.dtype(np.float16): t.float16, np.dtype(np.int8): t.int8,
                 np.dtype(np.uint8): t.uint8, np.dtype(np.int32): t.int32, np.dtype(np.int64): t.int64,
                 np.dtype(np.bool_): t.bool}
        return table[np.dtype(dtype)]

    def _check_profile(self, name: str, shape: tuple[int, ...]) -> None:
        lo, _opt, hi = self._profiles[name]
        if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            raise FeedError(f"input '{name}' shape {list(shape)} is outside the engine's optimisation profile "
                            f"min {list(lo)} / max {list(hi)}; rebuild the engine with a profile covering it",
                            self.path)

    def _bind_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        for name, shape in shapes.items():
            if not self._context.set_input_shape(name, shape):
                raise FeedError(f"TensorRT refused input shape {list(shape)} for '{name}'", self.path)

    def _allocate(self, shapes: dict[str, tuple[int, ...]]) -> _Bound:
        torch = self._torch
        self._bind_shapes(shapes)
        ins = {n: torch.empty(s, dtype=self._torch_dtype(self._input(n).dtype), device=self.device)
               for n, s in shapes.items()}
        outs = {}
        for info in self.outputs:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(info.name))
            if any(d < 0 for d in shape):
                raise ArtifactError(f"output '{info.name}' has a data-dependent shape {list(shape)}; not supported",
                                    self.path)
            outs[info.name] = torch.empty(shape, dtype=self._torch_dtype(info.dtype), device=self.device)
        if len(self._bound) >= MAX_CACHED_SHAPES:
            self._bound.pop(next(iter(self._bound)))  # oldest shape goes; its memory returns to torch's pool
        return _Bound(ins, outs)

    def _set_addresses(self, bound: _Bound) -> None:
        for name, tensor in {**bound.inputs, **bound.outputs}.items():
            self._context.set_tensor_address(name, tensor.data_ptr())

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise ArtifactError("TensorRT execution failed: " + ("; ".join(self._logger.errors[-3:]) or "see log"),
                                self.path)

    def _capture(self, bound: _Bound) -> Any:
        """Capture one enqueue into a CUDA graph.  TensorRT needs one ordinary enqueue after a shape
        change before capture (it finalises shape-dependent state then), so that runs first."""
        torch = self._torch
        self._enqueue()
        self._stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self._stream):
                self._enqueue()
        except RuntimeError as exc:
            raise BackendUnavailableError(f"CUDA graph capture failed for this engine ({exc}); open it with "
                                          "cuda_graph=False", self.path) from None
        return graph

    # -- the Backend contract ---------------------------------------------------------------------
    def _run_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        shapes = {i.name: tuple(int(d) for d in feed[i.name].shape) for i in self.inputs}
        for name, shape in shapes.items():
            self._check_profile(name, shape)
        key = tuple(sorted(shapes.items()))
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = self._allocate(shapes)
        else:
            self._bind_shapes(shapes)
        with torch.cuda.stream(self._stream):
            for name, tensor in bound.inputs.items():
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(feed[name])))
            self._set_addresses(bound)
            if self.cuda_graph:
                if bound.graph is None:
                    bound.graph = self._capture(bound)
                bound.graph.replay()
            else:
                self._enqueue()
            host = {name: t.to("cpu") for name, t in bound.outputs.items()}
        self._stream.synchronize()
        return {name: t.numpy() for name, t in host.items()}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(cuda_graph=self.cuda_graph, warnings=list(self.warnings),
                 profiles={n: [list(s) for s in p] for n, p in self._profiles.items()})
        return d

    def close(self) -> None:
        self._bound.clear()
        self._context = None
        self._engine = None
        self._runtime = None
