"""Precision doctor, part one: *where* in the network an artifact's drift starts.

The artifact and its PyTorch reference run on the same images; every intermediate tensor that both
have is compared (relative L2 error, cosine similarity, largest absolute difference), in the order the
artifact computes them.  The report names the first layer whose error crosses a threshold and the
layers that *add* the most error (a layer's error minus the largest error among the compared tensors
that feed it), which is where a fix belongs: a layer that only passes on error it received is not the
culprit.  Polygraphy's per-layer comparison (``polygraphy run --onnx-outputs mark all``) is the model;
it compares two runtimes, this compares an artifact with the PyTorch modules it came from.

Why not ONNX Runtime's ``quantization.qdq_loss_debug``: it pairs a float ONNX graph with its QDQ copy
by the quantiser's tensor names, so it sees neither fp16 graphs nor the PyTorch reference, and its
numbers are SQNR between two ONNX graphs rather than drift from what was trained.

How artifact tensors are named after PyTorch modules: PyTorch's ONNX exporter names every node by the
scope of the modules it came from (``/net/hr_branch/conv_hr2x/conv_hr2x.3/layers/layers.1/Concat``);
:func:`module_of_scope` resolves such a scope against the network's module tree, and a module's output
is the last node computed inside its scope.  Exported graphs fold BatchNorm into the convolution before
it, so such a convolution's tensor is the BatchNorm's output; casts and Q/DQ nodes only move values
between types and are never a module's output.  Marking intermediate tensors as outputs can keep
ONNX Runtime from fusing a QDQ group into one integer kernel, so INT8 layers are measured as the graph
simulates them; the matte drift is the artifact's own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import FORMATS, PRECISION_TABLE, atomic_write_text, precision_row
from modnet_edge.core.errors import ConfigError

from modnet_edge.exporters.module_scopes import module_of_scope

from modnet_edge.parity_tests.parity import Drift

# The error (relative L2) above which a layer counts as drifted, by precision: each precision's row of the
# precision table (modnet_edge.core.formats) says, and why.
THRESHOLDS = {p.name: p.doctor_threshold for p in PRECISION_TABLE.values()}
# nodes that move a value between types or representations without being any module's output
_TRANSPARENT_OPS = {"Cast", "QuantizeLinear", "DequantizeLinear", "Identity", "Constant"}
# module class -> the ONNX op types its output may come from (containers: any)
_LEAF_OPS = {"Conv2d": {"Conv"}, "BatchNorm2d": {"BatchNormalization"}, "InstanceNorm2d": {"InstanceNormalization"},
             "ReLU": {"Relu"}, "ReLU6": {"Clip"}, "Sigmoid": {"Sigmoid"}, "Linear": {"Gemm", "MatMul"},
             "AdaptiveAvgPool2d": {"GlobalAveragePool", "ReduceMean"}}


@dataclass
class LayerDrift:
    """Drift of one intermediate tensor, pooled over the images."""

    module: str  # PyTorch module path (the deepest module whose output this tensor is)
    tensor: str  # the artifact's tensor name
    op: str
    rel_l2: float  # ||artifact - reference|| / ||reference||
    cosine: float
    max_abs: float
    ref_abs_max: float  # largest |reference| value: how close the layer runs to a format's range
    added: float = 0.0  # rel_l2 minus the largest rel_l2 among the compared tensors feeding it
    inputs: list[str] = field(default_factory=list)  # modules of those tensors ("input": the image)


@dataclass
class Diagnosis:
    """Per-layer drift of one artifact against its PyTorch reference."""

    artifact: str
    format: str
    precision: str
    images: list[str]
    threshold: float
    layers: list[LayerDrift]  # in the order the artifact computes them
    matte: Drift
    unmatched: list[str] = field(default_factory=list)  # reference modules with no artifact tensor

    @property
    def first_over(self) -> LayerDrift | None:
        """The first layer (in computation order) whose error crosses the threshold."""
        return next((l for l in self.layers if l.rel_l2 > self.threshold), None)

    def top_added(self, n: int = 5) -> list[LayerDrift]:
        """The ``n`` layers that add the most error themselves."""
        return sorted(self.layers, key=lambda l: l.added, reverse=True)[:n]

    def to_dict(self) -> dict[str, Any]:
        first = self.first_over
        return {"artifact": self.artifact, "format": self.format, "precision": self.precision, "images": self.images,
                "threshold": self.threshold, "first_over": first.module if first else None,
                "top_added": [l.module for l in self.top_added()], "matte": asdict(self.matte),
                "layers": [asdict(l) for l in self.layers], "unmatched": self.unmatched}

    def write_json(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return Path(path)

    def table(self, rows: int | None = 40) -> str:
        """A readable summary: verdict lines, then the layers around and after the first crossing."""
        first = self.first_over
        lines = [f"{Path(self.artifact).name}: {self.format} {self.precision}, {len(self.layers)} layers compared "
                 f"on {len(self.images)} image(s); matte MSE {self.matte.mse:.2e} (max |delta alpha| "
                 f"{self.matte.max_abs:.2f})",
                 f"first layer over rel-L2 {self.threshold:.0e}: " + (
                     f"{first.module} ({first.op}, rel-L2 {first.rel_l2:.2e})" if first else "none"),
                 "adds the most error: " + ", ".join(f"{l.module} (+{l.added:.2e})" for l in self.top_added(3)
                                                    if l.added > 0)]
        head = f"{'#':>3} {'module':<46} {'op':<22} {'rel-L2':>9} {'added':>9} {'cosine':>9} {'max|d|':>8} {'max|ref|':>8}"
        lines += [head, "-" * len(head)]
        shown = self.layers
        if rows is not None and len(shown) > rows:  # keep the crossing in view, then the biggest adders
            start = max(0, self.layers.index(first) - 3) if first else 0
            keep = set(range(start, min(len(shown), start + rows // 2)))
            keep |= {self.layers.index(l) for l in self.top_added(rows - len(keep))}
            shown = [self.layers[i] for i in sorted(keep)]
        prev = -1
        for l in shown:
            i = self.layers.index(l)
            if i != prev + 1:
                lines.append(f"{'':>3} ...")
            prev = i
            mark = " <" if l is first else ""
            lines.append(f"{i:>3} {l.module[-46:]:<46} {l.op[:22]:<22} {l.rel_l2:9.2e} {l.added:+9.1e} "
                         f"{l.cosine:9.6f} {l.max_abs:8.1e} {l.ref_abs_max:8.1f}{mark}")
        if self.unmatched:
            lines.append(f"({len(self.unmatched)} reference modules have no tensor in the artifact, e.g. "
                         f"{', '.join(self.unmatched[:3])})")
        return "\n".join(lines)


def threshold_for(precision: str) -> float:
    """The per-layer threshold of exactly ``precision`` (an unknown precision is a clear error)."""
    return precision_row(precision).doctor_threshold


def onnx_module_outputs(model: Any, net: Any, order: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{module path: (tensor name, op type)} for the modules of ``net`` whose output the ONNX graph holds.

    ``order``: module paths in the order the reference computed them (from forward hooks), used to
    hand a convolution's tensor to the BatchNorm folded into it.
    """
    names = [n for n, _ in net.named_modules() if n]
    kinds = {n: type(m).__name__ for n, m in net.named_modules() if n}
    last: dict[str, tuple[str, str]] = {}
    has_nodes: set[str] = set()
    for node in model.graph.node:
        if node.op_type in _TRANSPARENT_OPS or not node.output:
            continue
        path = module_of_scope(node.name, names)
        if path is None:
            continue
        parts = path.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in kinds:
                last[prefix] = (node.output[0], node.op_type)
                has_nodes.add(prefix)
    result: dict[str, tuple[str, str]] = {}
    for i, mod in enumerate(order):
        if mod not in last:
            continue
        tensor, op = last[mod]
        allowed = _LEAF_OPS.get(kinds[mod])
        if allowed is not None and op not in allowed:
            continue
        nxt = order[i + 1] if i + 1 < len(order) else None
        if kinds[mod] == "Conv2d" and nxt and kinds.get(nxt) == "BatchNorm2d" and nxt not in has_nodes:
            result[nxt] = (tensor, op)  # BatchNorm folded into this convolution: the tensor is the BN's output
            continue
        result[mod] = (tensor, op)
    return result


