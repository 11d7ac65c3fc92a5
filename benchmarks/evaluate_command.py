"""``modnet-edge evaluate``: matting accuracy of an artifact on a labelled folder (mirrors :func:`modnet_edge.evaluate`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from modnet_edge.core.console import add_device_argument

HELP = "matting accuracy (MSE, MAD, SAD, Grad, Conn) of an artifact or checkpoint on image/ + matte/ pairs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="artifact (.onnx, ...) or checkpoint")
    parser.add_argument("--data", type=Path, required=True, help="folder with image/ and matte/ (or alpha/)")
    parser.add_argument("--json", type=Path, help="write the metrics, per-image values and conditions here")
    parser.add_argument("--limit", type=int, help="evaluate only the first N pairs")
    parser.add_argument("--runtime", help="runtime to use when the format has several")
    parser.add_argument("--threads", type=int, help="inference threads")
    add_device_argument(parser, what=" (checkpoints)")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.benchmarks.evaluate import evaluate

    options = {k: getattr(args, k) for k in ("threads", "device") if getattr(args, k)}
    result = evaluate(args.artifact, args.data, json_path=args.json, limit=args.limit,
                      progress=not args.no_progress, runtime=args.runtime, **options)
    print("  ".join(f"{k.upper()} {v:.6g}" for k, v in result.items()))
    print("(MSE, MAD: per-pixel means; SAD, Grad, Conn: sums / 1000; averaged over images)")
    if args.json:
        print(f"wrote {args.json}")
    return 0
