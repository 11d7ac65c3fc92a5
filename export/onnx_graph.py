"""The traced ONNX graph of a checkpoint (FP32 or FP16, dynamic or static shape), shared by every
ONNX-based converter: plain ONNX (:mod:`.onnx_export`), INT8 (:mod:`.onnx_int8`) and TensorRT-ready
ONNX (:mod:`.tensorrt_onnx`).

Uses PyTorch's TorchScript-based exporter: for this convolutional network it produces a plain, fully
static-op graph (Conv/Resize/InstanceNormalization...) that ONNX Runtime, TensorRT and the mobile
converters all accept, and it needs no extra dependency.  FP16 is traced in half precision, so the
graph computes what ``model.half()`` computes; ``keep_io_types`` casts so callers still pass and
receive float32.  Graphs are memoised in-process: a precision search and the INT8 / TensorRT-ready
converters build the same graph many times.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from modnet_edge.core.limits import check_batch
from modnet_edge.core.errors import ConfigError
from modnet_edge.model.checkpoint import Checkpoint, build_from_checkpoint

# traced and simplified graphs of this process, by weights and export settings (metadata is added after)
_GRAPH_MEMO: dict[tuple[Any, ...], bytes] = {}
DYNAMIC_AXES = {"input": {0: "batch", 2: "height", 3: "width"}, "matte": {0: "batch", 2: "height", 3: "width"}}


class _ExportWrapper(torch.nn.Module):
    """Optionally float32 in/out around a half-precision network, or uint8 pixels cast to float for an
    8-bit-input network.  Always traced (even without casts) so node names keep the ``/net/...`` module
    paths that keep_float selectors and the doctor read."""

    def __init__(self, net: torch.nn.Module, cast_io: bool) -> None:
        super().__init__()
        self.net, self.cast_io = net, cast_io

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return self.net(x.float())
        if self.cast_io:
            return self.net(x.half()).float()
        return self.net(x)


def check_onnx_options(opset: Any, batch: Any) -> None:
    """Opset within what both we and the installed PyTorch exporter support; batch a positive size."""
    from torch.onnx import _constants

    top = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET)
    if not isinstance(opset, int) or isinstance(opset, bool) or not 17 <= opset <= top:
        raise ConfigError(f"opset must be an integer from 17 (InstanceNormalization/Resize semantics we rely on) "
                          f"to {top} (the newest this PyTorch exports), got {opset!r}")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise ConfigError(f"batch must be a positive integer (or omitted: dynamic), got {batch!r}")


def float_graph(checkpoint: Checkpoint, precision: str = "fp32", *, opset: int = 17,
                static_shape: tuple[int, int] | None = None, batch: int | None = None, simplify: bool = True,
                keep_io_types: bool = False, pixel_input: bool = False) -> Any:
    """The traced (and simplified) FP32 or FP16 graph of ``checkpoint`` as a fresh ``onnx.ModelProto``,
    without metadata; memoised, since a precision search and the INT8 / TensorRT-ready exporters build
    the same graph many times.  ``pixel_input`` (FP32 only): the graph reads uint8 pixels, the
    normalisation folded into it (:class:`~modnet_edge.model.pixel_input.PixelInputMODNet`)."""
    import onnx

    check_onnx_options(opset, batch)
    if pixel_input and precision != "fp32":
        raise ConfigError(f"an 8-bit-input graph is FP32 (quantised afterwards), not {precision}")
    key = (checkpoint.source_info()["weights_sha256"], json.dumps(checkpoint.model_config.to_dict(), sort_keys=True),
           precision, opset, tuple(static_shape) if static_shape else None, batch, simplify, keep_io_types,
           bool(pixel_input))
    if key not in _GRAPH_MEMO:
        net = build_from_checkpoint(checkpoint)
        if precision == "fp16":
            net = net.half()
        in_dtype = torch.float32 if (precision == "fp32" or keep_io_types) else torch.float16
        if pixel_input:
            from modnet_edge.model.pixel_input import PixelInputMODNet

            spec = checkpoint.preprocessing
            net, in_dtype = PixelInputMODNet(net, spec.mean, spec.std), torch.uint8
        h, w = static_shape or (64, 64)
        check_batch(batch or 1, h, w)  # before the dummy input is allocated
        # PyTorch has no fast FP16 convolution on CPU: tracing an FP16 network at 512x512 took 78 s (AMD
        # EPYC, AVX2), at 64x64 under a second.  A static FP16 graph is therefore traced with dynamic
        # height and width at 64x64 and given its static shape afterwards, where onnxslim folds the shape
        # arithmetic into the same constants a static trace has.
        fix_later = precision == "fp16" and static_shape is not None and simplify
        if fix_later:
            h, w = 64, 64
        dummy = torch.zeros(batch or 1, 3, h, w, dtype=in_dtype)
        wrapper = _ExportWrapper(net, cast_io=precision == "fp16" and keep_io_types).eval()
        with tempfile.TemporaryDirectory(prefix="modnet-onnx-") as work:
            traced = Path(work) / "traced.onnx"
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # legacy-exporter deprecation and instance_norm train-mode notes
                torch.onnx.export(wrapper, (dummy,), str(traced), dynamo=False, opset_version=opset,
                                  input_names=["input"], output_names=["matte"], do_constant_folding=True,
                                  dynamic_axes=_dynamic_axes(batch or 1) if fix_later else
                                  None if static_shape else _dynamic_axes(batch))
            model = onnx.load(str(traced))
        if fix_later:
            _set_static_shape(model, batch or 1, *static_shape)
        if simplify:
            model = _simplify(model)
        if len(_GRAPH_MEMO) >= 4:
            _GRAPH_MEMO.pop(next(iter(_GRAPH_MEMO)))
        _GRAPH_MEMO[key] = model.SerializeToString()
    return onnx.load_from_string(_GRAPH_MEMO[key])


def fp32_twin_weights(checkpoint: Checkpoint, opset: int, **shape_args: Any) -> dict[str, dict[int, Any]]:
    """The FP32 weights of every node, from an FP32 export of the same network (for FP32 islands in
    an FP16 graph, which would otherwise compute with FP16-rounded weights)."""
    from modnet_edge.exporters.onnx_mixed_precision import twin_weights

    key = (checkpoint.source_info()["weights_sha256"], json.dumps(checkpoint.model_config.to_dict(), sort_keys=True),
           opset, json.dumps(shape_args, sort_keys=True, default=str))
    if key not in _TWIN_MEMO:  # a precision search exports one network with many island sets
        if len(_TWIN_MEMO) >= 2:
            _TWIN_MEMO.pop(next(iter(_TWIN_MEMO)))
        _TWIN_MEMO[key] = twin_weights(float_graph(checkpoint, "fp32", opset=opset, **shape_args))
    return _TWIN_MEMO[key]


_TWIN_MEMO: dict[tuple[Any, ...], dict[str, dict[int, Any]]] = {}


def _set_static_shape(model: Any, batch: int, height: int, width: int) -> None:
    """Give the graph's input and output (N, C, H, W) fixed dimensions, and drop the shapes inferred for
    intermediate values from the dynamic trace, so that simplification re-derives them as constants."""
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, (batch, dims[1].dim_value if len(dims) > 1 else 0, height, width)):
            if size:
                dim.ClearField("dim_param")
                dim.dim_value = size
    del model.graph.value_info[:]


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