class _Accumulator:
    """Running sums for rel-L2 and cosine over images, without keeping tensors."""

    def __init__(self) -> None:
        self.err2 = self.ref2 = self.art2 = self.dot = 0.0
        self.max_abs = self.ref_max = 0.0

    def add(self, reference: np.ndarray, artifact: np.ndarray) -> None:
        r = reference.astype(np.float64).ravel()
        a = artifact.astype(np.float64).ravel()
        d = a - r
        self.err2 += float(d @ d)
        self.ref2 += float(r @ r)
        self.art2 += float(a @ a)
        self.dot += float(a @ r)
        finite = np.isfinite(d)
        self.max_abs = max(self.max_abs, float(np.abs(d).max()) if finite.all() else math.inf)
        self.ref_max = max(self.ref_max, float(np.abs(r).max()))

    def rel_l2(self) -> float:
        value = math.sqrt(self.err2 / self.ref2) if self.ref2 > 0 else math.sqrt(self.err2)
        return math.inf if math.isnan(value) else value  # NaN: an overflow produced inf - inf

    def cosine(self) -> float:
        den = math.sqrt(self.ref2 * self.art2)
        return self.dot / den if den > 0 else (1.0 if self.err2 == 0 else 0.0)


def diagnose(artifact: str | Path, images: Any = None, *, reference: str | Path | None = None,
             threshold: float | None = None, limit: int | None = 4, progress: bool = True) -> Diagnosis:
    """Compare every intermediate tensor of ``artifact`` with its PyTorch reference on ``images``
    (a folder, files, or None for the package's unseen photos; ``limit`` images at most)."""
    from modnet_edge.core.images import unseen_images
    from modnet_edge.runtimes.loader import load

    artifact = Path(artifact)
    with load(artifact) as predictor:  # the loader's checks: metadata, manifest, integrity
        meta = predictor.metadata
    graphs = [f.name for f in FORMATS.values() if f.container == "onnx_file"]  # it reads ONNX graphs' tensors
    if meta.format not in graphs:
        raise ConfigError(f"the doctor localises drift in ONNX artifacts ({', '.join(graphs)}), not {meta.format}: "
                          "export the same checkpoint and precision to ONNX to see where it drifts")
    from modnet_edge.model.weights import find_reference
    from modnet_edge.parity_tests.parity import load_images

    pictures, _source = load_images(images if images is not None else unseen_images(), limit)
    ckpt = find_reference(meta, artifact, reference)
    return _diagnose_onnx(artifact, meta, ckpt, pictures, threshold or threshold_for(meta.precision), progress)


