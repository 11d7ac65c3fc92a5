"""The main job: checkpoint -> every export this machine can make -> parity -> benchmark -> report.

One command, one output folder, one verdict::

    DIR/checkpoint/...        (only when no checkpoint was given: the built-in starter weights as a file)
    DIR/artifacts/            every exported artifact with its .manifest.json
    DIR/parity.json           drift of every artifact against the PyTorch reference
    DIR/bench.jsonl           speed results of one interleaved run (the reference included)
    DIR/summary.json          one entry per artifact: format, precision, path, size, drift, pass, latency,
                              fps, target, meets_target
    DIR/junit.xml, DIR/summary.md, DIR/report.html
    DIR/manifest.json         what ran, on what, from which checkpoint, how long each stage took

Formats come from the format table (``FORMATS``: ``can_export()`` and ``pipeline_precisions``), so a
format added by another module is exported, verified and benchmarked here without a change.  Each stage
isolates failures: a failing export is a failed entry, an artifact whose runtime is absent here (Core ML
on Linux) is "not runnable here", and neither stops the other artifacts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core import (FORMATS, RECORD_NAME, VERSION, Format, atomic_write_text, check_output_folder,
                              check_output_path, is_ours, path_size, remove_if_ours, sha256_path)
from modnet_edge.core.errors import BackendUnavailableError, ConfigError
from modnet_edge.core.limits import check_count
from modnet_edge.core.images import unseen_images

from modnet_edge.precision_search import SEARCHABLE

from modnet_edge.benchmarks.runner import BenchConfig
from modnet_edge.benchmarks.summary import (ArtifactEntry, attach_parity, attach_speed, failed_gate, group_parity, overall_pass,
                      speed_verdict, write_outputs)

MANIFEST_KIND = "modnet-edge pipeline"


@dataclass
class PipelineOptions:
    output: Path
    checkpoint: str | Path | None = None  # None: the built-in starter weights; or a weights name, or a file
    images: Path | None = None  # None: the package's unseen photos (no built-in network was trained on them)
    limit: int | None = None
    formats: Sequence[str] | None = None  # "onnx" or "onnx:fp16" items; None: every format this machine exports
    device_class: str | None = None
    targets: Path | None = None
    bench: BenchConfig = field(default_factory=lambda: BenchConfig(warmup=1, iterations=10, max_seconds=10.0))
    speed_gate: bool = True
    search: bool = True  # reduced precisions: the fastest variant within the budget (modnet_edge.precision_search)
    search_seconds: float | None = 120.0  # time budget of each search; when spent it chooses among what it judged
    keep_images: int | bool = True  # parity photos shown in the report with mattes and drift maps (True: all)
    progress: bool = True
    log: Callable[[str], None] = field(default=lambda msg: _log(msg))


def _log(message: str) -> None:
    """Print without breaking a progress bar that may be on screen."""
    from tqdm import tqdm

    tqdm.write(message)


OUTPUT_FILES = ("parity.json", "bench.jsonl", "summary.json", "junit.xml", "summary.md", "report.html")


def _prepare_output(folder: Path) -> None:
    """Use an empty folder or one a previous pipeline wrote -- proven by its ``manifest.json`` being ours
    (:func:`~modnet_edge.core.files.is_ours`; written first, as "running", so a run stopped by Ctrl-C is
    recognised too); refuse others.  The previous run's artifacts go only where they are ours; every file
    this run will write must be free or ours, checked now, before any work."""
    check_output_folder(folder)
    manifest = folder / "manifest.json"
    if folder.is_dir() and any(p.name != RECORD_NAME for p in folder.iterdir()):
        try:
            kind = json.loads(manifest.read_text()).get("kind") if is_ours(manifest) else None
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
            kind = None
        if kind != MANIFEST_KIND:
            raise ConfigError("output folder is not empty and was not written by `modnet-edge pipeline` "
                              "(no pipeline manifest.json of ours); choose an empty or new folder", folder)
        for name in OUTPUT_FILES:
            check_output_path(folder / name)
        if (folder / "artifacts").is_dir():
            for old in sorted((folder / "artifacts").iterdir()):
                remove_if_ours(old)
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, json.dumps({"kind": MANIFEST_KIND, "toolkit_version": VERSION,
                                            "status": "running"}, indent=2) + "\n")


def _checkpoint(opts: PipelineOptions) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file every stage reads: the user's, or the built-in starter weights written out
    as a float32 checkpoint (no training at run time)."""
    from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint
    from modnet_edge.model.weights import DEFAULT_WEIGHTS, describe_weights, resolve_checkpoint

    ckpt = resolve_checkpoint(opts.checkpoint)  # fails early and clearly on a bad file
    if ckpt.path is not None:
        return ckpt.path, {"path": str(ckpt.path), "kind": ckpt.kind, "trained_here": False,
                           "synthetic_only": bool(ckpt.provenance.get("synthetic")),
                           "note": ckpt.provenance.get("note")}
    name = str(ckpt.provenance.get("weights", DEFAULT_WEIGHTS))
    note = describe_weights(ckpt.provenance) or f"built-in weights {name!r}"
    opts.log(f"no checkpoint given: {note}")
    path = save_checkpoint(opts.output / "checkpoint" / f"{name}.pt", build_from_checkpoint(ckpt),
                           preprocessing=ckpt.preprocessing, provenance=ckpt.provenance)
    return path, {"path": str(path), "kind": ckpt.kind, "weights": name, "trained_here": False,
                  "synthetic_only": bool(ckpt.provenance.get("synthetic")), "note": note}


