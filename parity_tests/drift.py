"""Drift of a matte against its reference, and the budgets that judge it (per precision).

A drift is given as alpha MSE (over all pixels and over the boundary band, where mattes matter and
quantisation hurts most) and in the terms a person sees in an 8-bit matte: the share of pixels whose
8-bit alpha changes by more than 1 and by more than 4 levels, and the largest change in levels.  A
budget may limit any of them; the default budgets (``BUDGETS``) limit the MSE, and what they mean in
8-bit levels on photos the network never saw is measured and written in README ("Parity budgets").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modnet_edge.core.errors import ConfigError
from modnet_edge.core.formats import PRECISION_TABLE


@dataclass(frozen=True)
class Budget:
    """Largest acceptable drift: global alpha MSE and, when set, MSE inside the boundary band and the
    8-bit terms -- the share of pixels whose 8-bit alpha changes by more than 1 / more than 4 levels,
    and the largest change in levels.  An MSE of ``inf`` judges by the 8-bit terms alone."""

    mse: float
    band_mse: float | None = None
    over_1: float | None = None  # max share of pixels changed by > 1/255
    over_4: float | None = None  # max share of pixels changed by > 4/255
    max_levels: float | None = None  # max |change| in 8-bit levels

    def __post_init__(self) -> None:
        for name in ("mse", "band_mse", "over_1", "over_4", "max_levels"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or math.isnan(value) or value < 0):
                raise ConfigError(f"budget {name} must be a number >= 0, got {value!r}")
        if self.mse == math.inf and self.over_1 is None and self.over_4 is None and self.max_levels is None:
            raise ConfigError("a budget needs an MSE or at least one 8-bit term (over1, over4, levels)")

    def admits(self, drift: Drift) -> bool:
        """Whether ``drift`` is within every limit this budget sets (NaN never is)."""
        checks = [(drift.mse, self.mse), (drift.band_mse, self.band_mse), (drift.over_1, self.over_1),
                  (drift.over_4, self.over_4), (drift.max_levels, self.max_levels)]
        return math.isfinite(drift.mse) and all(limit is None or value <= limit for value, limit in checks)

    def describe(self) -> str:
        parts = [] if self.mse == math.inf else [f"MSE {self.mse:.0e}"]
        parts += [f"band {self.band_mse:.0e}"] if self.band_mse is not None else []
        parts += [f">1/255 {self.over_1:.2%}"] if self.over_1 is not None else []
        parts += [f">4/255 {self.over_4:.2%}"] if self.over_4 is not None else []
        parts += [f"max {self.max_levels:g} levels"] if self.max_levels is not None else []
        return ", ".join(parts)


def parse_budget(text: str) -> Budget:
    """A budget as a user writes it: an MSE (``1e-6``), or ``key=value`` terms joined by commas, keys
    ``mse``, ``band``, ``over1`` and ``over4`` (shares: ``0.5%`` or ``0.005``) and ``levels``
    (``over4=0.1%,levels=8``: at most 0.1 % of pixels change by more than 4/255, none by more than 8)."""
    text = text.strip()
    try:
        return Budget(mse=_number(text, "MSE"))
    except ConfigError:
        if "=" not in text:
            raise
    names = {"mse": "mse", "band": "band_mse", "over1": "over_1", "over4": "over_4", "levels": "max_levels"}
    values: dict[str, float] = {}
    for term in text.split(","):
        key, sep, value = term.strip().partition("=")
        if not sep or key.strip() not in names:
            raise ConfigError(f"budget term {term.strip()!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
        share = key.strip() in ("over1", "over4")
        values[names[key.strip()]] = _number(value, key.strip(), share)
    return Budget(**{"mse": math.inf, **values})


def _number(text: str, what: str, share: bool = False) -> float:
    text = text.strip()
    scale = 1.0
    if share and text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        value = float(text) * scale
    except ValueError:
        raise ConfigError(f"budget {what} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (share and value > 1):
        raise ConfigError(f"budget {what} must be a finite number >= 0{' and at most 100%' if share else ''}, "
                          f"got {text!r}")
    return value


# The drift budgets by artifact precision, from the precision table (modnet_edge.core.formats), where each
# precision's budget is written beside its other facts and the reasons for its numbers.
BUDGETS: dict[str, Budget] = {p.name: Budget(mse=p.budget_mse, band_mse=p.budget_band_mse)
                              for p in PRECISION_TABLE.values()}

BAND_RADIUS = 7  # px: how far the boundary band extends around soft alpha


def budget_for(precision: str, budgets: dict[str, Budget] | None = None) -> Budget:
    """The budget of exactly ``precision`` in ``budgets`` (default: :data:`BUDGETS`, every precision's)."""
    table = budgets or BUDGETS
    if precision in table:
        return table[precision]
    raise ConfigError(f"no drift budget for precision {precision!r}; budgets exist for {sorted(table)}")


def boundary_band(reference: np.ndarray, radius: int = BAND_RADIUS) -> np.ndarray:
    """Pixels whose reference alpha is strictly between 0 and 1 at 8-bit precision, dilated by ``radius``."""
    soft = (reference > 0.5 / 255.0) & (reference < 1.0 - 0.5 / 255.0)
    return dilate(soft, radius)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for axis in (0, 1):  # a square structuring element is separable: dilate rows, then columns
        src, acc = out, out.copy()
        for shift in range(1, radius + 1):
            fwd = [slice(None)] * 2
            bwd = [slice(None)] * 2
            fwd[axis], bwd[axis] = slice(shift, None), slice(None, -shift)
            acc[tuple(fwd)] |= src[tuple(bwd)]
            acc[tuple(bwd)] |= src[tuple(fwd)]
        out = acc
    return out


@dataclass
class Drift:
    """Drift of one matte (or of all mattes pooled) against the reference."""

    mse: float
    mad: float
    max_abs: float
    p99_abs: float
    band_mse: float
    band_pixels: int
    pixels: int
    over_1: float = 0.0  # share of pixels whose 8-bit alpha changes by more than 1 level
    over_4: float = 0.0  # ... by more than 4 levels
    max_levels: int = 0  # the largest change of an 8-bit alpha, in levels
    unsure: float = 0.0  # share of pixels the reference itself is unsure about (0.05 < alpha < 0.95)

    @classmethod
    def measure(cls, reference: np.ndarray, candidate: np.ndarray, radius: int = BAND_RADIUS) -> Drift:
        if reference.shape != candidate.shape:
            raise ValueError(f"matte shapes differ: {reference.shape} vs {candidate.shape}")
        err = candidate.astype(np.float64) - reference.astype(np.float64)
        sq, ab = err * err, np.abs(err)
        band = boundary_band(reference, radius)
        # what an 8-bit matte shows: both mattes rounded to 8 bits, the change in levels
        levels = np.abs(_to_8bit(candidate) - _to_8bit(reference))
        return cls(mse=float(sq.mean()), mad=float(ab.mean()), max_abs=float(ab.max()),
                   p99_abs=float(np.percentile(ab, 99)),
                   band_mse=float(sq[band].mean()) if band.any() else 0.0,
                   band_pixels=int(band.sum()), pixels=int(err.size),
                   over_1=float(np.mean(levels > 1)), over_4=float(np.mean(levels > 4)), max_levels=int(levels.max()),
                   unsure=float(np.mean((reference > 0.05) & (reference < 0.95))))

    @classmethod
    def pool(cls, items: Sequence[Drift]) -> Drift:
        """Pixel-weighted pooling (so MSE is over all pixels of all images); p99 is the worst image's."""
        n = sum(d.pixels for d in items)
        nb = sum(d.band_pixels for d in items)
        mean = lambda key: sum(getattr(d, key) * d.pixels for d in items) / n  # noqa: E731
        return cls(mse=mean("mse"), mad=mean("mad"),
                   max_abs=max(d.max_abs for d in items), p99_abs=max(d.p99_abs for d in items),
                   band_mse=sum(d.band_mse * d.band_pixels for d in items) / nb if nb else 0.0,
                   band_pixels=nb, pixels=n, over_1=mean("over_1"), over_4=mean("over_4"),
                   max_levels=max(d.max_levels for d in items), unsure=mean("unsure"))


def _to_8bit(alpha: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(alpha.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.int16)
