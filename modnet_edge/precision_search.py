"""Precision doctor, part two: the fastest artifact of a format and precision that meets a drift budget.

1. **Rank.** Each natural group of MODNet (backbone stages by stride, the branches' blocks, the image
   concatenations, the FP16 input) is put alone at the target precision in the ONNX twin of the
   target (for INT8 with the same calibration), everything else kept higher, and the matte drift on
   *ranking* images is its sensitivity (:func:`rank_groups`).  ONNX is the twin because it exports in
   seconds; the doctor (:mod:`modnet_edge.parity_tests.doctor`) shows where inside a group it starts.
2. **Search.** Candidates keep the k most sensitive groups in higher precision (FP32 islands in an FP16
   graph, float nodes in an INT8 one); the drift of a candidate falls as k grows, so k is found by
   bisection, each candidate exported by the format's own exporter and measured by the parity check on
   *held-out* images (never the ranking or calibration images).
3. **Choose.** Among the candidates that meet the budget, the fastest on this machine (benchmark
   runner, model-only, the artifact's own shape) wins; near-ties (within 5 %) go to fewer kept groups.
   If none meets it, the report says so with the best drift reached and what it kept.

Well-kept tools do parts of this for one format each (onnxconverter-common's ``auto_mixed_precision``,
ModelOpt's AutoCast, ai-edge-quantizer's selective quantisation, Polygraphy's ``debug precision``); the
kept sets they take are what our exporters take (``keep_float``), and the search over
formats against a matte budget, with speed in the loop, is this module.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core import atomic_write_text, check_output_path, path_size
from modnet_edge.export.module_scopes import MODULE_GROUPS
from modnet_edge.core.errors import ConfigError

# (format, precision) -> how a kept set becomes exporter options
SEARCHABLE = {("onnx", "fp16"), ("tensorrt-onnx", "fp16"), ("coreml", "fp16"), ("onnx", "int8"),
              ("tensorrt-onnx", "int8"), ("tflite", "int8"), ("tflite", "int8-a16")}
# formats whose runtime cannot run here (Core ML off Apple systems: the NumPy reference execution judges
# drift, but its speed says nothing about a phone's), so the fewest kept groups win instead of the fastest
UNTIMED = {"coreml"}
TIE = 0.05  # candidates within 5 % of the fastest count as equally fast


@dataclass
class Candidate:
    kept: list[str]  # group names kept in higher precision
    mse: float
    band_mse: float
    passed: bool
    size_bytes: int = 0
    latency_ms: float | None = None  # p50, model only


@dataclass
class SearchResult:
    format: str
    precision: str
    budget: dict[str, Any]
    ranking: list[tuple[str, float]]  # (group, error its layers add), most sensitive first
    candidates: list[Candidate]
    chosen: Candidate | None
    output: str | None
    held_out: list[str]
    ranking_images: str
    options: dict[str, Any] = field(default_factory=dict)  # the exporter options of the chosen candidate

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "precision": self.precision, "budget": self.budget, "ranking": self.ranking,
                "candidates": [asdict(c) for c in self.candidates],
                "chosen": asdict(self.chosen) if self.chosen else None, "output": self.output,
                "held_out": self.held_out, "ranking_images": self.ranking_images, "options": self.options}

    def summary(self) -> str:
        lines = [f"precision search, {self.format} {self.precision}, budget MSE {self.budget['mse']:.0e}"
                 + (f" / band {self.budget['band_mse']:.0e}" if self.budget.get("band_mse") else "")
                 + f", held-out images: {len(self.held_out)}",
                 "sensitivity (matte MSE with only that group lowered, ranking images): "
                 + ", ".join(f"{g} {s:.1e}" for g, s in self.ranking[:6]),
                 f"{'kept in higher precision':<58} {'MSE':>9} {'band':>9} {'p50 ms':>8} {'MB':>6}  verdict"]
        for c in sorted(self.candidates, key=lambda c: len(c.kept)):
            kept = f"{len(c.kept):>2}: " + (", ".join(c.kept) or "(none)")
            ms = f"{c.latency_ms:8.1f}" if c.latency_ms is not None else f"{'-':>8}"
            mark = "  <- chosen" if c is self.chosen else ""
            lines.append(f"{kept[:58]:<58} {c.mse:9.2e} {c.band_mse:9.2e} {ms} {c.size_bytes / 1e6:6.1f}  "
                         f"{'PASS' if c.passed else 'FAIL'}{mark}")
        if self.chosen is None:
            best = min(self.candidates, key=lambda c: c.mse)
            lines.append(f"no candidate meets the budget: best MSE {best.mse:.2e} keeping "
                         f"{', '.join(best.kept) or 'nothing'} in higher precision")
        return "\n".join(lines)


def kept_options(fmt: str, precision: str, kept: Sequence[str]) -> dict[str, Any]:
    """Exporter options that keep the groups ``kept`` in higher precision."""
    selectors = [f"module:{m}" for g in kept if g in MODULE_GROUPS for m in MODULE_GROUPS[g]]
    if precision == "fp16" and fmt == "coreml":
        return {"keep_float": (["io"] if "io" in kept else []) + selectors}
    if precision == "fp16":
        opts: dict[str, Any] = {"keep_float": selectors}
        if fmt == "onnx":
            opts["keep_io_types"] = "io" in kept
        return opts
    return {"keep_float": selectors + (["image-concat"] if "image-concat" in kept else [])}


def _resolved(options: dict[str, Any], checkpoint: Any) -> dict[str, Any]:
    """Options with module selectors of modules this network lacks dropped (a group names both
    variants of a block, e.g. the SE block and e-ASPP)."""
    from modnet_edge.export.module_scopes import is_module_selector, module_names, selector_path

    names = set(module_names(checkpoint.model_config))
    out = dict(options)
    if "keep_float" in out:
        out["keep_float"] = [s for s in out["keep_float"] if not is_module_selector(s) or selector_path(s) in names]
    return out


def search_groups(precision: str) -> list[str]:
    """The groups a search may keep: MODNet's parts, plus the FP16 input (float32 I/O) or the image
    concatenations (whose Q/DQ pair shares one scale between the image and the features)."""
    return [*MODULE_GROUPS, "io" if precision == "fp16" else "image-concat"]


def rank_groups(checkpoint: Any, precision: str, images: list[Path], options: dict[str, Any],
                work: Path, progress: bool = True) -> list[tuple[str, float]]:
    """Groups by the drift (MSE) the ONNX twin shows when *only* that group runs at ``precision`` and
    every other group is kept in higher precision: most sensitive first.

    Why not the doctor's per-layer "added" error summed over a group: normalisation layers amplify
    whatever relative error reaches them, so blocks full of InstanceNorms collect the most "added"
    error without causing it (measured on a randomly initialised official-layout MODNet: the sum
    ranked hr/2x first, while the drift came from the backbone and the FP16 input).  Isolating one
    group at a time measures the cause directly, for the price of one ONNX export per group.
    """
    from modnet_edge.export import export
    from modnet_edge.parity_tests.parity import run_parity

    groups = search_groups(precision)
    from modnet_edge.core import get_format
    from modnet_edge.core.console import progress as bar

    # the twin is the ONNX export of the same precision variant, with the options ONNX shares
    onnx = get_format("onnx")
    twin_opts = {k: v for k, v in options.items() if k != "keep_float" and any(
        o.name == k and o.applies_to(precision) and (not o.choices or v in o.choices) for o in onnx.options)}
    paths = []
    for i, group in enumerate(bar(groups, desc=f"rank groups (onnx {precision})") if progress else groups):
        path = work / f"rank-{i}.onnx"
        others = [g for g in groups if g != group]
        export(checkpoint, "onnx", precision, path, **_resolved(
            {**twin_opts, **kept_options("onnx", precision, others)}, checkpoint))
        paths.append(path)
    report = run_parity(paths, images=images, progress=False)
    scores = [(g, r.drift.mse if math.isfinite(r.drift.mse) else math.inf) for g, r in zip(groups, report.results)]
    return sorted(scores, key=lambda kv: kv[1], reverse=True)  # an overflow (NaN/inf matte) ranks first


def search_precision(checkpoint: Any, format: str, precision: str, output: str | Path, *,
                     budget: Any = "auto", images: Any = None, ranking_images: Any = None, limit: int | None = 4,
                     prefer: str = "speed", progress: bool = True, **options: Any) -> SearchResult:
    """Export the fastest ``format``/``precision`` artifact of ``checkpoint`` within ``budget`` to ``output``.

    ``budget``: "auto" (the precision's entry in the parity BUDGETS table), a ``Budget``, or an MSE.
    ``images``: held-out images for the verdicts (default: the package's sample portraits);
    ``ranking_images``: images for the sensitivity ranking (default: generated synthetic portraits, so
    they never overlap the held-out set).  ``options`` go to the exporter (shape, calibration, ...).
    ``prefer``: "speed" (the fastest passing candidate on this machine; this CPU's speed is not a
    phone's or a GPU's) or "fewest" (the fewest groups kept higher: the smallest, most-reduced artifact).
    The search record is written beside the artifact as ``<output>.search.json``.
    """
    from modnet_edge.export import export
    from modnet_edge.core.images import unseen_images
    from modnet_edge.parity_tests.parity import Budget, budget_for, load_images, run_parity
    from modnet_edge.model.weights import resolve_checkpoint

    if prefer not in ("speed", "fewest"):
        raise ConfigError(f"prefer must be 'speed' or 'fewest', not {prefer!r}")
    if (format, precision) not in SEARCHABLE:
        raise ConfigError(f"the precision search covers {sorted(SEARCHABLE)}, not {format} {precision}")
    if "keep_float" in options:
        raise ConfigError("keep_float is what the precision search chooses; leave it out when a budget is given")
    if budget == "auto" or budget is None:
        limit_budget = budget_for(precision)
    elif isinstance(budget, Budget):
        limit_budget = budget
    elif isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget > 0:
        limit_budget = Budget(mse=float(budget))
    else:
        raise ConfigError(f"budget must be 'auto', a Budget or a positive MSE, not {budget!r}")
    ckpt = resolve_checkpoint(checkpoint)
    held_out, _src = load_images(images if images is not None else unseen_images(), limit)
    ranking_pictures, ranking_note = load_images(ranking_images, limit)
    overlap = _overlap(held_out, ranking_pictures)
    if overlap:
        raise ConfigError(f"ranking and held-out images overlap ({', '.join(overlap[:3])}): the verdict must come "
                          "from images the search did not look at")
    calibration = options.get("calibration")
    if isinstance(calibration, (str, Path)) and Path(calibration).is_dir():
        shared = _overlap(held_out, load_images(calibration)[0])
        if shared:
            raise ConfigError(f"calibration and held-out images overlap ({', '.join(shared[:3])}): pass held-out "
                              "images= the calibration never saw")
    output = Path(output)
    for path in (output, Path(f"{output}.search.json")):  # free or ours, before minutes of search
        check_output_path(path)
    with tempfile.TemporaryDirectory(prefix="modnet-search-") as td:
        work = Path(td)
        base_opts = dict(options)
        tried: dict[int, Candidate] = {}
        held_out_files = _as_files(held_out, work / "held-out")
        order: list[str] = []
        ranking: list[tuple[str, float]] = []

        def trial(k: int) -> Candidate:
            if k not in tried:
                if progress:
                    print(f"search {format} {precision}: keeping {k} of {len(order) or 'the'} groups higher",
                          flush=True)
                kept = order[:k]
                path = work / f"candidate-{k}{_suffix(format)}"
                export(ckpt, format, precision, path,
                       **_resolved({**base_opts, **kept_options(format, precision, kept)}, ckpt))
                report = run_parity([path], images=held_out_files, budgets={precision: limit_budget}, progress=False)
                r = report.results[0]
                tried[k] = Candidate(kept, r.drift.mse, r.drift.band_mse, r.passed, path_size(path))
            return tried[k]

        if not trial(0).passed:  # a healthy artifact needs no ranking: nothing has to stay higher
            ranking = rank_groups(ckpt, precision, _as_files(ranking_pictures, work / "ranking"), options, work,
                                  progress)
            order = [g for g, _ in ranking]
            if format == "tensorrt-onnx" and precision == "fp16":
                order = [g for g in order if g != "io"]  # TensorRT-ready FP16 keeps float32 I/O already
            lo, hi = 0, len(order)
            if trial(hi).passed:
                while hi - lo > 1:  # invariant: lo fails, hi passes
                    mid = (lo + hi) // 2
                    if trial(mid).passed:
                        hi = mid
                    else:
                        lo = mid
        passing = {k: c for k, c in tried.items() if c.passed}
        if len(passing) > 1 and len(order) in passing:  # every group kept: the float network, not a
            del passing[len(order)]  # variant of the precision asked for (kept in the record for reference)
        chosen_k = None
        if passing:
            if prefer == "speed" and len(passing) > 1 and format not in UNTIMED:
                _time_candidates({k: work / f"candidate-{k}{_suffix(format)}" for k in passing}, passing)
                fastest = min(c.latency_ms for c in passing.values())
                chosen_k = min(k for k, c in passing.items() if c.latency_ms <= fastest * (1 + TIE))
            else:
                chosen_k = min(passing)
        chosen = tried[chosen_k] if chosen_k is not None else None
        chosen_opts: dict[str, Any] = {}
        if chosen is not None:
            chosen_opts = {**base_opts, **kept_options(format, precision, chosen.kept)}
            path = work / f"candidate-{chosen_k}{_suffix(format)}"
            if chosen.latency_ms is None and format not in UNTIMED:
                _time_candidates({chosen_k: path}, tried)
            # exported again straight to ``output``: the exporter's own atomic artifact + manifest pair
            export(ckpt, format, precision, output, **_resolved(chosen_opts, ckpt))
    result = SearchResult(format, precision, asdict(limit_budget), ranking, [tried[k] for k in sorted(tried)], chosen,
                          str(output) if chosen else None, list(held_out), ranking_note,
                          {k: v for k, v in chosen_opts.items()
                           if k in ("keep_float", "keep_io_types")})
    atomic_write_text(Path(f"{output}.search.json"), json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return result


def _suffix(fmt: str) -> str:
    from modnet_edge.core import get_format

    return get_format(fmt).suffixes[0]


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    import hashlib

    import numpy as np

    digest = lambda im: hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest()  # noqa: E731
    seen = {digest(im) for im in b.values()}
    return [name for name, im in a.items() if digest(im) in seen]


def _as_files(pictures: dict[str, Any], folder: Path) -> list[Path]:
    """Pictures as lossless PNG files in ``folder`` (the parity check reads files)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb in pictures.items():
        Image.fromarray(np.asarray(rgb)).save(folder / f"{Path(name).stem}.png")
    return sorted(folder.iterdir())


def _time_candidates(paths: dict[int, Path], candidates: dict[int, Candidate]) -> None:
    from modnet_edge.benchmarks.runner import BenchConfig, run_benchmarks, subject_for_path

    keys = list(paths)
    subjects = [subject_for_path(paths[k]) for k in keys]
    results = run_benchmarks(subjects, BenchConfig(warmup=2, iterations=8, min_iterations=3, max_seconds=20.0),
                             progress=False)
    by_name = {r.artifact.get("name"): r for r in results}
    for k in keys:
        r = by_name.get(paths[k].name)
        if r is not None:
            candidates[k].latency_ms = r.latency_ms.p50 or r.latency_ms.mean
