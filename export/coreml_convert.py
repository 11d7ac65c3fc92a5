"""MODNet (PyTorch) -> Core ML ML Program, before compression and metadata.

Two conversion sources, chosen by the input shape:

* fixed size: ``torch.export`` (an ExportedProgram).  The TorchScript-trace route is the legacy one
  and has broken with NumPy >= 2.4 in coremltools' frontend; torch.export is the supported path.
* enumerated sizes or a size range: a TorchScript trace.  MODNet only accepts sides that are multiples
  of 32, which torch.export can only state as ``32 * s``, and coremltools refuses input dimensions
  that are expressions of a symbol; the trace carries no symbolic constraint at all.

Either way coremltools cannot convert the image's bilinear *down*-sampling (scale 1/2 and 1/4) once
the size is symbolic.  For sides divisible by the factor (always true here: multiples of 32) that
down-sampling equals a 2x2 average of the two nearest rows/columns, so during the trace the calls are
rewritten into exactly that (``avg_pool`` on a 1-pixel-offset view for 1/4); tests check the rewritten
network against the original bit for bit.  Fixed-size programs keep the original op.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from modnet_edge.core.errors import ConfigError
from modnet_edge.model.checkpoint import Checkpoint, build_from_checkpoint

SHAPE_MODES = ("fixed", "enumerated", "range")
# 512x512, 512x672 (3:4), 512x896 (9:16) and their transposes: the official resize rule's outputs for
# the common photo and video aspect ratios.
DEFAULT_ENUMERATED = ((512, 512), (512, 672), (672, 512), (512, 896), (896, 512))
DEFAULT_RANGE = (64, 1024)
DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "macOS13", "macOS14")


class ExactDownsampling(TorchFunctionMode):
    """While active, ``F.interpolate(x, scale_factor=1/k, mode="bilinear", align_corners=False)`` with an
    even integer k is computed as the average of the two nearest rows and columns (what half-pixel
    bilinear sampling at 1/k reduces to when the side is divisible by k), which converts with any
    input size."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is F.interpolate:
            factor = _even_downsampling(args, kwargs)
            if factor:
                start = factor // 2 - 1  # 1/k samples at k*i + (k-1)/2: rows k*i + k/2 - 1 and k*i + k/2
                x = args[0]
                return F.avg_pool2d(x[:, :, start:, start:], kernel_size=2, stride=factor)
        return func(*args, **kwargs)


def _even_downsampling(args: Sequence[Any], kwargs: dict[str, Any]) -> int | None:
    names = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
    bound = dict(zip(names, args)) | kwargs
    scale, mode = bound.get("scale_factor"), bound.get("mode", "nearest")
    if mode != "bilinear" or bound.get("align_corners") or bound.get("antialias") or bound.get("size") is not None:
        return None
    if not isinstance(scale, (int, float)) or not 0 < scale < 1:
        return None
    factor = round(1.0 / scale)
    if abs(factor * scale - 1.0) > 1e-9 or factor % 2:
        return None
    x = bound["input"]
    if x.shape[-1] % factor or x.shape[-2] % factor:
        return None
    return factor


