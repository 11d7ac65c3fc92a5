"""PyTorch checkpoint -> TFLite (LiteRT) through litert-torch, with no TensorFlow anywhere.

litert-torch lowers the network (via torch.export and StableHLO) straight to a TFLite FlatBuffer.  The
float model is converted once per (weights, input shape, layout) and every other precision is derived
from it by ai-edge-quantizer (:mod:`.tflite_quantize`): FP16 weights, dynamic-range INT8, weight-only
INT8 and full-integer static INT8 (INT8 or INT16 activations) calibrated on the shared
:mod:`modnet_edge.calibration` source.  Conversion is slow (about a minute), so a converted float
model is memoised in-process: exporting fp32, fp16 and int8 of one checkpoint converts once.

TFLite needs a static input shape (``static_shape``, default 512x512).  ``layout="NHWC"`` takes
(1, H, W, 3) and returns (1, H, W, 1): the transposes the converter would otherwise add at the
model's edges disappear, and callers that hold images as HWC need no copy.  Metadata (the same JSON
as every artifact) is embedded as a TFLite metadata entry and written to the manifest.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from modnet_edge.core.limits import check_threads
from modnet_edge.core.errors import BackendUnavailableError, ConfigError
from modnet_edge.core.formats import PRECISION_TABLE
from modnet_edge.core.tools import quiet_tool
from modnet_edge.model.checkpoint import Checkpoint, build_from_checkpoint

from modnet_edge.exporters.skeleton import Converted
from modnet_edge.exporters.tflite_quantize import MODES, PIXEL_SCOPE, quantize_tflite

DEFAULT_SHAPE = (512, 512)
_FLOAT_MEMO: dict[tuple[Any, ...], bytes] = {}
_MEMO_SIZE = 4


class InstanceNormByMoments(torch.nn.Module):
    """Affine-free instance normalisation written as its moments: (x - mean) * rsqrt(var + eps).

    The same arithmetic as ``nn.InstanceNorm2d(affine=False)`` in eval mode (biased variance over
    H and W, per sample and channel); only float rounding differs (~1e-7).  Written this way the
    converter keeps it in its own NHWC layout; ``nn.InstanceNorm2d`` is lowered in NCHW with a
    transpose pair around every one of MODNet's 16 IBNorm layers (34 extra ops per call).
    """

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        return centred * torch.rsqrt((centred * centred).mean(dim=(2, 3), keepdim=True) + self.eps)


class IBNormReLU(torch.nn.Module):
    """IBNorm then ReLU, with the ReLU applied to each half before the concatenation.

    ``relu(cat(a, b)) == cat(relu(a), relu(b))`` exactly, so the numerics do not change.  Written this
    way the converter fuses each ReLU into the op that produces its half (the batch norm's ADD, the
    instance norm's MUL) and no standalone RELU is left.  That matters for int8: XNNPACK does not take
    a standalone int8 RELU, so MODNet's 16 on the inference path (24 M elements per 512x512 call) ran
    in TFLite's reference kernels and cut the graph into 37 XNNPACK partitions.  Measured (512x512,
    2 threads, AMD EPYC AVX2): full int8 401 -> 264 ms; fp32 unchanged (XNNPACK fuses a float ReLU).
    """

    def __init__(self, ibn: torch.nn.Module) -> None:
        super().__init__()
        self.bnorm, self.inorm, self.bnorm_channels = ibn.bnorm, ibn.inorm, ibn.bnorm_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.bnorm_channels
        return torch.cat((torch.relu(self.bnorm(x[:, :c])), torch.relu(self.inorm(x[:, c:]))), dim=1)


class ConvIBNormReLU(torch.nn.Module):
    """Convolution + IBNorm (+ ReLU) as two convolutions, one per IBNorm half, with the batch norm folded in.

    The batch-norm half becomes a plain convolution (``w * s``, ``(b - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)``: the same arithmetic up to float rounding: <= 1e-5 absolute on the matte);
    the instance-norm half keeps its own convolution.  The graph then has no channel SLICEs and no
    batch-norm MUL/ADD over the feature maps, and each ReLU fuses into its producer.  Measured (512x512,
    2 threads, AMD EPYC AVX2): full int8 238 -> 208 ms, fp32 234 -> 227 ms over :class:`IBNormReLU`.
    Grouped convolutions (the e-ASPP option) keep :class:`IBNormReLU` instead.
    """

    def __init__(self, conv: torch.nn.Conv2d, ibn: torch.nn.Module, relu: bool) -> None:
        super().__init__()
        c, bn = ibn.bnorm_channels, ibn.bnorm
        self.conv_bn, self.conv_in = (
            torch.nn.Conv2d(conv.in_channels, n, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                            bias=True, padding_mode=conv.padding_mode)
            for n in (c, conv.out_channels - c))
        with torch.no_grad():
            weight = conv.weight.detach().double()
            bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(conv.out_channels,
                                                                                          dtype=torch.float64)
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            self.conv_bn.weight.copy_(weight[:c] * scale[:, None, None, None])
            self.conv_bn.bias.copy_((bias[:c] - bn.running_mean.double()) * scale + bn.bias.double())
            self.conv_in.weight.copy_(weight[c:])
            self.conv_in.bias.copy_(bias[c:])
        self.inorm, self.relu = ibn.inorm, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn_half, in_half = self.conv_bn(x), self.inorm(self.conv_in(x))
        if self.relu:
            bn_half, in_half = torch.relu(bn_half), torch.relu(in_half)
        return torch.cat((bn_half, in_half), dim=1)


GRAPH_REWRITES = ("IBNorm instance norm as moments (InstanceNormByMoments)",
                  "convolution + IBNorm + ReLU as one convolution per half, batch norm folded (ConvIBNormReLU); "
                  "grouped convolutions: ReLU per half before the concatenation (IBNormReLU)")


def converter_friendly(net: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``net`` with the :data:`GRAPH_REWRITES` applied (the parity check proves them)."""
    import copy

    from modnet_edge.model.network import Conv2dIBNormRelu, IBNorm

    net = copy.deepcopy(net).eval()  # folding uses the batch-norm running statistics
    for module in net.modules():
        if isinstance(module, IBNorm):
            inorm = module.inorm
            if inorm.affine or inorm.track_running_stats:
                raise ConfigError("IBNorm instance norm with affine/running stats is not the MODNet layer")
            module.inorm = InstanceNormByMoments(inorm.eps)
    for module in [m for m in net.modules() if isinstance(m, Conv2dIBNormRelu)]:
        layers = list(module.layers)
        if len(layers) < 2 or not isinstance(layers[1], IBNorm):
            continue
        relu = len(layers) == 3 and isinstance(layers[2], torch.nn.ReLU)
        if len(layers) != 2 + relu:
            continue
        conv, ibn = layers[0], layers[1]
        if conv.groups == 1:
            module.layers = torch.nn.Sequential(ConvIBNormReLU(conv, ibn, relu))
        elif relu:
            module.layers = torch.nn.Sequential(conv, IBNormReLU(ibn))
    return net


