"""``modnet-edge weights``: the built-in weights table (what ships, from what data, how good)."""

from __future__ import annotations

import argparse
import json

HELP = "list the built-in weights: file, sha256, training recipe and data (with licenses), measured quality"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show one entry in full")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.model.weights import DEFAULT_WEIGHTS, WEIGHTS, get_weights

    entries = [get_weights(args.name)] if args.name else list(WEIGHTS.values())
    if args.json:
        print(json.dumps([w.to_dict() for w in entries], indent=2))
        return 0
    for w in entries:
        print(f"{w.name}{' (default)' if w.name == DEFAULT_WEIGHTS else ''}: {w.summary}")
        print(f"  file     {w.file}  sha256 {w.sha256}")
        print(f"  recipe   {w.recipe}")
        for d in w.data:
            print(f"  data     {d['name']}  [{d['license']}]")
        for key, value in w.quality.items():
            print(f"  quality  {key}: {value}")
    return 0
