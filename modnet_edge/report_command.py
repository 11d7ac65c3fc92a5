"""``modnet-edge report``: the visual parity report for existing artifacts, with speed from any benchmark.

Runs parity on the artifacts (keeping mattes for the pictures), joins speed results given with
``--bench`` (this machine's ``bench --json`` output, ``edge_runner.py`` lines, ingested phone logs:
matched to artifacts by sha256, or by path) and writes one folder: ``report.html`` (self-contained),
``summary.json``, ``junit.xml`` and ``summary.md``.  Exit 1 when any artifact fails a gate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write the self-contained HTML parity report (plus JUnit XML and a Markdown summary) for artifacts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="artifacts to report on")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--images", type=Path, help="folder of images (default: generated synthetic portraits)")
    parser.add_argument("--limit", type=int, help="use at most N images")
    parser.add_argument("--reference", type=Path, help="reference checkpoint (default: from the artifacts' provenance)")
    parser.add_argument("--bench", type=Path, action="append", default=[], help="benchmark results (JSON lines), "
                        "repeatable")
    parser.add_argument("--device-class", help="device class for the speed targets (default: recorded on each "
                        "result, else detected from its device)")
    parser.add_argument("--targets", type=Path, help="targets file (default: the shipped targets.json)")
    parser.add_argument("--pictures", type=int, default=2, help="how many images to show with mattes and heat maps")


def run(args: argparse.Namespace) -> int:
    from modnet_edge.core import FORMATS, path_size, sha256_path
    from modnet_edge.core.errors import ArtifactError
    from modnet_edge.parity_tests.parity import run_parity
    from modnet_edge.runtimes.loader import detect_format

    from modnet_edge.benchmarks.device_info import runtime_versions
    from modnet_edge.report_html import write_report
    from modnet_edge.benchmarks.results import read_jsonl
    from modnet_edge.benchmarks.summary import ArtifactEntry, attach_parity, attach_speed, group_parity, overall_pass, write_outputs
    from modnet_edge.benchmarks.targets import load_targets

    table = load_targets(args.targets)
    if args.device_class:
        table.get(args.device_class)  # unknown class: fail before the slow parity run
    for path in args.artifacts:
        if not Path(path).exists():
            raise ArtifactError("artifact does not exist", path)
    results = [r for f in args.bench for r in read_jsonl(f)]
    parity = run_parity(args.artifacts, images=args.images, reference=args.reference, limit=args.limit,
                        keep_mattes=max(args.pictures, 0))
    verdicts = table.check(results, args.device_class)
    entries = []
    for path, group in group_parity(parity).items():
        r = group[0]
        fmt = detect_format(path).name if r.format not in FORMATS else r.format
        e = ArtifactEntry(fmt, r.precision, str(path), path_size(path), sha256_path(path))
        attach_parity(e, group)
        attach_speed(e, results, verdicts)
        entries.append(e)
    context = {"images": f"{len(parity.images)} from {parity.image_source}",
               "reference": parity.results[0].reference if parity.results else None,
               "benchmarks": ", ".join(str(b) for b in args.bench) or "none given (no speed columns)",
               "versions": runtime_versions()}
    args.output.mkdir(parents=True, exist_ok=True)
    write_outputs(args.output, entries, {k: v for k, v in context.items() if k != "versions"})
    write_report(args.output / "report.html", entries, context, parity, results, verdicts, args.pictures)
    print(parity.table())
    print(f"wrote {args.output / 'report.html'}, summary.json, junit.xml, summary.md")
    return 0 if overall_pass(entries) else 1
