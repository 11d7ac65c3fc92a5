"""``modnet-edge diagnose`` (alias ``doctor``): where an artifact's drift starts (mirrors
:func:`modnet_edge.diagnose`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("compare every intermediate tensor of an ONNX artifact with its PyTorch reference: the first layer "
        "whose error crosses the threshold and the layers that add the most")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="an ONNX or TensorRT-ready ONNX artifact")
    parser.add_argument("--images", help="folder of images (default: the package's unseen photos)")
    parser.add_argument("--reference", help="reference checkpoint (default: found from the artifact's provenance)")
    parser.add_argument("--limit", type=int, default=4, help="use at most N images")
    parser.add_argument("--threshold", type=float, help="relative L2 error that counts as drifted "
                        "(default by precision: fp32 1e-3, fp16 1e-2, int8 5e-2)")
    parser.add_argument("--rows", type=int, default=40, help="layers shown in the table (all: 0)")
    parser.add_argument("--json", type=Path, help="write every layer's figures as JSON")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.parity_tests.doctor import diagnose

    diagnosis = diagnose(args.artifact, args.images, reference=args.reference, threshold=args.threshold,
                         limit=args.limit)
    print(diagnosis.table(rows=args.rows or None))
    if args.json:
        diagnosis.write_json(args.json)
        print(f"wrote {args.json}")
    return 0
