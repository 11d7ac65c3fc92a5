"""Precision doctor, part two: the fastest artifact of a format and precision that meets a drift budget
on photos the search never looked at.

1. **Rank.** Each natural group of MODNet (backbone stages by stride, the branches' blocks, the image
   concatenations, the FP16 input) is put alone at the target precision in the ONNX twin of the
   target (for INT8 with the same calibration), everything else kept higher, and the matte drift on
   *ranking* images is its sensitivity (:func:`rank_groups`).  ONNX is the twin because it exports in
   seconds; the doctor (:mod:`modnet_edge.parity_tests.doctor`) shows where inside a group it starts.
2. **Search.** Candidates keep the k most sensitive groups in higher precision (FP32 islands in an FP16
   graph, float nodes in an INT8 one); the drift of a candidate falls as k grows, so the smallest k is
   found by exponential search from the fewest (k = 1, 2, 4, ... then bisection inside the last step:
   the answer is usually one to a few groups, so about 2 log2(answer) + 1 candidates instead of
   log2(groups) + 2 -- a Core ML search went from 6 conversions to 3), each candidate exported by the
   format's own exporter and judged on the *choose* images
   (never the ranking or calibration images) with a margin from their spread: the pooled drift, every
   single image's drift, *and* the upper 90 % prediction bound of one more photo's MSE (from the
   per-image spread, :func:`~modnet_edge.search_record.next_photo_bound`) must meet the budget, so a
   choice that only just fits its photos is not taken for one that will fit the next.
3. **Choose.** Among the candidates that pass, the fastest on this machine (benchmark runner,
   model-only, the artifact's own shape) wins; near-ties (within 5 %) go to fewer kept groups.  Where
   this machine cannot say how fast the artifact will be -- its format runs here only through a proxy
   runtime (a TensorRT-ready ONNX in ONNX Runtime's CPU) or not at all (Core ML off Apple systems) --
   the fewest kept groups win, untimed.
4. **Verify.** The chosen candidate is judged once more, on the *verify* images: photos the search
   never looked at (``verify_images``, or every other one of the given images).  Its verdict is the
   search's: a choice that does not hold there is reported as a miss, never shipped.

The search record says how many images and how many unsure pixels (0.05 < alpha < 0.95 in the
reference: where reduced precision drifts) each verdict rests on.  Well-kept tools do parts of this
for one format each (onnxconverter-common's ``auto_mixed_precision``, ModelOpt's AutoCast,
ai-edge-quantizer's selective quantisation, Polygraphy's ``debug precision``); the kept sets they take
are what our exporters take (``keep_float``), and the search over formats against a matte budget that
must generalise, with speed in the loop, is this module.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from modnet_edge.core import FORMATS, atomic_write_text, check_output_path, get_format, path_size
from modnet_edge.core.formats import Format, Search
from modnet_edge.core.files import copy_artifact
from modnet_edge.core.console import activity, duration, status
from modnet_edge.model.parts import GROUPS
from modnet_edge.core.errors import ConfigError
from modnet_edge.search_record import Candidate, SearchResult, Verdict, next_photo_bound

# (format, precision) pairs the search covers: the format rows say (``Format.searched``)
SEARCHABLE = {(f.name, p) for f in FORMATS.values() for p, _ in f.searched}
TIE = 0.05  # candidates within 5 % of the fastest count as equally fast
# generated portraits the ranking runs on by default (480x640 and 640x480).  The ranking only orders the
# groups -- every candidate is then judged at full size on photos -- and with two portraits it orders the
# starter's INT8 groups as with four (same 8 most sensitive, 2026-12-06) in 35 s instead of 55 s
RANKING_PORTRAITS = 2


def kept_options(fmt: str, precision: str, kept: Sequence[str]) -> dict[str, Any]:
    """Exporter options that keep the groups ``kept`` in higher precision, as ``fmt``'s row says."""
    facts = _facts(fmt, precision)
    selectors = [f"module:{m}" for g in kept if g in GROUPS for m in GROUPS[g]]
    options: dict[str, Any] = {"keep_float": selectors}
    if facts.extra_group is not None:
        if facts.extra_option is not None:
            options[facts.extra_option] = facts.extra_group in kept
        elif facts.extra_group in kept:
            options["keep_float"].append(facts.extra_group)
    return options


