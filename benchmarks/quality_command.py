"""``modnet-edge quality``: matting quality of our models and a peer side by side (mirrors
:func:`modnet_edge.quality`, i.e. :func:`modnet_edge.benchmarks.quality.compare_quality`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("matting quality side by side: MSE/MAD/SAD/Grad/Conn on soft mattes, IoU on person masks, for "
        "artifacts, checkpoints, built-in weights and peer models (e.g. mediapipe-selfie=PATH.tflite)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subjects", nargs="+", metavar="MODEL", help="artifact, checkpoint or built-in weights name "
                        "('starter'), or "
                        "PEER=FILE for a peer model (peers: mediapipe-selfie)")
    parser.add_argument("--portraits", type=Path, help="folder with image/ + matte/ (soft mattes)")
    parser.add_argument("--segmentation", type=Path, help="folder with image/ + mask/ (binary person masks)")
    parser.add_argument("--person-free", type=Path, help="folder of photos with nobody in them (share of pixels "
                        "marked person)")
    parser.add_argument("--stability", type=Path, help="photos for the shape-stability figure (native vs 512x512 "
                        "squashed / letterboxed matte; default: the package's unseen photos)")
    parser.add_argument("--limit", type=int, help="use at most N segmentation images")
    parser.add_argument("--json", type=Path, help="write every row and the conditions here")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.benchmarks.quality import compare_quality

    report = compare_quality(args.subjects, portraits=args.portraits, segmentation=args.segmentation,
                             limit=args.limit, progress=not args.no_progress, person_free=args.person_free,
                             stability=args.stability)
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0
