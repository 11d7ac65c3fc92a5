"""``modnet-edge parity``: drift of artifacts against the PyTorch reference (mirrors :func:`modnet_edge.parity`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from modnet_edge.core.console import all_precisions

HELP = "measure each artifact's alpha drift against its PyTorch reference; exit 1 when any budget fails"


def _budget_arg(text: str) -> tuple[str, object]:
    """``PRECISION=MSE`` (``fp16=1e-5``) or ``PRECISION=TERMS`` (``fp16=over4=0.1%,levels=8``): one
    precision's drift budget."""
    from modnet_edge.core.errors import ConfigError
    from modnet_edge.parity_tests.drift import parse_budget

    precision, _, value = text.partition("=")
    if precision not in all_precisions():
        raise argparse.ArgumentTypeError(f"expected PRECISION=BUDGET with PRECISION one of "
                                         f"{', '.join(all_precisions())}, got {text!r}")
    try:
        return precision, parse_budget(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="artifacts to check")
    parser.add_argument("--images", help="folder of images, or 'synthetic' (default: the package's unseen photos, "
                        "which no built-in network was trained on)")
    parser.add_argument("--reference", help="reference checkpoint or built-in weights name (default: found from "
                        "the artifact's provenance)")
    parser.add_argument("--limit", type=int, help="use at most N images")
    parser.add_argument("--budget", dest="budgets", type=_budget_arg, action="append", metavar="PRECISION=BUDGET",
                        help="replace one precision's drift budget, repeatable: an alpha MSE (fp16=1e-5) or 8-bit "
                        "terms (fp16=over1=1%%,over4=0.1%%,levels=8: shares of pixels whose 8-bit alpha moves by more "
                        f"than 1 / 4 levels, largest move); PRECISION: {{{','.join(all_precisions())}}}")
    parser.add_argument("--json", type=Path, help="write the full report as JSON")
    parser.add_argument("--threads", type=int, help="inference threads")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.parity_tests.parity import BUDGETS, run_parity

    opts = {"threads": args.threads} if args.threads else {}
    budgets = {**BUDGETS, **dict(args.budgets)} if args.budgets else None
    report = run_parity(args.artifacts, images=args.images, reference=args.reference, limit=args.limit,
                        budgets=budgets, **opts)
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0 if report else 1
