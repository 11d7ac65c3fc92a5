"""``modnet-edge qat``: quantisation-aware fine-tuning for a format's INT8 (mirrors :func:`modnet_edge.qat`).

The INT8 export options of the format (``--static-shape``, ``--keep-float``, ``--input-type``,
``--target-cpu`` ...) are the export command's own flags (one definition, the format table): the
fine-tuning simulates the quantisation they ask for, and the before/after artifacts are exported with
them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from modnet_edge.core.console import square_size_arg

HELP = ("quantisation-aware fine-tuning by self-distillation on unlabeled images, for a format's INT8; "
        "records the INT8 drift before and after (qat_summary.json)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from modnet_edge.export_command import _TYPES, _help, export_options
    from modnet_edge.quant_aware import SIMULATED, _SHARED

    parser.add_argument("init", nargs="?", help="checkpoint or built-in weights name to fine-tune; omitted: the "
                        "built-in 'starter' weights")
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/qat"), help="run folder (qat.pt, last.pt, "
                        "log.jsonl, epochs.csv, qat_summary.json)")
    parser.add_argument("--calibration", required=True, metavar="DATA", help="unlabeled images: a folder, a video or "
                        "'synthetic' (they also calibrate the measured artifacts)")
    parser.add_argument("--format", default="onnx", choices=sorted(SIMULATED), help="the INT8 format to fine-tune for")
    parser.add_argument("--images", metavar="DIR", help="photos the drift is measured on (default: the package's "
                        "unseen photos); never calibration images")
    parser.add_argument("--steps", type=int, help="optimizer steps (default 300)")
    parser.add_argument("--size", type=square_size_arg, metavar="N", help="training crop side (default 256)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 1e-5)")
    parser.add_argument("--batch-size", type=int, help="crops per step (default 2)")
    parser.add_argument("--resume", action="store_true", help="continue exactly from OUTPUT/last.pt")
    parser.add_argument("--no-measure", action="store_true", help="fine-tune only: no before/after artifacts and "
                        "parity runs")
    group = parser.add_argument_group("INT8 export options (as `modnet-edge export`; each applies where shown)")
    for name, rows in export_options().items():
        if name not in _SHARED or name == "calibration":
            continue
        rows = [(f, o) for f, o in rows if f in SIMULATED and o.applies_to("int8")]
        if not rows:
            continue
        opt = rows[0][1]
        kw = dict(_TYPES[opt.kind])
        choices = sorted({c for _, o in rows for c in o.choices})
        if choices and opt.kind == "str":
            kw["choices"] = choices
        group.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=_help(rows), **kw)


def run(args: argparse.Namespace) -> int:
    import modnet_edge
    from modnet_edge.quant_aware import _SHARED

    options = {k: getattr(args, k) for k in _SHARED if getattr(args, k, None) is not None}
    path = modnet_edge.qat(args.init, args.output, calibration=args.calibration, format=args.format,
                           images=args.images, steps=args.steps, size=args.size, lr=args.lr,
                           batch_size=args.batch_size, resume=args.resume, measure=not args.no_measure,
                           progress=not args.no_progress, **options)
    summary = json.loads((Path(args.output) / "qat_summary.json").read_text())
    drift = summary.get("drift")
    if drift:
        b, a = drift["before"]["int8"], drift["after"]["int8"]
        print(f"{args.format} int8 drift against the initial float network on {len(a['images'])} photos: "
              f"MSE {b['mse']:.2e} -> {a['mse']:.2e}, band {b['band_mse']:.2e} -> {a['band_mse']:.2e}, "
              f"pixels > 4/255 {b['over_4']:.2%} -> {a['over_4']:.2%} (run {drift['after']['measured_as']})")
    print(f"fine-tuned checkpoint: {path}")
    return 0
