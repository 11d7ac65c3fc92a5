"""The visual report: one self-contained HTML page (no network fetch, no script, no external file).

A person deciding whether an artifact can ship wants, on one page: the verdicts with their numbers and,
for every speed that carries no verdict, *why* (a stand-in runtime, a busy machine); the machine the
speed was measured on (its CPU features and the share of its peak each artifact reached); speed
against the target on a chart with readable ticks; and the mattes themselves, every parity photo,
because a drift number cannot show *where* an INT8 model frays the hair.

Everything is embedded: pictures are data URIs, the chart is inline SVG, the style is inline CSS, so
the file can be attached to a CI run or mailed and opens anywhere, offline.  Each picture is embedded
once, at full size, shown as a thumbnail and enlarged in place by a click (a CSS ``:target`` lightbox:
no script, no second copy); a label on it says what it is.  Numbers never wrap mid-token.

The page is built from data, so new kinds of rows and pictures slot in without touching the layout:
the artifact table is a list of :class:`Column` (header, cell), the pictures of an image a list of
:class:`Picture` (label, caption, pixels) from :func:`image_pictures`, and the label of a parity
result from :func:`result_label`.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import atomic_write_text
from modnet_edge.runtimes.outputs import composite

from modnet_edge.benchmarks.results import BenchResult
from modnet_edge.benchmarks.runner import machine_lines, trust_lines
from modnet_edge.benchmarks.summary import (ArtifactEntry, _fmt, drift_verdict, failed_gate, failure_reason,
                                            overall_pass, speed_unjudged_reason, speed_verdict)
from modnet_edge.benchmarks.targets import Verdict

TILE = 188  # px: width of each thumbnail on the page (the embedded picture is full size); 6 fit in 1280 px
FULL = 1024  # px: longest side of an embedded picture (the parity images are about 512-800 px)
HEAT_DECADES = (-6.0, -1.0)  # heat map colour scale: |alpha difference| from 1e-6 (black) to 1e-1 (white)
BUDGET_DECADES = 2.0  # per-artifact scale: 100x below the budget's RMS error (black) to 100x above (white)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.banner{display:inline-block;padding:6px 14px;border-radius:6px;font-weight:700;color:#fff;margin:8px 0}
.pass{background:#1f8a4c}.fail{background:#c0392b}.muted{color:#667}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:8px 0;font-size:12.5px}
th,td{border:1px solid #d6d9de;padding:3px 5px;text-align:right}td code{font-size:12px}
th{background:#f1f3f6;white-space:nowrap}td.l,th.l{text-align:left}td.n,.n{white-space:nowrap}
.ok{color:#1f8a4c;font-weight:600}.bad{color:#c0392b;font-weight:700}.warn{color:#a86400;font-weight:600}
sup{font-size:10px;margin-left:1px}ol.why{margin:4px 0 12px;padding-left:24px}ol.why li{margin:2px 0}
.tiles{display:flex;flex-wrap:wrap;gap:12px 18px;margin:6px 0 18px}.group{display:flex;gap:8px}
figure{margin:0;width:%(tile)dpx}figure a.open{display:block;position:relative;cursor:zoom-in}
figure img{width:100%%;height:auto;display:block;border:1px solid #ccd}
.tag{position:absolute;left:3px;top:3px;max-width:calc(100%% - 12px);overflow:hidden;text-overflow:ellipsis;
white-space:nowrap;background:rgba(18,22,28,.8);color:#fff;font-size:11px;line-height:16px;padding:0 5px;border-radius:3px}
figcaption{font-size:12px;color:#445;margin-top:3px;overflow-wrap:break-word}
a.close{display:none}
figure:target{position:fixed;inset:0;width:auto;z-index:10;background:rgba(12,14,18,.93);display:flex;
flex-direction:column;align-items:center;justify-content:center;padding:16px}
figure:target a.open{cursor:default}
figure:target img{width:min(94vw,calc(84vh * var(--ar,1)));height:auto;border:0}figure:target img.px{image-rendering:pixelated}
figure:target .tag{font-size:14px;line-height:22px}figure:target figcaption{color:#eee;font-size:14px;max-width:94vw}
figure:target a.close{display:block;position:absolute;top:8px;right:20px;color:#fff;font-size:30px;text-decoration:none}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{color:#556}dd{margin:0}
""" % {"tile": TILE}

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?:\s?(?:ms|fps|MB|GFLOP/s|%|x))?(?![\w.])")


