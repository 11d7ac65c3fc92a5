"""``modnet-edge pipeline``: the main job (checkpoint -> exports -> parity -> benchmark -> report), one folder.

Exit status: 0 when every artifact passes every gate, 1 when any gate fails (an export, a drift budget
or a speed target), 2 for bad input (a missing checkpoint, an unknown device class ...), 3 when the machine
refused (disk full, a file-size limit: see README "Exit status").
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from modnet_edge.core.console import size_arg

HELP = ("the main job: checkpoint -> every export this machine can make -> parity -> benchmark -> report "
        "(DIR/report.html, summary.json, junit.xml); exit 1 when any gate fails")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="official or modnet-edge checkpoint, or a built-in weights "
                        "name; omitted: the built-in 'starter' weights (see `modnet-edge weights`)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (new, empty, or a previous "
                        "pipeline's)")
    parser.add_argument("--images", type=Path, help="folder of photos for parity and the precision searches "
                        "(default: the package's unseen photos, which no built-in network was trained on)")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images for parity (default: all)")
    parser.add_argument("--formats", help="comma-separated formats, optionally with a precision, e.g. "
                        "'onnx,tflite:int8' (default: every format this machine can export, at its pipeline "
                        "precisions)")
    parser.add_argument("--device-class", help="device class for speed targets (default: detected)")
    parser.add_argument("--targets", type=Path, help="targets file (default: the shipped targets.json)")
    parser.add_argument("--size", dest="sizes", type=size_arg, action="append", metavar="HxW",
                        help="benchmark input size HxW or N (NxN), repeatable (default: 512x512)")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per artifact")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=10.0, help="cap on each artifact's timed phase")
    parser.add_argument("--threads", type=int, default=_usable_cores(), help="inference threads, same for all")
    parser.add_argument("--end-to-end", action="store_true", help="also time decode+preprocess+infer+postprocess")
    parser.add_argument("--no-speed-gate", action="store_true", help="report speed targets but do not fail on them")
    parser.add_argument("--search-seconds", type=float, default=120.0, help="time budget of each precision search "
                        "(default 120): when it is spent the search chooses among the candidates it judged, and "
                        "the log and report say so")
    parser.add_argument("--no-search", action="store_true", help="export reduced precisions as they come instead of "
                        "searching for the fastest variant within each budget (faster, may miss budgets)")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.main_job import PipelineOptions, proxied_here, run_pipeline, summary_table
    from modnet_edge.benchmarks.runner import BenchConfig

    t0 = time.perf_counter()
    bench = BenchConfig(sizes=tuple(args.sizes or [(512, 512)]),
                        modes=("model", "end-to-end") if args.end_to_end else ("model",),
                        warmup=args.warmup, iterations=args.iterations, max_seconds=args.max_seconds,
                        threads=args.threads)
    opts = PipelineOptions(output=args.output, checkpoint=args.checkpoint, images=args.images, limit=args.limit,
                           formats=[f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None,
                           device_class=args.device_class, targets=args.targets, bench=bench,
                           speed_gate=not args.no_speed_gate, search=not args.no_search,
                           search_seconds=args.search_seconds)
    manifest = run_pipeline(opts)
    print()
    print(summary_table(manifest["entries"]))
    stages = ", ".join(f"{k[:-2]} {v:.0f}s" for k, v in manifest["stages"].items() if k != "total_s")
    print(f"\n{'PASS' if manifest['pass'] else 'FAIL'}: {sum(e.passed for e in manifest['entries'])} of "
          f"{len(manifest['entries'])} artifacts pass every gate; total {time.perf_counter() - t0:.0f} s ({stages})")
    shaky = [e.name for e in manifest["entries"] if not getattr(e, "speed_trusted", True)]
    if shaky:
        print(f"speed not judged for {', '.join(shaky)}: the machine was not quiet while they or their baseline "
              "ran (see summary.json); rerun on a quiet machine for a speed verdict")
    untimed = [e.name for e in manifest["entries"] if e.status == "ok" and e.fps is None and proxied_here(e)]
    if untimed:
        print(f"speed not measured for {', '.join(untimed)}: their runtime here only verifies their numerics "
              "(a TensorRT-ready ONNX in ONNX Runtime on this CPU); time them as engines on their GPU")
    print(f"report: {args.output / 'report.html'}  summary: {args.output / 'summary.json'}  "
          f"junit: {args.output / 'junit.xml'}")
    return 0 if manifest["pass"] else 1
