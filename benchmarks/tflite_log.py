"""Read the log of TensorFlow Lite's / LiteRT's ``benchmark_model`` tool (Android, iOS, Linux) into a result.

Phones are benchmarked with the official tool (``adb shell /data/local/tmp/benchmark_model
--graph=modnet.tflite --use_gpu=true ...`` or the benchmark app + ``adb logcat``); its log is the
record.  Logs arrive as they are: with or without an ``INFO:``/``VERBOSE:``/logcat prefix, pasted into
an issue with markdown around numbers, from any tool generation, sometimes with the head cut off.  What
the tools print, generation by generation:

* parameters as ``Num threads: [4]``, ``Graph: [/data/local/tmp/m.tflite]``, ``Use gpu: [1]`` (TF 2.2:
  ``Use gpu : [1]``), ``Input shapes: [1,512,512,3]``, ``External delegate path: [libQnnTFLiteDelegate.so]``;
* what the delegates did: ``Explicitly applied GPU delegate, and the model graph will be completely
  executed by the delegate.`` (or ``partially ... w/ N delegate kernels``; TF 2.2 says ``Applied GPU
  delegate, and the model graph will be completely executed w/ the delegate.``), ``Though NNAPI delegate
  is explicitly applied, the model graph will not be executed by the delegate.`` (it was asked for and
  took no node: the graph ran on the CPU), node coverage as ``Replacing 233 out of 263 node(s) with
  delegate (TfLiteNnapiDelegate) node, yielding 4 partitions`` or the GPU delegate's ``N operations will
  run on the GPU, and the remaining M operations will run on the CPU.``, and ``Created TensorFlow Lite
  XNNPACK delegate for CPU.`` for the default CPU path;
* two runs, each announced by ``Running benchmark for at least N iterations ...`` (TF 1.x early:
  ``Running benchmark for N iterations``) and summarised by ``count=50 first=... curr=... min=... max=...
  avg=... std=...`` (older builds print ``curr=`` first; builds with percentile statistics append ``p5=...
  median=... p95=...``; a run whose every call took the same time prints ``count=N curr=X(all same)``):
  the first is the warm-up, the second the measured run;
* a summary, in one of three forms: ``Inference timings in us: Init: ..., First inference: ...,
  Warmup (avg): ..., Inference (avg): ...`` (TF 2.3 and later); ``Average inference timings in us:
  Warmup: ..., Init: ..., no stats: ...`` (TF 1.x and early 2.x; the Android app writes ``Inference:``
  for ``no stats:``); or the 2025 LiteRT tool's block in milliseconds (``Model initialization: 117.89
  ms``, ``Warmup (avg): 0.85 ms (60 runs)``, ``Inference (avg): 0.46 ms (2112 runs)``, ``Inference
  (min|max): ... ms``, ``Inference (std): ...``, ``Init|Overall footprint: ... MB``), each line behind a
  ``[./litert/tools/benchmark_litert_model.h:88]`` source location;
* memory: ``Memory footprint delta from the start of the tool (MB): init=... overall=...`` (TF 2.4-2.6:
  ``Peak memory footprint (MB): init=... overall=...``) and ``Overall peak memory footprint (MB) via
  periodic monitoring: ...``.

Speed is throughput: fps comes from the measured run's **mean** (runs / total time, what a phone
sustains), with the median reported beside it where the build prints one.  A log whose head was cut is
read from what remains (the measured run's statistics, or only the summary's mean), and the result's
notes say what is missing; a log that ends before the measured run's summary, a failed run, and logs of
TensorFlow's (not Lite's) benchmark tool are refused with a clear message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ConfigError

from modnet_edge.benchmarks.results import BenchResult, LatencyStats, new_run_id

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# what tools and log collectors put in front of the message: logcat (threadtime, and the old brief
# ``I/tflite  ( 8123):``), the severity word, LiteRT's source location ``[./litert/...h:88]``
_PREFIX = re.compile(r"^(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*?\s*:\s"
                     r"|[VDIWEF]/[^(:]*\(\s*\d+\):\s)?\s*"
                     r"(?:(?:INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG):\s*)?"
                     r"(?:\[[^\]\s]+:\d+\]\s*)?")
_PARAM = re.compile(r"([A-Za-z#][A-Za-z0-9 #()/_.,-]*?)\s*: \[(.*)\]\s*$")
_STATS = re.compile(r"(?:^|[\s:])((?:count|first|curr|min|max|avg|std|p5|median|p95)=\S+(?:\s+\S+=\S+)*)")
_BARE_STATS = re.compile(r"^(?:count|curr)=\S")
_RUNNING = re.compile(r"Running benchmark for (?:at least )?(\d+) iterations")
_TIMINGS = re.compile(r"Inference timings in us: (.*)$")
_OLD_TIMINGS = re.compile(r"Average inference timings in us: (.*)$")
_LITERT_LINE = re.compile(r"^(Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference \((?:avg|min|max|std)\)"
                          rf"|Init footprint|Overall footprint|Peak memory):\s+({_NUMBER})\s*(ms|MB)?"
                          r"(?:\s*\((\d+) runs\))?")
_LITERT_HEADER = re.compile(r"=+ BENCHMARK RESULTS =+")
_APPLIED = re.compile(r"(?:Explicitly )?[Aa]pplied (\S+) delegate, and the model graph will be (completely|partially) "
                      r"executed (?:by|w/) the delegate(?: w/ (\d+) delegate kernels)?")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed")
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node")
_GPU_SPLIT = re.compile(r"(\d+) operations? will run on the GPU, and the remaining (\d+) operations? will run on "
                        r"the CPU")
_FAILED = re.compile(r"(Failed to apply \S+ delegate|Failed to invoke|Failed to allocate tensors|Benchmarking failed"
                     r"|Failed to mmap model \S*|Disallowed CPU fallback detected|Failed to compile model"
                     r"|Failed to load model)")
_MEM = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                  r"init=(\S+) overall=(\S+)")  # the second wording is TFLite 2.4-2.6's
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: (\S+)")
_SIZE = re.compile(r"The input model file size \(MB\): (\S+)")
_XNNPACK_DEFAULT = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")
_STARTING = re.compile(r"^STARTING!")

# delegate provider name in the log -> the name users know
_DELEGATES = {"GPU": "GPU", "XNNPACK": "XNNPACK", "NNAPI": "NNAPI", "HEXAGON": "Hexagon", "COREML": "CoreML",
              "EXTERNAL": "external"}
# the delegate kernel named in a "Replacing N out of M node(s) with delegate (X) node" line -> the same names
_KERNELS = (("gpu", "GPU"), ("xnnpack", "XNNPACK"), ("nnapi", "NNAPI"), ("hexagon", "Hexagon"), ("qnn", "QNN"),
            ("coreml", "CoreML"))
_PARAM_DELEGATES = (("use gpu", "GPU"), ("use nnapi", "NNAPI"), ("use hexagon", "Hexagon"),
                    ("use xnnpack", "XNNPACK"), ("use coreml", "CoreML"))
# LiteRT block line -> key in the TF summary's vocabulary (values converted to microseconds)
_LITERT_KEYS = {"Model initialization": "Init", "Warmup (first)": "First inference", "Warmup (avg)": "Warmup (avg)",
                "Inference (avg)": "Inference (avg)", "Inference (min)": "min", "Inference (max)": "max",
                "Inference (std)": "std"}


@dataclass
class BenchmarkModelLog:
    """What one ``benchmark_model`` run printed (times in microseconds, as in the log).

    ``warmup`` is empty when the log's head was cut before the warm-up run's statistics; ``regular``
    then may come from the summary alone (mean, and min/max/std/count where the LiteRT block gives
    them).  ``missing`` says, in words, what the log lacked; ``nodes`` is (delegated, total) where printed.
    """

    params: dict[str, str]
    warmup: dict[str, float]
    regular: dict[str, float]
    timings: dict[str, float]
    delegate: str
    delegation: str  # "complete ...", "partial ...", "none: ...", "default CPU path", "unknown ..."
    memory: dict[str, float] = field(default_factory=dict)
    model_mb: float | None = None
    missing: list[str] = field(default_factory=list)
    nodes: tuple[int, int] | None = None
    tool: str = "benchmark_model"  # or "benchmark_litert_model" (the 2025 LiteRT tool's block)
    from_summary: bool = False  # the measured run is known from the summary only (its statistics line was cut)

    @property
    def graph(self) -> str | None:
        return self.params.get("Graph")

    @property
    def input_shape(self) -> list[int] | None:
        raw = self.params.get("Input shapes") or self.params.get("Input layer shapes")
        if not raw:
            return None
        try:
            return [int(v) for v in raw.split(":")[0].split(",") if v.strip()]
        except ValueError:
            return None


def _stats(text: str, where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for token in text.split():
        key, _, value = token.partition("=")
        try:
            out[key] = float(value)
        except ValueError:
            raise ConfigError(f"benchmark_model statistics line has a bad value {token!r}", where) from None
    if "count" not in out:
        raise ConfigError(f"benchmark_model statistics line lacks count=: {text!r}", where)
    if out["count"] > 0 and "avg" not in out:  # "count=N curr=X (all same)": every run took X
        out.update(avg=out["curr"], min=out["curr"], max=out["curr"], std=0.0)
    return out


def _summary_values(text: str, line: str, where: str) -> dict[str, float]:
    """``Key: value, Key: value`` of a summary line; TF 1.x names mapped to the TF 2.x names."""
    out: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition(":")
        m = re.match(rf"\s*({_NUMBER})", value)
        if m is None:
            raise ConfigError(f"cannot read the timing {part.strip()!r} in {line.strip()!r}", where)
        key = key.strip()
        key = {"Warmup": "Warmup (avg)", "no stats": "Inference (avg)", "Inference": "Inference (avg)"}.get(key, key)
        out[key] = float(m.group(1))
    return out


@dataclass
class _Scan:
    """Everything one pass over the lines found, before deciding what it means."""

    params: dict[str, str] = field(default_factory=dict)
    runs: list[tuple[dict[str, float], bool]] = field(default_factory=list)  # (stats, announced)
    timings: dict[str, float] = field(default_factory=dict)
    litert: dict[str, float] = field(default_factory=dict)  # the LiteRT block, in microseconds / MB
    litert_runs: dict[str, int] = field(default_factory=dict)
    applied: list[tuple[str, str, str | None]] = field(default_factory=list)
    replacing: list[tuple[str, int, int]] = field(default_factory=list)  # (delegate family, delegated, total)
    gpu_split: tuple[int, int] | None = None
    memory: dict[str, float] = field(default_factory=dict)
    model_mb: float | None = None
    default_xnnpack: bool = False
    started: bool = False
    first_line: str = ""


def _body(raw: str) -> str:
    # logs pasted into issues and chats arrive with markdown emphasis or code ticks around words
    line = raw.rstrip().replace("(all same)", " ").replace("**", "").replace("`", "")
    return _PREFIX.sub("", line, count=1).strip()


def _scan(lines: list[str], where: str) -> _Scan:
    s = _Scan()
    expecting_stats = 0
    for raw in lines:
        line = _body(raw)
        if not line:
            continue
        s.first_line = s.first_line or line
        if (m := _FAILED.search(line)) is not None:
            raise ConfigError(f"the benchmark failed on the device: {m.group(1)!r}; no timings to read", where)
        if _STARTING.match(line):
            s.started = True
            continue
        if _RUNNING.search(line):
            expecting_stats += 1
            continue
        if (m := _STATS.search(line)) is not None and "count=" in m.group(1) and (
                expecting_stats or (_BARE_STATS.match(line) and not s.runs and not s.started and not s.params)):
            # announced by "Running benchmark ...", or a bare statistics line at the top of a head-cut log
            s.runs.append((_stats(m.group(1), where), bool(expecting_stats)))
            expecting_stats = max(0, expecting_stats - 1)
            continue
        if (m := _OLD_TIMINGS.search(line)) is not None:
            if "with stats" in m.group(1):
                raise ConfigError("this is the log of TensorFlow's benchmark_model (full TensorFlow graphs), not "
                                  "TensorFlow Lite's: rerun with the TFLite / LiteRT benchmark_model", where)
            s.timings.update(_summary_values(m.group(1).split("Overall")[0], line, where))
            continue
        if (m := _TIMINGS.search(line)) is not None:
            s.timings.update(_summary_values(m.group(1), line, where))
            continue
        if (m := _LITERT_LINE.match(line)) is not None:
            name, value, unit, runs = m.group(1), float(m.group(2)), m.group(3), m.group(4)
            if name in _LITERT_KEYS:
                s.litert[_LITERT_KEYS[name]] = value * 1000.0  # ms -> us (std is printed in ms, unit-less)
                if runs is not None:
                    s.litert_runs[_LITERT_KEYS[name]] = int(runs)
            elif unit == "MB" or name == "Peak memory":
                s.memory[{"Init footprint": "init_mb", "Overall footprint": "overall_mb",
                          "Peak memory": "peak_mb"}[name]] = value
            continue
        if (m := _APPLIED.search(line)) is not None:
            s.applied.append((m.group(1), m.group(2), m.group(3)))
        elif (m := _NOT_APPLIED.search(line)) is not None:
            s.applied.append((m.group(1), "none", None))
        elif (m := _REPLACING.search(line)) is not None:
            s.replacing.append((_kernel_family(m.group(3)), int(m.group(1)), int(m.group(2))))
        elif (m := _GPU_SPLIT.search(line)) is not None:
            on_gpu, on_cpu = int(m.group(1)), int(m.group(2))
            s.gpu_split = (on_gpu, on_gpu + on_cpu)
        elif (m := _MEM.search(line)) is not None:
            s.memory.update(init_mb=float(m.group(1)), overall_mb=float(m.group(2)))
        elif (m := _PEAK.search(line)) is not None:
            s.memory["peak_mb"] = float(m.group(1))
        elif (m := _SIZE.search(line)) is not None:
            s.model_mb = float(m.group(1))
        elif _XNNPACK_DEFAULT.search(line):
            s.default_xnnpack = True
        elif not _LITERT_HEADER.search(line) and (m := _PARAM.search(line)) is not None:
            s.params[m.group(1).strip()] = m.group(2)
    return s


def _kernel_family(kernel: str) -> str:
    low = kernel.lower()
    return next((name for key, name in _KERNELS if key in low), kernel)


def parse_benchmark_model_log(text: str, where: str | Path = "benchmark_model log") -> BenchmarkModelLog:
    """Parse one run's log; raises :class:`ConfigError` for a failed or truncated log, or not a log at all."""
    where = str(where)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ConfigError("benchmark_model log is empty", where)
    s = _scan(lines, where)
    timings = dict(s.timings)
    tool = "benchmark_model"
    if s.litert:
        tool = "benchmark_litert_model"
        for key in ("Init", "First inference", "Warmup (avg)", "Inference (avg)"):
            if key in s.litert:
                timings.setdefault(key, s.litert[key])
    runs = [r for r, _ in s.runs]
    warmup, regular, missing, from_summary = _measured_run(s, runs, timings, where)
    head_cut = not s.started and not s.params and (not s.runs or not s.runs[0][1])
    if head_cut:
        missing.insert(0, f"the log's head was cut (it starts at {s.first_line[:60]!r}): the parameters "
                          "(model, threads, input shape)")
    delegate, delegation, nodes = _delegate(s, head_cut)
    if delegate == "unknown":
        missing.append("the delegate lines (which delegate ran is unknown)")
    return BenchmarkModelLog(s.params, warmup, regular, timings, delegate, delegation, s.memory, s.model_mb,
                             missing, nodes, tool, from_summary)


