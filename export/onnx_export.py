"""PyTorch checkpoint -> ONNX (opset >= 17), FP32 or FP16, dynamic or static shape, with metadata inside.

Uses PyTorch's TorchScript-based exporter: for this convolutional network it produces a plain, fully
static-op graph (Conv/Resize/InstanceNormalization...) that ONNX Runtime, TensorRT and the mobile
converters all accept, and it needs no extra dependency.  FP16 is exported by tracing the network in
half precision, so the graph computes what ``model.half()`` computes; ``keep_io_types`` adds casts so
callers still pass and receive float32.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from modnet_edge.core import ArtifactMetadata, METADATA_KEY, atomic_output, tool_versions
from modnet_edge.core.errors import ConfigError
from modnet_edge.model.checkpoint import Checkpoint, build_from_checkpoint

# traced and simplified graphs of this process, by weights and export settings (metadata is added after)
_GRAPH_MEMO: dict[tuple[Any, ...], bytes] = {}
DYNAMIC_AXES = {"input": {0: "batch", 2: "height", 3: "width"}, "matte": {0: "batch", 2: "height", 3: "width"}}


class _ExportWrapper(torch.nn.Module):
    """Matte-only forward; optionally float32 in/out around a half-precision network."""

    def __init__(self, net: torch.nn.Module, cast_io: bool) -> None:
        super().__init__()
        self.net, self.cast_io = net, cast_io

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cast_io:
            return self.net(x.half(), inference=True).float()
        return self.net(x, inference=True)


def check_onnx_options(opset: Any, batch: Any) -> None:
    """Opset within what both we and the installed PyTorch exporter support; batch a positive size."""
    from torch.onnx import _constants

    top = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET)
    if not isinstance(opset, int) or isinstance(opset, bool) or not 17 <= opset <= top:
        raise ConfigError(f"opset must be an integer from 17 (InstanceNormalization/Resize semantics we rely on) "
                          f"to {top} (the newest this PyTorch exports), got {opset!r}")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise ConfigError(f"batch must be a positive integer (or omitted: dynamic), got {batch!r}")


def export_onnx(checkpoint: Checkpoint, output: str | Path, precision: str = "fp32", *, opset: int = 17,
                static_shape: tuple[int, int] | None = None, batch: int | None = None, simplify: bool = True,
                keep_io_types: bool = False, fp32_nodes: str | Sequence[str] = (), **unknown: Any) -> Path:
    """Export ``checkpoint`` to ``output``; returns the path.  Writes ``output`` + ``.manifest.json``.

    ``static_shape``: (H, W) multiples of 32 for a fixed-shape model (batch 1 unless ``batch``), else
    batch/height/width are dynamic.  ``keep_io_types``: fp16 model with float32 input/output.
    ``fp32_nodes`` (fp16 only): FP32 islands, by regexes on node names or module selectors
    (``module:lr_branch.conv_lr16x``), see :func:`.onnx_mixed_precision.select_nodes`.
    ``precision="int8"`` (needs ``calibration=``) is delegated to :mod:`.onnx_int8`.
    """
    if precision == "int8":
        from modnet_edge.export.onnx_int8 import export_onnx_int8

        return export_onnx_int8(checkpoint, output, precision, opset=opset, static_shape=static_shape,
                                batch=batch, **unknown)
    if unknown:
        raise ConfigError(f"unknown ONNX export option(s): {sorted(unknown)}")
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"ONNX export precision must be fp32 or fp16 (int8 comes from calibration), "
                          f"not {precision!r}")
    check_onnx_options(opset, batch)
    islands = [fp32_nodes] if isinstance(fp32_nodes, str) else list(fp32_nodes)
    if islands and precision != "fp16":
        raise ConfigError("fp32_nodes only applies to fp16 (an fp32 export computes in FP32 already)")
    spec = checkpoint.preprocessing.with_fixed_size(static_shape)  # validates multiples of 32
    output = Path(output)
    net = build_from_checkpoint(checkpoint)
    if precision == "fp16":
        net = net.half()
    in_dtype = torch.float32 if (precision == "fp32" or keep_io_types) else torch.float16
    h, w = static_shape or (64, 64)
    dummy = torch.zeros(batch or 1, 3, h, w, dtype=in_dtype)
    wrapper = _ExportWrapper(net, cast_io=precision == "fp16" and keep_io_types).eval()

    import json

    import onnx

    key = (checkpoint.source_info()["weights_sha256"], json.dumps(checkpoint.model_config.to_dict(), sort_keys=True),
           precision, opset, tuple(static_shape) if static_shape else None, batch, simplify, keep_io_types)
    with atomic_output(output, manifest=lambda: meta) as tmp:
        if key in _GRAPH_MEMO:  # the same graph again (a precision search tries many island sets on one)
            model = onnx.load_from_string(_GRAPH_MEMO[key])
        else:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # legacy-exporter deprecation and instance_norm train-mode notes
                torch.onnx.export(wrapper, (dummy,), str(tmp), dynamo=False, opset_version=opset,
                                  input_names=["input"], output_names=["matte"], do_constant_folding=True,
                                  dynamic_axes=None if static_shape else _dynamic_axes(batch))
            model = onnx.load(str(tmp))
            if simplify:
                model = _simplify(model)
            if len(_GRAPH_MEMO) >= 4:
                _GRAPH_MEMO.pop(next(iter(_GRAPH_MEMO)))
            _GRAPH_MEMO[key] = model.SerializeToString()
        extra: dict[str, Any] = {}
        if islands:
            from modnet_edge.export.onnx_mixed_precision import keep_matching_fp32

            extra["fp32_nodes"] = {"patterns": islands, "nodes": keep_matching_fp32(
                model, islands, checkpoint.model_config, fp32_twin_weights(checkpoint, opset, static_shape=static_shape, batch=batch))}
        input_shape: list[int | str] = ([batch or 1, 3, h, w] if static_shape
                                        else [batch or "batch", 3, "height", "width"])
        meta = ArtifactMetadata(
            format="onnx", precision=precision, preprocessing=spec, model=checkpoint.model_config.to_dict(),
            input_shape=input_shape, source=checkpoint.source_info(),
            tools=tool_versions("torch", "onnx", "onnxslim"),
            extra={"opset": opset, "io_dtype": "float32" if in_dtype == torch.float32 else "float16", **extra})
        embed_metadata(model, meta)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
    return output


def fp32_twin_weights(checkpoint: Checkpoint, opset: int, **shape_args: Any) -> dict[str, dict[int, Any]]:
    """The FP32 weights of every node, from an FP32 export of the same network (for FP32 islands in
    an FP16 graph, which would otherwise compute with FP16-rounded weights)."""
    import json
    import tempfile

    import onnx

    from modnet_edge.export.onnx_mixed_precision import twin_weights

    key = (checkpoint.source_info()["weights_sha256"], json.dumps(checkpoint.model_config.to_dict(), sort_keys=True),
           opset, json.dumps(shape_args, sort_keys=True, default=str))
    if key not in _TWIN_MEMO:  # a precision search exports one network with many island sets
        with tempfile.TemporaryDirectory(prefix="modnet-fp32-twin-") as work:
            path = export_onnx(checkpoint, Path(work) / "twin.onnx", "fp32", opset=opset, **shape_args)
            if len(_TWIN_MEMO) >= 2:
                _TWIN_MEMO.pop(next(iter(_TWIN_MEMO)))
            _TWIN_MEMO[key] = twin_weights(onnx.load(str(path)))
    return _TWIN_MEMO[key]


_TWIN_MEMO: dict[tuple[Any, ...], dict[str, dict[int, Any]]] = {}


def _dynamic_axes(batch: int | None) -> dict[str, dict[int, str]]:
    if batch is None:
        return DYNAMIC_AXES
    return {k: {a: n for a, n in v.items() if a != 0} for k, v in DYNAMIC_AXES.items()}


def _simplify(model: Any) -> Any:
    """Fold constants and drop redundant nodes with onnxslim (skipped, with a warning, when absent)."""
    try:
        import onnxslim
    except ImportError:
        warnings.warn("onnxslim is not installed; exporting an unsimplified graph", stacklevel=3)
        return model
    with contextlib.redirect_stdout(io.StringIO()):
        return onnxslim.slim(model)


def embed_metadata(model: Any, meta: ArtifactMetadata) -> None:
    """Store the metadata JSON in the ONNX ``metadata_props`` (replacing any previous entry)."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    model.producer_name = "modnet-edge"
    model.doc_string = (f"MODNet portrait matting, {meta.precision}; input 'input' (N,3,H,W) RGB in [-1,1], "
                        "H and W multiples of 32; output 'matte' (N,1,H,W) alpha in [0,1]")
