"""The ``modnet-edge`` command: one subcommand per job, each mirroring one Python API function.

Every subcommand lives in its stage's ``command`` module (``HELP``, ``add_arguments(parser)``,
``run(args) -> int``) and is listed here by name only, so ``--help`` does not import torch.  Any
:class:`ModnetEdgeError` becomes one clear ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from modnet_edge.core import VERSION
from modnet_edge.core.errors import BudgetError, ModnetEdgeError

# subcommand -> module defining HELP, add_arguments(parser) and run(args)
COMMANDS: dict[str, str] = {
    "formats": "modnet_edge.formats_command",
    "export": "modnet_edge.export.command",
    "predict": "modnet_edge.runtimes.command",
    "parity": "modnet_edge.parity_tests.command",
    "doctor": "modnet_edge.parity_tests.doctor_command",
    "bench": "modnet_edge.benchmarks.command",
    "report": "modnet_edge.report_command",
    "pipeline": "modnet_edge.pipeline_command",
    "tensorrt-build": "modnet_edge.export.tensorrt_command",
    "gpu-speed": "modnet_edge.benchmarks.gpu_speed",
    "info": "modnet_edge.runtimes.info_command",
    "train": "modnet_edge.train.command",
    "adapt": "modnet_edge.train.adapt_command",
    "evaluate": "modnet_edge.benchmarks.evaluate_command",
    "quality": "modnet_edge.benchmarks.quality_command",
    "weights": "modnet_edge.model.weights_command",
}


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for ``HxW`` sizes (``512x512``), shared by every command that takes one."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 512x512, got {text!r}") from None
    return h, w


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modnet-edge", description="MODNet portrait matting: train, export, "
                                     "run and verify on every deployment format.")
    parser.add_argument("--version", action="version", version=f"modnet-edge {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except BudgetError as exc:  # a verdict, like a failed parity gate
        print(f"modnet-edge {args.command}: {exc}", file=sys.stderr)
        return 1
    except ModnetEdgeError as exc:
        print(f"modnet-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"modnet-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