def nowrap_numbers(text: str) -> str:
    """Escaped ``text`` with every number (``3.35e-13``, ``12.5 ms``) in a span that never wraps, so a
    browser cannot break it at its minus sign."""
    out, last = [], 0
    for m in _NUMBER.finditer(text):
        out += [html.escape(text[last:m.start()]), f"<span class=n>{html.escape(m.group(0))}</span>"]
        last = m.end()
    return "".join(out) + html.escape(text[last:])


# ---- pictures ------------------------------------------------------------------------------------------

def data_uri(array: np.ndarray, lossless: bool = True) -> str:
    """A uint8 (H, W) or (H, W, 3) array as a data URI: PNG where every pixel counts (mattes, drift maps),
    JPEG for photographs (a tenth of the bytes, and nothing is measured on them)."""
    from PIL import Image

    buf = io.BytesIO()
    if lossless:
        image = Image.fromarray(array)
        if array.ndim == 3 and image.getcolors(256) is not None:  # None beyond 256 colours (np.unique: 9 s a report)
            image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)  # exact: few colours
        image.save(buf, format="PNG")
        kind = "png"
    else:
        Image.fromarray(array).convert("RGB").save(buf, format="JPEG", quality=88)
        kind = "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail(array: np.ndarray, side: int = TILE) -> np.ndarray:
    """Downscale so the longest side is at most ``side`` (box filter); a display copy, never measured."""
    from PIL import Image

    h, w = array.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return array
    im = Image.fromarray(array).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return np.asarray(im)


def matte_image(alpha: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)


def heat_map(reference: np.ndarray, candidate: np.ndarray, budget_mse: float | None = None,
             block: int = 1) -> np.ndarray:
    """|candidate - reference| as RGB uint8, on a log scale.

    With ``budget_mse`` (the artifact's drift budget) the scale is the artifact's own and two-sided:
    pixels within the budget's RMS error are black -> blue (1/100 of it -> at it), pixels beyond it
    red -> yellow -> white (at it -> 100x), so a healthy artifact is a dark blue picture and a broken
    one shows *where* it breaks; the boundary band (where the parity's band MSE is measured) is outlined
    in green.  Without it: one fixed scale, 1e-6 black -> 1e-1 white ('hot' colours).

    ``block`` > 1 shows the worst pixel of each block x block square (a map a quarter or less of the
    bytes, for a page that embeds every image: the worst error is what a reader looks for), and the
    colour steps by 1/16 of a decade-pair so the map is a small palette.
    """
    err = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    if block > 1:
        err = _block_max(err, block)
    if budget_mse is None:
        lo, hi = HEAT_DECADES
        t = np.clip((np.log10(np.maximum(err, 10.0 ** (lo - 1))) - lo) / (hi - lo), 0.0, 1.0)
        return _hot(t)
    from modnet_edge.parity_tests.drift import boundary_band, dilate

    u = np.clip(np.log10(np.maximum(err, 1e-12) / math.sqrt(budget_mse)) / BUDGET_DECADES, -1.0, 1.0)
    if block > 1:
        u = np.round(u * 16.0) / 16.0
    below = np.clip(u + 1.0, 0.0, 1.0)  # 0 at 1/100 of the budget's RMS, 1 at it
    rgb = np.stack([np.zeros_like(u), 0.45 * below, below], axis=-1)
    over = u > 0
    rgb[over] = _hot(1.0 / 3.0 + (2.0 / 3.0) * u[over]).astype(np.float64) / 255.0  # red at the budget
    band = boundary_band(reference)
    if block > 1:
        band = _block_max(band, block)
    edge = band & dilate(~band, 1)
    rgb[edge] = (0.1, 0.9, 0.2)
    return np.rint(rgb * 255).astype(np.uint8)