def _exporter_options(fmt: Format, precision: str, images: Path | None) -> dict[str, Any]:
    """Calibration data for the precisions the format table says need it."""
    if fmt.calibrated(precision):
        return {"calibration": str(images) if images else "synthetic"}
    return {}


def plan_exports(opts: PipelineOptions) -> tuple[list[tuple[Format, str]], list[str]]:
    """(format, precision) jobs this machine can export, and a line for each thing left out and why."""
    wanted = parse_formats(opts.formats)
    jobs, skipped = [], []
    for fmt in FORMATS.values():
        if fmt.converter is None or (wanted is not None and fmt.name not in wanted):
            continue
        precisions = (wanted or {}).get(fmt.name) or fmt.pipeline_precisions
        if not precisions:
            continue
        if not fmt.can_export():
            skipped.append(f"{fmt.name}: cannot export on this machine (needs {', '.join(fmt.export_requires)}; "
                           f"{fmt.install_hint()})")
            continue
        jobs += [(fmt, p) for p in precisions]
        rest = [p for p in fmt.variants if p not in precisions]
        if rest and not (wanted or {}).get(fmt.name):
            skipped.append(f"{fmt.name} {', '.join(rest)}: on request (--formats {fmt.name}:{rest[0]})"
                           + (f": {fmt.on_request_why}" if fmt.on_request_why else ""))
    return jobs, skipped


def export_all(ckpt_path: Path, opts: PipelineOptions, images: Path | None) -> tuple[list[ArtifactEntry], list[str]]:
    """Every (format, precision) this machine can export; a failure is an entry, never an exception.

    One process, one artifact after another: measured on 2 AMD EPYC cores, exporting the TFLite and Core
    ML formats in a second process beside the ONNX-based ones (their converters keep one core busy) cut the
    export stage from 211 to 196 s but slowed the ONNX Runtime work it ran beside by half and cost the
    parity stage its reuse of the search's mattes (30 -> 55 s): 316 s in all against 303 s.
    """
    from modnet_edge.core.console import progress
    from modnet_edge.model.checkpoint import read_checkpoint

    ckpt = read_checkpoint(ckpt_path)
    jobs, skipped = plan_exports(opts)
    entries = [export_one(ckpt, fmt, precision, opts, images)
               for fmt, precision in progress(jobs, desc="export", disable=not opts.progress, leave=False)]
    return entries, skipped


