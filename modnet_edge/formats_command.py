"""``modnet-edge formats``: the format table and what this machine can export and run (the table itself
is :data:`modnet_edge.FORMATS`)."""

from __future__ import annotations

import argparse

from modnet_edge.core import FORMATS
from modnet_edge.core.console import table

HELP = "list the deployment formats, their precisions, and whether this machine can export/run them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def formats_table() -> str:
    """One row per format; columns sized to their content (a new format's long name cannot shift them)."""
    rows = [(f.name, ",".join(f.suffixes), ",".join(f.precisions),
             "yes" if f.can_export() else ("-" if f.converter is None else "no"),
             "yes" if f.can_run() else "no", ",".join(n for n, _ in f.backends)) for f in FORMATS.values()]
    return table(("format", "suffixes", "precisions", "export", "run", "runtimes"), rows)


def run(args: argparse.Namespace) -> int:
    print(formats_table())
    return 0
