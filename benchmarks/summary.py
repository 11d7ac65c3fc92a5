"""One row per artifact: export, drift and speed verdicts joined, and written for machines and people.

The pipeline and ``modnet-edge report`` both reduce their work to a list of :class:`ArtifactEntry`;
from it come ``summary.json`` (for scripts), JUnit XML (for CI test tabs: one test case per gate, so a
failed drift budget shows as a failed test with the numbers), a Markdown table (for pull-request
comments) and the HTML report.  An artifact passes when it exported, ran, stayed within its drift
budget and did not miss an applicable speed target; an artifact the machine cannot run (Core ML on
Linux) is reported as not verified here, which is not a pass.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core import atomic_write_text

from modnet_edge.benchmarks.results import BenchResult
from modnet_edge.benchmarks.targets import Verdict, meets_all

STATUSES = ("ok", "export-failed", "not-runnable-here", "parity-error", "bench-error")


@dataclass
class ArtifactEntry:
    format: str
    precision: str
    path: str | None
    size_bytes: int | None = None
    sha256: str | None = None
    status: str = "ok"
    error: str | None = None
    drift: dict[str, float] | None = None
    budget: dict[str, float | None] | None = None
    drift_pass: bool | None = None
    # what a user gets: the artifact's matte (own input shape) vs the reference's at native preprocessing
    end_to_end_drift: dict[str, float] | None = None
    input_shape: str | None = None  # "dynamic" or the static "HxW" every photo is resized to
    worst_image: str | None = None
    latency_ms: dict[str, float | None] | None = None
    fps: float | None = None
    end_to_end_ms: float | None = None
    target: str | None = None
    target_source: str | None = None
    measured: str | None = None
    meets_target: bool | None = None
    speed_note: str | None = None
    speed_trusted: bool = True  # False: the machine was not quiet while it was timed (no speed verdict)
    speed_proxy: bool = False  # True: timed by a runtime that only verifies this format here (no verdict)
    peak_share: float | None = None  # achieved GFLOP/s over the CPU's peak (see benchmarks.roofline)
    export_s: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else f"{self.format}.{self.precision}"

    @property
    def passed(self) -> bool:
        """All gates: exported, ran, drift within budget, and no applicable speed target missed."""
        return self.status == "ok" and self.drift_pass is True and self.meets_target is not False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass"] = self.passed
        d["size_mb"] = None if self.size_bytes is None else round(self.size_bytes / 1e6, 3)
        return d


def attach_parity(entry: ArtifactEntry, parity: Any) -> None:
    """Copy an artifact's :class:`ArtifactParity` results (drift, budget, verdict) onto its entry.

    A format measured by several runtimes (Core ML: its NumPy reference execution everywhere, Core ML
    itself on macOS) has one result per runtime: the entry shows the native runtime's drift when there
    is one, and passes only when every runtime's result passes.
    """
    results = parity if isinstance(parity, (list, tuple)) else [parity]
    primary = next((r for r in results if getattr(r, "runtime", "") != "reference"), results[0])
    d = primary.drift
    entry.drift = _drift_dict(d)
    entry.budget = {"mse": primary.budget.mse, "band_mse": primary.budget.band_mse}
    entry.input_shape = getattr(primary, "input_shape", None)
    entry.worst_image = getattr(primary, "worst_image", None)
    e2e = getattr(primary, "end_to_end", None)
    entry.end_to_end_drift = _drift_dict(e2e) if e2e is not None else None
    entry.drift_pass = all(r.passed for r in results)
    runtimes = [getattr(r, "runtime", "") for r in results]
    if len(results) > 1 or "reference" in runtimes:
        entry.notes.append("drift measured by runtime(s): " + ", ".join(
            f"{rt or '?'} (MSE {r.drift.mse:.2e}, {'pass' if r.passed else 'FAIL'})" for rt, r in zip(runtimes, results)))


def _drift_dict(d: Any) -> dict[str, float]:
    return {"mse": d.mse, "mad": d.mad, "band_mse": d.band_mse, "max_abs": d.max_abs, "p99_abs": d.p99_abs,
            "over_1": d.over_1, "over_4": d.over_4, "max_levels": d.max_levels, "unsure": d.unsure}


def group_parity(report: Any) -> dict[Path, list[Any]]:
    """A parity report's results by artifact path (several when a format is measured by several runtimes)."""
    groups: dict[Path, list[Any]] = {}
    for r in report.results:
        groups.setdefault(Path(r.artifact).resolve(), []).append(r)
    return groups


