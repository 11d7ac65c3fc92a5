"""What a precision search records: every candidate it judged, what it chose, and which images (and how
many unsure pixels) each verdict rests on; written beside the artifact as ``<output>.search.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Candidate:
    kept: list[str]  # group names kept in higher precision
    mse: float  # pooled over the choose images
    band_mse: float
    passed: bool  # pooled, every single choose image and the bound for one more photo within the budget
    size_bytes: int = 0
    latency_ms: float | None = None  # p50, model only
    worst_mse: float = 0.0  # the worst choose image's MSE
    worst_image: str | None = None
    over_1: float = 0.0  # share of pixels whose 8-bit alpha moves by more than 1 level (pooled)
    max_levels: int = 0
    next_photo_mse: float = 0.0  # upper 90 % prediction bound of one more photo's MSE (see next_photo_bound)


#: one-sided 90 % quantiles of Student's t by degrees of freedom (n - 1); beyond 30, the normal's 1.282
_T90 = {1: 3.078, 2: 1.886, 3: 1.638, 4: 1.533, 5: 1.476, 6: 1.440, 7: 1.415, 8: 1.397, 9: 1.383, 10: 1.372,
        12: 1.356, 15: 1.341, 20: 1.325, 30: 1.310}


def next_photo_bound(mses: list[float], floor: float = 1e-20) -> float:
    """Upper 90 % prediction bound of the drift MSE of *one more* photo like these: the margin a choice
    needs to hold on photos it never saw.

    Why: per-image drift spreads over orders of magnitude, following the share of pixels the reference
    hesitates on, so a candidate whose worst choose photo sits just under the budget fails on the next
    hesitant photo (measured: TensorRT-ready FP16 of starter-v1 chosen at worst 6.5e-7 on 4 unseen photos
    drifted 1.3e-6 pooled on 14 others, budget 1e-6).  The bound is taken in log space, where that spread
    is roughly symmetric: exp(mean + t(0.9, n-1) * sd * sqrt(1 + 1/n)).  With one image there is no
    spread to measure, and the bound is that image's MSE."""
    import math

    logs = [math.log(max(m, floor)) for m in mses]
    n = len(logs)
    if n == 0:
        return 0.0
    if n == 1:
        return math.exp(logs[0])
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    df = n - 1
    t = _T90[max(k for k in _T90 if k <= df)] if df <= 30 else 1.282
    return math.exp(mean + t * sd * math.sqrt(1 + 1 / n))


@dataclass
class Verdict:
    """What one judgement rests on: the images, how unsure the reference is about them, the drift."""

    images: list[str]
    unsure: float  # share of their pixels with 0.05 < reference alpha < 0.95
    mse: float = 0.0
    band_mse: float = 0.0
    worst_mse: float = 0.0
    worst_image: str | None = None
    over_1: float = 0.0
    over_4: float = 0.0
    max_levels: int = 0
    passed: bool | None = None

    def describe(self) -> str:
        return (f"{len(self.images)} images ({', '.join(self.images)}; reference unsure about {self.unsure:.1%} of "
                f"their pixels)")


@dataclass
class SearchResult:
    format: str
    precision: str
    budget: dict[str, Any]
    ranking: list[tuple[str, float]]  # (group, error its layers add), most sensitive first
    candidates: list[Candidate]
    chosen: Candidate | None  # None: no candidate passed on the choose images, or the choice failed verification
    output: str | None
    choose: Verdict  # the images candidates were judged on
    verify: Verdict  # the images the chosen candidate was verified on (never looked at before)
    ranking_images: str
    options: dict[str, Any] = field(default_factory=dict)  # the exporter options of the chosen candidate
    failed_verification: Candidate | None = None  # the choice that did not hold on the verify images
    note: str = ""  # e.g. the time budget ran out before the bisection ended

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "precision": self.precision, "budget": self.budget, "ranking": self.ranking,
                "candidates": [asdict(c) for c in self.candidates],
                "chosen": asdict(self.chosen) if self.chosen else None, "output": self.output,
                "choose_images": asdict(self.choose), "verify_images": asdict(self.verify),
                "failed_verification": asdict(self.failed_verification) if self.failed_verification else None,
                "ranking_images": self.ranking_images, "options": self.options, "note": self.note}

    def summary(self) -> str:
        lines = [f"precision search, {self.format} {self.precision}, budget MSE {self.budget['mse']:.0e}"
                 + (f" / band {self.budget['band_mse']:.0e}" if self.budget.get("band_mse") else "")
                 + " (pooled, on every single image, and the 90 % bound for one more photo)",
                 f"chosen on {self.choose.describe()}", f"verified on {self.verify.describe()}"]
        if self.ranking:
            lines.append("sensitivity (matte MSE with only that group lowered, ranking images): "
                         + ", ".join(f"{g} {s:.1e}" for g, s in self.ranking[:6]))
        lines.append(f"{'kept in higher precision':<52} {'MSE':>8} {'worst':>8} {'next':>8} {'>1/255':>7} "
                     f"{'p50 ms':>7} {'MB':>5}  verdict")
        for c in sorted(self.candidates, key=lambda c: len(c.kept)):
            kept = f"{len(c.kept):>2}: " + (", ".join(c.kept) or "(none)")
            ms = f"{c.latency_ms:7.1f}" if c.latency_ms is not None else f"{'-':>7}"
            mark = "  <- chosen" if c is self.chosen else "  <- chosen, then FAILED verification" if (
                c is self.failed_verification) else ""
            lines.append(f"{kept[:52]:<52} {c.mse:8.1e} {c.worst_mse:8.1e} {c.next_photo_mse:8.1e} {c.over_1:7.2%} "
                         f"{ms} {c.size_bytes / 1e6:5.1f}  {'PASS' if c.passed else 'FAIL'}{mark}")
        v = self.verify
        if v.passed is not None:
            lines.append(f"verification ({len(v.images)} images never looked at): MSE {v.mse:.2e}, worst "
                         f"{v.worst_mse:.2e} ({v.worst_image}), {v.over_1:.2%} of pixels > 1/255, max "
                         f"{v.max_levels} levels: {'PASS' if v.passed else 'FAIL'}")
        lines.append("next: upper 90 % bound of one more photo's MSE, from the spread across the choose images")
        if self.note:
            lines.append(f"note: {self.note}")
        if self.chosen is None:
            if self.failed_verification is not None:
                lines.append("no variant verified: the choice met the budget on the choose images but not on "
                             "photos it had not seen (see README, 'Parity budgets')")
            else:
                best = min(self.candidates, key=lambda c: c.mse)
                lines.append(f"no candidate meets the budget: best MSE {best.mse:.2e} (worst image {best.worst_mse:.2e})"
                             f" keeping {', '.join(best.kept) or 'nothing'} in higher precision")
        return "\n".join(lines)
