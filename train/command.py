"""``modnet-edge train``: supervised training or segmentation pretraining (mirrors :func:`modnet_edge.train`).

With no ``--data`` it trains on the built-in SYNTHETIC set.  The same command runs distributed when
launched with ``torchrun --nproc_per_node N -m modnet_edge.cli train ...``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from modnet_edge.core.console import DEVICE_HELP, square_size_arg

HELP = "train MODNet (paper recipe by default; no --data: the built-in synthetic set)"

# flag -> config key, for the values people change most; everything else via --set KEY=VALUE
_FLAGS = {"epochs": int, "batch_size": int, "size": square_size_arg, "lr": float, "max_steps": int, "device": str,
          "seed": int, "workers": int, "threads": int, "task": str, "loss": str, "init": str, "val_data": str}
_HELP = {"size": "training crop size: N or NxN (square)", "device": DEVICE_HELP + ", or auto"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from modnet_edge.training.config import PRESETS

    parser.add_argument("config", nargs="?", default=None,
                        help=f"preset ({', '.join(PRESETS)}) or a JSON/YAML config file; default: 'paper' "
                        "with --data, 'quick' (small and fast) without")
    parser.add_argument("--data", help="data folder: image/+matte/ (or alpha/), fg/+alpha/+bg/, or image/+mask/ "
                        "(segmentation pretraining); omitted: the built-in SYNTHETIC set")
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/modnet"), help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue exactly from OUTPUT/last.pt")
    for name, typ in _FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=typ, default=None,
                            metavar="N" if name == "size" else None,
                            help=_HELP.get(name, "") + f"{': ' if name in _HELP else ''}overrides config '{name}'")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (value parsed as JSON), e.g. --set scale_range=[1,1.5]")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.training.config import parse_overrides
    from modnet_edge.training.trainer import train

    overrides = parse_overrides(args.set)
    overrides.update({k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None})
    if args.no_progress:
        overrides["progress"] = False
    main = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 talks
    if main and args.data is None and "data" not in overrides:
        print("note: no --data: training on the built-in SYNTHETIC portrait set (not real data)")
    best = train(args.config, data=args.data, output=args.output, resume=args.resume, **overrides)
    if main:
        print(f"best checkpoint: {best}")
    return 0