def _twin() -> Format:
    """The format every ranking is measured on (its row says ``search_twin``)."""
    return next(f for f in FORMATS.values() if f.search_twin)


def _facts(fmt: str, precision: str) -> Search:
    facts = get_format(fmt).search(precision)
    if facts is None:
        raise ConfigError(f"the precision search covers {sorted(SEARCHABLE)}, not {fmt} {precision}")
    return facts


def _resolved(options: dict[str, Any], checkpoint: Any) -> dict[str, Any]:
    """Options with module selectors of modules this network lacks dropped (a group names both
    variants of a block, e.g. the SE block and e-ASPP)."""
    from modnet_edge.model.parts import is_module_selector, module_names, selector_path

    names = set(module_names(checkpoint.model_config))
    out = dict(options)
    if "keep_float" in out:
        out["keep_float"] = [s for s in out["keep_float"] if not is_module_selector(s) or selector_path(s) in names]
    return out


def search_groups(fmt: str, precision: str) -> list[str]:
    """The groups a search of ``fmt``/``precision`` may keep: MODNet's parts, plus the format's extra group
    (the FP16 input, or the image concatenations whose Q/DQ pair shares one scale between the image and the
    features)."""
    extra = _facts(fmt, precision).extra_group
    return [*GROUPS, *([extra] if extra else [])]


# Rankings already measured in this process, by (weights, precision, twin options, ranking images): every
# format of one precision ranks the same ONNX twin, so the pipeline ranks once per precision, not per format.
_RANKINGS: dict[tuple[str, str, str, str], list[tuple[str, float]]] = {}


def rank_groups(checkpoint: Any, precision: str, images: list[Path], options: dict[str, Any],
                work: Path, progress: bool = True) -> list[tuple[str, float]]:
    """Groups by the drift (MSE) the twin (the ONNX export) shows when *only* that group runs at
    ``precision`` and every other group is kept in higher precision: most sensitive first (measured once
    per process for the same weights, precision, twin options and images).

    Why not the doctor's per-layer "added" error summed over a group: normalisation layers amplify
    whatever relative error reaches them, so blocks full of InstanceNorms collect the most "added"
    error without causing it (measured on a randomly initialised official-layout MODNet: the sum
    ranked hr/2x first, while the drift came from the backbone and the FP16 input).  Isolating one
    group at a time measures the cause directly, for the price of one ONNX export per group.
    """
    from modnet_edge.core import sha256_path
    from modnet_edge.core.console import progress as bar
    from modnet_edge import export
    from modnet_edge.parity_tests.parity import run_parity

    twin = _twin()  # the same precision variant in the twin format, with the options the twin shares
    groups = search_groups(twin.name, precision)
    twin_opts = {k: v for k, v in options.items() if k != "keep_float" and any(
        o.name == k and o.applies_to(precision) and (not o.choices or v in o.choices) for o in twin.options)}
    key = (checkpoint.source_info()["weights_sha256"], precision, json.dumps(twin_opts, sort_keys=True, default=str),
           ",".join(sha256_path(f) for f in images))
    if key in _RANKINGS:
        return list(_RANKINGS[key])
    paths = []
    for i, group in enumerate(bar(groups, desc=f"rank groups ({twin.name} {precision})") if progress else groups):
        path = work / f"rank-{i}{twin.suffixes[0]}"
        others = [g for g in groups if g != group]
        export(checkpoint, twin.name, precision, path, **_resolved(
            {**twin_opts, **kept_options(twin.name, precision, others)}, checkpoint))
        paths.append(path)
    report = run_parity(paths, images=images, progress=False)
    scores = [(g, r.drift.mse if math.isfinite(r.drift.mse) else math.inf) for g, r in zip(groups, report.results)]
    _RANKINGS[key] = sorted(scores, key=lambda kv: kv[1], reverse=True)  # an overflow (NaN/inf matte) ranks first
    return list(_RANKINGS[key])


