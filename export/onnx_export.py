"""The ONNX converter of the format table: FP32 and FP16 graphs (with optional FP32 islands) here,
INT8 variants through :mod:`.onnx_int8`.  The traced graph itself comes from :mod:`.onnx_graph`; the
skeleton (:mod:`.skeleton`) embeds the metadata and writes the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ConfigError
from modnet_edge.exporters.onnx_graph import float_graph, fp32_twin_weights
from modnet_edge.exporters.skeleton import Converted
from modnet_edge.model.checkpoint import Checkpoint


def convert_onnx(checkpoint: Checkpoint, precision: str, output: Path | None = None, *, opset: int = 17,
                 static_shape: tuple[int, int] | None = None, batch: int | None = None, simplify: bool = True,
                 keep_io_types: bool = False, keep_float: Sequence[str] = (), input_type: str = "float32",
                 **int8_options: Any) -> Converted:
    """The ONNX converter of the format table (options checked there).

    ``static_shape``: (H, W) multiples of 32 for a fixed-shape model (batch 1 unless ``batch``), else
    batch/height/width are dynamic.  ``keep_io_types``: fp16 model with float32 input/output.
    ``keep_float`` (fp16): FP32 islands, by regexes on node names or module selectors
    (``module:lr_branch.conv_lr16x``), see :func:`.onnx_mixed_precision.select_nodes`.
    ``input_type="uint8"`` (fp32, int8): the graph reads the 8-bit image as uint8, the normalisation
    folded into it exactly (:mod:`modnet_edge.model.pixel_input`).
    INT8 variants are quantised from the FP32 graph by :mod:`.onnx_int8`.
    """
    from modnet_edge.exporters.onnx_int8 import input_record, input_spec

    if precision in ("int8", "int8-a16"):
        from modnet_edge.exporters.onnx_int8 import convert_onnx_int8

        return convert_onnx_int8(checkpoint, precision, output, opset=opset, static_shape=static_shape, batch=batch,
                                 keep_float=keep_float, input_type=input_type, **int8_options)
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"the ONNX converter makes fp32, fp16, int8 and int8-a16, not {precision!r}")
    spec = input_spec(checkpoint.preprocessing.with_fixed_size(static_shape), input_type)  # validates multiples of 32
    model = float_graph(checkpoint, precision, opset=opset, static_shape=static_shape, batch=batch,
                        simplify=simplify, keep_io_types=keep_io_types, pixel_input=input_type == "uint8")
    extra: dict[str, Any] = {"opset": opset,
                             "io_dtype": "float32" if (precision == "fp32" or keep_io_types) else "float16",
                             **input_record(input_type)}
    if keep_float:
        from modnet_edge.exporters.onnx_mixed_precision import keep_matching_fp32

        twins = fp32_twin_weights(checkpoint, opset, static_shape=static_shape, batch=batch)
        extra["fp32_nodes"] = {"patterns": list(keep_float),
                               "nodes": keep_matching_fp32(model, list(keep_float), checkpoint.model_config, twins)}
    h, w = static_shape or (None, None)
    input_shape: list[int | str] = [batch or 1, 3, h, w] if static_shape else [batch or "batch", 3, "height", "width"]
    return Converted(model, spec, input_shape, extra)
