"""The benchmark runner: any artifact, any format, model-only and end-to-end, side by side in one run.

Everything goes through the format table (``modnet_edge.runtimes.load``/``open_backend``), so a format
added tomorrow is benchmarked without a line here.  Two modes:

* ``model``: ``backend.run`` on an already preprocessed (and, for quantised inputs, already quantised)
  feed: what the accelerator costs.
* ``end-to-end``: ``predictor.predict(jpeg_path)``: decode + preprocess + infer + postprocess, what an
  application pays per image.

Comparisons are only meaningful when measured together, so all subjects are opened first and their
timed iterations are **interleaved** in rounds: a load spike on a shared machine hits every subject,
not just the one that happened to run during it.  Ratios are computed from one run (one ``run_id``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ConfigError

from modnet_edge.benchmarks.device_info import gpu_memory_mb
from modnet_edge.benchmarks.isolation import LoadMeter, run_isolated, stability
# what callers import from here: the measuring side lives in .measure, shared with the worker processes
from modnet_edge.benchmarks.measure import (BenchConfig, Subject, _default_image, _result, attach_roofline,  # noqa: F401
                                            open_and_warm, subject_for_checkpoint, subject_for_path,
                                            time_interleaved)
from modnet_edge.benchmarks.results import BenchResult, new_run_id


def run_benchmarks(subjects: Sequence[Subject], config: BenchConfig | None = None, progress: bool = True,
                   run_id: str | None = None) -> list[BenchResult]:
    """Open every subject, warm each up, then time them interleaved; one result per subject/mode/size.

    With ``config.isolate`` (default) every subject runs in its own worker process (:mod:`.isolation`);
    subjects that cannot be rebuilt in another process are measured here, together, and say so.
    """
    from modnet_edge.core.console import progress as progress_bar

    cfg = config or BenchConfig()
    run_id = run_id or new_run_id()
    image = cfg.image if cfg.image is not None else _default_image()
    if cfg.isolate and subjects and all(s.spec is not None for s in subjects):
        results = run_isolated(list(subjects), cfg, image, run_id, progress)
        attach_roofline(results, cfg)
        return results
    handles, jobs, extras = [], [], {}
    with tempfile.TemporaryDirectory(prefix="modnet-edge-bench-") as tmp:
        try:
            for subject in progress_bar(subjects, desc="open + warm up", disable=not progress, leave=False):
                handle, subject_jobs, extras[id(subject)] = open_and_warm(subject, cfg, image, Path(tmp))
                handles.append(handle)
                jobs += subject_jobs
            meter = LoadMeter([os.getpid()])
            with meter:
                time_interleaved(jobs, cfg, "benchmark (interleaved)", progress)
            gpu = gpu_memory_mb()
            results = [_result(job, cfg, run_id, extras[id(job.subject)], gpu) for job in jobs]
            for r in results:
                r.extra["stability"] = stability(r, meter.share)
                r.config["isolated"] = False
                if len(subjects) > 1:
                    r.notes.append("subjects shared one process (not isolated): they may disturb each other")
            attach_roofline(results, cfg)
            return results
        finally:
            for handle in handles:
                handle.close()


class BenchmarkReport(list):
    """What :func:`benchmark` returns: the list of :class:`BenchResult` (local and ingested) plus their
    verdicts against the device speed targets, so the API and ``modnet-edge benchmark`` judge alike."""

    def __init__(self, results: Sequence[BenchResult], verdicts: Sequence[Any], notes: Sequence[str] = ()) -> None:
        super().__init__(results)
        self.verdicts = list(verdicts)
        self.notes = list(notes)  # what was added or decided on the caller's behalf (the baseline)

    @property
    def missed(self) -> list[Any]:
        return [v for v in self.verdicts if v.meets is False]

    @property
    def passed(self) -> bool:
        """The ``--check`` verdict: no result misses its target, and at least one target applied (a check
        that checked nothing must not pass)."""
        return not self.missed and any(v.meets for v in self.verdicts)

    def check_summary(self) -> str:
        if self.missed:
            return f"check FAILED: {len(self.missed)} result(s) miss their target"
        if not any(v.meets for v in self.verdicts):
            return ("check FAILED: no target applied to any result (pass --device-class, or measure at a target's "
                    "size and precision); nothing was checked")
        return "check passed: every result with a target meets it"

    def table(self) -> str:
        return verdict_table(self.verdicts)


def benchmark(artifacts: Sequence[str | Path] = (), runtime: str | None = None, progress: bool = True,
              backend_options: dict[str, Any] | None = None, *, device_class: str | None = None,
              targets: str | Path | None = None, baseline: bool = True, results: Sequence[BenchResult] = (),
              run_id: str | None = None, **config: Any) -> BenchmarkReport:
    """Public API (``modnet_edge.benchmark``): measure artifacts side by side in one interleaved run and
    check every result against the device speed targets (``modnet-edge benchmark`` is this call).

    ``config``: :class:`BenchConfig` fields (``sizes=((512, 512),)``, ``modes=("model", "end-to-end")``,
    ``iterations``, ``warmup``, ``threads``, ``batch``, ``max_seconds``, ``image`` ...); ``backend_options``
    go to each backend (``providers=``, ``device=``).  ``device_class``: the targets' class (default:
    detected from this machine for local results, recorded or detected for ``results``); ``targets``: a
    targets file (default: the shipped one).  ``baseline``: add the PyTorch FP32 reference when a ratio
    target of the class compares against it.  ``results``: results measured elsewhere (phones, boards,
    earlier runs) checked with the same targets.  Returns a :class:`BenchmarkReport` (a list of
    :class:`BenchResult` with ``.verdicts``, ``.passed`` and ``.table()``).
    """
    from modnet_edge.benchmarks.device_info import describe_device
    from modnet_edge.benchmarks.targets import load_targets

    table = load_targets(targets)
    explicit = table.get(device_class) if device_class else None  # an unknown class fails before any work
    if not artifacts and not results:
        raise ConfigError("nothing to benchmark: give artifacts, or results measured elsewhere")
    run_id = run_id or new_run_id()
    options = dict(backend_options or {})
    options.pop("threads", None)  # threads are BenchConfig's, the same for every subject
    measured: list[BenchResult] = []
    notes: list[str] = []
    if artifacts:
        subjects = [subject_for_path(a, runtime=runtime, **options) for a in artifacts]
        local_class = explicit or table.detect(describe_device())
        base = baseline_subject(artifacts, local_class, subjects, **options) if baseline else None
        if base is not None:
            notes.append(f"adding {base.label} (ratio targets of class {local_class.name!r} compare against it)")
            subjects.append(base)
        measured = run_benchmarks(subjects, BenchConfig(**config), progress=progress, run_id=run_id)
    ingested = list(results)
    for r in ingested:
        if explicit is not None:  # remembered, so `modnet-edge report --bench` checks it against the same class
            r.extra["device_class"] = explicit.name
    everything = measured + ingested
    return BenchmarkReport(everything, table.check(everything, explicit), notes)


def baseline_subject(artifacts: Sequence[str | Path], device_class: Any, subjects: Sequence[Subject],
                     **options: Any) -> Subject | None:
    """The PyTorch FP32 reference of the first artifact with a manifest, when a ratio target of
    ``device_class`` compares against it and no subject already is it."""
    from modnet_edge.core import read_manifest
    from modnet_edge.model.weights import find_reference

    wanted = device_class.baselines()
    # a checkpoint given as a subject (no manifest, so no precision recorded) runs in fp32: it is the baseline
    have = {(s.artifact.get("format"), s.artifact.get("precision") or "fp32") for s in subjects}
    if not wanted or ("pytorch", "fp32") not in wanted or ("pytorch", "fp32") in have:
        return None
    torch_options = {"device": options["device"]} if options.get("device") else {}
    for path in artifacts:
        meta = read_manifest(path)
        if meta is not None:
            ckpt = find_reference(meta, Path(path))
            subject = subject_for_checkpoint(ckpt, **torch_options)
            subject.label = f"pytorch fp32 baseline ({subject.label})"
            subject.artifact["role"] = "reference"
            return subject
    return None


def verdict_table(verdicts: Sequence[Any]) -> str:
    """Results and their verdicts, columns sized to content (long artifact names are never cut), with
    the reason under each miss, after the lines that say where the local results were measured."""
    from modnet_edge.core.console import table

    rows, reasons = [], []
    for v in verdicts:
        r = v.result
        share = ((r.extra or {}).get("roofline") or {}).get("share")
        shaky = unstable_reason(r)
        untrusted = v.meets is None and ("untrusted" in v.measured or v.kind == "proxy" or shaky is not None)
        verdict = ("PROXY" if v.kind == "proxy" else "UNTRUSTED" if untrusted
                   else {True: "MEETS", False: "MISSES", None: "no target"}[v.meets])
        reason = v.reason if v.kind == "proxy" or "untrusted" in v.measured or v.meets is False else \
            f"timing untrusted: {shaky}" if shaky else v.reason
        lat = r.latency_ms
        rows.append((r.label, _ms(lat.p50), _ms(lat.mean), _ms(lat.p90), f"{r.fps:.2f}", r.fps_basis,
                     f"{share:.0%}" if share is not None else "-", v.device_class, v.required, v.measured, verdict))
        reasons.append(f"    {reason}" if (v.meets is False or untrusted) and reason else None)
    # a column says what it holds: a log without percentiles has no median, and fps names its basis
    lines = table(("result", "median ms", "mean ms", "p90 ms", "fps", "fps from", "peak", "class", "target",
                   "measured", "verdict"), rows, right=(1, 2, 3, 4, 6)).split("\n")
    results = list({id(v.result): v.result for v in verdicts}.values())  # one per result (several verdicts)
    out = machine_lines(results) + lines[:2]
    for line, reason in zip(lines[2:], reasons):
        out += [line] + ([reason] if reason else [])
    return "\n".join(out + trust_lines(results))


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def unstable_reason(result: Any) -> str | None:
    """Why a local timing cannot be trusted (the machine was busy, the calls spread), or None."""
    stability = (result.extra or {}).get("stability") or {}
    return None if not stability or stability.get("stable", True) else str(stability.get("why") or "unstable")


def trust_lines(results: list[Any]) -> list[str]:
    """The run's verdict on its own timings, always printed for local results: trusted (and on what
    grounds) or untrusted (which results, and why), so a busy machine never passes silently."""
    from modnet_edge.benchmarks.isolation import FOREIGN_LIMIT, SPREAD_LIMIT

    local = [r for r in results if r.source == "local" and (r.extra or {}).get("stability")]
    if not local:
        return []
    shaky = [(r, unstable_reason(r)) for r in local if unstable_reason(r)]
    if not shaky:
        busiest = max((r.extra["stability"].get("foreign_cpu_share") or 0.0) for r in local)
        return [f"timings trusted: the machine was quiet (other processes used at most {busiest:.0%} of the CPU, "
                f"limit {FOREIGN_LIMIT:.0%}) and every subject's middle half of calls spans under "
                f"{SPREAD_LIMIT:.2g}x"]
    return [f"timings UNTRUSTED for {len(shaky)} of {len(local)} result(s); speed verdicts on them are not "
            "given:"] + [f"    {r.artifact.get('name')}: {why}" for r, why in shaky]


def machine_lines(results: list[Any]) -> list[str]:
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
