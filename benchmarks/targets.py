"""Device speed targets: one declarative JSON file, checked the same way for every result's source.

Two kinds of target, because two kinds of machine exist.  A *fixed* target is a published speed on a
known device (the MODNet paper's 67 fps at 512x512 on a GTX 1080 Ti); it is met when the result's fps
reaches it (from the median latency of a local run, from the mean -- the throughput -- of a device log;
the result says which).  A fixed target may name the ``delegates`` it is about (an NPU target is about
the QNN, Hexagon or NNAPI delegate): a phone log whose graph ran on the CPU is not judged by it.  A *ratio* target is for machines with no fixed speed, where absolute
numbers are noise (a shared CI runner): the result must beat a baseline measured **in the same run**
(same ``run_id``, input size, batch and mode) by a factor, so load on the machine cancels out.

The shipped file is ``targets.json`` beside this module; ``--targets FILE`` replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import ConfigError
from modnet_edge.core.formats import PRECISION_TABLE

from modnet_edge.benchmarks.results import MODES, BenchResult

SCHEMA = "modnet-edge/targets/1"
_TARGET_KEYS = {"input_size", "precision", "format", "mode", "min_fps", "max_latency_ms", "delegates", "source"}
_RATIO_KEYS = {"precision", "format", "mode", "baseline", "min_speedup", "source"}
_CLASS_KEYS = {"description", "match", "targets", "ratios"}


def _precision_matches(pattern: str, precision: str) -> bool:
    """A target's precision names one precision, its family (``int8`` covers every INT8 variant) or ``*``."""
    row = PRECISION_TABLE.get(precision)
    return pattern in ("*", precision) or (row is not None and pattern == row.family)


@dataclass(frozen=True)
class FixedTarget:
    source: str
    input_size: tuple[int, int] | None = None
    precision: str = "*"
    format: str | None = None
    mode: str = "model"
    min_fps: float | None = None
    max_latency_ms: float | None = None
    delegates: tuple[str, ...] | None = None  # None: whatever ran the graph

    def applies(self, r: BenchResult, *, ignore_delegate: bool = False) -> bool:
        return (r.mode == self.mode and _precision_matches(self.precision, r.precision)
                and (self.format is None or self.format == r.format)
                and (self.input_size is None or self.input_size == r.input_size)
                and (ignore_delegate or self.runs_on(r)))

    def runs_on(self, r: BenchResult) -> bool:
        """True when the target is about the delegate that actually ran ``r`` (or names no delegate)."""
        return self.delegates is None or str(r.runtime.get("delegate")) in self.delegates

    def specificity(self) -> tuple[int, int, int]:
        return (self.input_size is not None, self.precision != "*", self.format is not None)

    def describe(self) -> str:
        parts = []
        if self.min_fps is not None:
            parts.append(f">= {self.min_fps:g} fps")
        if self.max_latency_ms is not None:
            parts.append(f"<= {self.max_latency_ms:g} ms")
        return " and ".join(parts)


@dataclass(frozen=True)
class RatioTarget:
    source: str
    baseline_format: str
    baseline_precision: str
    min_speedup: float
    precision: str = "*"
    format: str | None = None
    mode: str = "model"

    def applies(self, r: BenchResult) -> bool:
        return (r.mode == self.mode and _precision_matches(self.precision, r.precision)
                and (self.format is None or self.format == r.format) and not self.is_baseline(r))

    def is_baseline(self, r: BenchResult) -> bool:
        return r.format == self.baseline_format and _precision_matches(self.baseline_precision, r.precision)

    def describe(self) -> str:
        return f">= {self.min_speedup:g}x {self.baseline_format} {self.baseline_precision}"


