"""``modnet-edge benchmark`` (alias ``bench``; mirrors :func:`modnet_edge.benchmark`): measure artifacts
here, or read results from boards and phones, and check targets.

Local artifacts are measured side by side in one interleaved run.  Results measured elsewhere come in
through ``--results`` (JSON lines from ``edge_runner.py`` or an earlier run), ``--tflite-log`` (the
``benchmark_model`` log of a phone) and ``--coreml-timing`` (an iPhone/Mac timing file); all are
checked against the same device targets.  ``--check`` exits 1 when any result misses its target, or
when no target applied to anything (a check that checked nothing must not pass).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modnet_edge.core.console import add_device_argument, all_precisions, size_arg
from modnet_edge.core.console import table as console_table

HELP = "benchmark artifacts (or ingest phone/board results) and check them against device speed targets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="*", metavar="ARTIFACT", help="artifacts or checkpoints to measure here")
    parser.add_argument("--json", type=Path, help="write every result as JSON lines to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a result misses its device target")
    parser.add_argument("--device-class", help="device class from the targets file (default: detected from the "
                        "machine; the file's default class otherwise)")
    parser.add_argument("--targets", type=Path, help="targets file (default: the shipped targets.json)")
    parser.add_argument("--list-classes", action="store_true", help="print the device classes and exit")
    parser.add_argument("--edge-runner", action="store_true", help="print the path of the standalone edge_runner.py "
                        "(copy it to a Jetson/Raspberry Pi: it needs only numpy and the runtime) and exit")
    g = parser.add_argument_group("local measurement")
    g.add_argument("--size", dest="sizes", type=size_arg, action="append", metavar="HxW",
                   help="input size HxW or N (NxN), repeatable (default: 512x512; static-shape models use their own)")
    g.add_argument("--mode", choices=("model", "end-to-end", "both"), default="model",
                   help="model: backend.run on a preprocessed feed; end-to-end: decode+preprocess+infer+postprocess")
    g.add_argument("--iterations", type=int, default=20)
    g.add_argument("--warmup", type=int, default=3)
    g.add_argument("--max-seconds", type=float, help="cap on each subject's timed phase (after 3 iterations)")
    g.add_argument("--threads", type=int, help="inference threads (default: each runtime's own)")
    g.add_argument("--batch", type=int, default=1, help="batch size for model-only runs")
    g.add_argument("--image", type=Path, help="photo used for the feed and the end-to-end run (default: synthetic)")
    g.add_argument("--runtime", help="runtime to use when the format has several")
    g.add_argument("--provider", dest="providers", action="append",
                   help="ONNX Runtime execution provider (cpu, cuda, tensorrt ...), repeatable")
    add_device_argument(g, what=" (checkpoints and the PyTorch baseline)")
    g.add_argument("--no-baseline", action="store_true", help="do not add the PyTorch FP32 baseline that ratio "
                   "targets compare against")
    g = parser.add_argument_group("results measured elsewhere")
    g.add_argument("--results", type=Path, action="append", default=[], help="JSON-lines results (edge_runner.py)")
    g.add_argument("--tflite-log", type=Path, action="append", default=[], help="TFLite benchmark_model log")
    g.add_argument("--coreml-timing", type=Path, action="append", default=[], help="Core ML timing JSON")
    g.add_argument("--artifact", type=Path, help="the artifact an ingested log/timing measured (fills in its "
                   "format, precision, size and sha256)")
    g.add_argument("--precision", choices=all_precisions(),
                   help="precision of the ingested model when no --artifact is given")
    g.add_argument("--device-name", help="name of the phone/board an ingested log came from")


def _ingested(args: argparse.Namespace, run_id: str) -> list[Any]:
    from modnet_edge.benchmarks.coreml_timing import read_coreml_timing
    from modnet_edge.benchmarks.results import read_jsonl
    from modnet_edge.benchmarks.measure import artifact_info
    from modnet_edge.benchmarks.tflite_log import read_benchmark_model_log

    out = [r for path in args.results for r in read_jsonl(path)]
    art = artifact_info(args.artifact) if args.artifact else None
    size = _artifact_static_size(args.artifact) if args.artifact else None
    device = {"name": args.device_name} if args.device_name else {}
    for log in args.tflite_log:
        out.append(read_benchmark_model_log(log, artifact=art, device=device, precision=args.precision,
                                            input_size=size or (args.sizes[0] if args.sizes else None), run_id=run_id))
    for timing in args.coreml_timing:
        out.append(read_coreml_timing(timing, artifact=art, run_id=run_id))
    return out


def _artifact_static_size(path: Path) -> tuple[int, int] | None:
    from modnet_edge.core import read_manifest

    meta = read_manifest(path)
    return tuple(meta.preprocessing.fixed_size) if meta and meta.preprocessing.fixed_size else None  # type: ignore


def run(args: argparse.Namespace) -> int:
    from modnet_edge.benchmarks.results import new_run_id, write_jsonl
    from modnet_edge.benchmarks.runner import benchmark
    from modnet_edge.benchmarks.targets import load_targets

    if args.edge_runner:
        print(Path(__file__).with_name("edge_runner.py"))
        return 0
    if args.list_classes:
        print(classes_table(load_targets(args.targets)))
        return 0
    if not (args.artifacts or args.results or args.tflite_log or args.coreml_timing):
        from modnet_edge.core.errors import ConfigError

        raise ConfigError("nothing to benchmark: give artifacts, --results, --tflite-log or --coreml-timing")
    image, source = None, "generated synthetic portrait"
    if args.image:
        from modnet_edge.core.images import read_image

        image, source = read_image(args.image), f"photo {args.image.name}"
    backend_options = {k: v for k, v in (("providers", args.providers), ("device", args.device)) if v}
    run_id = new_run_id()
    report = benchmark(args.artifacts, runtime=args.runtime, backend_options=backend_options,
                       device_class=args.device_class, targets=args.targets, baseline=not args.no_baseline,
                       results=_ingested(args, run_id), run_id=run_id, sizes=tuple(args.sizes or [(512, 512)]),
                       modes=("model", "end-to-end") if args.mode == "both" else (args.mode,), warmup=args.warmup,
                       iterations=args.iterations, max_seconds=args.max_seconds, threads=args.threads,
                       batch=args.batch, image=image, image_source=source)
    for note in report.notes:
        print(note)
    print(report.table())
    if args.json:
        write_jsonl(list(report), args.json)
        print(f"wrote {len(report)} result(s) to {args.json}")
    if not args.check:
        return 0
    print(report.check_summary())
    return 0 if report.passed else 1


def classes_table(table: Any) -> str:
    """The device classes of a targets file and their targets."""
    lines = []
    for name, cls in table.classes.items():
        lines.append(f"{name}  {cls.description}")
        rows = [(t.precision, t.mode, "x".join(map(str, t.input_size)) if t.input_size else "any size",
                 t.describe(), t.source) for t in cls.targets]
        rows += [(t.precision, t.mode, "same run", t.describe(), t.source) for t in cls.ratios]
        if rows:
            lines += ["    " + line for line in console_table(("precision", "mode", "size", "target", "source"),
                                                                 rows, rule=False).split("\n")[1:]]
    return "\n".join(lines)
