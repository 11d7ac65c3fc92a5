"""PyTorch backend: official or modnet-edge checkpoints (the parity reference) and torch.export programs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from modnet_edge.core import ArtifactMetadata, tool_versions
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError
from modnet_edge.core.limits import check_threads
from modnet_edge.model.checkpoint import Checkpoint, build_from_checkpoint, read_checkpoint

from modnet_edge.runtimes.base import Backend, TensorInfo

_TORCH_TO_NUMPY = {torch.float32: np.dtype(np.float32), torch.float16: np.dtype(np.float16),
                   torch.int8: np.dtype(np.int8), torch.uint8: np.dtype(np.uint8),
                   torch.int32: np.dtype(np.int32), torch.int64: np.dtype(np.int64)}


def _in_memory_name(ckpt: Checkpoint) -> str:
    """What to call a checkpoint that is no file: built-in weights by their name, anything else plainly."""
    weights = (ckpt.provenance or {}).get("weights")
    return f"<built-in weights {weights}>" if ckpt.kind == "builtin" and weights else "<in-memory checkpoint>"


class TorchBackend(Backend):
    """Runs a MODNet checkpoint (input ``input`` -> output ``matte``) or any ``.pt2`` exported program.

    ``device``: "cpu" or "cuda[:N]"; ``precision``: "fp32" or "fp16" (fp16 is CUDA-only in practice);
    ``threads``: intra-op CPU threads (process-wide in PyTorch); ``channels_last``: NHWC memory format.
    """

    format = "pytorch"
    runtime = "torch"

    def __init__(self, path: str | Path | Checkpoint, device: str = "cpu", precision: str = "fp32",
                 threads: int | None = None, channels_last: bool = False) -> None:
        ckpt = path if isinstance(path, Checkpoint) else None
        super().__init__((ckpt.path or _in_memory_name(ckpt)) if ckpt else path)
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"PyTorch backend precision must be fp32 or fp16, not {precision!r}")
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            kind = None
        if kind not in ("cpu", "cuda"):
            raise ConfigError(f"device must be cpu or cuda[:N], not {device!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device {device!r} requested but CUDA is not available to PyTorch")
        check_threads(threads, self.path)
        # intra-op threads are process-wide in PyTorch: set for this backend's life, given back on close()
        self._saved_threads: int | None = None
        if threads:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(int(threads))
        self.device = device
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if ckpt is None and self.path.suffix == ".pt2":
            self._module, self._names = self._open_exported_program()
        else:
            self._module, self._names = self._open_checkpoint(ckpt or read_checkpoint(self.path), precision)
        self._module = self._module.to(device)

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, **options: Any) -> TorchBackend:
        """A backend over an already-read checkpoint (e.g. the parity reference)."""
        return cls(checkpoint, **options)

    def _open_checkpoint(self, ckpt: Checkpoint, precision: str) -> tuple[torch.nn.Module, tuple[list[str], list[str]]]:
        model = build_from_checkpoint(ckpt).to(dtype=self._dtype, memory_format=self._memory_format)
        spec = ckpt.preprocessing
        self.inputs = [TensorInfo("input", ("batch", 3, "height", "width"), _TORCH_TO_NUMPY[self._dtype])]
        self.outputs = [TensorInfo("matte", ("batch", 1, "height", "width"), _TORCH_TO_NUMPY[self._dtype])]
        self.embedded_metadata = ArtifactMetadata(
            format="pytorch", precision=precision, preprocessing=spec, model=ckpt.model_config.to_dict(),
            source=ckpt.source_info(), tools=tool_versions("torch"))
        return model, (["input"], ["matte"])

    def _open_exported_program(self) -> tuple[torch.nn.Module, tuple[list[str], list[str]]]:
        try:
            program = torch.export.load(str(self.path))
        except Exception as exc:  # torch raises many types for a bad archive
            raise ArtifactError(f"not a readable torch.export program: {exc}", self.path) from None
        module = program.module()
        in_names, self.inputs = [], []
        for spec in program.graph_signature.input_specs:
            if spec.kind.name != "USER_INPUT":
                continue
            node = next(n for n in program.graph.nodes if n.name == spec.arg.name)
            val = node.meta.get("val")
            shape = tuple(int(d) if isinstance(d, int) else str(d) for d in val.shape)
            in_names.append(spec.arg.name)
            self.inputs.append(TensorInfo(spec.arg.name, shape, _TORCH_TO_NUMPY.get(val.dtype, np.dtype(np.float32))))
        out_names = [f"output_{i}" for i in range(len(program.graph_signature.output_specs))]
        self.outputs = [TensorInfo(n, (), np.dtype(np.float32)) for n in out_names]
        return module, (in_names, out_names)

    @torch.inference_mode()
    def _run_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        in_names, out_names = self._names
        args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device) for n in in_names]
        if self._memory_format is torch.channels_last:
            args = [a.contiguous(memory_format=torch.channels_last) if a.ndim == 4 else a for a in args]
        out: Any = self._module(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: t.detach().cpu().numpy() for n, t in zip(out_names, outs)}

    def close(self) -> None:
        self._module = None  # type: ignore[assignment]
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None