@dataclass
class DeviceClass:
    name: str
    description: str
    match: dict[str, list[str]] = field(default_factory=dict)
    targets: list[FixedTarget] = field(default_factory=list)
    ratios: list[RatioTarget] = field(default_factory=list)

    def matches_device(self, device: dict[str, Any]) -> bool:
        """True when a ``match`` rule's substring occurs in the device's cpu or gpu description."""
        for key, needles in self.match.items():
            value = device.get(key)
            hay = " ".join(value) if isinstance(value, list) else str(value or "")
            if any(n.lower() in hay.lower() for n in needles):
                return True
        return False

    def baselines(self) -> set[tuple[str, str]]:
        return {(r.baseline_format, r.baseline_precision) for r in self.ratios}


@dataclass
class Verdict:
    """One result checked against one target; ``meets`` None means no target applied."""

    result: BenchResult
    device_class: str
    kind: str  # "fixed" | "ratio" | "proxy" (measured by a stand-in runtime: not judged) | "none"
    required: str
    measured: str
    meets: bool | None
    source: str = ""
    reason: str = ""
    required_fps: float | None = None  # the target as fps (for charts); None where it is not a speed

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.result.artifact.get("name"), "mode": self.result.mode,
                "input_size": self.result.input_size, "device_class": self.device_class, "kind": self.kind,
                "required": self.required, "measured": self.measured, "meets": self.meets,
                "source": self.source, "reason": self.reason, "required_fps": self.required_fps}


@dataclass
class TargetTable:
    path: str
    default_class: str
    classes: dict[str, DeviceClass]

    def get(self, name: str) -> DeviceClass:
        if name not in self.classes:
            raise ConfigError(f"unknown device class {name!r}; known classes: {', '.join(sorted(self.classes))}",
                              self.path)
        return self.classes[name]

    def detect(self, device: dict[str, Any]) -> DeviceClass:
        """The first class whose match rule fits ``device``; the default class otherwise."""
        for cls in self.classes.values():
            if cls.matches_device(device):
                return cls
        return self.classes[self.default_class]

    def check(self, results: Sequence[BenchResult], device_class: str | DeviceClass | None = None) -> list[Verdict]:
        """Every result against its class: the one given, else the one recorded on the result at ingestion,
        else the one detected from the result's own device description."""
        out: list[Verdict] = []
        for r in results:
            recorded = (r.extra or {}).get("device_class")  # set when a phone/board result was ingested
            cls = (device_class if isinstance(device_class, DeviceClass)
                   else self.get(device_class) if device_class
                   else self.get(recorded) if recorded else self.detect(r.device))
            out += _check_one(r, cls, results)
        return out