def _measured_run(s: _Scan, runs: list[dict[str, float]], timings: dict[str, float],
                  where: str) -> tuple[dict[str, float], dict[str, float], list[str], bool]:
    """(warm-up stats, measured stats, what is missing, whether the measured run is the summary's alone)
    from the statistics lines and the summary."""
    summary = timings.get("Inference (avg)")
    if summary is None:
        if not s.params and not runs:
            raise ConfigError("not a benchmark_model log (no parameters, runs or timings found)", where)
        if len(runs) < 2:
            stage = "the warm-up run" if not runs else "the measured run"
            raise ConfigError(f"benchmark_model log is truncated: it ends before {stage} printed its statistics "
                              "(copy the whole log, or rerun)", where)
        raise ConfigError("benchmark_model log is truncated: the final summary ('Inference timings in us', or "
                          "LiteRT's 'BENCHMARK RESULTS' block) is missing (copy the whole log, or rerun)", where)
    # the LiteRT block prints milliseconds with 2 decimals: its mean is known to 5 us at best
    tolerance = 5.0 if "Inference (avg)" not in s.timings else 1.0
    missing: list[str] = []

    def agrees(stats: dict[str, float], value: float) -> bool:
        return abs(stats.get("avg", -1.0) - value) <= 0.01 * max(stats.get("avg", 0.0), value) + tolerance

    from_summary = False
    if runs and agrees(runs[-1], summary):
        regular, warmup = runs[-1], (runs[-2] if len(runs) >= 2 else {})
    elif len(runs) == 1 and "Warmup (avg)" in timings and agrees(runs[0], timings["Warmup (avg)"]):
        regular, warmup, from_summary = _from_summary(s, summary), runs[0], True  # cut inside the measured run
    elif runs:
        raise ConfigError(f"benchmark_model log is inconsistent: the measured run's avg={runs[-1]['avg']:g} us "
                          f"differs from 'Inference (avg): {summary:g}' (two logs pasted together?)", where)
    else:
        regular, warmup, from_summary = _from_summary(s, summary), {}, True
    if regular.get("count", 1) < 1:
        raise ConfigError("benchmark_model measured no inference runs (count=0; was --dry_run set?)", where)
    if not warmup and "Warmup (avg)" in s.litert_runs:  # the LiteRT block counts the warm-up runs too
        warmup = {"count": float(s.litert_runs["Warmup (avg)"]), "avg": s.litert["Warmup (avg)"]}
    if not warmup:
        missing.append("the warm-up run's statistics")
    if from_summary:
        missing.append("the measured run's statistics line (only the summary's "
                       + ("mean, min, max and count remain" if "min" in regular else "mean remains") + "; no median)")
    return warmup, regular, missing, from_summary


