"""``modnet-edge parity``: drift of artifacts against the PyTorch reference (mirrors :func:`modnet_edge.parity`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from modnet_edge.core.console import all_precisions

HELP = "measure each artifact's alpha drift against its PyTorch reference; exit 1 when any budget fails"


def _budget_arg(text: str) -> tuple[str, float]:
    """``PRECISION=MSE`` (``fp16=1e-5``): one precision's drift budget."""
    precision, _, value = text.partition("=")
    try:
        mse = float(value)
    except ValueError:
        mse = -1.0
    if precision not in all_precisions() or not math.isfinite(mse) or mse < 0:
        raise argparse.ArgumentTypeError(f"expected PRECISION=MSE with PRECISION one of {', '.join(all_precisions())}"
                                         f", got {text!r}")
    return precision, mse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="artifacts to check")
    parser.add_argument("--images", help="folder of images (default: generated synthetic portraits)")
    parser.add_argument("--reference", help="reference checkpoint (default: found from the artifact's provenance)")
    parser.add_argument("--limit", type=int, help="use at most N images")
    parser.add_argument("--budget", dest="budgets", type=_budget_arg, action="append", metavar="PRECISION=MSE",
                        help="replace one precision's drift budget (global alpha MSE), repeatable; PRECISION: "
                        f"{{{','.join(all_precisions())}}}")
    parser.add_argument("--json", type=Path, help="write the full report as JSON")
    parser.add_argument("--threads", type=int, help="inference threads")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.parity_tests.parity import BUDGETS, Budget, run_parity

    opts = {"threads": args.threads} if args.threads else {}
    budgets = {**BUDGETS, **{p: Budget(mse=m) for p, m in args.budgets}} if args.budgets else None
    report = run_parity(args.artifacts, images=args.images, reference=args.reference, limit=args.limit,
                        budgets=budgets, **opts)
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0 if report else 1