def export_one(ckpt: Any, fmt: Format, precision: str, opts: PipelineOptions, images: Path | None) -> ArtifactEntry:
    """One artifact into ``DIR/artifacts`` (searched where the precision has a budget to meet), logged in
    one line; any failure is recorded on the entry."""
    from modnet_edge import export

    out = opts.output / "artifacts" / f"modnet.{precision}{fmt.suffixes[0]}"
    entry = ArtifactEntry(fmt.name, precision, str(out))
    t0 = time.perf_counter()
    try:
        path = None
        if opts.search and (fmt.name, precision) in SEARCHABLE:
            path = _searched(ckpt, fmt, precision, out, images, opts, entry)
        if path is None:
            path = export(ckpt, fmt.name, precision, out, **_exporter_options(fmt, precision, images))
        entry.path, entry.size_bytes, entry.sha256 = str(path), path_size(path), sha256_path(path)
    except Exception as exc:  # any exporter failure is reported on its entry; the others go on
        entry.status, entry.error = "export-failed", _one_line(exc)
    entry.export_s = round(time.perf_counter() - t0, 2)
    opts.log(f"  export {fmt.name:<14} {precision:<5} "
             + (f"ok   {entry.size_bytes / 1e6:6.1f} MB" if entry.status == "ok" else f"FAILED: {entry.error}")
             + "".join(f"\n         {n}" for n in entry.notes if n.startswith("precision search")))
    return entry


def _searched(ckpt: Any, fmt: Format, precision: str, out: Path, images: Path | None, opts: PipelineOptions,
              entry: ArtifactEntry) -> Path | None:
    """The fastest variant within the precision's budget, chosen on half of the pipeline's images and
    verified on the other half; INT8 is calibrated on generated portraits, never on those images.  None
    when no variant meets the budget or the choice does not hold on the verify images (the plain export
    is made instead and its parity shows the miss)."""
    from modnet_edge.precision_search import search_precision

    # 16 generated portraits calibrate every INT8 candidate (cached); ranking uses generated ones too
    options = {"calibration": "synthetic", "calibration_size": 16} if fmt.calibrated(precision) else {}
    result = search_precision(ckpt, fmt.name, precision, out, images=images or unseen_images(), limit=opts.limit,
                              progress=False, max_seconds=opts.search_seconds, **options)
    chosen = result.chosen
    tried = ", ".join(f"{len(c.kept)} kept: MSE {c.mse:.1e}" for c in result.candidates)
    if chosen is None:
        why = ("the choice did not hold on the verify images " if result.failed_verification is not None
               else "no variant meets the budget ")
        entry.notes.append(f"precision search: {why}({tried}; chosen on {len(result.choose.images)}, verified on "
                           f"{len(result.verify.images)} images{'; ' + result.note if result.note else ''}); "
                           "plain export kept")
        return None
    plain = next(c for c in result.candidates if not c.kept)
    cost = "" if chosen is plain else (
        (f", {chosen.latency_ms / plain.latency_ms:.2f}x the plain variant's time" if chosen.latency_ms and
         plain.latency_ms else "") + f", {chosen.size_bytes / max(plain.size_bytes, 1):.2f}x its size")
    v = result.verify
    if result.note:
        entry.notes.append(f"precision search: {result.note}")
    entry.notes.append("precision search: " + ("the plain variant meets the budget" if chosen is plain else
                                               f"kept in higher precision: {', '.join(chosen.kept)}{cost}")
                       + f"; verified on {len(v.images)} unseen images (MSE {v.mse:.1e}, worst {v.worst_mse:.1e})")
    return out


def parse_formats(items: Sequence[str] | None) -> dict[str, tuple[str, ...]] | None:
    """``["onnx", "tflite:int8"]`` -> {format: precisions (empty: the format's pipeline precisions)}."""
    if not items:
        return None
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        name, _, precision = item.partition(":")
        if name not in FORMATS:
            raise ConfigError(f"unknown format {name!r}; known: {sorted(FORMATS)}")
        if FORMATS[name].converter is None:
            raise ConfigError(f"format {name!r} is not an export target")
        if precision and precision not in FORMATS[name].precisions:
            raise ConfigError(f"format {name!r} has precisions {list(FORMATS[name].precisions)}, not {precision!r}")
        out[name] = out.get(name, ()) + ((precision,) if precision else ())
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


