"""``modnet-edge formats``: the format table and what this machine can export and run."""

from __future__ import annotations

import argparse

from modnet_edge.core import FORMATS

HELP = "list the deployment formats, their precisions, and whether this machine can export/run them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    print(f"{'format':<14} {'suffixes':<24} {'precisions':<40} {'export':<7} {'run':<5} runtimes")
    for f in FORMATS.values():
        print(f"{f.name:<14} {','.join(f.suffixes):<24} {','.join(f.precisions):<40} "
              f"{'yes' if f.can_export() else ('-' if f.exporter is None else 'no'):<7} "
              f"{'yes' if f.can_run() else 'no':<5} {','.join(n for n, _ in f.backends)}")
    return 0
