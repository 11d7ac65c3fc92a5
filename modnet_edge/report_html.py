"""The visual report: one self-contained HTML page (no network fetch, no script, no external file).

A person deciding whether an artifact can ship wants three things on one page: the verdicts with their
numbers, speed against the target, and the mattes themselves, because a drift number cannot show *where*
an INT8 model frays the hair.  Pictures are PNG data URIs, the chart is inline SVG, the style is inline
CSS, so the file can be attached to a CI run or mailed and opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import atomic_write_text
from modnet_edge.runtimes.outputs import composite

from modnet_edge.benchmarks.results import BenchResult
from modnet_edge.benchmarks.summary import ArtifactEntry, _fmt, drift_verdict, failed_gate, failure_reason, overall_pass, speed_verdict
from modnet_edge.benchmarks.targets import Verdict

TILE = 200  # px: longest side of each picture on the page
HEAT_DECADES = (-6.0, -1.0)  # heat map colour scale: |alpha difference| from 1e-6 (black) to 1e-1 (white)
BUDGET_DECADES = 2.0  # per-artifact scale: 100x below the budget's RMS error (black) to 100x above (white)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.banner{display:inline-block;padding:6px 14px;border-radius:6px;font-weight:700;color:#fff;margin:8px 0}
.pass{background:#1f8a4c}.fail{background:#c0392b}.muted{color:#667}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d6d9de;padding:4px 8px;text-align:right}
th{background:#f1f3f6}td.l,th.l{text-align:left}.ok{color:#1f8a4c;font-weight:600}.bad{color:#c0392b;font-weight:700}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0 18px}
figure{margin:0;width:%dpx}figure img{max-width:%dpx;display:block;border:1px solid #ccd;image-rendering:auto}
figcaption{font-size:12px;color:#445;margin-top:3px;word-break:break-all}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{color:#556}dd{margin:0}
""" % (TILE, TILE)


