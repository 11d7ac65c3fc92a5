"""Core ML timings from an iPhone, iPad or Mac, in a small documented JSON format, into a result.

Core ML models run only on Apple devices, so their speed is measured there and brought back as a
file.  The format (``modnet-edge/coreml-timing/1``) is what a ~20-line Swift harness prints, or what a
person copies from Xcode's Core ML performance report (which shows median/min/max prediction time
per compute-unit setting)::

    {
      "schema": "modnet-edge/coreml-timing/1",
      "device": {"name": "iPhone 14 Pro", "model": "iPhone15,2", "chip": "A16 Bionic", "os": "iOS 17.4"},
      "model": {"name": "modnet.fp16.mlpackage", "precision": "fp16", "input_size": [512, 512],
                "sha256": "<optional, of the artifact as exported>"},
      "compute_units": "all",              # all | cpuOnly | cpuAndGPU | cpuAndNeuralEngine
      "mode": "model",                     # model (prediction only) | end-to-end (with image pre/post)
      "batch": 1,
      "load_ms": 143.2,                    # MLModel(contentsOf:configuration:) wall time, optional
      "warmup": 5,                         # untimed predictions before the timed ones
      "prediction_ms": [12.1, 11.9, ...]   # every timed prediction, in order (preferred), or
      "summary_ms": {"median": 11.8, "min": 11.2, "max": 14.0, "mean": 12.0, "count": 100}
    }

A harness only needs ``let t0 = DispatchTime.now(); _ = try model.prediction(from: input);`` and
``Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6`` appended to an array,
then ``JSONSerialization`` of the object above.  With per-call samples the p50/p90/p99 are computed
here; with only a summary, the percentiles it does not give stay empty.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ConfigError

from modnet_edge.benchmarks.results import MODES, BenchResult, LatencyStats, new_run_id

SCHEMA = "modnet-edge/coreml-timing/1"
COMPUTE_UNITS = ("all", "cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def coreml_timing_result(data: Any, where: str | Path = "coreml timing", artifact: dict[str, Any] | None = None,
                         run_id: str | None = None) -> BenchResult:
    """Validate a Core ML timing object and turn it into a :class:`BenchResult`."""

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"invalid Core ML timing file: {msg}", where)

    if not isinstance(data, dict):
        raise fail("top level must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise fail(f"'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
    device, model = data.get("device"), data.get("model")
    if not isinstance(device, dict) or not isinstance(device.get("name"), str):
        raise fail("'device' must be an object with at least a 'name'")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise fail("'model' must be an object with at least a 'name'")
    units = data.get("compute_units", "all")
    if units not in COMPUTE_UNITS:
        raise fail(f"'compute_units' must be one of {COMPUTE_UNITS}, not {units!r}")
    mode = data.get("mode", "model")
    if mode not in MODES:
        raise fail(f"'mode' must be one of {MODES}, not {mode!r}")
    batch = data.get("batch", 1)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise fail(f"'batch' must be a positive integer, got {batch!r}")
    latency = _latency(data, fail)
    size = model.get("input_size")
    if size is not None and (not isinstance(size, list) or len(size) != 2
                             or not all(isinstance(v, int) and v > 0 for v in size)):
        raise fail(f"model.input_size must be [height, width], got {size!r}")
    art = {"name": model["name"], "path": None, "format": "coreml", "precision": model.get("precision"),
           "bytes": model.get("bytes"), "sha256": model.get("sha256")}
    if artifact:
        if art["sha256"] and artifact.get("sha256") and art["sha256"] != artifact["sha256"]:
            raise fail(f"the timed model's sha256 differs from {artifact.get('name')}'s: not the same artifact")
        art.update({k: v for k, v in artifact.items() if v is not None})
    load_ms = data.get("load_ms")
    return BenchResult(
        source="coreml-timing", run_id=run_id or new_run_id(), artifact=art, mode=mode,
        runtime={"name": "coreml", "delegate": units, "device": device["name"]},
        device={"kind": "apple", "cpu": device.get("chip"), "os": device.get("os"), **device},
        versions={k: str(v) for k, v in (data.get("versions") or {}).items()}, latency_ms=latency,
        config={"warmup": data.get("warmup"), "iterations": latency.count, "threads": "Core ML default",
                "batch": batch, "input_size": size, "compute_units": units},
        memory={"peak_rss_mb": data.get("peak_memory_mb"), "rss_delta_mb": None, "gpu_mb": None},
        notes=[f"Core ML compute units: {units}"],
        extra={"load_ms": load_ms if _number(load_ms) else None})


def _latency(data: dict[str, Any], fail: Any) -> LatencyStats:
    samples, summary = data.get("prediction_ms"), data.get("summary_ms")
    if samples is not None:
        if not isinstance(samples, list) or not samples:
            raise fail("'prediction_ms' must be a non-empty list of milliseconds")
        bad = [s for s in samples if not _number(s) or s <= 0]
        if bad:
            raise fail(f"'prediction_ms' has {len(bad)} non-positive or non-numeric value(s), e.g. {bad[0]!r}")
        return LatencyStats.from_samples(samples)
    if summary is None:
        raise fail("needs 'prediction_ms' (every timed prediction) or 'summary_ms' (median/min/max/count)")
    if not isinstance(summary, dict):
        raise fail("'summary_ms' must be an object")
    median, mean = summary.get("median"), summary.get("mean")
    if not (_number(median) and median > 0) and not (_number(mean) and mean > 0):
        raise fail("'summary_ms' needs a positive 'median' or 'mean'")
    count = summary.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise fail(f"'summary_ms.count' must be a positive integer, got {count!r}")
    for key in ("min", "max", "std", "p90", "p99"):
        if summary.get(key) is not None and not _number(summary[key]):
            raise fail(f"'summary_ms.{key}' must be a number")
    return LatencyStats(mean=float(mean if _number(mean) and mean > 0 else median), std=summary.get("std"),
                        min=summary.get("min"), max=summary.get("max"),
                        p50=float(median) if _number(median) and median > 0 else None,
                        p90=summary.get("p90"), p99=summary.get("p99"), count=count)


def read_coreml_timing(path: str | Path, **kwargs: Any) -> BenchResult:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("Core ML timing file does not exist", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Core ML timing file is not valid JSON (truncated?): {exc}", path) from None
    return coreml_timing_result(data, path, **kwargs)
