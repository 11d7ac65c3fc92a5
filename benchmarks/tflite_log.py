"""Read the log of TensorFlow Lite's ``benchmark_model`` tool (Android, iOS, Linux) into a result.

Phones are benchmarked with the official tool (``adb shell /data/local/tmp/benchmark_model
--graph=modnet.tflite --use_gpu=true ...`` or the benchmark app + ``adb logcat``); its log is the
record.  The tool prints (TFLite 2.4 and later; with or without an ``INFO:`` or logcat prefix):

* parameters as ``Num threads: [4]``, ``Graph: [/data/local/tmp/m.tflite]``, ``Use gpu: [1]``,
  ``Input shapes: [1,512,512,3]``, ``External delegate path: [libQnnTFLiteDelegate.so]``;
* delegates as ``Explicitly applied GPU delegate, and the model graph will be completely executed by
  the delegate.`` (or ``partially ... w/ N delegate kernels``), and ``Created TensorFlow Lite XNNPACK
  delegate for CPU.`` for the default CPU path;
* two runs, each announced by ``Running benchmark for at least N iterations ...`` and summarised by a
  statistics line ``count=50 first=... curr=... min=... max=... avg=... std=...`` (older builds print
  ``curr=`` first; builds with percentile statistics append ``p5=... median=... p95=...``): the first is
  the warm-up, the second the measured run;
* ``Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...``;
* ``Memory footprint delta from the start of the tool (MB): init=... overall=...`` and, with
  ``--report_peak_memory_footprint``, ``Overall peak memory footprint (MB) via periodic monitoring: ...``.

Pre-2.x builds printed ``Average inference timings in us: Warmup: ..., Init: ..., no stats: ...``; they
lack the per-run statistics this reader needs and are refused with a clear message, as is a log that
stops before the measured run finished (a truncated copy, or a crash on the device).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ConfigError

from modnet_edge.benchmarks.results import BenchResult, LatencyStats, new_run_id

_PARAM = re.compile(r"([A-Za-z#][A-Za-z0-9 #()/_.,-]*?): \[(.*)\]\s*$")
_STATS = re.compile(r"(?:^|[\s:])((?:count|first|curr|min|max|avg|std|p5|median|p95)=\S+(?:\s+\S+=\S+)*)")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")
_TIMINGS = re.compile(r"Inference timings in us: (.*)$")
_OLD_TIMINGS = re.compile(r"Average inference timings in us:")
_APPLIED = re.compile(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                      r"executed by the delegate(?: w/ (\d+) delegate kernels)?")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed")
_FAILED = re.compile(r"(Failed to apply \S+ delegate|Failed to invoke|Failed to allocate tensors|Benchmarking failed"
                     r"|Failed to mmap model \S*|Disallowed CPU fallback detected)")
_MEM = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                  r"init=(\S+) overall=(\S+)")  # the second wording is TFLite 2.4-2.6's
_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: (\S+)")
_SIZE = re.compile(r"The input model file size \(MB\): (\S+)")
_XNNPACK_DEFAULT = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")

# delegate provider name in the log -> the name users know
_DELEGATES = {"GPU": "GPU", "XNNPACK": "XNNPACK", "NNAPI": "NNAPI", "HEXAGON": "Hexagon", "COREML": "CoreML",
              "EXTERNAL": "external"}
_PARAM_DELEGATES = (("Use gpu", "GPU"), ("Use NNAPI", "NNAPI"), ("Use Hexagon", "Hexagon"),
                    ("Use xnnpack", "XNNPACK"), ("Use CoreML", "CoreML"))


@dataclass
class BenchmarkModelLog:
    """What one ``benchmark_model`` run printed (times in microseconds, as in the log)."""

    params: dict[str, str]
    warmup: dict[str, float]
    regular: dict[str, float]
    timings: dict[str, float]
    delegate: str
    delegation: str  # "complete" | "partial (N kernels)" | "none" | "default CPU path"
    memory: dict[str, float] = field(default_factory=dict)
    model_mb: float | None = None

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


def parse_benchmark_model_log(text: str, where: str | Path = "benchmark_model log") -> BenchmarkModelLog:
    """Parse one run's log; raises :class:`ConfigError` for an unsupported, failed or truncated log."""
    where = str(where)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ConfigError("benchmark_model log is empty", where)
    params: dict[str, str] = {}
    runs: list[dict[str, float]] = []
    expecting_stats = 0
    timings: dict[str, float] = {}
    applied: list[tuple[str, str, str | None]] = []
    memory: dict[str, float] = {}
    model_mb = None
    default_xnnpack = False
    for raw in lines:
        # logs pasted into issues and chats arrive with markdown emphasis or code ticks around words
        line = raw.rstrip().replace("(all same)", " ").replace("**", "").replace("`", "")
        if _OLD_TIMINGS.search(line):
            raise ConfigError("this log comes from an old benchmark_model build (it prints 'Average inference "
                              "timings in us' without per-run statistics); unsupported: rerun with a TensorFlow "
                              "Lite 2.4+ / LiteRT benchmark_model", where)
        if (m := _FAILED.search(line)) is not None:
            raise ConfigError(f"the benchmark failed on the device: {m.group(1)!r}; no timings to read", where)
        if (m := _RUNNING.search(line)) is not None:
            expecting_stats += 1
            continue
        if expecting_stats and (m := _STATS.search(line)) is not None and "count=" in m.group(1):
            runs.append(_stats(m.group(1), where))
            expecting_stats -= 1
            continue
        if (m := _TIMINGS.search(line)) is not None:
            for part in m.group(1).split(","):
                key, _, value = part.partition(":")
                try:
                    timings[key.strip()] = float(value)
                except ValueError:
                    raise ConfigError(f"cannot read the timing {part.strip()!r} in {line.strip()!r}", where) from None
            continue
        if (m := _APPLIED.search(line)) is not None:
            applied.append((m.group(1), m.group(2), m.group(3)))
        elif (m := _NOT_APPLIED.search(line)) is not None:
            applied.append((m.group(1), "none", None))
        elif (m := _MEM.search(line)) is not None:
            memory = {"init_mb": float(m.group(1)), "overall_mb": float(m.group(2))}
        elif (m := _PEAK.search(line)) is not None:
            memory["peak_mb"] = float(m.group(1))
        elif (m := _SIZE.search(line)) is not None:
            model_mb = float(m.group(1))
        elif _XNNPACK_DEFAULT.search(line):
            default_xnnpack = True
        elif (m := _PARAM.search(line)) is not None:
            params[m.group(1).strip()] = m.group(2)
    _check_complete(params, runs, timings, where)
    delegate, delegation = _delegate(applied, params, default_xnnpack)
    return BenchmarkModelLog(params, runs[0], runs[1], timings, delegate, delegation, memory, model_mb)


