"""Simulated 8-bit quantisation in PyTorch, placed where the exporters put their quantise/dequantise steps.

Quantisation-aware fine-tuning (:mod:`.qat`) and the rounding-bias correction below need the rounding
an INT8 artifact will apply, in a network that still trains.  Each tensor the exporter quantises is
rounded here the same way, with a straight-through gradient (the rounding passes the gradient through
unchanged; clipping stops it): ``q = clamp(round(x / s) + z, qmin, qmax)``, ``x^ = (q - z) s``.

Which tensors, by the format whose exporter is simulated (:data:`SCHEMES`):

* ``onnx`` (ONNX Runtime static QDQ, :mod:`modnet_edge.exporters.onnx_int8`) and ``tflite``
  (ai-edge-quantizer full integer): every tensor a quantised operator reads or writes -- convolution,
  matmul, batch and instance norm, concatenation, residual addition, SE multiplication, resize,
  pooling, sigmoid.  Two fusions leave no tensor of their own, as in the exported graphs: a
  convolution followed by its BatchNorm (folded into its weights at export) and any op followed by a
  ReLU/ReLU6 (the quantiser drops the activation and clips by the range).  Slices, flattening and
  ``contiguous`` keep their input's grid.  Activations per tensor, asymmetric: uint8 [0, 255] (ONNX
  Runtime's x86 fast path) or int8 [-128, 127] (TFLite).
* ``tensorrt-onnx`` (:mod:`modnet_edge.exporters.tensorrt_qdq`): the activation inputs of convolutions
  only, symmetric int8 [-127, 127] (TensorRT fuses the rest).

Weights of every quantised convolution and linear layer: per output channel, symmetric, [-127, 127]
(``weight_max=64``: ONNX Runtime's 7-bit ``reduce_range`` for x86 CPUs without VNNI); the scale of a
BatchNorm that stays an op of its own (IBNorm's, on half the channels) per tensor, as ONNX Runtime
quantises it (its shift is int32: negligible).  A convolution
followed by BatchNorm is quantised *after* folding in the exported graph; per-channel symmetric rounding
commutes with the fold's per-channel scale, so rounding the unfolded weights here is the same rounding.
Activation ranges come from a calibration pass like the exporters' default ('minmax': the float
network's min and max over the calibration images, zero included), repeated as the weights change.

``keep_float`` takes what the exporters take, as far as it names parts of the PyTorch network: module
selectors (``module:lr_branch.conv_lr16x``, ``module:hr_branch$`` for a module's own ops), the part
presets (``backbone``, ``lr-branch``, ``hr-branch``, ``fusion-branch``, ``fusion-head``) and the op
presets ``instance-norm`` and ``image-concat``.  Node-name regexes mean nothing here and are refused.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from modnet_edge.core.errors import ConfigError
from modnet_edge.model.network import MODNet


@dataclass(frozen=True)
class QuantScheme:
    """How one exporter quantises: activation range and symmetry, and where."""

    qmin: int
    qmax: int
    symmetric: bool
    placement: str  # "every-op" or "conv-inputs"
    batchnorm_weights: bool = False  # a BatchNorm left as an op has its scale quantised (ONNX Runtime)


SCHEMES: dict[str, QuantScheme] = {
    "onnx": QuantScheme(0, 255, False, "every-op", True),  # activation_type uint8 (the default)
    "onnx-int8": QuantScheme(-127, 127, True, "every-op", True),  # activation_type int8 (symmetric)
    # TFLite: its converter folds IBNorm's BatchNorm into a convolution of its own (same rounding as here)
    # and computes the instance norm as int8 moments, which this placement approximates by its output
    "tflite": QuantScheme(-128, 127, False, "every-op"),
    "tensorrt-onnx": QuantScheme(-127, 127, True, "conv-inputs"),
}

# keep_float presets that name parts of the network, as module paths (the exporters' names for them)
PART_PRESETS = {"backbone": "backbone", "lr-branch": "lr_branch", "hr-branch": "hr_branch",
                "fusion-branch": "f_branch", "fusion-head": "f_branch.conv_f"}
OP_PRESETS = ("instance-norm", "image-concat")


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | float, qmin: int, qmax: int) -> torch.Tensor:
    """``x`` rounded to the grid ``(q - zero) * scale``, q in [qmin, qmax]; straight-through gradient
    inside the grid's range, none outside (where the exported model clips)."""
    q = torch.clamp(torch.round(x / scale) + zero, qmin, qmax)
    rounded = (q - zero) * scale
    clipped = torch.maximum(torch.minimum(x, (qmax - zero) * scale), (qmin - zero) * scale)
    return clipped + (rounded - clipped).detach()


