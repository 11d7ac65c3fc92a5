"""``modnet-edge export``: checkpoint -> artifact (mirrors :func:`modnet_edge.export`).

Every export option of every format is a flag here, generated from the format table
(:mod:`modnet_edge.core.formats`): the same name, kind, choices and help as the ``export()`` keyword.
The table says which options apply to which format and precision; an option that does not apply is
refused with one line naming it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modnet_edge.core import FORMATS
from modnet_edge.core.console import size_arg
from modnet_edge.core.formats import PRECISIONS, Option

HELP = "export a checkpoint to a deployable artifact (writes the artifact and its .manifest.json)"


_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": int}, "float": {"type": float}, "str": {}, "path": {}, "cache": {"metavar": "DIR|off"},
    "source": {"metavar": "DATA"},
    "size": {"type": size_arg, "metavar": "HxW"}, "sizes": {"type": size_arg, "nargs": "+", "metavar": "HxW"},
    "pair": {"type": int, "nargs": 2, "metavar": ("LOW", "HIGH")}, "list": {"nargs": "+", "metavar": "PART"},
    "bool": {"action": argparse.BooleanOptionalAction},
}


def export_options() -> dict[str, list[tuple[str, Option]]]:
    """Every option name of the table -> the (format, option) rows that declare it."""
    by_name: dict[str, list[tuple[str, Option]]] = {}
    for fmt in FORMATS.values():
        for opt in fmt.options:
            by_name.setdefault(opt.name, []).append((fmt.name, opt))
    return by_name


def _help(rows: list[tuple[str, Option]]) -> str:
    opt = rows[0][1]
    where = []
    for fmt, o in rows:
        scope = f"{fmt} {'/'.join(o.precisions)}" if o.precisions else fmt
        if o.default is not None:
            scope += f": default {o.default}"
        where.append(scope)
    return f"{opt.help} [{'; '.join(where)}]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="official or modnet-edge checkpoint, or a built-in weights "
                        "name; omitted: the built-in 'starter' weights")
    parser.add_argument("--format", default="onnx", choices=[f for f, v in FORMATS.items() if v.converter],
                        help="artifact format (modnet-edge formats: what each is and runs on)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="precision variant (which a format has: modnet-edge formats)")
    parser.add_argument("-o", "--output", type=Path, help="artifact path (default: <checkpoint>.<precision><suffix>)")
    parser.add_argument("--budget", metavar="auto|MSE|TERMS", help="search for the fastest variant whose matte "
                        "drift meets this budget ('auto': the precision's budget; an MSE such as 1e-4; or 8-bit terms "
                        "such as over4=0.1%%,levels=8): the most drift-sensitive parts stay in higher precision, "
                        "chosen on --images and verified on --verify-images "
                        "(onnx/tensorrt-onnx fp16 and int8, coreml fp16, tflite int8 and int8-a16)")
    parser.add_argument("--images", metavar="DIR", help="photos --budget chooses on (default: the package's unseen "
                        "photos); never the calibration images")
    parser.add_argument("--verify-images", metavar="DIR", help="photos the choice is verified on, never looked at "
                        "before (default: every other one of --images)")
    group = parser.add_argument_group("format options (from the format table; each applies where shown)")
    for name, rows in export_options().items():
        opt = rows[0][1]
        kw = dict(_TYPES[opt.kind])
        choices = sorted({c for _, o in rows for c in o.choices})
        if choices and opt.kind in ("str",):
            kw["choices"] = choices
        group.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=_help(rows), **kw)


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    """The export options given on the command line (None: not given, the exporter's default)."""
    out = {}
    for name in export_options():
        value = getattr(args, name, None)
        if value is not None:
            out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    import modnet_edge
    from modnet_edge.core import path_size  # a Core ML .mlpackage is a folder: its size is its files'

    options = options_from(args)
    if args.checkpoint is None:
        from modnet_edge.model.weights import DEFAULT_WEIGHTS, get_weights

        print(f"note: no checkpoint given: exporting the built-in '{DEFAULT_WEIGHTS}' weights "
              f"({get_weights(DEFAULT_WEIGHTS).name}; record: modnet-edge weights)")
    if args.budget is not None:
        return _search(args, options)
    path = modnet_edge.export(args.checkpoint, format=args.format, precision=args.precision, output=args.output,
                              **options)
    print(f"wrote {path} ({path_size(path) / 1e6:.1f} MB) and {path.name}.manifest.json")
    return 0


def _default_stem(checkpoint: str | None) -> str:
    """The default artifact name's stem, as the export skeleton names it: built-in weights (by name or by
    default) by their row's own name (``starter`` -> ``starter-v1``), a checkpoint file by its stem."""
    from modnet_edge.model.weights import DEFAULT_WEIGHTS, get_weights, is_weights_name

    if checkpoint is None or (is_weights_name(checkpoint) and not Path(checkpoint).exists()):
        return get_weights(checkpoint or DEFAULT_WEIGHTS).name
    return Path(checkpoint).stem


def _search(args: argparse.Namespace, options: dict) -> int:
    from modnet_edge.core import get_format, path_size
    from modnet_edge.exporters.skeleton import check_export_output
    from modnet_edge.precision_search import search_precision

    from modnet_edge.precision_search import resolve_budget

    budget = resolve_budget(args.budget, args.precision)  # a malformed budget fails before any export
    fmt = get_format(args.format)
    output = args.output or Path(f"{_default_stem(args.checkpoint)}.{args.precision}{fmt.suffixes[0]}")
    check_export_output(fmt, output)
    result = search_precision(args.checkpoint, args.format, args.precision, output, budget=budget,
                              images=args.images, verify_images=args.verify_images, **options)
    print(result.summary())
    print(f"search record: {output}.search.json")
    if result.chosen is None:
        return 1
    print(f"wrote {output} ({path_size(Path(output)) / 1e6:.1f} MB) and {Path(output).name}.manifest.json")
    return 0
