"""Where INT8 drift comes from: the matte drift of each quantised tensor and each quantised weight layer
alone, on photos, in the simulated INT8 network.

    python -m modnet_edge.parity_tests.int8_anatomy starter --scheme onnx --size 512 --json runs/anatomy.json

A precision search says *which groups* to keep in higher precision; this says *why*: every rounding the
exporter will apply (:mod:`modnet_edge.training.quant_sim`, placed and gridded as the scheme's exporter
does) is switched on alone and the matte compared with the float network's on the photos.  The rows are
what each rounding costs by itself; their sum beside the all-on figure says how far they add up (within
1 % for starter-v1's activations, so the rows can be read as shares).  Rows are also summed by the
search's groups (:data:`modnet_edge.model.parts.GROUPS`), the unit ``keep_float`` and the search work in.

The simulation is a model of the artifact, not the artifact: with every rounding on it drifts as much as
the exported ONNX INT8 artifact computed exactly (starter-v1, 512x512, 7 unseen photos: 1.690e-3 and
1.69e-3; 5 % apart at 128x128, 6 % at 256x256), but the two mattes are not identical (at 256x256 they
differ by half the drift), so a row is an estimate of a share, and a decision it suggests is checked on
exported artifacts (the precision search, ``parity``).  Each row is one pass over the photos: about
10 minutes for starter-v1 at 512x512 on 2 cores.

Two figures bound what any activation-range or rounding trick can reach: *weights only* (activations
exact) and *activations only* (weights exact).  A third is a yardstick for the network itself: its
drift when the input photo is dithered by up to half an 8-bit level (uniform, seeded), which is the
rounding any 8-bit image pipeline applies; a network whose matte moves more than the INT8 budget under
that noise amplifies every 8-bit rounding inside it as much.  README "INT8: what each lever buys" has starter-v1's.
The photos default to the package's unseen photos; calibration to the generated portraits, as the
exporters' default.  A tensor named ``image`` is the normalised network input itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INPUT = "input"  # the group of the network input's own rounding


@dataclass(frozen=True)
class Contribution:
    """One rounding alone: ``kind`` "activation" (a tensor) or "weights" (a layer's weights)."""

    kind: str
    name: str  # the traced graph's node name, "image" for the input, or the layer's module path
    module: str  # the module that makes the tensor / owns the weights ("" for the network's own ops)
    group: str  # the search group it belongs to (model.parts.GROUPS), "input" or "other"
    mse: float  # matte MSE against the float network with only this rounding on
    low: float | None = None  # calibrated range of an activation
    high: float | None = None


@dataclass
class Anatomy:
    """Every quantised tensor's and weight layer's drift alone, and the totals they are read against."""

    scheme: str
    weight_bits: int
    input_type: str
    shape: tuple[int, int]
    images: list[str]
    calibration: str
    keep_float: list[str]
    total: float  # every rounding on: the INT8 artifact's drift
    weights_only: float
    activations_only: float
    half_level_noise: float  # the float network's drift under +-1/2 of an 8-bit level of input noise
    rows: list[Contribution] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # photos the network trained on (built-in weights)

    def by_group(self) -> dict[str, float]:
        """Sum of the rows of each group, largest first."""
        out: dict[str, float] = {}
        for r in self.rows:
            out[r.group] = out.get(r.group, 0.0) + r.mse
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["by_group"] = self.by_group()
        d["sum_of_rows"] = {kind: sum(r.mse for r in self.rows if r.kind == kind) for kind in ("activation", "weights")}
        return d


def int8_anatomy(checkpoint: Any = "starter", *, scheme: str = "onnx", weight_bits: int = 8,
                 input_type: str = "float32", keep_float: Sequence[str] = (), images: Any = None,
                 calibration: Any = "synthetic", calibration_size: int = 16, size: int = 512,
                 weights: bool = True, progress: bool = True) -> Anatomy:
    """The drift anatomy of ``checkpoint``'s INT8 network as ``scheme``'s exporter quantises it
    (:data:`~modnet_edge.training.quant_sim.SCHEMES`), at ``size`` x ``size`` (the static shape the
    artifact is judged at).  ``weight_bits`` 8, or 7 (ONNX Runtime's ``reduce_range`` for x86 CPUs
    without VNNI).  ``images``: a folder of photos (default: the package's unseen photos).
    ``weights=False`` skips the per-layer weight rows (a third of the time)."""
    import torch
    from torch.nn.utils import parametrize

    from modnet_edge.calibration import as_source
    from modnet_edge.core.console import progress as bar
    from modnet_edge.core.errors import ConfigError
    from modnet_edge.core.images import read_image
    from modnet_edge.model.checkpoint import build_from_checkpoint
    from modnet_edge.model.parts import group_of
    from modnet_edge.model.weights import resolve_checkpoint
    from modnet_edge.parity_tests.parity import exposure, image_files
    from modnet_edge.training.quant_sim import module_path, prepare

    if weight_bits not in (7, 8):
        raise ConfigError(f"weight_bits must be 8 or 7 (reduce_range), not {weight_bits}")
    files = image_files(images)  # a folder, files, or None: the package's unseen photos
    if files is None:
        raise ConfigError("the anatomy is measured on photo files: pass images= a folder or files")
    ckpt = resolve_checkpoint(checkpoint)
    net = build_from_checkpoint(ckpt).eval()
    sim = prepare(net, scheme, weight_max=127 if weight_bits == 8 else 64, keep_float=keep_float,
                  input_type=input_type)
    source = as_source(calibration, calibration_size, 0)
    photos = torch.cat([_network_input(read_image(f), size, input_type) for f in files])
    sim.calibrate(_network_input(rgb, size, input_type) for _, rgb in source.images())

    def matte(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([sim.model(x[i:i + 1]) for i in range(len(x))])

    def drift(x: torch.Tensor = photos) -> float:
        return float(((matte(x) - reference) ** 2).mean())

    acts, layers = list(sim.activations.values()), list(sim.weights)
    _switch(acts + layers, [])
    reference = matte(photos)
    # +-1/2 level of uniform noise: one 8-bit level is 2/255 of the normalised [-1, 1]
    noise = torch.rand(photos.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    half_level_noise = drift(photos + noise / 255.0)
    totals = {}
    for label, on in (("total", acts + layers), ("weights_only", layers), ("activations_only", acts)):
        _switch(acts + layers, on)
        totals[label] = drift()

    made_by = {str(n.target): n.args[0] for n in sim.model.graph.nodes
               if n.op == "call_module" and str(n.target) in sim.activations}
    owner = {id(m.parametrizations.weight[0]): name for name, m in net.named_modules()
             if name and parametrize.is_parametrized(m, "weight")}
    todo: list[tuple[str, Any]] = [("activation", name) for name in sim.activations]
    todo += [("weights", w) for w in layers] if weights else []
    rows = []
    for kind, item in bar(todo, desc="INT8 anatomy", disable=not progress):
        q = sim.activations[item] if kind == "activation" else item
        _switch(acts + layers, [q])
        if kind == "activation":
            node = made_by[item]
            module = module_path(node)
            image = node.op == "placeholder"
            grid = q.grid_of[0] if q.grid_of else q  # a resize rounds to its input's grid
            rows.append(Contribution(kind, "image" if image else str(node.name), module,
                                     INPUT if image else group_of(module) or "other", drift(),
                                     float(grid.low), float(grid.high)))
        else:
            module = owner[id(item)]
            rows.append(Contribution(kind, module, module, group_of(module) or "other", drift()))
    _switch(acts + layers, acts + layers)
    rows.sort(key=lambda r: -r.mse)
    return Anatomy(scheme, weight_bits, input_type, (size, size), [f.name for f in files], source.description,
                   list(keep_float), totals["total"], totals["weights_only"], totals["activations_only"],
                   half_level_noise, rows, exposure(files, ckpt.provenance))


def _switch(every: Iterable[Any], on: Iterable[Any]) -> None:
    on_ids = {id(q) for q in on}
    for q in every:
        q.enabled = id(q) in on_ids


def _network_input(rgb: np.ndarray, size: int, input_type: str) -> Any:
    """A photo as the static-shape artifact reads it, normalised for the float network: an 8-bit-input
    artifact is fed the resized image rounded to 8 bits, so its reference is too."""
    import dataclasses

    import torch

    from modnet_edge.core import PreprocessSpec
    from modnet_edge.core.preprocess import normalise, preprocess

    spec = PreprocessSpec(fixed_size=(size, size))
    if input_type == "uint8":
        x = normalise(preprocess(rgb, dataclasses.replace(spec, input_dtype="uint8")), spec)
    else:
        x = preprocess(rgb, spec)
    return torch.from_numpy(x)


def format_anatomy(a: Anatomy, top: int = 20) -> str:
    """The totals, the groups and the ``top`` rows, as a terminal table."""
    sums = a.to_dict()["sum_of_rows"]
    lines = [f"INT8 anatomy: scheme {a.scheme}, {a.weight_bits}-bit weights, {a.input_type} input, "
             f"{a.shape[0]}x{a.shape[1]}, {len(a.images)} photos ({', '.join(a.images)}), calibration {a.calibration}"
             + (f", kept float: {', '.join(a.keep_float)}" if a.keep_float else ""),
             f"matte MSE, every rounding on: {a.total:.2e}   weights only: {a.weights_only:.2e} "
             f"(rows sum {sums['weights']:.2e})   activations only: {a.activations_only:.2e} "
             f"(rows sum {sums['activation']:.2e})",
             f"the float network under +-1/2 level of input noise (no rounding): {a.half_level_noise:.2e}",
             "by group (sum of its rows):"]
    if a.seen:
        lines.insert(1, "the network learned from some of these photos, so the figures understate its drift on "
                        "photos it never saw: " + ", ".join(f"{k} ({v})" for k, v in a.seen.items()))
    lines += [f"  {g:<16} {v:.2e}  {v / a.total:6.1%} of the total" for g, v in a.by_group().items() if v > 0]
    lines.append(f"the {min(top, len(a.rows))} costliest roundings alone:")
    for r in a.rows[:top]:
        rng = f" [{r.low:.2f}, {r.high:.2f}]" if r.low is not None else ""
        lines.append(f"  {r.mse:.2e}  {r.kind:<10} {r.name:<44} {r.group}{rng}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from modnet_edge.core.errors import ModnetEdgeError
    from modnet_edge.training.quant_sim import SCHEMES

    p = argparse.ArgumentParser(prog="python -m modnet_edge.parity_tests.int8_anatomy",
                                description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", default="starter")
    p.add_argument("--scheme", default="onnx", choices=list(SCHEMES), help="whose INT8 exporter is simulated")
    p.add_argument("--weight-bits", type=int, default=8, choices=(8, 7),
                   help="7: ONNX Runtime's reduce_range (x86 without VNNI)")
    p.add_argument("--input-type", default="float32", choices=("float32", "uint8"))
    p.add_argument("--keep-float", nargs="*", default=[], metavar="PART")
    p.add_argument("--images", help="folder of photos (default: the package's unseen photos)")
    p.add_argument("--calibration", default="synthetic", help="folder, video or 'synthetic'")
    p.add_argument("--calibration-size", type=int, default=16)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--no-weights", action="store_true", help="skip the per-layer weight rows")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--json", type=Path, help="write every row here too")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.json is not None:
            from modnet_edge.core import check_output_path

            check_output_path(args.json)  # free or ours, before minutes of work
        a = int8_anatomy(args.checkpoint, scheme=args.scheme, weight_bits=args.weight_bits,
                         input_type=args.input_type, keep_float=args.keep_float, images=args.images,
                         calibration=args.calibration, calibration_size=args.calibration_size, size=args.size,
                         weights=not args.no_weights, progress=not args.no_progress)
    except ModnetEdgeError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    print(format_anatomy(a, args.top))
    if args.json is not None:
        from modnet_edge.core import atomic_write_text

        atomic_write_text(args.json, json.dumps(a.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