def attach_speed(entry: ArtifactEntry, results: Sequence[BenchResult], verdicts: Sequence[Verdict]) -> None:
    """Copy the model-only result (first size) and its target verdicts, plus the end-to-end latency."""
    mine = [r for r in results if _same_artifact(r, entry)]
    model = [r for r in mine if r.mode == "model"]
    e2e = [r for r in mine if r.mode == "end-to-end"]
    if e2e:
        entry.end_to_end_ms = e2e[0].latency_ms.typical
    if not model:
        return
    r = model[0]
    lat = r.latency_ms
    entry.latency_ms = {"p50": lat.p50, "p90": lat.p90, "p99": lat.p99, "mean": lat.mean}
    entry.fps = r.fps
    stability = (r.extra or {}).get("stability") or {}
    if stability and not stability.get("stable", True):
        entry.speed_trusted = False
        entry.speed_note = f"speed not judged: {stability.get('why')}"
    entry.peak_share = ((r.extra or {}).get("roofline") or {}).get("share")
    mine_v = [v for v in verdicts if v.result is r]
    untrusted = [v for v in mine_v if v.meets is None and "untrusted" in v.measured]
    if untrusted:  # a ratio whose baseline (or this result) was measured on a busy machine
        entry.speed_trusted = False
        entry.speed_note = untrusted[0].reason
    proxy = [v for v in mine_v if v.kind == "proxy"]
    if proxy:  # timed by a stand-in runtime: informative, never a verdict
        entry.speed_proxy = True
        entry.speed_note = proxy[0].reason
    entry.meets_target = meets_all(mine_v)
    applicable = [v for v in mine_v if v.meets is not None]
    if applicable:
        entry.target = "; ".join(f"{v.required} ({v.device_class})" for v in applicable)
        entry.target_source = "; ".join(v.source for v in applicable)
        entry.measured = "; ".join(v.measured for v in applicable)
        failed = [v.reason for v in applicable if v.meets is False and v.reason]
        if failed or (entry.speed_trusted and not entry.speed_proxy):  # an untrusted/proxy reason is kept
            entry.speed_note = "; ".join(failed) or None
    elif mine_v and entry.speed_note is None:
        entry.speed_note = mine_v[0].reason
    entry.notes += [n for n in r.notes if n not in entry.notes]


def _same_artifact(r: BenchResult, entry: ArtifactEntry) -> bool:
    """Same file (local runs), or same content (a result measured on a phone or board names its sha256)."""
    sha = r.artifact.get("sha256")
    if sha and entry.sha256:
        return sha == entry.sha256
    path = r.artifact.get("path")
    return bool(entry.path and path and Path(path).resolve() == Path(entry.path).resolve())


def failed_gate(e: ArtifactEntry) -> str:
    """Which gate an entry failed first: its status, else drift, else speed."""
    if e.status != "ok":
        return e.status
    return "drift" if e.drift_pass is False else "speed" if e.meets_target is False else "not verified"


def failure_reason(e: ArtifactEntry) -> str:
    if e.error:
        return e.error
    if e.drift_pass is False and e.drift and e.budget:
        band = f", band MSE {e.drift['band_mse']:.2e} (budget {e.budget['band_mse']:.0e})" \
            if e.budget.get("band_mse") is not None else ""
        return f"drift over budget: MSE {e.drift['mse']:.2e} (budget {e.budget['mse']:.0e}){band}"
    if e.meets_target is False:
        return f"speed {e.measured} misses {e.target}" + (f": {e.speed_note}" if e.speed_note else "")
    return e.speed_note or e.status


def overall_pass(entries: Sequence[ArtifactEntry]) -> bool:
    """Every artifact passes; an artifact this machine cannot run does not fail the run, but a run with
    nothing verified does."""
    verified = [e for e in entries if e.status != "not-runnable-here"]
    return bool(verified) and all(e.passed for e in verified)


