"""The one benchmark result schema, shared by local runs, edge-board runs and ingested phone logs.

One result is one JSON object (one line of a JSON-lines file).  A local run, the standalone
``edge_runner.py`` on a Jetson, a TensorFlow Lite ``benchmark_model`` log from a phone and a Core ML
timing file from an iPhone all end up as the same record, so one target check applies to all of them::

    {"schema": "modnet-edge/bench/1", "source": "local" | "edge-runner" | "tflite-benchmark-model" | "coreml-timing",
     "run_id": "...",                       # results of one run share it; ratio targets compare within it
     "artifact": {"name", "path", "format", "precision", "bytes", "sha256"},
     "mode": "model" | "end-to-end",
     "runtime": {"name", "delegate", "device"},
     "device": {"cpu", "cores", "gpu", "os", ...},  "versions": {dist: version},
     "config": {"warmup", "iterations", "threads", "batch", "input_size": [H, W]},
     "latency_ms": {"mean", "std", "min", "max", "p50", "p90", "p99"},   # per call (a batch)
     "fps": images per second (batch / the latency named by fps_from), "fps_from": "median" | "mean"
            (local runs: the median, robust to a load spike on a shared machine; device logs: the mean,
            the throughput the phone sustains, with the median beside it where the tool prints one;
            a record without it: the median where known, else the mean),
     "memory": {"peak_rss_mb", "rss_delta_mb", "gpu_mb"},
     "created": ISO time, "notes": [...]}

Percentiles a source does not report are null (``benchmark_model`` gives no p90/p99, for instance); a
missing value is never invented.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import atomic_write_text
from modnet_edge.core.errors import ConfigError

SCHEMA = "modnet-edge/bench/1"
MODES = ("model", "end-to-end")
SOURCES = ("local", "edge-runner", "tflite-benchmark-model", "coreml-timing")
FPS_BASES = ("median", "mean")


def new_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class LatencyStats:
    """Latency of one call in milliseconds; percentiles are None when the source did not report them."""

    mean: float
    std: float | None = None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    count: int | None = None

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        if not samples_ms:
            raise ValueError("no latency samples")
        a = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
        return cls(mean=float(a.mean()), std=float(a.std()), min=float(a.min()), max=float(a.max()),
                   p50=p50, p90=p90, p99=p99, count=int(a.size))

    @property
    def typical(self) -> float:
        """The figure targets are checked on: the median when known (robust to load spikes), else the mean."""
        return self.p50 if self.p50 is not None else self.mean


@dataclass
class BenchResult:
    source: str
    run_id: str
    artifact: dict[str, Any]
    mode: str
    runtime: dict[str, Any]
    device: dict[str, Any]
    versions: dict[str, str]
    config: dict[str, Any]
    latency_ms: LatencyStats
    memory: dict[str, float | None] = field(default_factory=dict)
    created: str = field(default_factory=now_iso)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA
    fps_from: str | None = None  # "median" | "mean"; None: the median where known, else the mean

    @property
    def fps_basis(self) -> str:
        """Which latency speed is computed from: ``"median"`` or ``"mean"`` (see the module docstring)."""
        if self.fps_from in FPS_BASES:
            return self.fps_from
        return "median" if self.latency_ms.p50 is not None else "mean"

    @property
    def basis_ms(self) -> float:
        """The latency of one call that fps and every target check use (the one :attr:`fps_basis` names)."""
        if self.fps_basis == "median" and self.latency_ms.p50 is not None:
            return self.latency_ms.p50
        return self.latency_ms.mean

    @property
    def fps(self) -> float:
        batch = int(self.config.get("batch") or 1)
        basis = self.basis_ms
        return batch * 1000.0 / basis if basis > 0 else math.inf

    @property
    def input_size(self) -> tuple[int, int] | None:
        size = self.config.get("input_size")
        return (int(size[0]), int(size[1])) if size else None

    @property
    def precision(self) -> str:
        return str(self.artifact.get("precision") or "unknown")

    @property
    def format(self) -> str:
        return str(self.artifact.get("format") or "unknown")

    @property
    def label(self) -> str:
        name = self.artifact.get("name") or self.format
        size = "x".join(str(v) for v in self.input_size) if self.input_size else "?"
        return f"{name} [{self.mode} {size} {self.runtime.get('delegate') or self.runtime.get('name', '')}]"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = self.fps
        d["fps_from"] = self.fps_basis
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = "result") -> BenchResult:
        """Validate one record (from a JSON-lines file written here, by the edge runner, or by hand)."""
        if not isinstance(data, dict):
            raise ConfigError(f"benchmark result is not a JSON object ({type(data).__name__})", where)
        if data.get("schema") != SCHEMA:
            raise ConfigError(f"benchmark result has schema {data.get('schema')!r}; this toolkit reads {SCHEMA!r}",
                              where)
        required = ("source", "run_id", "artifact", "mode", "runtime", "device", "config", "latency_ms")
        missing = [k for k in required if k not in data]
        if missing:
            raise ConfigError(f"benchmark result lacks {missing}", where)
        if data["mode"] not in MODES:
            raise ConfigError(f"benchmark result mode must be one of {MODES}, not {data['mode']!r}", where)
        lat = data["latency_ms"]
        if not isinstance(lat, dict) or not isinstance(lat.get("mean"), (int, float)) or not lat["mean"] > 0:
            raise ConfigError("benchmark result latency_ms.mean must be a positive number", where)
        if data.get("fps_from") is not None and data["fps_from"] not in FPS_BASES:
            raise ConfigError(f"benchmark result fps_from must be one of {FPS_BASES}, not {data['fps_from']!r}", where)
        known = set(LatencyStats.__dataclass_fields__)
        stats = LatencyStats(**{k: v for k, v in lat.items() if k in known})
        fields = set(cls.__dataclass_fields__) - {"latency_ms"}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs.setdefault("versions", {})
        return cls(latency_ms=stats, **kwargs)


def write_jsonl(results: Iterable[BenchResult], path: str | Path, append: bool = False) -> Path:
    """Write results as JSON lines (atomically; ``append`` keeps the lines already in the file)."""
    path = Path(path)
    lines = []
    if append and path.exists():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    lines += [json.dumps(r.to_dict(), sort_keys=True) for r in results]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[BenchResult]:
    """Read a JSON-lines result file (a JSON array of records is accepted too)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("benchmark result file does not exist", path)
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    if not text:
        raise ConfigError("benchmark result file is empty", path)
    records: list[Any]
    if text.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}", path) from None
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"line {n} is not valid JSON: {exc}", path) from None
    return [BenchResult.from_dict(r, f"{path} record {i + 1}") for i, r in enumerate(records)]