def _from_summary(s: _Scan, summary: float) -> dict[str, float]:
    """The measured run as far as the summary tells it: the mean, and the LiteRT block's min/max/std/count."""
    out = {"avg": summary}
    for key in ("min", "max", "std"):
        if key in s.litert:
            out[key] = s.litert[key]
    if "Inference (avg)" in s.litert_runs:
        out["count"] = float(s.litert_runs["Inference (avg)"])
    return out


def _delegate(s: _Scan, head_cut: bool) -> tuple[str, str, tuple[int, int] | None]:
    """(the delegate that ran, how much of the graph it took, (delegated nodes, total nodes) or None)."""
    executed = [a for a in s.applied if a[1] != "none"]
    idle = [_DELEGATES.get(a[0].upper(), a[0]) for a in s.applied if a[1] == "none"]
    if executed:
        names = [_delegate_name(name, s.params) for name, _, _ in executed]
        _, how, kernels = executed[-1]
        nodes = _coverage(s, names[-1])
        covered = f"{nodes[0]} of {nodes[1]} nodes" if nodes else None
        if how == "completely":
            delegation = "complete" + (f" ({covered})" if covered else "")
        else:
            parts = [covered, f"{kernels} delegate kernels" if kernels else None, "rest on CPU"]
            delegation = "partial (" + ", ".join(p for p in parts if p) + ")"
        if idle:
            delegation += f"; {', '.join(idle)} requested but not executed"
        return " + ".join(dict.fromkeys(names)), delegation, nodes
    if idle:
        cpu = "XNNPACK" if s.default_xnnpack else "builtin kernels"
        return "CPU", (f"none: {', '.join(idle)} requested but not executed (it took no node), the whole graph ran "
                       f"on the CPU ({cpu})"), None
    for key, name in _PARAM_DELEGATES:
        if any(k.lower() == key and v in ("1", "true") for k, v in s.params.items()):
            return name, "requested (the log does not say how much of the graph it took)", _coverage(s, name)
    if s.default_xnnpack:
        nodes = _coverage(s, "XNNPACK")
        return "XNNPACK", "default CPU path" + (f" ({nodes[0]} of {nodes[1]} nodes)" if nodes else ""), nodes
    if head_cut:
        return "unknown", "the log's head, where the delegates are named, was cut", None
    return "CPU", "builtin kernels", None