def write_summary_json(path: str | Path, entries: Sequence[ArtifactEntry], context: dict[str, Any]) -> Path:
    data = {"pass": overall_pass(entries), **context, "artifacts": [e.to_dict() for e in entries]}
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")
    return Path(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _fmt(value: float | None, spec: str = ".2e") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def speed_verdict(e: ArtifactEntry) -> str:
    if e.fps is None:
        return "-"
    if e.speed_proxy:
        return "proxy"
    if not e.speed_trusted:
        return "untrusted"
    return {True: "meets", False: "MISSES", None: "no target"}[e.meets_target]


def speed_unjudged_reason(e: ArtifactEntry) -> str | None:
    """Why an entry's speed carries no verdict although it was measured (a proxy runtime, a busy machine),
    or None; every report shows it beside the row, not only the console."""
    if e.fps is None or (e.speed_trusted and not e.speed_proxy):
        return None
    return e.speed_note or ("timed by a stand-in runtime" if e.speed_proxy else "the machine was not quiet")


def drift_verdict(e: ArtifactEntry) -> str:
    return {True: "pass", False: "FAIL", None: "-"}[e.drift_pass]


def markdown_summary(entries: Sequence[ArtifactEntry], context: dict[str, Any]) -> str:
    """A pull-request comment: verdict, one table row per artifact, and what failed."""
    ok = overall_pass(entries)
    lines = [f"### modnet-edge: {'PASS' if ok else 'FAIL'}", ""]
    for key in ("checkpoint", "images", "device", "device_class"):
        if context.get(key):
            lines.append(f"- **{key.replace('_', ' ')}**: {context[key]}")
    lines += ["", "| artifact | format | precision | size MB | MSE | band MSE | >4/255 | max levels | drift | input "
              "| end-to-end MSE | p50 ms | fps | target | speed | result |",
              "|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|---|---|"]
    for e in entries:
        size = _fmt(e.size_bytes / 1e6, ".1f") if e.size_bytes else "-"
        d, x = e.drift or {}, e.end_to_end_drift or {}
        p50 = _fmt((e.latency_ms or {}).get("p50"), ".1f")
        result = "PASS" if e.passed else ("not run here" if e.status == "not-runnable-here" else "FAIL")
        e2e = "same" if e.input_shape == "dynamic" else _fmt(x.get("mse"))
        lines.append(f"| `{e.name}` | {e.format} | {e.precision} | {size} | {_fmt(d.get('mse'))} | "
                     f"{_fmt(d.get('band_mse'))} | {_fmt(d.get('over_4'), '.2%')} | {_fmt(d.get('max_levels'), 'd')} | "
                     f"{drift_verdict(e)} | {e.input_shape or '-'} | {e2e} | {p50} | "
                     f"{_fmt(e.fps, '.1f')} | {e.target or '-'} | {speed_verdict(e)} | {result} |")
    problems = [e for e in entries if not e.passed]
    if problems:
        lines += ["", "**Problems**", ""]
        for e in problems:
            lines.append(f"- `{e.name}` ({failed_gate(e)}): {failure_reason(e)}")
    unjudged = [e for e in entries if speed_unjudged_reason(e)]  # every row, failed or not
    if unjudged:
        lines += ["", "**Speed not judged**", ""]
        lines += [f"- `{e.name}` ({speed_verdict(e)}): {speed_unjudged_reason(e)}" for e in unjudged]
    return "\n".join(lines) + "\n"


def junit_xml(entries: Sequence[ArtifactEntry], suite: str = "modnet-edge", time_s: float | None = None) -> str:
    """JUnit XML: per artifact an export, a drift and a speed test case (skipped where not applicable)."""
    cases: list[ET.Element] = []
    for e in entries:
        base = f"{e.format}.{e.precision}"
        cases.append(_case(base, "export", None if e.status != "export-failed" else ("failure", e.error or "")))
        if e.status == "export-failed":
            continue
        if e.status == "not-runnable-here":
            cases.append(_case(base, "drift", ("skipped", e.error or "runtime not available on this machine")))
            continue
        if e.status in ("parity-error", "bench-error") and e.drift is None:
            cases.append(_case(base, "drift", ("error", e.error or e.status)))
        else:
            d, b = e.drift or {}, e.budget or {}
            msg = (f"MSE {_fmt(d.get('mse'))} (budget {_fmt(b.get('mse'), '.0e')}), band MSE "
                   f"{_fmt(d.get('band_mse'))} (budget {_fmt(b.get('band_mse'), '.0e')}), MAD {_fmt(d.get('mad'))}")
            cases.append(_case(base, "drift", None if e.drift_pass else ("failure", msg), msg if e.drift_pass else None))
        if e.meets_target is None:
            cases.append(_case(base, "speed", ("skipped", e.speed_note or "no speed target applies")))
        else:
            msg = f"{_fmt(e.fps, '.1f')} fps, required {e.target}; measured {e.measured}"
            cases.append(_case(base, "speed", None if e.meets_target else ("failure", f"{msg}. {e.speed_note or ''}"),
                               msg if e.meets_target else None))
    root = ET.Element("testsuites")
    attrs = {"name": suite, "tests": str(len(cases)),
             "failures": str(sum(1 for c in cases if c.find("failure") is not None)),
             "errors": str(sum(1 for c in cases if c.find("error") is not None)),
             "skipped": str(sum(1 for c in cases if c.find("skipped") is not None))}
    if time_s is not None:
        attrs["time"] = f"{time_s:.1f}"
    ts = ET.SubElement(root, "testsuite", attrs)
    ts.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case(classname: str, name: str, outcome: tuple[str, str] | None, output: str | None = None) -> ET.Element:
    case = ET.Element("testcase", {"classname": f"modnet_edge.{classname}", "name": name})
    if outcome is not None:
        kind, message = outcome
        el = ET.SubElement(case, kind, {"message": message[:500]})
        el.text = message
    if output:
        ET.SubElement(case, "system-out").text = output
    return case


def write_outputs(folder: str | Path, entries: Sequence[ArtifactEntry], context: dict[str, Any],
                  time_s: float | None = None) -> dict[str, Path]:
    """summary.json, junit.xml and summary.md in ``folder`` (the HTML page is written by report_html)."""
    folder = Path(folder)
    out = {"summary": write_summary_json(folder / "summary.json", entries, context)}
    atomic_write_text(folder / "junit.xml", junit_xml(entries, time_s=time_s))
    atomic_write_text(folder / "summary.md", markdown_summary(entries, context))
    out["junit"], out["markdown"] = folder / "junit.xml", folder / "summary.md"
    return out