def reference_activations(net: Any, x: np.ndarray) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """Every module's output (single tensors only) for input ``x``, the modules in call order, and the matte."""
    import torch

    acts: dict[str, np.ndarray] = {}
    order: list[str] = []
    names = {m: n for n, m in net.named_modules() if n}

    def hook(module: Any, _inp: Any, out: Any) -> None:
        name = names[module]
        if isinstance(out, torch.Tensor):
            acts[name] = out.detach().float().numpy().copy()  # inplace ReLUs would overwrite a view
            order.append(name)

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            matte = net(torch.from_numpy(x)).numpy()
    finally:
        for h in handles:
            h.remove()
    return acts, order, matte


def _diagnose_onnx(artifact: Path, meta: Any, ckpt: Any, pictures: dict[str, np.ndarray], threshold: float,
                   progress: bool) -> Diagnosis:
    import onnx
    import onnxruntime as ort
    from modnet_edge.core.console import progress as progress_bar

    from modnet_edge.core.preprocess import postprocess, preprocess
    from modnet_edge.model.checkpoint import build_from_checkpoint

    net = build_from_checkpoint(ckpt)
    model = onnx.load(str(artifact))
    graph_in = model.graph.input[0]
    in_dtype = np.float16 if graph_in.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 else np.float32
    matte_name = model.graph.output[0].name
    producers = {o: n for n in model.graph.node for o in n.output}
    mapping: dict[str, tuple[str, str]] | None = None
    mapped: set[str] = set()
    accs: dict[str, _Accumulator] = {}
    drifts: list[Drift] = []
    session = None
    modules_seen: list[str] = []
    for name, rgb in progress_bar(pictures.items(), desc=f"diagnose {artifact.name}", disable=not progress,
                                  leave=False):
        x = preprocess(rgb, meta.preprocessing)
        acts, order, ref_matte = reference_activations(net, x)
        if mapping is None:
            modules_seen = order
            mapping = onnx_module_outputs(model, net, order)
            mapped = set(mapping)
            # one tensor may be the output of several nested modules: keep the deepest, named once
            by_tensor: dict[str, str] = {}
            for mod, (tensor, _op) in mapping.items():
                if tensor not in by_tensor or len(mod) > len(by_tensor[tensor]):
                    by_tensor[tensor] = mod
            mapping = {mod: mapping[mod] for mod in by_tensor.values()}
            marked = sorted({t for t, _ in mapping.values()} - {matte_name})
            for t in marked:
                model.graph.output.append(onnx.ValueInfoProto(name=t))
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            outputs = [o.name for o in session.get_outputs()]
        fed = x.astype(in_dtype)
        accs.setdefault("input", _Accumulator()).add(x, fed)  # an FP16 input is already rounded
        values = dict(zip(outputs, session.run(outputs, {graph_in.name: fed})))
        for mod, (tensor, _op) in mapping.items():
            ref, got = acts[mod], values[tensor]
            if ref.shape != got.shape:
                continue
            accs.setdefault(mod, _Accumulator()).add(ref, got)
        h, w = rgb.shape[:2]
        drifts.append(Drift.measure(postprocess(ref_matte, h, w), postprocess(values[matte_name], h, w)))
    assert mapping is not None
    position = {o: i for i, n in enumerate(model.graph.node) for o in n.output}
    mapping["input"] = (graph_in.name, "input")
    compared = sorted(accs, key=lambda m: position.get(mapping[m][0], -1))
    tensor_module = {mapping[m][0]: m for m in compared}
    layers = [LayerDrift(m, mapping[m][0], mapping[m][1], accs[m].rel_l2(), accs[m].cosine(), accs[m].max_abs,
                         accs[m].ref_max) for m in compared]
    by_module = {l.module: l for l in layers}
    for layer in layers:
        if layer.module == "input":
            layer.added = layer.rel_l2
            continue
        feeders = _nearest_compared(layer.tensor, producers, tensor_module)
        layer.inputs = sorted(feeders)
        base = max((by_module[f].rel_l2 for f in feeders if f in by_module), default=0.0)
        # an overflow upstream (inf) is not this layer's doing; an overflow here is all its own
        layer.added = 0.0 if not math.isfinite(base) else (
            layer.rel_l2 - base if math.isfinite(layer.rel_l2) else math.inf)
    unmatched = [m for m in dict.fromkeys(modules_seen) if m not in mapped]
    return Diagnosis(str(artifact), meta.format, meta.precision, list(pictures), threshold, layers,
                     Drift.pool(drifts), unmatched)


def _nearest_compared(tensor: str, producers: dict[str, Any], compared: dict[str, str]) -> set[str]:
    """Modules of the nearest compared tensors upstream of ``tensor`` ("input" for the graph input)."""
    found: set[str] = set()
    seen: set[str] = set()
    node = producers.get(tensor)
    stack = list(node.input) if node is not None else []
    while stack:
        t = stack.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        if t in compared:
            found.add(compared[t])
        elif t in producers:
            stack.extend(producers[t].input)
    return found