def _check_one(r: BenchResult, cls: DeviceClass, run: Sequence[BenchResult]) -> list[Verdict]:
    proxy = _proxy_reason(r)
    if proxy:
        return [Verdict(r, cls.name, "proxy", "", f"{r.fps:.1f} fps (proxy)", None, "", proxy)]
    verdicts: list[Verdict] = []
    fixed = [t for t in cls.targets if t.applies(r)]
    if fixed:
        t = max(fixed, key=FixedTarget.specificity)
        ok, measured = True, []
        batch = int(r.config.get("batch") or 1)
        need = max(t.min_fps or 0.0, batch * 1000.0 / t.max_latency_ms if t.max_latency_ms else 0.0)
        if t.min_fps is not None:
            ok &= r.fps >= t.min_fps
            measured.append(f"{r.fps:.1f} fps")
        if t.max_latency_ms is not None:
            ok &= r.basis_ms <= t.max_latency_ms
            measured.append(f"{r.basis_ms:.1f} ms {r.fps_basis}")
        verdicts.append(Verdict(r, cls.name, "fixed", t.describe(), ", ".join(measured), ok, t.source,
                                required_fps=need))
    for t in cls.ratios:
        if not t.applies(r):
            continue
        base = [b for b in run if b.run_id == r.run_id and t.is_baseline(b) and b.mode == r.mode
                and b.input_size == r.input_size and b.config.get("batch", 1) == r.config.get("batch", 1)]
        if not base:
            verdicts.append(Verdict(r, cls.name, "ratio", t.describe(), "no baseline", False, t.source,
                                    f"baseline {t.baseline_format} {t.baseline_precision} was not measured in run "
                                    f"{r.run_id} at the same size/batch/mode, so the ratio cannot be shown"))
            continue
        speedup = base[0].basis_ms / r.basis_ms
        shaky = [f"{x.artifact.get('name')}: {x.extra['stability']['why']}" for x in (r, base[0])
                 if not (x.extra or {}).get("stability", {}).get("stable", True)]
        if shaky:  # a ratio from a disturbed run is not a verdict either way
            verdicts.append(Verdict(r, cls.name, "ratio", t.describe(), f"{speedup:.2f}x (untrusted)", None, t.source,
                                    "machine not quiet, ratio not judged: " + "; ".join(shaky),
                                    required_fps=base[0].fps * t.min_speedup))
            continue
        isolated = r.config.get("isolated") and base[0].config.get("isolated")
        verdicts.append(Verdict(r, cls.name, "ratio", t.describe(), f"{speedup:.2f}x", speedup >= t.min_speedup,
                                t.source, f"{r.fps_basis} {r.basis_ms:.1f} ms vs baseline "
                                f"{base[0].fps_basis} {base[0].basis_ms:.1f} ms in the same run"
                                + ("" if isolated else " (subjects shared one process)"),
                                required_fps=base[0].fps * t.min_speedup))
    if not verdicts:
        other = [t for t in cls.targets if t.applies(r, ignore_delegate=True)]
        why = (f"; its targets are for the {'/'.join(other[0].delegates or ())} delegate and this graph ran on "
               f"{r.runtime.get('delegate')}" if other else "")
        verdicts.append(Verdict(r, cls.name, "none", "", f"{r.fps:.1f} fps", None, "",
                                f"no target of class {cls.name!r} applies to {r.precision} {r.mode} at "
                                f"{r.input_size}{why}"))
    return verdicts


def _proxy_reason(r: BenchResult) -> str | None:
    """Why ``r`` is not judged against speed targets: its runtime is one the format table lists as a
    numerics stand-in for this format (a TensorRT-ready ONNX timed by ONNX Runtime on a CPU says nothing
    about the TensorRT engine built from it)."""
    from modnet_edge.core.formats import FORMATS

    fmt, runtime = FORMATS.get(r.format), r.runtime.get("name")
    if fmt is None or runtime not in fmt.proxy_runtimes:
        return None
    return (f"speed not judged: {runtime} runs {fmt.name} artifacts here only to verify their numerics; "
            "the speed that counts is measured where the artifact is deployed")


def meets_all(verdicts: Sequence[Verdict]) -> bool | None:
    """False when any verdict fails, True when all applicable ones pass, None when none applied."""
    applicable = [v.meets for v in verdicts if v.meets is not None]
    return all(applicable) if applicable else None


# -- loading and validation ----------------------------------------------------------------------
def default_targets_path() -> Path:
    return Path(str(resources.files("modnet_edge.benchmarks").joinpath("targets.json")))


def load_targets(path: str | Path | None = None) -> TargetTable:
    """Read and validate a targets file (default: the shipped one); any mistake is a ConfigError naming it."""
    path = Path(path) if path else default_targets_path()
    if not path.is_file():
        raise ConfigError("targets file does not exist", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"targets file is not valid JSON: {exc}", path) from None
    return parse_targets(data, path)


