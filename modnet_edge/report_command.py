"""``modnet-edge report`` (mirrors :func:`modnet_edge.report`): the visual parity report for existing
artifacts, with speed from any benchmark.

Runs parity on the artifacts (keeping mattes for the pictures), joins speed results given with
``--bench`` (this machine's ``benchmark --json`` output, ``edge_runner.py`` lines, ingested phone logs:
matched to artifacts by sha256, or by path) and writes one folder: ``report.html`` (self-contained),
``summary.json``, ``junit.xml`` and ``summary.md``.  Exit 1 when any artifact fails a gate.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HELP = "write the self-contained HTML parity report (plus JUnit XML and a Markdown summary) for artifacts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="artifacts to report on")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--images", type=Path, help="folder of images (default: generated synthetic portraits)")
    parser.add_argument("--limit", type=int, help="use at most N images")
    parser.add_argument("--reference", help="reference checkpoint or built-in weights name (default: from the "
                        "artifacts' provenance)")
    parser.add_argument("--bench", type=Path, action="append", default=[], help="benchmark results (JSON lines), "
                        "repeatable")
    parser.add_argument("--device-class", help="device class for the speed targets (default: recorded on each "
                        "result, else detected from its device)")
    parser.add_argument("--targets", type=Path, help="targets file (default: the shipped targets.json)")
    parser.add_argument("--pictures", type=int, help="how many parity photos to show with mattes and drift maps "
                        "(default: all of them)")


def report(artifacts: Sequence[str | Path], output: str | Path, images: Any = None, limit: int | None = None,
           reference: str | Path | None = None, bench: Sequence[str | Path] = (), device_class: str | None = None,
           targets: str | Path | None = None, pictures: int | None = None) -> dict[str, Any]:
    """Public API (``modnet_edge.report``): run parity on ``artifacts``, join the speed results in the
    ``bench`` files, and write ``report.html``, ``summary.json``, ``junit.xml`` and ``summary.md`` into
    ``output``.  ``pictures``: how many parity photos the page shows (None: all).  Returns ``{"pass": bool,
    "entries": [...], "parity": ParityReport, "output": Path}``."""
    from modnet_edge.benchmarks.device_info import runtime_versions
    from modnet_edge.benchmarks.results import read_jsonl
    from modnet_edge.benchmarks.summary import (ArtifactEntry, attach_parity, attach_speed, group_parity, overall_pass,
                                                write_outputs)
    from modnet_edge.benchmarks.targets import load_targets
    from modnet_edge.core import FORMATS, check_output_folder, check_output_path, path_size, sha256_path
    from modnet_edge.core.errors import ArtifactError
    from modnet_edge.parity_tests.parity import run_parity
    from modnet_edge.report_html import write_report
    from modnet_edge.runtimes.loader import detect_format

    output = check_output_folder(output)
    for name in ("report.html", "summary.json", "junit.xml", "summary.md"):  # free or ours, before the slow part
        check_output_path(output / name)
    table = load_targets(targets)
    if device_class:
        table.get(device_class)  # unknown class: fail before the slow parity run
    for path in artifacts:
        if not Path(path).exists():
            raise ArtifactError("artifact does not exist", path)
    results = [r for f in bench for r in read_jsonl(f)]
    keep: bool | int = True if pictures is None else max(pictures, 0)
    parity = run_parity(artifacts, images=images, reference=reference, limit=limit, keep_mattes=keep)
    verdicts = table.check(results, device_class)
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
               "benchmarks": ", ".join(str(b) for b in bench) or "none given (no speed columns)",
               "versions": runtime_versions()}
    output.mkdir(parents=True, exist_ok=True)
    write_outputs(output, entries, {k: v for k, v in context.items() if k != "versions"})
    write_report(output / "report.html", entries, context, parity, results, verdicts, keep)
    return {"pass": overall_pass(entries), "entries": entries, "parity": parity, "output": output}


def run(args: argparse.Namespace) -> int:
    result = report(args.artifacts, args.output, images=args.images, limit=args.limit, reference=args.reference,
                    bench=args.bench, device_class=args.device_class, targets=args.targets, pictures=args.pictures)
    print(result["parity"].table())
    print(f"wrote {args.output / 'report.html'}, summary.json, junit.xml, summary.md")
    return 0 if result["pass"] else 1