def png_data_uri(array: np.ndarray) -> str:
    """A uint8 (H, W) or (H, W, 3) array as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail(array: np.ndarray, side: int = TILE) -> np.ndarray:
    """Downscale for display (box filter); a display copy, never used for any metric."""
    from PIL import Image

    h, w = array.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return array
    im = Image.fromarray(array).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX)
    return np.asarray(im)


def matte_image(alpha: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)


def heat_map(reference: np.ndarray, candidate: np.ndarray, budget_mse: float | None = None) -> np.ndarray:
    """|candidate - reference| as RGB uint8, on a log scale.

    With ``budget_mse`` (the artifact's drift budget) the scale is the artifact's own and two-sided:
    pixels within the budget's RMS error are black -> blue (1/100 of it -> at it), pixels beyond it
    red -> yellow -> white (at it -> 100x), so a healthy artifact is a dark blue picture and a broken
    one shows *where* it breaks; the boundary band (where the parity's band MSE is measured) is outlined
    in green.  Without it: one fixed scale, 1e-6 black -> 1e-1 white ('hot' colours).
    """
    err = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    if budget_mse is None:
        lo, hi = HEAT_DECADES
        t = np.clip((np.log10(np.maximum(err, 10.0 ** (lo - 1))) - lo) / (hi - lo), 0.0, 1.0)
        return _hot(t)
    from modnet_edge.parity_tests.drift import boundary_band, dilate

    u = np.clip(np.log10(np.maximum(err, 1e-12) / math.sqrt(budget_mse)) / BUDGET_DECADES, -1.0, 1.0)
    below = np.clip(u + 1.0, 0.0, 1.0)  # 0 at 1/100 of the budget's RMS, 1 at it
    rgb = np.stack([np.zeros_like(u), 0.45 * below, below], axis=-1)
    over = u > 0
    rgb[over] = _hot(1.0 / 3.0 + (2.0 / 3.0) * u[over]).astype(np.float64) / 255.0  # red at the budget
    band = boundary_band(reference)
    edge = band & dilate(~band, 1)
    rgb[edge] = (0.1, 0.9, 0.2)
    return np.rint(rgb * 255).astype(np.uint8)


def _budget_legend(budget_mse: float) -> str:
    rms = math.sqrt(budget_mse)
    return (f"scale: black \u2264 {rms / 10 ** BUDGET_DECADES:.0e} < blue \u2264 {rms:.0e} (budget RMS) < red < yellow "
            f"< white \u2265 {rms * 10 ** BUDGET_DECADES:.0e}; green: boundary band")


def _hot(t: np.ndarray) -> np.ndarray:
    """The 'hot' colour map: black -> red -> yellow -> white for t in [0, 1]."""
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    return np.rint(rgb * 255).astype(np.uint8)


def fps_chart_svg(rows: Sequence[tuple[str, float, float | None, bool | None]]) -> str:
    """Horizontal bars of fps with the target as a tick on each bar: (label, fps, target_fps, meets)."""
    if not rows:
        return '<p class="muted">No speed measured.</p>'
    label_w, bar_w, row_h = 300, 420, 26
    top = max(max(f for _, f, _, _ in rows), max((t or 0) for _, _, t, _ in rows)) * 1.12 or 1.0
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
    for k in range(5):
        v = top * k / 4
        x = label_w + bar_w * k / 4
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#556">{v:.3g}</text>')
    parts.append("</svg>")
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


def _cls(ok: bool | None) -> str:
    return "ok" if ok else "bad" if ok is False else "muted"


def _table(entries: Sequence[ArtifactEntry]) -> str:
    head = ("<tr><th class=l>artifact</th><th class=l>format</th><th class=l>precision</th><th>size MB</th>"
            "<th>MSE</th><th>band MSE</th><th>&gt;1/255</th><th>&gt;4/255</th><th>max levels</th>"
            "<th>budget MSE / band</th><th>drift</th><th class=l>input</th><th>end-to-end MSE</th>"
            "<th>e2e &gt;4/255</th><th>p50 ms</th><th>p90 ms</th><th>fps</th><th>e2e ms</th><th class=l>target</th>"
            "<th>speed</th><th>result</th></tr>")
    rows = [head]
    for e in entries:
        d, b, lat = e.drift or {}, e.budget or {}, e.latency_ms or {}
        x = e.end_to_end_drift or {}
        budget = f"{_fmt(b.get('mse'), '.0e')} / {_fmt(b.get('band_mse'), '.0e')}" if b else "-"
        result = "PASS" if e.passed else ("not run here" if e.status == "not-runnable-here" else "FAIL")
        rows.append(
            f"<tr><td class=l><code>{html.escape(e.name)}</code></td><td class=l>{html.escape(e.format)}</td>"
            f"<td class=l>{html.escape(e.precision)}</td><td>{_fmt(e.size_bytes / 1e6 if e.size_bytes else None, '.2f')}"
            f"</td><td>{_fmt(d.get('mse'))}</td><td>{_fmt(d.get('band_mse'))}</td><td>{_fmt(d.get('over_1'), '.2%')}"
            f"</td><td>{_fmt(d.get('over_4'), '.2%')}</td><td>{_fmt(d.get('max_levels'), 'd')}</td>"
            f"<td>{budget}</td><td class={_cls(e.drift_pass)}>{drift_verdict(e)}</td>"
            f"<td class=l>{html.escape(e.input_shape or '-')}</td>"
            f"<td>{_fmt(x.get('mse')) if e.input_shape not in (None, 'dynamic') else 'same'}</td>"
            f"<td>{_fmt(x.get('over_4'), '.2%') if e.input_shape not in (None, 'dynamic') else 'same'}</td>"
            f"<td>{_fmt(lat.get('p50'), '.1f')}</td><td>{_fmt(lat.get('p90'), '.1f')}</td><td>{_fmt(e.fps, '.2f')}</td>"
            f"<td>{_fmt(e.end_to_end_ms, '.1f')}</td><td class=l>{html.escape(e.target or '-')}</td>"
            f"<td class={_cls(e.meets_target)}>{speed_verdict(e)}</td>"
            f"<td class={_cls(True if e.passed else None if e.status == 'not-runnable-here' else False)}>{result}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _figure(array: np.ndarray, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="{png_data_uri(thumbnail(array))}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _pictures(parity: Any, max_images: int) -> str:
    if parity is None or not getattr(parity, "pictures", None):
        return '<p class="muted">No pictures kept (parity did not run, or ran without keeping mattes).</p>'
    out = ["<p>Drift maps use each artifact's own budget: dark blue is within it, red to white is beyond it "
           "(up to 100x the budget's RMS error), green outlines the boundary band.</p>"]
    seen = getattr(parity, "seen", {}) or {}
    for name in list(parity.pictures)[:max_images]:
        rgb = parity.pictures[name]
        tiles = [_figure(rgb, f"input {name} ({rgb.shape[1]}x{rgb.shape[0]})"
                         + (f"; the reference was {seen[name]} it" if name in seen else ""))]
        native = (getattr(parity, "native_mattes", {}) or {}).get(name)
        if native is not None:
            tiles.append(_figure(matte_image(native), "reference matte: PyTorch FP32 at its native input (what "
                                 "the network gives for this photo)"))
            if rgb.shape[:2] == native.shape:
                tiles.append(_figure(composite(rgb, native), "reference composite over green"))
        for r in parity.results:
            if name not in r.mattes:
                continue
            runtime = getattr(r, "runtime", "")
            shape = getattr(r, "input_shape", "dynamic")
            label = (f"{Path(r.artifact).name} ({r.precision}, input {shape}"
                     f"{', ' + runtime if runtime == 'reference' else ''})")
            d = r.per_image.get(name)
            tiles.append(_figure(matte_image(r.mattes[name]), f"matte: {label}"))
            tiles.append(_figure(heat_map(r.reference_mattes[name], r.mattes[name], r.budget.mse),
                                 f"numerics drift: {label} vs the reference fed the same {shape} input"
                                 + (f", MSE {d.mse:.1e}, {d.over_4:.2%} px > 4/255, max {d.max_levels} levels"
                                    if d else "") + f" ({_budget_legend(r.budget.mse)})"))
            x = getattr(r, "end_to_end_per_image", {}).get(name)
            if native is not None and x is not None and shape != "dynamic":
                tiles.append(_figure(heat_map(native, r.mattes[name], r.budget.mse),
                                     f"end-to-end drift: {label} vs the native reference matte, MSE {x.mse:.1e}, "
                                     f"{x.over_4:.2%} px > 4/255 (what a user of this artifact gets)"))
        out.append(f"<h3>{html.escape(name)}</h3><div class=tiles>{''.join(tiles)}</div>")
    return "".join(out)


def _problems(entries: Sequence[ArtifactEntry]) -> str:
    items = []
    for e in sorted(entries, key=lambda x: x.passed):  # failures first
        msgs = [] if e.passed else [f"<b>{html.escape(failed_gate(e))}</b>: {html.escape(failure_reason(e))}"]
        msgs += [html.escape(m) for m in e.notes]
        if e.passed and e.speed_note:
            msgs.append(html.escape(e.speed_note))
        if msgs:
            items.append(f"<li><code>{html.escape(e.name)}</code>: " + "; ".join(msgs) + "</li>")
    return "<ul>" + "".join(items) + "</ul>" if items else '<p class="muted">None.</p>'


def render_report(entries: Sequence[ArtifactEntry], context: dict[str, Any], parity: Any = None,
                  results: Sequence[BenchResult] = (), verdicts: Sequence[Verdict] = (), max_images: int = 2) -> str:
    ok = overall_pass(entries)
    facts = "".join(f"<dt>{html.escape(str(k).replace('_', ' '))}</dt><dd>{html.escape(str(v))}</dd>"
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
        f"<dl>{facts}</dl><h2>Artifacts</h2>{_table(entries)}"
        "<p class=muted>Drift (the gate): alpha MSE over all pixels of all images against the PyTorch FP32 reference "
        "fed the same input, band MSE inside the boundary band (soft alpha, dilated), and in 8-bit terms: the share "
        "of pixels whose 8-bit alpha moves by more than 1 and 4 levels, and the largest move. End-to-end MSE: the "
        "matte a user gets from the artifact at its own input shape against the reference at its native input "
        "('same' for dynamic-shape artifacts, which are fed what the reference is fed). Speed: model-only median "
        "latency (p50) of one call; e2e ms adds decode, preprocessing and postprocessing.</p>"
        f"<h2>Speed against targets</h2>{chart}<p class=muted>Bars: measured fps (green meets, red misses, blue no "
        "target). Dashed tick: the target, as fps (a ratio target is drawn as baseline fps &#215; ratio).</p>"
        f"<h2>Mattes and drift</h2>{_pictures(parity, max_images)}"
        f"<h2>Problems and notes</h2>{_problems(entries)}"
        f"<h2>Versions</h2><p>{vers or '-'}</p></body></html>\n")


def write_report(path: str | Path, *args: Any, **kwargs: Any) -> Path:
    atomic_write_text(path, render_report(*args, **kwargs))
    return Path(path)