def parse_targets(data: Any, where: str | Path = "targets") -> TargetTable:
    def fail(msg: str) -> ConfigError:
        return ConfigError(f"malformed targets file: {msg}", where)

    if not isinstance(data, dict):
        raise fail("top level must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise fail(f"'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
    raw = data.get("device_classes")
    if not isinstance(raw, dict) or not raw:
        raise fail("'device_classes' must be a non-empty object of class name -> class")
    classes = {name: _parse_class(name, body, fail) for name, body in raw.items()}
    default = data.get("default_class")
    if default not in classes:
        raise fail(f"'default_class' {default!r} is not one of the device classes {sorted(classes)}")
    return TargetTable(str(where), default, classes)


def _parse_class(name: str, body: Any, fail: Any) -> DeviceClass:
    if not isinstance(body, dict):
        raise fail(f"class {name!r} must be an object")
    unknown = set(body) - _CLASS_KEYS
    if unknown:
        raise fail(f"class {name!r} has unknown keys {sorted(unknown)} (allowed: {sorted(_CLASS_KEYS)})")
    match = body.get("match") or {}
    if not isinstance(match, dict) or any(k not in ("cpu", "gpu") or not isinstance(v, list) for k, v in match.items()):
        raise fail(f"class {name!r}: 'match' must map 'cpu'/'gpu' to lists of substrings")
    targets = [_parse_fixed(name, i, t, fail) for i, t in enumerate(_list(body, "targets", name, fail))]
    ratios = [_parse_ratio(name, i, t, fail) for i, t in enumerate(_list(body, "ratios", name, fail))]
    if not targets and not ratios:
        raise fail(f"class {name!r} has neither 'targets' nor 'ratios'")
    return DeviceClass(name, str(body.get("description", "")), match, targets, ratios)


def _list(body: dict, key: str, name: str, fail: Any) -> list:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise fail(f"class {name!r}: {key!r} must be a list")
    return value


def _common(where: str, t: Any, keys: set[str], fail: Any) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise fail(f"{where} must be an object")
    unknown = set(t) - keys
    if unknown:
        raise fail(f"{where} has unknown keys {sorted(unknown)} (allowed: {sorted(keys)})")
    if not isinstance(t.get("source"), str) or not t["source"].strip():
        raise fail(f"{where} needs a 'source' saying where the number comes from")
    mode = t.get("mode", "model")
    if mode not in MODES:
        raise fail(f"{where}: mode must be one of {MODES}, not {mode!r}")
    precision = t.get("precision", "*")
    if not isinstance(precision, str) or not precision:
        raise fail(f"{where}: precision must be a string such as 'fp32', 'int8' or '*'")
    fmt = t.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise fail(f"{where}: format must be a string")
    return {"source": t["source"], "mode": mode, "precision": precision, "format": fmt}


def _positive(where: str, key: str, value: Any, fail: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise fail(f"{where}: {key} must be a positive number, got {value!r}")
    return float(value)


def _parse_fixed(cls: str, i: int, t: Any, fail: Any) -> FixedTarget:
    where = f"class {cls!r} target #{i + 1}"
    common = _common(where, t, _TARGET_KEYS, fail)
    size = t.get("input_size")
    if size is not None:
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise fail(f"{where}: input_size must be [height, width] in pixels or null, got {size!r}")
        size = (size[0], size[1])
    delegates = t.get("delegates")
    if delegates is not None:
        if not isinstance(delegates, list) or not delegates or not all(isinstance(d, str) and d for d in delegates):
            raise fail(f"{where}: delegates must be a non-empty list of delegate names such as \"QNN\", got "
                       f"{delegates!r}")
        delegates = tuple(delegates)
    min_fps = _positive(where, "min_fps", t.get("min_fps"), fail)
    max_ms = _positive(where, "max_latency_ms", t.get("max_latency_ms"), fail)
    if min_fps is None and max_ms is None:
        raise fail(f"{where} needs min_fps or max_latency_ms")
    return FixedTarget(input_size=size, min_fps=min_fps, max_latency_ms=max_ms, delegates=delegates, **common)


def _parse_ratio(cls: str, i: int, t: Any, fail: Any) -> RatioTarget:
    where = f"class {cls!r} ratio #{i + 1}"
    common = _common(where, t, _RATIO_KEYS, fail)
    base = t.get("baseline")
    if not isinstance(base, dict) or not isinstance(base.get("format"), str) or not isinstance(
            base.get("precision"), str):
        raise fail(f"{where}: baseline must be an object with 'format' and 'precision'")
    speedup = _positive(where, "min_speedup", t.get("min_speedup"), fail)
    if speedup is None:
        raise fail(f"{where} needs min_speedup")
    return RatioTarget(baseline_format=base["format"], baseline_precision=base["precision"], min_speedup=speedup,
                       **common)