def _block_max(array: np.ndarray, block: int) -> np.ndarray:
    """The maximum of each block x block square (edges padded with the array's own edge values)."""
    h, w = array.shape
    ph, pw = -h % block, -w % block
    padded = np.pad(array, ((0, ph), (0, pw)), mode="edge")
    return padded.reshape((h + ph) // block, block, (w + pw) // block, block).max(axis=(1, 3))


def drift_block(shape: tuple[int, ...], side: int = 400) -> int:
    """The block size that brings a drift map's longest side to at most ``side`` px (1: full size)."""
    return max(1, math.ceil(max(shape[:2]) / side))


def budget_legend(budget_mse: float) -> str:
    rms = math.sqrt(budget_mse)
    return (f"black \u2264 {rms / 10 ** BUDGET_DECADES:.0e} < blue \u2264 {rms:.0e} (budget RMS) < red < yellow "
            f"< white \u2265 {rms * 10 ** BUDGET_DECADES:.0e}")


def _hot(t: np.ndarray) -> np.ndarray:
    """The 'hot' colour map: black -> red -> yellow -> white for t in [0, 1]."""
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    return np.rint(rgb * 255).astype(np.uint8)


@dataclass(frozen=True)
class Picture:
    """One picture of the page: ``label`` is written on it (what it is), ``caption`` under it (its numbers);
    ``lossless`` False for photographs (JPEG); pictures of one ``group`` (the reference's, one artifact's)
    stay side by side."""

    label: str
    caption: str
    array: np.ndarray = field(repr=False)
    lossless: bool = True
    group: str = ""


def result_label(result: Any) -> str:
    """How a parity result is named on its pictures: the artifact's file name, its precision, and the
    runtime when it is not the format's own (Core ML's NumPy reference execution)."""
    runtime = getattr(result, "runtime", "")
    return f"{Path(result.artifact).name} ({result.precision}{', ' + runtime if runtime == 'reference' else ''})"


def image_pictures(parity: Any, name: str) -> list[Picture]:
    """Every picture of one parity image: the input; the reference network's matte of it at its native
    input (what the network gives for this photo) and composite; then each artifact's matte, its
    numerics drift map (against the reference fed the artifact's own input: the gate) and, for a
    static-shape artifact, its end-to-end drift map (against the native matte: what its user gets)."""
    rgb = parity.pictures[name]
    seen = (getattr(parity, "seen", None) or {}).get(name)
    pictures = [Picture("input", f"input photo {name} ({rgb.shape[1]}x{rgb.shape[0]})"
                        + (f"; the reference network was {seen} it" if seen else ""), rgb, lossless=False,
                        group="reference")]
    native = (getattr(parity, "native_mattes", None) or {}).get(name)
    shown = native
    if shown is None:  # a report without native mattes: the reference as the first artifact fed it
        shown = next((r.reference_mattes[name] for r in parity.results if name in r.reference_mattes), None)
    if shown is not None:
        what = "at the network's native input" if native is not None else "fed the artifact's input"
        pictures.append(Picture("reference matte", f"PyTorch FP32 reference matte {what}", matte_image(shown),
                                group="reference"))
        if rgb.shape[:2] == shown.shape:
            pictures.append(Picture("reference composite", "reference matte over green", composite(rgb, shown),
                                    lossless=False, group="reference"))
    for r in parity.results:
        if name not in r.mattes:
            continue
        ref = r.reference_mattes[name]
        shape = getattr(r, "input_shape", "dynamic")
        label = result_label(r)
        d = r.per_image.get(name)
        numbers = (f"MSE {d.mse:.1e}, {d.over_1:.2%} of pixels > 1/255, {d.over_4:.2%} > 4/255, max {d.max_levels} "
                   "levels") if d else ""
        pictures.append(Picture(f"matte: {label}", f"matte of {label}, input {shape}", matte_image(r.mattes[name]),
                                group=label))
        block = drift_block(ref.shape)
        worst = f", worst pixel of each {block}x{block}" if block > 1 else ""
        pictures.append(Picture(f"numerics drift: {label}", f"numerics drift of {label} against the reference fed "
                                f"the same {shape} input" + (f": {numbers}" if numbers else "") + worst,
                                heat_map(ref, r.mattes[name], r.budget.mse, block), group=label))
        x = (getattr(r, "end_to_end_per_image", None) or {}).get(name)
        if native is not None and x is not None and shape != "dynamic":
            pictures.append(Picture(f"end-to-end drift: {label}", f"end-to-end drift of {label} (input {shape}) "
                                    f"against the native reference matte: MSE {x.mse:.1e}, {x.over_4:.2%} of pixels "
                                    f"> 4/255, what a user of this artifact gets" + worst,
                                    heat_map(native, r.mattes[name], r.budget.mse, block), group=label))
    return pictures


def _figure(picture: Picture, anchor: str) -> str:
    """A thumbnail that enlarges in place when clicked (``#anchor`` targets its figure; no script)."""
    full = thumbnail(picture.array, FULL)
    return (f'<figure id="{anchor}"><a class=open href="#{anchor}" title="click to enlarge">'
            f'<img{" class=px" if picture.lossless else ""} style="--ar:{full.shape[1] / full.shape[0]:.4f}" '
            f'alt="{html.escape(picture.label)}" '
            f'src="{data_uri(full, picture.lossless)}">'
            f'<span class=tag>{html.escape(picture.label)}</span></a>'
            f"<figcaption>{nowrap_numbers(picture.caption)}</figcaption>"
            '<a class=close href="#_" title="close">&#215;</a></figure>')


def _pictures(parity: Any, max_images: int | bool | None) -> str:
    if parity is None or not getattr(parity, "pictures", None):
        return '<p class="muted">No pictures kept (parity did not run, or ran without keeping mattes).</p>'
    names = list(parity.pictures)
    shown = names if max_images in (None, True) else names[:max(0, int(max_images))]
    budgets = {r.precision: r.budget.mse for r in parity.results if r.budget is not None}
    legend = "".join(f"<li><b>{html.escape(p)}</b>: {nowrap_numbers(budget_legend(m))}</li>"
                     for p, m in sorted(budgets.items()))
    out = [f"<p>{len(shown)} of {len(names)} parity photos. Click any picture to enlarge it (&#215; or the browser's back button closes it). "
           "Drift maps use each artifact's own budget: dark blue is within it, red to white is beyond it (up to "
           f"100x the budget's RMS error), green outlines the boundary band.</p><ul>{legend}</ul>"]
    if len(shown) < len(names):
        out.append(f"<p class=muted>Not shown: {html.escape(', '.join(names[len(shown):]))}.</p>")
    for i, name in enumerate(shown):
        groups: dict[str, list[str]] = {}
        for j, p in enumerate(image_pictures(parity, name)):
            groups.setdefault(p.group or f"#{j}", []).append(_figure(p, f"p{i}-{j}"))
        tiles = "".join(f"<div class=group>{''.join(g)}</div>" for g in groups.values())
        out.append(f"<h3>{html.escape(name)}</h3><div class=tiles>{tiles}</div>")
    return "".join(out)


# ---- the speed chart ------------------------------------------------------------------------------------

def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Axis ticks from 0 at a 1-2-5 step (0, 0.2, 0.4 ...; 0, 50, 100 ...) reaching at least ``top``,
    about ``count`` of them: ticks a reader can add up, never 0.427, 0.854."""
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / max(1, count - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    n = math.ceil(top / step - 1e-9)
    decimals = max(0, -math.floor(math.log10(step)))
    return [round(k * step, decimals) for k in range(n + 1)]


def _tick_text(value: float) -> str:
    return f"{value:g}" if value < 1e5 else f"{value:.0e}"


def fps_chart_svg(rows: Sequence[tuple[str, float, float | None, bool | None]]) -> str:
    """Horizontal bars of fps with the target as a tick on each bar: (label, fps, target_fps, meets)."""
    if not rows:
        return '<p class="muted">No speed measured.</p>'
    label_w, bar_w, row_h = 300, 420, 26
    ticks = nice_ticks(max(max(f for _, f, _, _ in rows), max((t or 0) for _, _, t, _ in rows)))
    top = ticks[-1]
    height = row_h * len(rows) + 34
    parts = [f'<svg width="{label_w + bar_w + 90}" height="{height}" '
             f'role="img" aria-label="frames per second against targets" font-size="12">']
    for i, (label, fps, target, meets) in enumerate(rows):
        y = 6 + i * row_h
        w = max(1.0, bar_w * fps / top)
        colour = "#1f8a4c" if meets else "#c0392b" if meets is False else "#5b7bb0"
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{html.escape(label[:46])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="16" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 15}">{fps:.3g} fps</text>')
        if target:
            x = label_w + bar_w * target / top
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 22}" stroke="#111" stroke-width="2" '
                         f'stroke-dasharray="3,2"><title>target {target:.3g} fps</title></line>')
    axis_y = 6 + len(rows) * row_h + 4
    parts.append(f'<line x1="{label_w}" x2="{label_w + bar_w}" y1="{axis_y}" y2="{axis_y}" stroke="#889"/>')
    for v in ticks:
        x = label_w + bar_w * v / top
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{axis_y}" y2="{axis_y + 4}" stroke="#889"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#556">{_tick_text(v)}</text>')
    parts.append(f'<text x="{label_w + bar_w + 24}" y="{axis_y + 16}" fill="#556">fps</text></svg>')
    return "".join(parts)


def chart_rows(results: Sequence[BenchResult], verdicts: Sequence[Verdict]) -> list[tuple[str, float, float | None,
                                                                                            bool | None]]:
    rows = []
    for r in results:
        if r.mode != "model":
            continue
        mine = [v for v in verdicts if v.result is r and v.meets is not None]
        target = max((v.required_fps for v in mine if v.required_fps), default=None)
        meets = None if not mine else all(v.meets for v in mine)
        size = "x".join(map(str, r.input_size)) if r.input_size else ""
        name = "reference (pytorch fp32)" if r.artifact.get("role") == "reference" else r.artifact.get("name")
        rows.append((f"{name} {size}", r.fps, target, meets))
    return rows


# ---- the artifact table ---------------------------------------------------------------------------------

class _Footnotes:
    """Numbered notes under the table (why a speed carries no verdict), one number per distinct text."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.names: list[list[str]] = []

    def mark(self, text: str, who: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
            self.names.append([])
        i = self.texts.index(text)
        self.names[i].append(who)
        return f"<sup>{i + 1}</sup>"

    def html(self) -> str:
        if not self.texts:
            return ""
        items = "".join(f"<li><b>{html.escape(', '.join(names))}</b>: {nowrap_numbers(text)}</li>"
                        for text, names in zip(self.texts, self.names))
        return f"<p><b>Why these speeds carry no verdict</b></p><ol class=why>{items}</ol>"


@dataclass(frozen=True)
class Column:
    """One column of the artifact table: ``cell(entry, footnotes)`` returns the cell's HTML; numeric
    columns are right-aligned and never wrap."""

    header: str
    cell: Callable[[ArtifactEntry, _Footnotes], str]
    numeric: bool = True
    css: Callable[[ArtifactEntry], str] | None = None
    optional: bool = False  # left out when no row has a value (e.g. no end-to-end timing was made)


def _cls(ok: bool | None) -> str:
    return "ok" if ok else "bad" if ok is False else "muted"


def _num(value: float | None, spec: str = ".2e") -> str:
    return html.escape(_fmt(value, spec))


def _end_to_end(e: ArtifactEntry, key: str, spec: str) -> str:
    """The end-to-end figure of a static-shape artifact; "same" where the artifact is fed what the
    reference is fed (dynamic shape: the numerics row is the end-to-end row)."""
    if e.input_shape in (None, "dynamic"):
        return "same" if e.input_shape else "-"
    return _num((e.end_to_end_drift or {}).get(key), spec)


def _budget_cell(e: ArtifactEntry, _: _Footnotes) -> str:
    b = e.budget or {}
    return f"{_num(b.get('mse'), '.0e')} / {_num(b.get('band_mse'), '.0e')}" if b else "-"


def _speed_cell(e: ArtifactEntry, notes: _Footnotes) -> str:
    why = speed_unjudged_reason(e)
    return html.escape(speed_verdict(e)) + (notes.mark(why, e.name) if why else "")


def _speed_css(e: ArtifactEntry) -> str:
    return "warn" if speed_unjudged_reason(e) else _cls(e.meets_target)


def _result_text(e: ArtifactEntry) -> str:
    return "PASS" if e.passed else ("not run here" if e.status == "not-runnable-here" else "FAIL")


def _speed_text(e: ArtifactEntry, _: _Footnotes) -> str:
    return html.escape(speed_verdict(e))


_ARTIFACT = Column("artifact", lambda e, _: f"<code>{html.escape(e.name)}</code>", numeric=False)

#: the artifact table: what each artifact is, its drift against its budget, and the verdicts
ARTIFACT_COLUMNS: list[Column] = [
    _ARTIFACT,
    Column("format", lambda e, _: html.escape(e.format), numeric=False),
    Column("precision", lambda e, _: html.escape(e.precision), numeric=False),
    Column("size MB", lambda e, _: _num(e.size_bytes / 1e6 if e.size_bytes else None, ".1f")),
    Column("MSE", lambda e, _: _num((e.drift or {}).get("mse"))),
    Column("band MSE", lambda e, _: _num((e.drift or {}).get("band_mse"))),
    Column("&gt;1/255", lambda e, _: _num((e.drift or {}).get("over_1"), ".2%")),
    Column("&gt;4/255", lambda e, _: _num((e.drift or {}).get("over_4"), ".2%")),
    Column("max levels", lambda e, _: _num((e.drift or {}).get("max_levels"), "d")),
    Column("budget / band", _budget_cell),
    Column("drift", lambda e, _: drift_verdict(e), css=lambda e: _cls(e.drift_pass)),
    Column("input", lambda e, _: html.escape(e.input_shape or "-"), numeric=False),
    Column("end-to-end MSE", lambda e, _: _end_to_end(e, "mse", ".2e")),
    Column("e2e &gt;4/255", lambda e, _: _end_to_end(e, "over_4", ".2%")),
    Column("speed", _speed_text, css=_speed_css),
    Column("result", lambda e, _: _result_text(e),
           css=lambda e: _cls(True if e.passed else None if e.status == "not-runnable-here" else False)),
]

#: the speed table: latency, throughput, share of the CPU's peak, the target, and the speed verdict with
#: the reason wherever it is none
SPEED_COLUMNS: list[Column] = [
    _ARTIFACT,
    Column("median ms", lambda e, _: _num((e.latency_ms or {}).get("p50"), ".1f"), optional=True),
    Column("mean ms", lambda e, _: _num((e.latency_ms or {}).get("mean"), ".1f"), optional=True),
    Column("p90 ms", lambda e, _: _num((e.latency_ms or {}).get("p90"), ".1f"), optional=True),
    Column("fps", lambda e, _: _num(e.fps, ".2f")),
    Column("peak", lambda e, _: _num(e.peak_share * 100 if e.peak_share is not None else None, ".0f")
           + ("%" if e.peak_share is not None else ""), optional=True),
    Column("e2e ms", lambda e, _: _num(e.end_to_end_ms, ".1f"), optional=True),
    Column("target", lambda e, _: nowrap_numbers(e.target or "-"), numeric=False, optional=True),
    Column("measured", lambda e, _: nowrap_numbers(e.measured or "-"), numeric=False, optional=True),
    Column("speed", _speed_cell, css=_speed_css),
]


def artifact_table(entries: Sequence[ArtifactEntry], columns: Sequence[Column] = ARTIFACT_COLUMNS) -> str:
    """A table of ``entries`` (optional columns no row fills are left out), then the numbered reasons its
    cells point to (why a speed carries no verdict)."""
    notes = _Footnotes()
    columns = [c for c in columns if not c.optional or any(c.cell(e, _Footnotes()) != "-" for e in entries)]
    head = "".join(f"<th{'' if c.numeric else ' class=l'}>{c.header}</th>" for c in columns)
    rows = []
    for e in entries:
        cells = []
        for c in columns:
            css = " ".join(x for x in (("n" if c.numeric else "l"), c.css(e) if c.css else "") if x)
            cells.append(f"<td class='{css}'>{c.cell(e, notes)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class=scroll><table><tr>{head}</tr>{''.join(rows)}</table></div>{notes.html()}"


def speed_table(entries: Sequence[ArtifactEntry]) -> str:
    timed = [e for e in entries if e.fps is not None]
    if not timed:
        return '<p class="muted">No speed measured for these artifacts.</p>'
    return artifact_table(timed, SPEED_COLUMNS)


# ---- the machine ----------------------------------------------------------------------------------------

def machine_section(results: Sequence[BenchResult]) -> str:
    """Where the local speeds were measured: the CPU and its speed features, how its peak is derived,
    and whether the timings can be trusted (the same lines ``modnet-edge benchmark`` prints)."""
    lines = machine_lines(list(results)) + trust_lines(list(results))
    if not lines:
        return '<p class="muted">No local speed measured (no CPU to describe).</p>'
    items = "".join(f"<li>{nowrap_numbers(line.strip())}</li>" for line in lines)
    return (f"<ul>{items}</ul><p class=muted>Peak: the column <i>peak</i> is the share of this CPU's derived peak "
            "(FP32, or INT8 for full-integer artifacts) that each artifact reached, from MODNet's GFLOPs per frame "
            "and its median latency.</p>")


def _problems(entries: Sequence[ArtifactEntry]) -> str:
    items = []
    for e in sorted(entries, key=lambda x: x.passed):  # failures first
        msgs = [] if e.passed else [f"<b>{html.escape(failed_gate(e))}</b>: {nowrap_numbers(failure_reason(e))}"]
        msgs += [nowrap_numbers(m) for m in e.notes]
        if e.passed and e.speed_note and not speed_unjudged_reason(e):  # those are under the table already
            msgs.append(nowrap_numbers(e.speed_note))
        if msgs:
            items.append(f"<li><code>{html.escape(e.name)}</code>: " + "; ".join(msgs) + "</li>")
    return "<ul>" + "".join(items) + "</ul>" if items else '<p class="muted">None.</p>'


def render_report(entries: Sequence[ArtifactEntry], context: dict[str, Any], parity: Any = None,
                  results: Sequence[BenchResult] = (), verdicts: Sequence[Verdict] = (),
                  max_images: int | bool | None = None) -> str:
    """The page.  ``max_images``: how many parity photos to show (None or True: all of them)."""
    ok = overall_pass(entries)
    facts = "".join(f"<dt>{html.escape(str(k).replace('_', ' '))}</dt><dd>{nowrap_numbers(str(v))}</dd>"
                    for k, v in context.items() if v not in (None, "", [], {}) and not isinstance(v, (dict, list)))
    versions = context.get("versions") or {}
    vers = ", ".join(f"{html.escape(k)} {html.escape(str(v))}" for k, v in sorted(versions.items()))
    chart = fps_chart_svg(chart_rows(results, verdicts))
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>modnet-edge report: {'PASS' if ok else 'FAIL'}</title><style>{_CSS}</style></head><body>"
        f"<h1>modnet-edge report</h1><div class='banner {'pass' if ok else 'fail'}'>{'PASS' if ok else 'FAIL'}: "
        f"{sum(e.passed for e in entries)} of {len(entries)} artifacts pass every gate</div>"
        f"<dl>{facts}</dl><h2>Artifacts</h2>{artifact_table(entries)}"
        "<p class=muted>Drift (the gate): alpha MSE over all pixels of all images against the PyTorch FP32 reference "
        "fed the same input, band MSE inside the boundary band (soft alpha, dilated), and in 8-bit terms: the share "
        "of pixels whose 8-bit alpha moves by more than 1 and 4 levels, and the largest move. End-to-end: the matte "
        "a user gets from the artifact at its own input shape against the reference at its native input ('same' for "
        "dynamic-shape artifacts, which are fed what the reference is fed).</p>"
        f"<h2>Speed against targets</h2>{speed_table(entries)}"
        "<p class=muted>Model-only latency of one call; fps from the median for local runs and from the mean "
        "(throughput) for device logs; end-to-end (e2e) adds decode, preprocessing and postprocessing.</p>"
        f"{chart}<p class=muted>Bars: measured fps (green meets, red misses, blue no "
        "target). Dashed tick: the target, as fps (a ratio target is drawn as baseline fps &#215; ratio).</p>"
        f"<h2>Machine</h2>{machine_section(results)}"
        f"<h2>Mattes and drift</h2>{_pictures(parity, max_images)}"
        f"<h2>Problems and notes</h2>{_problems(entries)}"
        f"<h2>Versions</h2><p>{vers or '-'}</p></body></html>\n")


def write_report(path: str | Path, *args: Any, **kwargs: Any) -> Path:
    atomic_write_text(path, render_report(*args, **kwargs))
    return Path(path)