class _TFLiteWrapper(torch.nn.Module):
    """A named output, and NHWC in and out when asked (a plain permute, no math)."""

    def __init__(self, net: torch.nn.Module, layout: str) -> None:
        super().__init__()
        self.net, self.nhwc = net, layout == "NHWC"

    def forward(self, input: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: A002 (signature input name)
        x = input.permute(0, 3, 1, 2) if self.nhwc else input
        matte = self.net(x)
        return {"matte": matte.permute(0, 2, 3, 1) if self.nhwc else matte}


# precision variant -> ai-edge-quantizer mode of :mod:`.tflite_quantize` (None: plain FP32)
MODE_OF: dict[str, str | None] = {"fp32": None, **{precision: mode for mode, precision in MODES.items()}}


def convert_tflite(checkpoint: Checkpoint, precision: str, output: Path, *,
                   static_shape: tuple[int, int] | None = None, layout: str = "NCHW", calibration: Any = None,
                   calibration_size: int | None = None, calibration_seed: int = 0, calibration_method: str = "minmax",
                   keep_float: Any = (), calibration_cache: Any = None, threads: int = 2,
                   input_type: str = "float32") -> Converted:
    """The TFLite converter of the format table (options checked there).

    ``precision``: fp32, fp16 (FP16 weights), int8 (full integer, int8 activations), int8-a16 (int16
    activations), int8-dynamic (dynamic range) or int8-weights (weight-only).  The static variants are
    calibrated on ``calibration`` (folder, video, ``"synthetic"`` or a CalibrationSource;
    ``calibration_size``/``calibration_seed`` pick the samples, resized to ``static_shape`` exactly as the
    predictor does).  ``input_type="uint8"`` (int8): the model reads the 8-bit image as int8 ``p - 128``
    (scale 1, zero point -128: exact), the normalisation folded into the first convolution
    (:mod:`modnet_edge.model.pixel_input`); its stem's input ``[p - 128, 127 * inside]`` is int8 at
    scale 1, zero point 0.
    """
    from modnet_edge.core.console import progress
    from modnet_edge.exporters.onnx_int8 import input_record, input_spec

    del output  # the skeleton writes the file
    check_threads(threads)
    mode = MODE_OF[precision]
    static = PRECISION_TABLE[precision].calibrated
    pixels = input_type == "uint8"
    if pixels and PRECISION_TABLE[precision].activation_bits != 8:
        raise ConfigError(f"TFLite reads the 8-bit image in full-integer int8 only, not {precision}")
    shape = tuple(int(v) for v in (static_shape or DEFAULT_SHAPE))
    spec = input_spec(dataclasses.replace(checkpoint.preprocessing.with_fixed_size(shape), layout=layout), input_type)
    source = cache = None
    if static:
        from modnet_edge.calibration import as_source, resolve_cache

        source = as_source(calibration, calibration_size, calibration_seed).bind(spec)
        cache = resolve_cache(calibration_cache)
    steps = ["convert with litert-torch"] + (["quantize with ai-edge-quantizer"] if mode else [])
    with progress(total=len(steps), desc=f"tflite {precision}") as bar:
        bar.set_postfix_str(steps[0])
        float_model = convert_float(checkpoint, shape, layout, pixels)
        bar.update()
        details: dict[str, Any] = {}
        model = float_model
        if mode:
            bar.set_postfix_str(steps[1])
            ranges = {**_known_ranges(spec), **(_stem_range(float_model) if pixels else {})} if static else None
            model, details = quantize_tflite(float_model, mode, source=source, method=calibration_method,
                                             keep_float=keep_float, cache=cache, threads=threads, io_ranges=ranges)
            bar.update()
    input_shape: list[int | str] = [1, 3, *shape] if layout == "NCHW" else [1, *shape, 3]
    extra: dict[str, Any] = {"layout": layout, "converter": f"litert-torch {_version('litert-torch')}",
                             "graph_rewrites": list(GRAPH_REWRITES), **input_record(input_type, "int8")}
    if details:
        extra["quantization"] = details
    if source is not None:
        extra["calibration"] = {**source.describe(), "cache": details.pop("calibration_cache", "disabled")}
    return Converted(model, spec, input_shape, extra)


def _known_ranges(spec: Any) -> dict[str, tuple[float, float]]:
    """Exact value ranges of the network's input (the normalised image, or 8-bit pixels) and output (a
    sigmoid)."""
    if spec.input_dtype == "uint8":
        return {"input": (0.0, 255.0), "matte": (0.0, 1.0)}
    lows = [(0.0 - m) / s for m, s in zip(spec.mean, spec.std)]
    highs = [(1.0 - m) / s for m, s in zip(spec.mean, spec.std)]
    return {"input": (min(lows), max(highs)), "matte": (0.0, 1.0)}


def _stem_range(float_model: bytes) -> dict[str, tuple[float, float]]:
    """The exact range of an 8-bit-input model's stem input (``[p - 128, 127 * inside]``: [-128, 127]), by
    tensor name: the concatenation in the :class:`~modnet_edge.model.pixel_input.PixelInput` scope."""
    from modnet_edge.exporters.tflite_quantize import _op_outputs

    stems = [outs[0] for op, _, outs in _op_outputs(float_model) if op == "CONCATENATION" and PIXEL_SCOPE in outs[0]]
    if len(stems) != 1:
        raise ConfigError(f"an 8-bit-input model has one stem concatenation ({PIXEL_SCOPE}), found {len(stems)}")
    return {stems[0]: (-128.0, 127.0)}


def convert_float(checkpoint: Checkpoint, shape: tuple[int, int], layout: str, pixels: bool = False) -> bytes:
    """The float32 .tflite of ``checkpoint`` at (1, 3, H, W) or (1, H, W, 3) (memoised in-process); with
    ``pixels``, of the network reading 8-bit pixel values (as float32 0..255), normalisation folded in."""
    key = (checkpoint.source_info()["weights_sha256"], json.dumps(checkpoint.model_config.to_dict(), sort_keys=True),
           shape, layout, pixels, _version("litert-torch"))
    if key in _FLOAT_MEMO:
        return _FLOAT_MEMO[key]
    try:
        with quiet_tool(**CONVERTER_QUIET):  # importing it logs torchao's optional CUDA kernels that fail to load
            import litert_torch
    except ImportError:
        raise BackendUnavailableError('TFLite export needs litert-torch (pip install -c constraints.txt '
                                      '"modnet-edge[tflite]")') from None
    net = build_from_checkpoint(checkpoint).eval()
    if pixels:
        from modnet_edge.model.pixel_input import PixelInputMODNet

        spec = checkpoint.preprocessing
        net = PixelInputMODNet(net, spec.mean, spec.std).eval()
    net = converter_friendly(net)
    wrapper = _TFLiteWrapper(net, layout).eval()
    h, w = shape
    sample = torch.zeros(1, 3, h, w) if layout == "NCHW" else torch.zeros(1, h, w, 3)
    with quiet_tool(**CONVERTER_QUIET), torch.no_grad():
        edge = litert_torch.convert(wrapper, sample_kwargs={"input": sample})
        data = bytes(edge.model_content())
    if len(_FLOAT_MEMO) >= _MEMO_SIZE:
        _FLOAT_MEMO.pop(next(iter(_FLOAT_MEMO)))
    _FLOAT_MEMO[key] = data
    return data


# Python loggers that litert-torch's import and conversion fill with notes about optional internals.
_CONVERTER_LOGGERS = ("torchao", "torch.utils._pytree", "torch._export", "torch.export")


# How litert-torch is kept quiet: its stage log (stdout), its progress switch, Python warnings, the
# loggers its import and conversion fill with notes about optional internals, and the C++ (absl) log
# lines written straight to file descriptor 2.
CONVERTER_QUIET: dict[str, Any] = {"loggers": _CONVERTER_LOGGERS, "env": {"LITERT_TORCH_SHOW_PROGRESS": "n"},
                                   "native": True}


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