def parity_all(entries: list[ArtifactEntry], opts: PipelineOptions, images: Path | None) -> Any:
    """Parity of every exported artifact in one run (references shared); failures isolated per artifact."""
    from modnet_edge.parity_tests.parity import ParityReport, run_parity

    todo = [e for e in entries if e.status == "ok"]
    if not todo:
        return None

    def one(batch: list[ArtifactEntry]) -> ParityReport:
        return run_parity([e.path for e in batch], images=images, limit=opts.limit, progress=opts.progress,
                          keep_mattes=opts.keep_images)

    try:
        report = one(todo)
    except Exception:  # find the culprit(s): rerun one by one, keeping what works
        parts, report = [], None
        for e in todo:
            try:
                parts.append(one([e]))
            except BackendUnavailableError as exc:
                e.status, e.error = "not-runnable-here", _one_line(exc)
            except Exception as exc:  # a runtime crash on one artifact must not hide the others
                e.status, e.error = "parity-error", _one_line(exc)
        if parts:
            report = ParityReport([r for p in parts for r in p.results], parts[0].images, parts[0].image_source,
                                  pictures=parts[0].pictures)
    if report is not None:
        groups = group_parity(report)
        for e in todo:
            if Path(e.path).resolve() in groups:
                attach_parity(e, groups[Path(e.path).resolve()])
    return report


def proxied_here(e: ArtifactEntry) -> bool:
    """Whether the entry's format runs here only through a runtime that stands in for its numerics (a
    TensorRT-ready ONNX in ONNX Runtime's CPU): the main job verifies it but does not time it."""
    return e.format in FORMATS and bool(FORMATS[e.format].proxy_runtimes)


def bench_all(entries: list[ArtifactEntry], ckpt_path: Path, opts: PipelineOptions) -> list[Any]:
    """One interleaved run over every artifact that ran parity, plus the PyTorch FP32 reference."""
    from modnet_edge.benchmarks.runner import run_benchmarks, subject_for_path

    from modnet_edge.runtimes.loader import open_backend

    ok = []
    for e in entries:
        if e.status != "ok" or e.drift is None:
            continue
        if proxied_here(e):  # its runtime here only verifies numerics: a timing would say nothing of its device's speed
            proxies = FORMATS[e.format].proxy_runtimes
            e.speed_note = (f"not timed here: {e.format} runs here only through {', '.join(proxies)}, which verifies "
                            "its numerics but says nothing of its speed where it is deployed; time it there and "
                            "ingest the result (modnet-edge bench --results)")
            continue
        try:  # speed is only measured by the format's own runtime (never by a reference emulation)
            open_backend(e.path).close()
            ok.append(e)
        except BackendUnavailableError as exc:
            e.speed_note = (f"not benchmarked here: {_one_line(exc)}; measure it on the device and ingest the "
                            "result (modnet-edge bench --tflite-log / --coreml-timing / --results)")
    if not ok:
        return []
    reference = subject_for_path(ckpt_path)
    reference.label = "reference (pytorch fp32)"
    reference.artifact["role"] = "reference"
    subjects = [subject_for_path(e.path) for e in ok]
    try:
        return run_benchmarks([*subjects, reference], opts.bench, progress=opts.progress)
    except Exception:  # isolate: each artifact with the reference, so ratios stay same-run
        results = []
        for e, s in zip(ok, subjects):
            try:
                results += run_benchmarks([s, reference], opts.bench, progress=opts.progress)
            except Exception as exc:
                e.status, e.error = "bench-error", _one_line(exc)
        return results


