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
    parser.add_argument("--budget", metavar="auto|MSE", help="search for the fastest variant whose matte drift "
                        "meets this budget ('auto': the precision's budget; or an MSE such as 1e-4): the most "
                        "drift-sensitive parts stay in higher precision, judged on held-out --images "
                        "(onnx/tensorrt-onnx fp16 and int8, tflite int8)")
    parser.add_argument("--images", metavar="DIR", help="held-out images for --budget (default: the package's "
                        "sample portraits); never the calibration images")
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
        from modnet_edge.model.weights import DEFAULT_WEIGHTS, WEIGHTS

        print(f"note: no checkpoint given: exporting the built-in '{DEFAULT_WEIGHTS}' weights "
              f"({WEIGHTS[DEFAULT_WEIGHTS].summary})")
    if args.budget is not None:
        return _search(args, options)
    path = export(args.checkpoint, format=args.format, precision=args.precision, output=args.output, **options)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.name}.manifest.json")
    return 0


def _search(args: argparse.Namespace, options: dict) -> int:
    from modnet_edge.precision_search import search_precision
    from modnet_edge.core import get_format
    from modnet_edge.core.errors import ConfigError
    from modnet_edge.export import check_export_output

    budget: object = args.budget
    if args.budget != "auto":
        try:
            budget = float(args.budget)
        except ValueError:
            raise ConfigError(f"--budget must be 'auto' or an MSE such as 1e-4, not {args.budget!r}") from None
    fmt = get_format(args.format)
    output = args.output or Path(f"{Path(args.checkpoint).stem if args.checkpoint else 'starter-v1'}."
                                 f"{args.precision}{fmt.suffixes[0]}")
    check_export_output(fmt, output)
    result = search_precision(args.checkpoint, args.format, args.precision, output, budget=budget,
                              images=args.images, **options)
    print(result.summary())
    print(f"search record: {output}.search.json")
    if result.chosen is None:
        return 1
    print(f"wrote {output} ({Path(output).stat().st_size / 1e6:.1f} MB) and {Path(output).name}.manifest.json")
    return 0
