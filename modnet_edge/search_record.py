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
    passed: bool  # pooled and every single choose image within the budget
    size_bytes: int = 0
    latency_ms: float | None = None  # p50, model only
    worst_mse: float = 0.0  # the worst choose image's MSE
    worst_image: str | None = None
    over_1: float = 0.0  # share of pixels whose 8-bit alpha moves by more than 1 level (pooled)
    max_levels: int = 0


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
                 + " (pooled and on every single image)",
                 f"chosen on {self.choose.describe()}", f"verified on {self.verify.describe()}"]
        if self.ranking:
            lines.append("sensitivity (matte MSE with only that group lowered, ranking images): "
                         + ", ".join(f"{g} {s:.1e}" for g, s in self.ranking[:6]))
        lines.append(f"{'kept in higher precision':<52} {'MSE':>8} {'worst':>8} {'>1/255':>7} {'p50 ms':>7} "
                     f"{'MB':>5}  verdict")
        for c in sorted(self.candidates, key=lambda c: len(c.kept)):
            kept = f"{len(c.kept):>2}: " + (", ".join(c.kept) or "(none)")
            ms = f"{c.latency_ms:7.1f}" if c.latency_ms is not None else f"{'-':>7}"
            mark = "  <- chosen" if c is self.chosen else "  <- chosen, then FAILED verification" if (
                c is self.failed_verification) else ""
            lines.append(f"{kept[:52]:<52} {c.mse:8.1e} {c.worst_mse:8.1e} {c.over_1:7.2%} {ms} "
                         f"{c.size_bytes / 1e6:5.1f}  {'PASS' if c.passed else 'FAIL'}{mark}")
        v = self.verify
        if v.passed is not None:
            lines.append(f"verification ({len(v.images)} images never looked at): MSE {v.mse:.2e}, worst "
                         f"{v.worst_mse:.2e} ({v.worst_image}), {v.over_1:.2%} of pixels > 1/255, max "
                         f"{v.max_levels} levels: {'PASS' if v.passed else 'FAIL'}")
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