def _delegate_name(name: str, params: dict[str, str]) -> str:
    delegate = _DELEGATES.get(name.upper(), name)
    if delegate != "external":
        return delegate
    lib = params.get("External delegate path", "")
    return ("QNN" if "qnn" in lib.lower() else "Hexagon" if "hexagon" in lib.lower()
            else f"external ({Path(lib).name or 'unknown library'})")


def _coverage(s: _Scan, delegate: str) -> tuple[int, int] | None:
    """(nodes the delegate took, nodes in the graph) from its "Replacing N out of M" line, or the GPU's split."""
    if delegate == "GPU" and s.gpu_split is not None:
        return s.gpu_split
    same = [(n, m) for family, n, m in s.replacing if family == delegate]
    if not same and delegate not in ("XNNPACK", "GPU", "NNAPI", "Hexagon", "CoreML"):  # an external library
        same = [(n, m) for family, n, m in s.replacing if family != "XNNPACK"]
    return same[-1] if same else None


def benchmark_model_result(log: BenchmarkModelLog, *, artifact: dict[str, Any] | None = None,
                           device: dict[str, Any] | None = None, precision: str | None = None,
                           input_size: tuple[int, int] | None = None, run_id: str | None = None) -> BenchResult:
    """The log as a :class:`BenchResult` (model-only: the tool feeds random data to the interpreter).

    fps is the measured run's mean (throughput); the median, where the build prints it, is the result's
    p50 and is shown beside it."""
    reg, us = log.regular, 1000.0
    median = reg.get("median")
    count = int(reg["count"]) if "count" in reg else None
    latency = LatencyStats(mean=reg["avg"] / us, std=reg["std"] / us if "std" in reg else None,
                           min=reg["min"] / us if "min" in reg else None, max=reg["max"] / us if "max" in reg else None,
                           p50=median / us if median is not None else None, count=count)
    shape = log.input_shape
    size = input_size
    batch = 1
    if shape and len(shape) == 4:
        batch = shape[0] or 1
        hw = shape[1:3] if shape[3] in (1, 3) else shape[2:4]
        size = size or (hw[0], hw[1])
    art = dict(artifact or {})
    art.setdefault("name", Path(log.graph).name if log.graph else None)
    art.setdefault("format", "tflite")
    if precision:
        art["precision"] = precision
    art.setdefault("precision", None)
    if log.model_mb is not None:
        art.setdefault("bytes", int(log.model_mb * 1e6))
    dev = {"kind": "phone", **(device or {})}
    threads = log.params.get("Num threads") or log.params.get("#threads used for CPU inference")
    runs = f" over {count} runs" if count else ""
    notes = [f"delegate {log.delegate}: {log.delegation}",
             f"fps from the mean, {latency.mean:.2f} ms{runs} (throughput); "
             + (f"median {latency.p50:.2f} ms" if latency.p50 is not None
                else "no median (the measured run's statistics line is missing)" if log.from_summary
                else "no median (this build prints no percentile statistics)")]
    if log.missing:
        notes.append("read from what remains of the log; missing: " + "; ".join(log.missing))
    if size is None:
        notes.append("input size unknown (pass --size or an artifact with a static shape)")
    return BenchResult(
        source="tflite-benchmark-model", run_id=run_id or new_run_id(), artifact=art, mode="model",
        runtime={"name": f"tflite {log.tool}", "delegate": log.delegate, "device": dev.get("name")},
        device=dev, versions={}, latency_ms=latency,
        config={"warmup": int(log.warmup["count"]) if "count" in log.warmup else None, "iterations": count,
                "threads": int(threads) if threads and threads.lstrip("-").isdigit() else "tool default",
                "batch": batch, "input_size": list(size) if size else None},
        memory={"peak_rss_mb": log.memory.get("peak_mb"), "rss_delta_mb": log.memory.get("overall_mb"),
                "gpu_mb": None},
        notes=notes, fps_from="mean",
        extra={"init_ms": log.timings.get("Init", 0) / us, "first_inference_ms": log.timings.get("First inference",
               0) / us, "warmup_avg_ms": log.timings.get("Warmup (avg)", 0) / us, "params": log.params,
               "delegation": log.delegation, "delegated_nodes": list(log.nodes) if log.nodes else None,
               "missing": log.missing})


def read_benchmark_model_log(path: str | Path, **kwargs: Any) -> BenchResult:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("benchmark_model log does not exist", path)
    text = path.read_text(encoding="utf-8", errors="replace")
    return benchmark_model_result(parse_benchmark_model_log(text, path), **kwargs)