class WeightQuant(nn.Module):
    """Parametrisation of a weight: rounded symmetrically (ONNX Runtime's ``WeightSymmetric``: scale =
    max |w| / weight_max), per output channel (conv, linear) or per tensor (the scale of a BatchNorm
    that is not folded into a convolution: the exporter quantises it as a weight too)."""

    def __init__(self, weight_max: int = 127, per_channel: bool = True) -> None:
        super().__init__()
        self.weight_max, self.per_channel = int(weight_max), per_channel
        self.enabled = True

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return w
        flat = w.detach().abs().flatten(1).amax(dim=1) if self.per_channel else w.detach().abs().max()
        absmax = flat.clamp_min(torch.finfo(w.dtype).tiny)
        scale = (absmax / self.weight_max).view(-1, *([1] * (w.dim() - 1))) if self.per_channel else absmax / self.weight_max
        return fake_quant(w, scale, 0.0, -self.weight_max, self.weight_max)


class ActivationQuant(nn.Module):
    """One quantised activation tensor: observes its float range while calibrating, then rounds to the
    grid the exporter derives from that range (ONNX Runtime's ``compute_scale_zp``)."""

    def __init__(self, scheme: QuantScheme, grid_of: ActivationQuant | None = None) -> None:
        super().__init__()
        self.qmin, self.qmax, self.symmetric = scheme.qmin, scheme.qmax, scheme.symmetric
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        # a resize's output is rounded to its input's grid (the exporters share the parameters)
        self.grid_of = [grid_of] if grid_of is not None else []  # a list: not registered as a submodule
        self.observing = False
        self.enabled = True

    def reset(self) -> None:
        self.low.fill_(0.0)
        self.high.fill_(0.0)  # the range always holds zero, as the exporters' does

    def grid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero point) for the observed range (or the grid this one shares)."""
        if self.grid_of:
            return self.grid_of[0].grid()
        low, high = self.low.clamp_max(0.0), self.high.clamp_min(0.0)
        if self.symmetric:
            high = torch.maximum(-low, high)
            low = -high
        scale = ((high - low) / (self.qmax - self.qmin)).clamp_min(torch.finfo(torch.float32).tiny)
        zero = torch.zeros(()) if self.symmetric else torch.round(self.qmin - low / scale)
        return scale, zero

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            with torch.no_grad():
                self.low.copy_(torch.minimum(self.low, x.min()))
                self.high.copy_(torch.maximum(self.high, x.max()))
            return x
        if not self.enabled:
            return x
        scale, zero = self.grid()
        return fake_quant(x, scale, zero, self.qmin, self.qmax)


# --------------------------------------------------------------------------------------------------
# Placement on the traced network
# --------------------------------------------------------------------------------------------------
_QUANTISED_MODULES = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.InstanceNorm2d, nn.AdaptiveAvgPool2d, nn.Sigmoid)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6)
_QUANTISED_FUNCTIONS = (torch.cat, operator.add, operator.mul, F.interpolate, torch.sigmoid)
_SAME_GRID = (operator.getitem, "contiguous", "flatten")  # slices and views: the input's grid


@dataclass
class Prepared:
    """A network with simulated quantisation: ``model`` (an ``fx.GraphModule`` sharing its modules
    with ``net``), its activation quantisers and weight parametrisations."""

    model: fx.GraphModule
    net: MODNet
    activations: dict[str, ActivationQuant]
    weights: list[WeightQuant]

    def calibrate(self, inputs: Iterable[torch.Tensor]) -> int:
        """Activation ranges: min and max of the float network's tensors over ``inputs`` (each (N, 3,
        H, W), normalised), every rounding off meanwhile, as the exporters calibrate.  Returns the count."""
        for q in self.activations.values():
            q.reset()
            q.observing = True
        for w in self.weights:
            w.enabled = False
        n = 0
        try:
            with torch.no_grad():
                for x in inputs:
                    self.model(x)
                    n += 1
        finally:
            for q in self.activations.values():
                q.observing = False
            for w in self.weights:
                w.enabled = True
        return n

    def set_enabled(self, enabled: bool) -> None:
        """All rounding on (the simulated INT8 network) or off (the float network, same weights)."""
        for q in self.activations.values():
            q.enabled = enabled
        for w in self.weights:
            w.enabled = enabled

    def ranges(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{b}": getattr(q, b).clone() for name, q in self.activations.items() for b in ("low", "high")}

    def load_ranges(self, state: dict[str, torch.Tensor]) -> None:
        for name, q in self.activations.items():
            q.low.copy_(state[f"{name}.low"])
            q.high.copy_(state[f"{name}.high"])

    def float_state_dict(self) -> dict[str, torch.Tensor]:
        """The network's float weights under MODNet's own keys (the parametrisations' originals)."""
        out = {}
        for key, value in self.net.state_dict().items():
            out[key.replace("parametrizations.weight.original", "weight")] = value
        return out


def prepare(net: MODNet, scheme: QuantScheme | str = "onnx", *, weight_max: int = 127,
            keep_float: Sequence[str] = (), input_type: str = "float32") -> Prepared:
    """``net`` (modified in place: weight parametrisations) with simulated quantisation as ``scheme``'s
    exporter places it; ``keep_float`` as the exporters take it (module docstring).  ``input_type``
    "uint8": the first convolution reads the image unrounded (the 8-bit input is exact,
    :mod:`modnet_edge.model.pixel_input`); "float32": the image is quantised like any tensor."""
    if isinstance(scheme, str):
        if scheme not in SCHEMES:
            raise ConfigError(f"quantisation scheme must be one of {list(SCHEMES)}, not {scheme!r}")
        scheme = SCHEMES[scheme]
    if input_type not in ("float32", "uint8"):
        raise ConfigError(f"input_type must be float32 or uint8, not {input_type!r}")
    float_modules, float_ops = _resolve_keep_float(keep_float, net)
    gm = fx.symbolic_trace(net)
    graph = gm.graph
    modules = dict(gm.named_modules())
    path = {n: module_path(n) for n in graph.nodes}
    kept = {n for n in graph.nodes if any(_within(path[n], m, own) for m, own in float_modules)}
    if "instance-norm" in float_ops:
        kept |= {n for n in graph.nodes if _is_module(n, modules, nn.InstanceNorm2d)}
    if "image-concat" in float_ops:
        kept |= _image_concat(graph, modules)
    folded = {n for n in graph.nodes if _is_module(n, modules, nn.BatchNorm2d) and _is_module(n.args[0], modules, nn.Conv2d)
              and len(n.args[0].users) == 1}  # a BatchNorm folded into its convolution: no op of its own
    ops = [n for n in graph.nodes if _quantised_op(n, modules) and n not in kept and n not in folded]
    convs = [n for n in ops if _is_module(n, modules, (nn.Conv2d, nn.Linear))]
    stem = _stem(graph, modules)

    tensors: list[fx.Node] = []  # in graph order, each once
    if scheme.placement == "conv-inputs":
        for conv in [c for c in convs if _is_module(c, modules, nn.Conv2d)]:
            src = conv.args[0]
            if not (input_type == "uint8" and conv is stem) and src not in tensors:
                tensors.append(src)
    else:
        wanted: set[fx.Node] = set()
        for node in ops:
            wanted.add(_fused_output(node, modules))
            for arg in _tensor_args(node):
                wanted.add(_grid_source(arg))
        tensors = [n for n in graph.nodes if n in wanted and n.op != "output"]

    activations: dict[str, ActivationQuant] = {}
    by_node: dict[fx.Node, ActivationQuant] = {}
    for i, node in enumerate(tensors):
        name = f"act_{i}"
        shared = None
        if _is_resize(node):  # its input was quantised first (graph order): that quantiser's grid
            src = node.args[0]
            shared = activations.get(str(src.target)) if src.op == "call_module" else by_node.get(_grid_source(src))
        activations[name] = by_node[node] = ActivationQuant(scheme, shared)
        gm.add_submodule(name, activations[name])
        with graph.inserting_after(node):
            q = graph.call_module(name, (node,))
        for user in list(node.users):
            if user is q or (input_type == "uint8" and user is stem and node.op == "placeholder"):
                continue
            user.replace_input_with(node, q)
    graph.lint()
    gm.recompile()
    weights = []
    bnorms = [n for n in ops if _is_module(n, modules, nn.BatchNorm2d)] if scheme.batchnorm_weights else []
    for node in convs + bnorms:
        module = modules[str(node.target)]
        if not parametrize.is_parametrized(module, "weight"):
            w = WeightQuant(weight_max, per_channel=not isinstance(module, nn.BatchNorm2d))
            parametrize.register_parametrization(module, "weight", w)
            weights.append(w)
    return Prepared(gm, net, activations, weights)


def module_path(node: fx.Node) -> str:
    """The module a traced node belongs to ("" for the network's own forward)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _within(path: str, module: str, own: bool) -> bool:
    return path == module if own else (path == module or path.startswith(module + "."))


def _is_module(node: fx.Node, modules: dict[str, nn.Module], kinds: Any) -> bool:
    return node.op == "call_module" and isinstance(modules[str(node.target)], kinds)


def _quantised_op(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], _QUANTISED_MODULES)
    return node.op == "call_function" and node.target in _QUANTISED_FUNCTIONS


def _is_resize(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target is F.interpolate


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    """The activation tensors ``node`` reads (cat's list included; not sizes or flags)."""
    out: list[fx.Node] = []
    for a in node.args:
        for item in (a if isinstance(a, (list, tuple)) else (a,)):
            if isinstance(item, fx.Node):
                out.append(item)
    return out


def _grid_source(node: fx.Node) -> fx.Node:
    """The tensor whose grid ``node`` shares (through slices and views)."""
    while (node.op == "call_function" and node.target is operator.getitem) or \
            (node.op == "call_method" and node.target in _SAME_GRID):
        node = node.args[0]  # type: ignore[assignment]
    return node


def _fused_output(node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node:
    """The tensor an op's output becomes in the exported graph: through its BatchNorm (a convolution's,
    folded) and its ReLU/ReLU6 (dropped, the range clips), when it is their only reader."""
    while len(node.users) == 1:
        user = next(iter(node.users))
        if _is_module(user, modules, _ACTIVATIONS) or (
                _is_module(node, modules, nn.Conv2d) and _is_module(user, modules, nn.BatchNorm2d)):
            node = user
        else:
            break
    return node


def _stem(graph: fx.Graph, modules: dict[str, nn.Module]) -> fx.Node:
    """The backbone's first convolution (what the 8-bit input feeds)."""
    return next(n for n in graph.nodes if _is_module(n, modules, nn.Conv2d) and str(n.target).startswith("backbone."))


def _image_concat(graph: fx.Graph, modules: dict[str, nn.Module]) -> set[fx.Node]:
    """The concatenations fed by the image or its resized copies, and the convolutions reading them
    (the exporters' ``image-concat`` preset)."""
    image = {n for n in graph.nodes if n.op == "placeholder"}
    for n in graph.nodes:
        if n.op == "call_function" and n.target is F.interpolate and n.args and n.args[0] in image:
            image.add(n)
    cats = {n for n in graph.nodes if n.op == "call_function" and n.target is torch.cat
            and image.intersection(_tensor_args(n))}
    return cats | {u for c in cats for u in c.users if _is_module(u, modules, nn.Conv2d)}


def _resolve_keep_float(items: Sequence[str], net: nn.Module) -> tuple[list[tuple[str, bool]], set[str]]:
    """([(module path, own ops only)], op presets) of ``keep_float`` items."""
    names = {n for n, _ in net.named_modules() if n}
    modules: list[tuple[str, bool]] = []
    ops: set[str] = set()
    for item in items:
        if item in OP_PRESETS:
            ops.add(item)
            continue
        if item in PART_PRESETS:
            path, own = PART_PRESETS[item], False
        elif isinstance(item, str) and item.startswith("module:"):
            path = item[len("module:"):].strip(".")
            own = path.endswith("$")
            path = path.rstrip("$")
        else:
            raise ConfigError(f"keep_float {item!r}: quantisation-aware training keeps module selectors "
                              f"(module:PATH) and the presets {sorted(PART_PRESETS) + list(OP_PRESETS)} in float; "
                              "node-name patterns name graph nodes, not parts of the PyTorch network")
        if path not in names:
            raise ConfigError(f"keep_float {item!r} names no module of the network")
        modules.append((path, own))
    return modules, ops


# --------------------------------------------------------------------------------------------------
# Post-training lever: bias correction of weight rounding
# --------------------------------------------------------------------------------------------------
def correct_rounding_bias(checkpoint: Any, images: Iterable[Any], shape: tuple[int, int], weight_max: int = 127,
                          keep_float: Sequence[str] = ()) -> Any:
    """A float checkpoint whose convolutions' rounding bias is corrected (Nagel et al. 2019, "Data-Free
    Quantization", empirical bias correction): the mean output shift each quantised convolution gets
    from rounding its weights, ``E[conv(x; W_q - W)]`` per output channel over ``images`` (RGB uint8,
    resized to ``shape``), is subtracted -- through the following BatchNorm's running mean (folded into
    the weights at export) or the convolution's bias.  Export the result as usual; its INT8 rounds the
    same weights, now without their average error."""
    import dataclasses as _dc

    from modnet_edge.core.preprocess import preprocess
    from modnet_edge.model.checkpoint import Checkpoint, build_from_checkpoint

    net = build_from_checkpoint(checkpoint)
    spec = _dc.replace(checkpoint.preprocessing, layout="NCHW", input_dtype="float32").with_fixed_size(shape)
    float_modules, _ = _resolve_keep_float(keep_float, net)
    names = {m: n for n, m in net.named_modules()}
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)
             and not any(_within(names[m], p, own) for p, own in float_modules)]
    rounding = WeightQuant(weight_max)
    sums: dict[nn.Conv2d, torch.Tensor] = {}
    counts: dict[nn.Conv2d, int] = {}

    def observe(module: nn.Conv2d, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        err = rounding(module.weight) - module.weight
        shift = F.conv2d(args[0], err, None, module.stride, module.padding, module.dilation, module.groups)
        sums[module] = sums.get(module, 0) + shift.sum(dim=(0, 2, 3))
        counts[module] = counts.get(module, 0) + shift.numel() // shift.shape[1]

    hooks = [c.register_forward_hook(observe) for c in convs]
    try:
        with torch.no_grad():
            for rgb in images:
                net(torch.from_numpy(preprocess(rgb, spec)))
    finally:
        for h in hooks:
            h.remove()
    followers = _batchnorm_after(net)
    corrected = 0
    with torch.no_grad():
        for conv in convs:
            if conv not in sums:
                continue
            delta = sums[conv] / counts[conv]
            bn = followers.get(conv)
            if bn is not None:
                bn.running_mean += delta  # BN(y_q - delta) == BN with its mean moved by delta
            elif conv.bias is not None:
                conv.bias -= delta
            else:
                continue
            corrected += 1
    prov = {k: v for k, v in checkpoint.provenance.items() if k in ("trained_on", "synthetic")}
    prov["note"] = f"weight-rounding bias corrected ({corrected} convolutions, {weight_max}-level weights)"
    prov["bias_correction"] = {"init": checkpoint.source_info(), "convolutions": corrected, "weight_max": weight_max}
    return Checkpoint(None, "modnet-edge", checkpoint.model_config, net.state_dict(), checkpoint.preprocessing, prov)


def _batchnorm_after(net: nn.Module) -> dict[nn.Conv2d, nn.BatchNorm2d]:
    """Each convolution directly followed by a BatchNorm of its channels in a Sequential (MobileNetV2's)."""
    out = {}
    for seq in net.modules():
        if isinstance(seq, nn.Sequential):
            layers = list(seq)
            for a, b in zip(layers, layers[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.num_features == a.out_channels:
                    out[a] = b
    return out
