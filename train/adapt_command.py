"""``modnet-edge adapt``: SOC adaptation of a checkpoint on unlabeled images or videos (mirrors :func:`~modnet_edge.training.soc.adapt`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from modnet_edge.core.console import add_device_argument

HELP = "SOC self-supervised adaptation of a checkpoint on unlabeled images / video frames"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="trained modnet-edge or official checkpoint")
    parser.add_argument("data", nargs="+", help="video files, image files or folders of them (unlabeled)")
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/soc"), help="run folder (adapted.pt)")
    parser.add_argument("--config", help="JSON/YAML SOC config file")
    parser.add_argument("--steps", type=int, help="optimizer steps")
    parser.add_argument("--ref-size", dest="size", type=int, metavar="N", help="frames are resized by the inference "
                        "rule with this reference size (SOC config 'size')")
    parser.add_argument("--size", dest="size", type=int, help=argparse.SUPPRESS)  # its earlier name
    parser.add_argument("--lr", type=float, help="Adam learning rate (paper: 1e-4)")
    parser.add_argument("--frame-every", type=int, help="use every k-th video frame")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per video")
    add_device_argument(parser, auto=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any SOC key")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.training.config import parse_overrides
    from modnet_edge.training.soc import adapt

    overrides = parse_overrides(args.set)
    for key in ("steps", "size", "lr", "frame_every", "max_frames", "device"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.no_progress:
        overrides["progress"] = False
    path = adapt(args.checkpoint, args.data, args.output, args.config, **overrides)
    import json

    summary = json.loads((args.output / "soc_summary.json").read_text())
    print(f"consistency loss on held-out frames: {summary['before']['consistency']:.5f} -> "
          f"{summary['after']['consistency']:.5f}")
    print(f"adapted checkpoint: {path}")
    return 0