def _check_complete(params: dict[str, str], runs: list[dict[str, float]], timings: dict[str, float],
                    where: str) -> None:
    if not params and not runs and not timings:
        raise ConfigError("not a benchmark_model log (no parameters, runs or timings found)", where)
    if len(runs) < 2:
        stage = "the warm-up run" if not runs else "the measured run"
        raise ConfigError(f"benchmark_model log is truncated: it ends before {stage} printed its statistics "
                          "(copy the whole log, or rerun)", where)
    if "Inference (avg)" not in timings:
        raise ConfigError("benchmark_model log is truncated: the final 'Inference timings in us' summary is "
                          "missing (copy the whole log, or rerun)", where)
    if runs[1].get("count", 0) < 1:
        raise ConfigError("benchmark_model measured no inference runs (count=0; was --dry_run set?)", where)
    avg, summary = runs[1]["avg"], timings["Inference (avg)"]
    if abs(avg - summary) > 0.01 * max(avg, summary) + 1:
        raise ConfigError(f"benchmark_model log is inconsistent: the measured run's avg={avg:g} us differs from "
                          f"'Inference (avg): {summary:g}' (two logs pasted together?)", where)


def _delegate(applied: list[tuple[str, str, str | None]], params: dict[str, str],
              default_xnnpack: bool) -> tuple[str, str]:
    if applied:
        name, how, kernels = applied[-1]
        delegate = _DELEGATES.get(name.upper(), name)
        if delegate == "external":
            lib = params.get("External delegate path", "")
            delegate = "QNN" if "qnn" in lib.lower() else "Hexagon" if "hexagon" in lib.lower() else \
                f"external ({Path(lib).name or 'unknown library'})"
        delegation = {"completely": "complete", "partially": f"partial ({kernels} delegate kernels, rest on CPU)",
                      "none": "none (graph ran on the CPU)"}[how]
        return delegate, delegation
    for key, name in _PARAM_DELEGATES:
        if params.get(key) in ("1", "true"):
            return name, "requested (the log does not say how much of the graph it took)"
    if default_xnnpack:
        return "XNNPACK", "default CPU path"
    return "CPU", "builtin kernels"


def benchmark_model_result(log: BenchmarkModelLog, *, artifact: dict[str, Any] | None = None,
                           device: dict[str, Any] | None = None, precision: str | None = None,
                           input_size: tuple[int, int] | None = None, run_id: str | None = None) -> BenchResult:
    """The log as a :class:`BenchResult` (model-only: the tool feeds random data to the interpreter)."""
    reg, us = log.regular, 1000.0
    median = reg.get("median")
    latency = LatencyStats(mean=reg["avg"] / us, std=reg.get("std", 0.0) / us, min=reg.get("min", reg["avg"]) / us,
                           max=reg.get("max", reg["avg"]) / us, p50=median / us if median is not None else None,
                           count=int(reg["count"]))
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
    notes = [f"delegate {log.delegate}: {log.delegation}", "percentiles are not in benchmark_model's log "
             "(only avg/min/max/std; median when built with percentile statistics)"]
    if size is None:
        notes.append("input size unknown (pass --size or an artifact with a static shape)")
    return BenchResult(
        source="tflite-benchmark-model", run_id=run_id or new_run_id(), artifact=art, mode="model",
        runtime={"name": "tflite benchmark_model", "delegate": log.delegate, "device": dev.get("name")},
        device=dev, versions={}, latency_ms=latency,
        config={"warmup": int(log.warmup.get("count", 0)), "iterations": int(reg["count"]),
                "threads": int(threads) if threads and threads.lstrip("-").isdigit() else "tool default",
                "batch": batch, "input_size": list(size) if size else None},
        memory={"peak_rss_mb": log.memory.get("peak_mb"), "rss_delta_mb": log.memory.get("overall_mb"),
                "gpu_mb": None},
        notes=notes,
        extra={"init_ms": log.timings.get("Init", 0) / us, "first_inference_ms": log.timings.get("First inference",
               0) / us, "warmup_avg_ms": log.timings.get("Warmup (avg)", 0) / us, "params": log.params})


def read_benchmark_model_log(path: str | Path, **kwargs: Any) -> BenchResult:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("benchmark_model log does not exist", path)
    text = path.read_text(encoding="utf-8", errors="replace")
    return benchmark_model_result(parse_benchmark_model_log(text, path), **kwargs)
