"""``modnet-edge export``: checkpoint -> artifact (mirrors :func:`modnet_edge.export`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from modnet_edge.core import FORMATS

from modnet_edge.cli import size_arg

HELP = "export a checkpoint to a deployable artifact (writes the artifact and its .manifest.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="official or modnet-edge checkpoint; omitted: the built-in "
                        "default network (seeded random init)")
    parser.add_argument("--format", default="onnx", choices=[f for f, v in FORMATS.items() if v.exporter])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("-o", "--output", type=Path, help="artifact path (default: <checkpoint>.<precision><suffix>)")
    parser.add_argument("--static-shape", type=size_arg, metavar="HxW", help="fixed input size instead of dynamic")
    parser.add_argument("--calibration", metavar="DATA", help="INT8 calibration data: a folder of representative "
                        "images, a video, or 'synthetic' (the built-in set)")
    parser.add_argument("--calibration-size", type=int, metavar="N", help="calibration samples to use "
                        "(chosen deterministically by --calibration-seed; default: all images of a folder)")
    parser.add_argument("--calibration-seed", type=int, default=0, metavar="S", help="seed of the sample selection")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON",
                        help="extra exporter option, e.g. --option keep_io_types=true --option opset=18")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.export import export

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key.replace("-", "_")] = json.loads(value) if value else True
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    if args.static_shape:
        options["static_shape"] = args.static_shape
    if args.calibration is not None:
        options.update(calibration=args.calibration, calibration_seed=args.calibration_seed)
        if args.calibration_size is not None:
            options["calibration_size"] = args.calibration_size
    if args.checkpoint is None:
        from modnet_edge.train.weights import DEFAULT_WEIGHTS, WEIGHTS

        print(f"note: no checkpoint given: exporting the built-in '{DEFAULT_WEIGHTS}' weights "
              f"({WEIGHTS[DEFAULT_WEIGHTS].summary})")
    path = export(args.checkpoint, format=args.format, precision=args.precision, output=args.output, **options)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.name}.manifest.json")
    return 0
