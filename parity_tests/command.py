"""``modnet-edge parity``: drift of artifacts against the PyTorch reference (mirrors :func:`modnet_edge.parity`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "measure each artifact's alpha drift against its PyTorch reference; exit 1 when any budget fails"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="+", help="artifacts to check")
    parser.add_argument("--images", help="folder of images (default: generated synthetic portraits)")
    parser.add_argument("--reference", help="reference checkpoint (default: found from the artifact's provenance)")
    parser.add_argument("--limit", type=int, help="use at most N images")
    parser.add_argument("--json", type=Path, help="write the full report as JSON")
    parser.add_argument("--threads", type=int, help="inference threads")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.parity_tests.parity import run_parity

    opts = {"threads": args.threads} if args.threads else {}
    report = run_parity(args.artifacts, images=args.images, reference=args.reference, limit=args.limit, **opts)
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0 if report else 1
