"""``modnet-edge bench``: measure artifacts here, or read results from boards and phones, and check targets.

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

from modnet_edge.cli import size_arg

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
    g.add_argument("--size", type=size_arg, action="append", metavar="HxW",
                   help="input size, repeatable (default 512x512; static-shape models use their own)")
    g.add_argument("--mode", choices=("model", "end-to-end", "both"), default="model",
                   help="model: backend.run on a preprocessed feed; end-to-end: decode+preprocess+infer+postprocess")
    g.add_argument("--iterations", type=int, default=20)
    g.add_argument("--warmup", type=int, default=3)
    g.add_argument("--max-seconds", type=float, help="cap on each subject's timed phase (after 3 iterations)")
    g.add_argument("--threads", type=int, help="inference threads (default: each runtime's own)")
    g.add_argument("--batch", type=int, default=1, help="batch size for model-only runs")
    g.add_argument("--image", type=Path, help="photo used for the feed and the end-to-end run (default: synthetic)")
    g.add_argument("--runtime", help="runtime to use when the format has several")
    g.add_argument("--provider", action="append", help="ONNX Runtime execution provider (cpu, cuda, tensorrt ...)")
    g.add_argument("--device", help="PyTorch device (cpu, cuda)")
    g.add_argument("--no-baseline", action="store_true", help="do not add the PyTorch FP32 baseline that ratio "
                   "targets compare against")
    g = parser.add_argument_group("results measured elsewhere")
    g.add_argument("--results", type=Path, action="append", default=[], help="JSON-lines results (edge_runner.py)")
    g.add_argument("--tflite-log", type=Path, action="append", default=[], help="TFLite benchmark_model log")
    g.add_argument("--coreml-timing", type=Path, action="append", default=[], help="Core ML timing JSON")
    g.add_argument("--artifact", type=Path, help="the artifact an ingested log/timing measured (fills in its "
                   "format, precision, size and sha256)")
    g.add_argument("--precision", help="precision of the ingested model when no --artifact is given")
    g.add_argument("--device-name", help="name of the phone/board an ingested log came from")


def _ingested(args: argparse.Namespace, run_id: str) -> list[Any]:
    from modnet_edge.benchmarks.coreml_timing import read_coreml_timing
    from modnet_edge.benchmarks.results import read_jsonl
    from modnet_edge.benchmarks.runner import artifact_info
    from modnet_edge.benchmarks.tflite_log import read_benchmark_model_log

    out = [r for path in args.results for r in read_jsonl(path)]
    art = artifact_info(args.artifact) if args.artifact else None
    size = _artifact_static_size(args.artifact) if args.artifact else None
    device = {"name": args.device_name} if args.device_name else {}
    for log in args.tflite_log:
        out.append(read_benchmark_model_log(log, artifact=art, device=device, precision=args.precision,
                                            input_size=size or (args.size[0] if args.size else None), run_id=run_id))
    for timing in args.coreml_timing:
        out.append(read_coreml_timing(timing, artifact=art, run_id=run_id))
    return out


def _artifact_static_size(path: Path) -> tuple[int, int] | None:
    from modnet_edge.core import read_manifest

    meta = read_manifest(path)
    return tuple(meta.preprocessing.fixed_size) if meta and meta.preprocessing.fixed_size else None  # type: ignore


def _baseline_subject(args: argparse.Namespace, device_class: Any, subjects: list[Any]) -> Any:
    """The PyTorch FP32 reference of the first artifact, when a ratio target compares against it."""
    from modnet_edge.core import read_manifest
    from modnet_edge.parity_tests.parity import find_reference

    from modnet_edge.benchmarks.runner import subject_for_checkpoint

    wanted = device_class.baselines()
    # a checkpoint given as a subject (no manifest, so no precision recorded) runs in fp32: it is the baseline
    have = {(s.artifact.get("format"), s.artifact.get("precision") or "fp32") for s in subjects}
    if not wanted or ("pytorch", "fp32") not in wanted or ("pytorch", "fp32") in have:
        return None
    for path in args.artifacts:
        meta = read_manifest(path)
        if meta is not None:
            ckpt = find_reference(meta, Path(path))
            subject = subject_for_checkpoint(ckpt, **_torch_options(args))
            subject.label = f"pytorch fp32 baseline ({subject.label})"
            subject.artifact["role"] = "reference"
            return subject
    return None


def _torch_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"device": args.device} if args.device else {}


def run(args: argparse.Namespace) -> int:
    from modnet_edge.core.errors import ConfigError
    from modnet_edge.runtimes.command import backend_options

    from modnet_edge.benchmarks.device_info import describe_device
    from modnet_edge.benchmarks.results import new_run_id, write_jsonl
    from modnet_edge.benchmarks.runner import BenchConfig, run_benchmarks, subject_for_path
    from modnet_edge.benchmarks.targets import load_targets

    if args.edge_runner:
        print(Path(__file__).with_name("edge_runner.py"))
        return 0
    table = load_targets(args.targets)
    if args.list_classes:
        for name, cls in table.classes.items():
            print(f"{name:<22} {cls.description}")
            for t in cls.targets:
                size = "x".join(map(str, t.input_size)) if t.input_size else "any size"
                print(f"    {t.precision:<5} {t.mode:<10} {size:<9} {t.describe():<14} {t.source}")
            for t in cls.ratios:
                print(f"    {t.precision:<5} {t.mode:<10} {'same run':<9} {t.describe():<14} {t.source}")
        return 0
    explicit = table.get(args.device_class) if args.device_class else None
    if not (args.artifacts or args.results or args.tflite_log or args.coreml_timing):
        raise ConfigError("nothing to benchmark: give artifacts, --results, --tflite-log or --coreml-timing")
    run_id = new_run_id()
    results = []
    if args.artifacts:
        local_class = explicit or table.detect(describe_device())
        opts = backend_options(args)
        opts.pop("threads", None)
        subjects = [subject_for_path(p, runtime=args.runtime, **opts) for p in args.artifacts]
        base = None if args.no_baseline else _baseline_subject(args, local_class, subjects)
        if base is not None:
            print(f"adding {base.label} (ratio targets of class {local_class.name!r} compare against it)")
            subjects.append(base)
        image, source = None, "generated synthetic portrait"
        if args.image:
            from modnet_edge.core.images import read_image

            image, source = read_image(args.image), f"photo {args.image.name}"
        modes = ("model", "end-to-end") if args.mode == "both" else (args.mode,)
        cfg = BenchConfig(sizes=tuple(args.size or [(512, 512)]), modes=modes, warmup=args.warmup,
                          iterations=args.iterations, max_seconds=args.max_seconds, threads=args.threads,
                          batch=args.batch, image=image, image_source=source)
        results += run_benchmarks(subjects, cfg, run_id=run_id)
    ingested = _ingested(args, run_id)
    for r in ingested:
        if explicit is not None:  # remembered, so `modnet-edge report --bench` checks it against the same class
            r.extra["device_class"] = explicit.name
    results += ingested
    verdicts = table.check(results, explicit)
    print(verdict_table(verdicts))
    if args.json:
        write_jsonl(results, args.json)
        print(f"wrote {len(results)} result(s) to {args.json}")
    if not args.check:
        return 0
    missed = [v for v in verdicts if v.meets is False]
    if missed:
        print(f"check FAILED: {len(missed)} result(s) miss their target")
        return 1
    if not any(v.meets for v in verdicts):
        print("check FAILED: no target applied to any result (pass --device-class, or measure at a target's size "
              "and precision); nothing was checked")
        return 1
    print("check passed: every result with a target meets it")
    return 0


def verdict_table(verdicts: list[Any]) -> str:
    head = (f"{'result':<52} {'p50 ms':>8} {'p90 ms':>8} {'fps':>8} {'peak':>5}  {'class':<18} {'target':<22} "
            f"{'measured':<16} verdict")
    lines = _machine_lines([v.result for v in verdicts]) + [head, "-" * len(head)]
    for v in verdicts:
        r = v.result
        p90 = f"{r.latency_ms.p90:8.2f}" if r.latency_ms.p90 is not None else f"{'-':>8}"
        share = ((r.extra or {}).get("roofline") or {}).get("share")
        peak = f"{share:5.0%}" if share is not None else f"{'-':>5}"
        untrusted = v.meets is None and "untrusted" in v.measured
        verdict = "UNTRUSTED" if untrusted else {True: "MEETS", False: "MISSES", None: "no target"}[v.meets]
        lines.append(f"{r.label[:52]:<52} {r.latency_ms.typical:8.2f} {p90} {r.fps:8.2f} {peak}  "
                     f"{v.device_class[:18]:<18} {v.required[:22]:<22} {v.measured[:16]:<16} {verdict}")
        if (v.meets is False or untrusted) and v.reason:
            lines.append(f"    {v.reason}")
    return "\n".join(lines)


def _machine_lines(results: list[Any]) -> list[str]:
    """Where the local results were measured: CPU, its speed features, isolation, and the peak's derivation."""
    local = [r for r in results if r.source == "local"]
    if not local:
        return []
    dev, r = local[0].device, local[0]
    features = ", ".join(dev.get("cpu_features") or []) or "not reported"
    isolated = all(x.config.get("isolated") for x in local)
    lines = [f"machine: {dev.get('cpu')} ({dev.get('usable_cores')} usable cores; {features}); "
             + ("each subject in its own process" if isolated else "subjects shared one process")]
    roof = (r.extra or {}).get("roofline") or {}
    if roof.get("derivation"):
        lines.append(f"peak: {roof['derivation']}; MODNet {roof['gflops_per_frame']} GFLOPs per frame at "
                     f"{'x'.join(str(v) for v in (r.config.get('model_input_size') or []))}")
    return lines