def split_images(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(choose, verify): every other image by name, so both halves mix the kinds of photo a folder holds."""
    ordered = sorted(files, key=lambda f: f.name)
    if len(ordered) < 2:
        raise ConfigError(f"the precision search needs at least 2 images (to choose on some and verify on others), "
                          f"got {len(ordered)}; or pass verify_images=")
    return ordered[0::2], ordered[1::2]


def resolve_budget(budget: Any, precision: str) -> Any:
    """'auto'/None: the precision's default budget; a Budget; an MSE; or a budget string (``over4=0.1%``)."""
    from modnet_edge.parity_tests.parity import Budget, budget_for, parse_budget

    if budget == "auto" or budget is None:
        return budget_for(precision)
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, str):
        return parse_budget(budget)
    if isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget > 0 and math.isfinite(budget):
        return Budget(mse=float(budget))
    raise ConfigError(f"budget must be 'auto', a Budget, a positive MSE or a budget string, not {budget!r}")


def search_precision(checkpoint: Any, format: str, precision: str, output: str | Path, *,
                     budget: Any = "auto", images: Any = None, verify_images: Any = None, ranking_images: Any = None,
                     limit: int | None = None, prefer: str = "speed", progress: bool = True,
                     max_seconds: float | None = None, **options: Any) -> SearchResult:
    """Export the fastest ``format``/``precision`` artifact of ``checkpoint`` within ``budget`` to ``output``.

    ``budget``: "auto" (the precision's entry in the parity BUDGETS table), a ``Budget``, an MSE, or a
    budget string in 8-bit terms (``"over4=0.1%,levels=8"``, see ``parse_budget``).
    ``images``: the photos candidates are chosen on (default: the package's unseen photos);
    ``verify_images``: the photos the choice is verified on (default: every other one of ``images``,
    taken out of the choose set); the two sets never overlap.  ``ranking_images``: images for the
    sensitivity ranking (default: :data:`RANKING_PORTRAITS` generated portraits).  ``options`` go to the exporter
    (shape, calibration, ...).  ``prefer``: "speed" (the fastest passing candidate on this machine;
    this CPU's speed is not a phone's or a GPU's) or "fewest" (the fewest groups kept higher).
    ``max_seconds``: a time budget; when it runs out the search stops trying candidates and chooses
    among those it judged (the record says so).
    The search record is written beside the artifact as ``<output>.search.json``.
    """
    limit_budget, ckpt = _checked_request(checkpoint, format, precision, budget, prefer, max_seconds, options)
    choose_files, verify_files = _image_sets(images, verify_images, ranking_images, options.get("calibration"), limit)
    output = Path(output)
    for path in (output, Path(f"{output}.search.json")):  # free or ours, before minutes of search
        check_output_path(path)
    with tempfile.TemporaryDirectory(prefix="modnet-search-") as td:
        search = _Search(ckpt, format, precision, limit_budget, choose_files, Path(td), options, progress, max_seconds)
        ranking = search.bisect(lambda: rank_groups(ckpt, precision, search.ranking_files(ranking_images, limit),
                                                    options, Path(td), progress))
        chosen, verify, failed = search.settle(prefer, verify_files)
        if chosen is not None:  # the very bytes judged, with their manifest: no second export
            copy_artifact(search.path_of(chosen), output)
    chosen_opts = {**options, **kept_options(format, precision, chosen.kept)} if chosen is not None else {}
    result = SearchResult(format, precision, asdict(limit_budget), ranking, search.candidates(), chosen,
                          str(output) if chosen else None, search.verdict_of_choose(), verify,
                          _ranking_note(ranking_images), {k: v for k, v in chosen_opts.items()
                                                          if k in ("keep_float", "keep_io_types")}, failed,
                          search.note)
    atomic_write_text(Path(f"{output}.search.json"), json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return result


def _checked_request(checkpoint: Any, fmt: str, precision: str, budget: Any, prefer: str, max_seconds: Any,
                     options: dict[str, Any]) -> tuple[Any, Any]:
    """(the budget, the checkpoint) of a search request, or a ConfigError before any work starts."""
    from modnet_edge.model.weights import resolve_checkpoint

    if prefer not in ("speed", "fewest"):
        raise ConfigError(f"prefer must be 'speed' or 'fewest', not {prefer!r}")
    _facts(fmt, precision)  # a pair the search covers
    if "keep_float" in options:
        raise ConfigError("keep_float is what the precision search chooses; leave it out when a budget is given")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise ConfigError(f"max_seconds must be a positive number of seconds, not {max_seconds!r}")
    return resolve_budget(budget, precision), resolve_checkpoint(checkpoint)


def _image_sets(images: Any, verify_images: Any, ranking_images: Any, calibration: Any,
                limit: int | None) -> tuple[list[Path], list[Path]]:
    """(choose files, verify files), checked disjoint from each other, the ranking and calibration images."""
    from modnet_edge.parity_tests.parity import image_files, load_images

    given = image_files(images, limit)
    if given is None:
        raise ConfigError("the precision search judges on photo files: pass images= a folder or files")
    if verify_images is None:
        choose, verify = split_images(given)
    else:
        choose, verify = given, image_files(verify_images, limit) or []
        if not choose or not verify:
            raise ConfigError("the precision search needs choose images and verify images")
    chosen_on, verified_on = _read(choose), _read(verify)
    shared = _overlap(chosen_on, verified_on)
    if shared:
        raise ConfigError(f"choose and verify images overlap ({', '.join(shared[:3])}): the verdict must come from "
                          "images the search did not look at")
    held_out = {**chosen_on, **verified_on}
    ranking = load_images(ranking_images if ranking_images is not None else "synthetic", limit,
                          synthetic_count=RANKING_PORTRAITS)[0]
    shared = _overlap(held_out, ranking)
    if shared:
        raise ConfigError(f"ranking and held-out images overlap ({', '.join(shared[:3])}): the verdict must come "
                          "from images the search did not look at")
    if isinstance(calibration, (str, Path)) and Path(calibration).is_dir():
        shared = _overlap(held_out, load_images(calibration)[0])
        if shared:
            raise ConfigError(f"calibration and held-out images overlap ({', '.join(shared[:3])}): pass images the "
                              "calibration never saw")
    return choose, verify


def _read(files: Sequence[Path]) -> dict[str, Any]:
    from modnet_edge.core.images import read_image

    return {f.name: read_image(f) for f in files}


def _ranking_note(ranking_images: Any) -> str:
    return str(ranking_images) if ranking_images is not None else f"{RANKING_PORTRAITS} generated synthetic portraits"


class _Search:
    """One search: candidates exported and judged on the choose images, the bisection over k, the
    choice by speed, and the verdict of a candidate on another image set."""

    def __init__(self, ckpt: Any, fmt: str, precision: str, budget: Any, choose: list[Path], work: Path,
                 options: dict[str, Any], progress: bool, max_seconds: float | None = None) -> None:
        self.ckpt, self.fmt, self.precision, self.budget = ckpt, fmt, precision, budget
        self.choose_files, self.work, self.options, self.progress = choose, work, options, progress
        self.order: list[str] = []
        self.tried: dict[int, Candidate] = {}
        self.choose_report: Any = None
        self.deadline = time.perf_counter() + max_seconds if max_seconds else None
        self.max_seconds = max_seconds
        self.note = ""
        self.why_untimed = ""

    def out_of_time(self) -> bool:
        """True (once noted) when the time budget is spent: no further candidate is tried."""
        if self.deadline is None or time.perf_counter() < self.deadline:
            return False
        if not self.note:
            self.note = (f"time budget of {self.max_seconds:g} s spent after {len(self.tried)} candidate(s): the "
                         "choice is among those judged")
            status(f"search {self.fmt} {self.precision}: {self.note}")
        return True

    def ranking_files(self, ranking_images: Any, limit: int | None) -> list[Path]:
        from modnet_edge.parity_tests.parity import load_images

        pictures = load_images(ranking_images if ranking_images is not None else "synthetic", limit,
                               synthetic_count=RANKING_PORTRAITS)[0]
        return _as_files(pictures, self.work / "ranking")

    def path(self, k: int) -> Path:
        return self.work / f"candidate-{k}{_suffix(self.fmt)}"

    def trial(self, k: int) -> Candidate:
        """Export the candidate keeping the ``k`` most sensitive groups higher; judge it on the choose images."""
        from modnet_edge import export
        from modnet_edge.parity_tests.parity import run_parity

        if k not in self.tried:
            name = (f"search {self.fmt} {self.precision}: candidate keeping {k} of {len(self.order) or 'the'} "
                    "groups higher")
            t0 = time.perf_counter()
            kept = self.order[:k]
            with activity(name):
                export(self.ckpt, self.fmt, self.precision, self.path(k),
                       **_resolved({**self.options, **kept_options(self.fmt, self.precision, kept)}, self.ckpt))
                report = run_parity([self.path(k)], images=self.choose_files, budgets={self.precision: self.budget},
                                    progress=False)
            self.choose_report = report
            r = report.results[0]
            worst = r.worst_image
            worst_mse = r.per_image[worst].mse if worst else r.drift.mse
            every = all(self.budget.admits(d) for d in r.per_image.values())  # no image over budget ...
            bound = next_photo_bound([d.mse for d in r.per_image.values()])  # ... nor, likely, the next photo
            c = Candidate(kept, r.drift.mse, r.drift.band_mse, r.passed and every and bound <= self.budget.mse,
                          path_size(self.path(k)), worst_mse=worst_mse, worst_image=worst, over_1=r.drift.over_1,
                          max_levels=r.drift.max_levels, next_photo_mse=bound)
            self.tried[k] = c
            status(f"{name}: MSE {c.mse:.2e}, worst image {c.worst_mse:.2e}, next photo (90 % bound) "
                   f"{c.next_photo_mse:.2e}, {'within' if c.passed else 'over'} budget "
                   f"({duration(time.perf_counter() - t0)})")  # one line per candidate, in logs too
        return self.tried[k]

    def bisect(self, rank: Any) -> list[tuple[str, float]]:
        """The smallest k that passes (the ranking is computed only when the plain variant fails): k = 1,
        2, 4, ... until one passes, then bisection between the last failing and the first passing k."""
        if self.trial(0).passed or self.out_of_time():  # a healthy artifact needs no ranking
            return []
        ranking = rank()
        # the twin ranks groups some formats keep already (a TensorRT-ready FP16 graph's float32 I/O)
        settled = set(search_groups(_twin().name, self.precision)) - set(search_groups(self.fmt, self.precision))
        self.order = [g for g, _ in ranking if g not in settled]
        lo, hi, step = 0, None, 1
        while hi is None and not self.out_of_time():  # invariant: lo fails
            k = min(step, len(self.order))
            if self.trial(k).passed:
                hi = k
            elif k == len(self.order):
                break  # not even the float network passes: nothing to choose
            else:
                lo, step = k, step * 2
        while hi is not None and hi - lo > 1 and not self.out_of_time():  # invariant: lo fails, hi passes
            mid = (lo + hi) // 2
            if self.trial(mid).passed:
                hi = mid
            else:
                lo = mid
        return ranking

    def timed_here(self) -> bool:
        """Whether this machine's timing of the artifact says how fast it is where it is deployed: not
        when its format runs here only through a proxy runtime, nor when its own runtime cannot run here
        (the search then prefers the fewest kept groups, untimed, and its note says why)."""
        from modnet_edge.core import get_format
        from modnet_edge.core.errors import BackendUnavailableError
        from modnet_edge.runtimes.loader import open_backend

        fmt = get_format(self.fmt)
        if fmt.proxy_runtimes:
            self.why_untimed = f"{fmt.name} runs here only through {', '.join(fmt.proxy_runtimes)}, a proxy for its speed"
            return False
        try:
            open_backend(self.path(min(self.tried))).close()
        except BackendUnavailableError as exc:
            self.why_untimed = f"its runtime does not run here ({str(exc).splitlines()[0][:160]})"
            return False
        return True

    def choose(self, prefer: str) -> Candidate | None:
        passing = {k: c for k, c in self.tried.items() if c.passed}
        if len(passing) > 1 and len(self.order) in passing:  # every group kept: the float network, not a
            del passing[len(self.order)]  # variant of the precision asked for (kept in the record for reference)
        if not passing:
            return None
        if prefer == "speed" and len(passing) > 1 and self.timed_here():
            _time_candidates({k: self.path(k) for k in passing}, passing)
            fastest = min(c.latency_ms for c in passing.values())
            chosen_k = min(k for k, c in passing.items() if c.latency_ms <= fastest * (1 + TIE))
        else:  # one candidate passes (the benchmark stage times the artifact), or speed is not judged here
            chosen_k = min(passing)
            if prefer == "speed" and len(passing) > 1:
                self.note = "; ".join(filter(None, [self.note, f"fewest kept groups chosen, untimed: {self.why_untimed}"]))
        return self.tried[chosen_k]

    def settle(self, prefer: str, verify_files: list[Path]) -> tuple[Candidate | None, Verdict,
                                                                       Candidate | None]:
        """(the choice, its verdict on the verify images, the choice those images rejected): a choice
        stands only when photos the search never looked at pass it too."""
        chosen = self.choose(prefer)
        verify = self.verdict(verify_files, chosen)
        if chosen is None:
            return None, verify, None
        status(f"search {self.fmt} {self.precision}: the choice ({len(chosen.kept)} "
               f"group{'' if len(chosen.kept) == 1 else 's'} higher) verified on {len(verify.images)} photos it "
               f"never looked at: MSE {verify.mse:.2e}, worst image {verify.worst_mse:.2e}: "
               f"{'PASS' if verify.passed else 'FAIL'}")
        return (chosen, verify, None) if verify.passed else (None, verify, chosen)

    def path_of(self, candidate: Candidate) -> Path:
        return self.path(next(k for k, c in self.tried.items() if c is candidate))

    def verdict(self, files: list[Path], candidate: Candidate | None) -> Verdict:
        """The candidate judged on ``files`` with the budget (pooled, as parity judges); without a
        candidate, just what the images are (the verdict then rests on nothing)."""
        from modnet_edge.parity_tests.parity import run_parity

        if candidate is None:
            return Verdict([f.name for f in files], _unsure_of(self.ckpt, files))
        k = next(k for k, c in self.tried.items() if c is candidate)
        report = run_parity([self.path(k)], images=files, budgets={self.precision: self.budget}, progress=False)
        r = report.results[0]
        worst = r.worst_image
        return Verdict([f.name for f in files], r.drift.unsure, r.drift.mse, r.drift.band_mse,
                       r.per_image[worst].mse if worst else r.drift.mse, worst, r.drift.over_1, r.drift.over_4,
                       r.drift.max_levels, r.passed)

    def verdict_of_choose(self) -> Verdict:
        r = self.choose_report.results[0] if self.choose_report is not None else None
        return Verdict([f.name for f in self.choose_files], r.drift.unsure if r else 0.0)

    def candidates(self) -> list[Candidate]:
        return [self.tried[k] for k in sorted(self.tried)]


def _unsure_of(ckpt: Any, files: list[Path]) -> float:
    """Share of the files' pixels the reference network is unsure about (0.05 < alpha < 0.95)."""
    import numpy as np

    from modnet_edge.core import ArtifactMetadata
    from modnet_edge.runtimes.predictor import MattingPredictor
    from modnet_edge.runtimes.torch_backend import TorchBackend

    meta = ArtifactMetadata(format="pytorch", precision="fp32", preprocessing=ckpt.preprocessing,
                            model=ckpt.model_config.to_dict())
    shares, sizes = [], []
    with MattingPredictor(TorchBackend.from_checkpoint(ckpt), meta) as ref:
        for f in files:
            alpha = ref.predict(f)
            shares.append(float(np.mean((alpha > 0.05) & (alpha < 0.95))))
            sizes.append(alpha.size)
    return float(np.average(shares, weights=sizes)) if files else 0.0


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