def run_pipeline(opts: PipelineOptions) -> dict[str, Any]:
    """Run everything; returns the manifest (``manifest["pass"]`` is the verdict)."""
    from modnet_edge.parity_tests.parity import ParityReport

    from modnet_edge.benchmarks.device_info import describe_device, runtime_versions
    from modnet_edge.report_html import write_report
    from modnet_edge.benchmarks.results import write_jsonl
    from modnet_edge.benchmarks.targets import load_targets

    t_start = time.perf_counter()
    opts.output = Path(opts.output)
    # bad input fails before any work or any file is written
    table = load_targets(opts.targets)
    device = describe_device()
    dclass = table.get(opts.device_class) if opts.device_class else table.detect(device)
    parse_formats(opts.formats)
    check_count(opts.limit, "limit (how many images)")
    if opts.search_seconds is not None and not (isinstance(opts.search_seconds, (int, float)) and
                                                0 < opts.search_seconds < float("inf")):
        raise ConfigError(f"search_seconds must be a positive number of seconds, not {opts.search_seconds!r}")
    if opts.checkpoint is not None:
        from modnet_edge.model.weights import resolve_checkpoint

        resolve_checkpoint(opts.checkpoint)
    if opts.images is not None and not Path(opts.images).is_dir():
        raise ConfigError("images must be a folder of images", opts.images)
    _prepare_output(opts.output)
    images = opts.images or unseen_images()
    image_note = (f"images from {images}" if opts.images else
                  f"the package's unseen photos ({images}: no built-in network was trained on them)")
    image_note += f", first {opts.limit}" if opts.limit else ""
    opts.log(f"images for parity and calibration: {image_note}")
    stages: dict[str, float] = {}

    t = time.perf_counter()
    ckpt_path, ckpt_info = _checkpoint(opts)
    stages["checkpoint_s"] = time.perf_counter() - t
    ckpt_info["sha256"] = sha256_path(ckpt_path)

    t = time.perf_counter()
    opts.log("exporting every format this machine can make:")
    entries, skipped = export_all(ckpt_path, opts, images)
    for line in skipped:
        opts.log(f"  skip   {line}")
    stages["export_s"] = time.perf_counter() - t

    t = time.perf_counter()
    opts.log("parity against the PyTorch reference ...")
    parity = parity_all(entries, opts, images)
    stages["parity_s"] = time.perf_counter() - t

    t = time.perf_counter()
    opts.log("benchmark (one interleaved run, reference included) ...")
    results = bench_all(entries, ckpt_path, opts)
    verdicts = table.check(results, dclass)
    if not opts.speed_gate:
        for v in verdicts:
            if v.meets is False:
                v.reason = f"(speed gate off) {v.reason}"
                v.meets = None
    for e in entries:
        attach_speed(e, results, verdicts)
    stages["bench_s"] = time.perf_counter() - t

    t = time.perf_counter()
    reference = next((r for r in results if r.artifact.get("path") and Path(r.artifact["path"]).resolve()
                      == ckpt_path.resolve() and r.mode == "model"), None)
    context = {"checkpoint": f"{ckpt_path} ({ckpt_info.get('note') or ckpt_info['kind']})",
               "warning": ("the checkpoint was trained on the built-in SYNTHETIC set only: not a portrait matter, "
                           "its mattes of real photos are not meaningful") if ckpt_info.get("synthetic_only") else None,
               "images": image_note, "device": f"{device['cpu']}, {device['usable_cores']} cores"
               + (f", GPU {', '.join(device['gpu'])}" if device["gpu"] else "") + f", {device['os']}",
               "device_class": f"{dclass.name}: {dclass.description}",
               "benchmark": f"model-only, input {'/'.join('x'.join(map(str, s)) for s in opts.bench.sizes)}, "
                            f"batch {opts.bench.batch}, threads {opts.bench.threads or 'runtime default'}, "
                            f"{opts.bench.iterations} iterations (cap {opts.bench.max_seconds} s), interleaved",
               "reference_speed": (f"{reference.latency_ms.typical:.1f} ms p50, {reference.fps:.2f} fps"
                                   if reference else None),
               "skipped_formats": "; ".join(skipped) or None, "speed_gate": "on" if opts.speed_gate else "off",
               "versions": runtime_versions()}
    if parity is not None:
        parity.write_json(opts.output / "parity.json")
    if results:
        write_jsonl(results, opts.output / "bench.jsonl")
    files = write_outputs(opts.output, entries, {k: v for k, v in context.items() if k != "versions"},
                          time.perf_counter() - t_start)
    write_report(opts.output / "report.html", entries, context, parity if isinstance(parity, ParityReport) else None,
                 results, verdicts, opts.keep_images)
    stages["report_s"] = time.perf_counter() - t
    stages["total_s"] = time.perf_counter() - t_start
    manifest = {
        "kind": MANIFEST_KIND, "toolkit_version": VERSION, "pass": overall_pass(entries),
        "command": " ".join(sys.argv), "cwd": os.getcwd(), "checkpoint": ckpt_info, "images": image_note,
        "device": device, "device_class": dclass.name, "stages": {k: round(v, 2) for k, v in stages.items()},
        "artifacts": [{"format": e.format, "precision": e.precision, "status": e.status, "pass": e.passed,
                       "path": os.path.relpath(e.path, opts.output) if e.path else None,
                       "sha256": e.sha256,
                       "bytes": e.size_bytes} for e in entries],
        "skipped_formats": skipped,
        "files": {"report": "report.html", **{k: v.name for k, v in files.items()},
                  "parity": "parity.json" if parity is not None else None,
                  "bench": "bench.jsonl" if results else None},
        "versions": context["versions"]}
    atomic_write_text(opts.output / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    manifest["entries"] = entries
    return manifest


def summary_table(entries: Sequence[ArtifactEntry]) -> str:
    head = (f"{'artifact':<32} {'prec':<12} {'MB':>6} {'MSE':>9} {'band MSE':>9} {'>4/255':>7} {'drift':<5} "
            f"{'e2e MSE':>8} {'p50 ms':>8} {'fps':>7} {'peak':>5} {'speed':<9} result")
    lines = [head, "-" * len(head)]
    for e in entries:
        d, lat = e.drift or {}, e.latency_ms or {}
        mb = f"{e.size_bytes / 1e6:6.1f}" if e.size_bytes else f"{'-':>6}"
        mse = f"{d['mse']:9.2e}" if "mse" in d else f"{'-':>9}"
        band = f"{d['band_mse']:9.2e}" if "band_mse" in d else f"{'-':>9}"
        over4 = f"{d['over_4']:7.2%}" if "over_4" in d else f"{'-':>7}"
        x = e.end_to_end_drift or {}
        e2e = f"{'same':>8}" if e.input_shape == "dynamic" else f"{x['mse']:8.1e}" if "mse" in x else f"{'-':>8}"
        p50 = f"{lat['p50']:8.1f}" if lat.get("p50") is not None else f"{'-':>8}"
        fps = f"{e.fps:7.2f}" if e.fps is not None else f"{'-':>7}"
        peak = f"{e.peak_share:5.0%}" if e.peak_share is not None else f"{'-':>5}"
        drift = {True: "pass", False: "FAIL", None: "-"}[e.drift_pass]
        speed = speed_verdict(e)
        result = "PASS" if e.passed else "not run here" if e.status == "not-runnable-here" else f"FAIL ({failed_gate(e)})"
        lines.append(f"{e.name[:32]:<32} {e.precision[:12]:<12} {mb} {mse} {band} {over4} {drift:<5} {e2e} {p50} {fps} "
                     f"{peak} {speed:<9} {result}")
    return "\n".join(lines)


def pipeline(checkpoint: str | Path | None = None, output: str | Path = "modnet-edge-out",
             **options: Any) -> dict[str, Any]:
    """Public API (``modnet_edge.pipeline``): the main job; returns the manifest (``["pass"]`` is the verdict).

    ``options``: :class:`PipelineOptions` fields (``images``, ``limit``, ``formats``, ``device_class``,
    ``targets``, ``bench=BenchConfig(...)``, ``speed_gate`` ...).
    """
    return run_pipeline(PipelineOptions(output=Path(output), checkpoint=checkpoint or None,
                                        **options))