def validate_sizes(shapes: str, size: tuple[int, int], sizes: Sequence[tuple[int, int]] | None,
                   size_range: tuple[int, int] | None, multiple: int) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Check the shape options; returns (enumerated sizes, range) (empty/default when unused)."""
    if shapes not in SHAPE_MODES:
        raise ConfigError(f"shapes must be one of {SHAPE_MODES}, not {shapes!r}")

    def _check(hw: Sequence[int], what: str) -> tuple[int, int]:
        if len(hw) != 2 or any(int(v) <= 0 or int(v) % multiple for v in hw):
            raise ConfigError(f"{what} {tuple(hw)} must be (height, width), positive multiples of {multiple}")
        return int(hw[0]), int(hw[1])

    size = _check(size, "size")
    enumerated = [_check(s, "enumerated size") for s in (sizes or DEFAULT_ENUMERATED)] if shapes == "enumerated" else []
    if enumerated and size not in enumerated:
        enumerated.insert(0, size)  # the default shape must be one of the enumerated ones
    lo, hi = size_range or DEFAULT_RANGE
    if shapes == "range":
        if not (multiple <= lo <= hi) or lo % multiple or hi % multiple:
            raise ConfigError(f"size_range {(lo, hi)} must be multiples of {multiple} with lower <= upper")
        if not (lo <= size[0] <= hi and lo <= size[1] <= hi):
            raise ConfigError(f"size {size} must lie inside size_range {(lo, hi)}")
    return enumerated, (int(lo), int(hi))


def source_program(checkpoint: Checkpoint, size: tuple[int, int], flexible: bool) -> tuple[Any, str]:
    """The program coremltools converts, and the name of the route (recorded in the metadata)."""
    net = build_from_checkpoint(checkpoint).eval()  # forward is the matte alone: traced as is
    example = torch.zeros(1, 3, *size)
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if flexible:
            with ExactDownsampling():
                return torch.jit.trace(net, example, check_trace=False), "torchscript-trace"
        return torch.export.export(net, (example,)).run_decompositions({}), "torch.export"


def node_modules(program: Any) -> dict[str, str]:
    """{graph node name: module path} of a torch.export program (from each node's ``nn_module_stack``):
    coremltools names the MIL ops it makes after these nodes, so FP32 islands can be chosen by module."""
    out: dict[str, str] = {}
    for node in getattr(program, "graph", None).nodes if hasattr(program, "graph") else []:
        stack = node.meta.get("nn_module_stack") if node.op == "call_function" else None
        if stack:
            out[node.name] = str(list(stack.values())[-1][0])
    return out


class Fp32Islands:
    """``op_selector`` for coremltools' FP16ComputePrecision: an op stays FP32 when the module it came from
    is inside a kept one (``module:<path>``, ``module:<path>$`` for that module's own ops), or, with
    ``io``, when it reads the model input (which then never passes through FP16)."""

    def __init__(self, items: list[str], nodes: dict[str, str]) -> None:
        from modnet_edge.model.parts import MODULE_PREFIX, within

        self._within = within
        self.modules = [(i[len(MODULE_PREFIX):].rstrip("$"), i.endswith("$")) for i in items
                        if i.startswith(MODULE_PREFIX)]
        self.io = "io" in items
        self.names = sorted(nodes, key=len, reverse=True)  # longest first: "relu_1" before "relu"
        self.nodes = nodes
        self.kept_ops: set[str] = set()

    def module_of(self, op_name: str) -> str | None:
        if op_name in self.nodes:
            return self.nodes[op_name]
        return next((self.nodes[n] for n in self.names if op_name.startswith(n + "_")), None)

    def __call__(self, op: Any) -> bool:
        """True: compute this op in FP16."""
        keep = False
        if self.io and any(getattr(v, "name", None) == "input" for v in op.inputs.values()
                           if not isinstance(v, (list, tuple))):
            keep = True
        path = self.module_of(op.name)
        if not keep and path is not None:
            keep = any(path == m if own else self._within(path, m) for m, own in self.modules)
        if keep:
            self.kept_ops.add(op.name)
        return not keep


def convert(program: Any, *, ct: Any, input_type: str, shapes: str, size: tuple[int, int],
            enumerated: list[tuple[int, int]], size_range: tuple[int, int], compute_precision: str,
            deployment_target: str, image_scale: float, image_bias: list[float],
            islands: Fp32Islands | None = None) -> Any:
    """ct.convert with the requested input kind, shape flexibility, precision and target (``islands``:
    FP32 ops inside an FP16 program)."""
    import numpy as np

    if shapes == "enumerated":
        shape: Any = ct.EnumeratedShapes(shapes=[(1, 3, h, w) for h, w in enumerated], default=(1, 3, *size))
    elif shapes == "range":
        lo, hi = size_range
        shape = (1, 3, ct.RangeDim(lo, hi, size[0]), ct.RangeDim(lo, hi, size[1]))
    else:
        shape = (1, 3, *size)
    if input_type == "image":
        inp = ct.ImageType(name="input", shape=shape, scale=image_scale, bias=image_bias,
                           color_layout=ct.colorlayout.RGB)
    else:
        inp = ct.TensorType(name="input", shape=shape, dtype=np.float32)
    precision = ct.precision.FLOAT16 if compute_precision == "fp16" else ct.precision.FLOAT32
    if islands is not None and compute_precision == "fp16":
        precision = ct.transform.FP16ComputePrecision(op_selector=islands)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.convert(program, inputs=[inp], outputs=[ct.TensorType(name="matte", dtype=np.float32)],
                          convert_to="mlprogram", compute_precision=precision,
                          minimum_deployment_target=getattr(ct.target, deployment_target))
