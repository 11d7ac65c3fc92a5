"""``modnet-edge predict``: images or folders -> alpha PNGs and composites (mirrors :func:`modnet_edge.predict`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modnet_edge.core.console import add_device_argument

HELP = "predict alpha mattes for images or folders of images with any artifact or checkpoint"


def _color(text: str) -> tuple[int, int, int]:
    try:
        r, g, b = (int(v) for v in text.split(","))
        assert all(0 <= v <= 255 for v in (r, g, b))
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"expected R,G,B with values 0-255, got {text!r}") from None
    return r, g, b


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="artifact (.onnx, ...) or checkpoint")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders of images, or video files "
                        "(-> <name>.alpha.mp4 and <name>.composite.mp4)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--color", type=_color, default=(0, 177, 64), metavar="R,G,B",
                        help="composite background (default: 0,177,64)")
    parser.add_argument("--no-composite", action="store_true", help="write only the alpha PNGs")
    parser.add_argument("--runtime", help="runtime to use when the format has several")
    parser.add_argument("--provider", dest="providers", action="append",
                        help="ONNX Runtime execution provider (cpu, cuda, ...), repeatable")
    add_device_argument(parser, what=" (checkpoints)")
    parser.add_argument("--threads", type=int, help="inference threads")
    parser.add_argument("--ofd", action="store_true", help="videos: One-Frame-Delay de-flicker (one frame of latency)")
    parser.add_argument("--ofd-threshold", type=float, default=0.1, help="videos: OFD agreement threshold xi")


def backend_options(args: argparse.Namespace) -> dict:
    """The runtime options a command's arguments ask for (only those given)."""
    opts = {}
    for key in ("providers", "device", "threads"):
        if getattr(args, key, None) is not None:  # given, even as 0 (refused by the runtime, never ignored)
            opts[key] = getattr(args, key)
    return opts


def run(args: argparse.Namespace) -> int:
    from modnet_edge.runtimes.predict import predict

    result = predict(args.artifact, args.images, args.output, runtime=args.runtime, color=args.color,
                     composite=not args.no_composite, ofd=args.ofd, ofd_threshold=args.ofd_threshold,
                     **backend_options(args))
    for line in result.notes:  # on stderr: never in the data
        print(f"note: {line}", file=sys.stderr)
    for name, res in result.videos.items():
        print(f"{name}: {res.frames} frames -> {res.alpha_video}; "
              f"flicker {res.flicker_raw['flicker']:.5f}"
              + (f" -> {res.flicker_out['flicker']:.5f} with OFD" if args.ofd else ""))
    if result.images:
        print(f"wrote {result.images} matte(s) to {args.output}")
    return 0
