"""The HTML report explains itself (issue 27), checked as HTML and in a real headless browser.

The page is built from a small, fully known set of results (no model runs): three parity photos, an
artifact within its budget and one over it, a speed measured by a stand-in runtime (proxy) and one on a
busy machine (untrusted).  Chromium renders it and takes screenshots: the page must not be blank, must
show the pass and fail colours, and a click target must enlarge a picture over the page.  Where
Chromium is absent the browser test skips, saying so (``.ci/run`` installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modnet_edge.benchmarks.results import BenchResult, LatencyStats
from modnet_edge.benchmarks.summary import ArtifactEntry, attach_parity, attach_speed, markdown_summary
from modnet_edge.benchmarks.targets import load_targets
from modnet_edge.parity_tests.parity import BUDGETS, ArtifactParity, Drift, ParityReport
from modnet_edge.report_html import nice_ticks, render_report

PASS_GREEN, FAIL_RED = (0x1F, 0x8A, 0x4C), (0xC0, 0x39, 0x2B)
NAMES = ("portrait-a", "portrait-b", "portrait-c")


def _portrait(seed: int, h: int = 240, w: int = 180) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like RGB picture and a soft elliptical matte (a head and shoulders)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    rgb = np.stack([120 + 100 * xx, 90 + 80 * yy, 160 - 60 * xx], axis=-1) + rng.normal(0, 6, (h, w, 3))
    r = np.hypot((xx - 0.5) / 0.32, (yy - 0.55) / 0.42)
    alpha = np.clip((1.15 - r) / 0.3, 0.0, 1.0)
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha.astype(np.float32)


def _parity() -> ParityReport:
    pictures, refs = {}, {}
    for i, name in enumerate(NAMES):
        pictures[name], refs[name] = _portrait(i)
    results = []
    for artifact, precision, noise in (("modnet.fp16.onnx", "fp16", 3e-4), ("modnet.int8.onnx", "int8", 6e-2)):
        rng = np.random.default_rng(len(precision))
        mattes = {n: np.clip(refs[n] + rng.normal(0, noise, refs[n].shape), 0, 1).astype(np.float32) for n in NAMES}
        per_image = {n: Drift.measure(refs[n], mattes[n]) for n in NAMES}
        results.append(ArtifactParity(artifact, "onnx", precision, BUDGETS[precision],
                                      Drift.pool(list(per_image.values())), per_image, "starter-v1", mattes,
                                      dict(refs), "onnxruntime"))
    return ParityReport(results, list(NAMES), "folder unseen/", pictures)


def _bench() -> list[BenchResult]:
    device = {"cpu": "Test CPU 9000", "cpu_features": ["avx2", "avx512f", "avx512_vnni"], "usable_cores": 2}
    roof = {"share": 0.54, "derivation": "2 core(s) x 2 FMA units (assumed) x 16 fp32 lanes (AVX-512) x 2 FLOPs x "
            "2.00 GHz", "gflops_per_frame": 16.2}

    def result(name: str, fmt: str, precision: str, p50: float, stable: bool) -> BenchResult:
        why = "" if stable else "other processes used 61% of the CPU while it ran"
        return BenchResult("local", "run-1", {"name": name, "path": name, "format": fmt, "precision": precision},
                           "model", {"name": "onnxruntime"}, device, {},
                           {"batch": 1, "input_size": [512, 512], "isolated": True, "model_input_size": [512, 512]},
                           LatencyStats(mean=p50 * 1.05, p50=p50, p90=p50 * 1.2, count=20),
                           extra={"roofline": roof, "stability": {"stable": stable, "why": why,
                                                                  "foreign_cpu_share": 0.61 if not stable else 0.02}})

    return [result("modnet.fp16.onnx", "onnx", "fp16", 195.4, stable=False),
            result("modnet.int8.onnx", "onnx", "int8", 134.2, stable=True),
            result("modnet.fp16.trt.onnx", "tensorrt-onnx", "fp16", 201.0, stable=True)]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[ArtifactEntry]]:
    parity, results = _parity(), _bench()
    verdicts = load_targets().check(results, "any-machine")
    entries = []
    for r in parity.results:
        e = ArtifactEntry("onnx", r.precision, r.artifact, 13_000_000, None)
        attach_parity(e, r)
        attach_speed(e, results, verdicts)
        entries.append(e)
    proxy = ArtifactEntry("tensorrt-onnx", "fp16", "modnet.fp16.trt.onnx", 13_000_000, None)
    attach_parity(proxy, parity.results[0])
    attach_speed(proxy, results, verdicts)
    entries.append(proxy)
    text = render_report(entries, {"images": "3 from folder unseen/", "reference": "starter-v1"}, parity, results,
                         verdicts)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(text, encoding="utf-8")
    return path, text, entries


def test_the_page_explains_every_speed_without_a_verdict(page) -> None:
    _, text, entries = page
    assert [e.passed for e in entries] == [True, False, True]
    speed = text[text.index("<h2>Speed against targets"):text.index("<h2>Machine")]
    assert "median ms" in speed and "mean ms" in speed and "<svg" in speed
    why = speed[speed.index("Why these speeds carry no verdict"):speed.index("<svg")]
    assert "modnet.fp16.onnx" in why and "other processes used" in why  # untrusted, and why
    assert "modnet.fp16.trt.onnx" in why and "verify their numerics" in why  # proxy, and why
    assert text.count("<sup>") >= 2
    machine = text[text.index("<h2>Machine"):text.index("<h2>Mattes")]
    assert "avx512_vnni" in machine and "FMA units" in machine and "UNTRUSTED" in machine
    assert text.count("<td class='n'>54%</td>") == 3  # the share of peak, per artifact
    md = markdown_summary(entries, {})
    unjudged = md[md.index("**Speed not judged**"):]
    assert "`modnet.fp16.onnx` (untrusted): speed not judged: other processes used 61%" in unjudged
    assert "`modnet.fp16.trt.onnx` (proxy)" in unjudged and "verify their numerics" in unjudged


def test_every_photo_is_shown_enlargeable_and_labelled(page) -> None:
    _, text, _ = page
    assert [m for m in re.findall(r"<h3>([^<]+)</h3>", text)] == list(NAMES)  # all 3, not 2 of 3
    figures = re.findall(r'<figure id="(p\d+-\d+)"><a class=open href="#(p\d+-\d+)"', text)
    assert len(figures) == 3 * (3 + 2 * 2) and all(a == b for a, b in figures)  # each opens itself
    tags = re.findall(r"<span class=tag>([^<]+)</span>", text)
    assert len(tags) == len(figures) and {"input", "reference matte", "reference composite"} <= set(tags)
    assert "matte: modnet.int8.onnx (int8)" in tags and "numerics drift: modnet.fp16.onnx (fp16)" in tags
    assert "figure:target" in text  # the lightbox is CSS: no script, one copy of each picture
    assert "<script" not in text and not re.search(r"""(src|href)=["']?(https?:|//)""", text)  # self-contained


def test_numbers_do_not_wrap_and_ticks_are_round(page) -> None:
    _, text, _ = page
    assert "td.n,.n{white-space:nowrap}" in text
    cells = re.findall(r"<td class='n[^']*'>([^<]*)</td>", text)
    assert any(re.fullmatch(r"\d\.\d\de-\d\d", c) for c in cells)  # e.g. 3.35e-13 sits in a nowrap cell
    assert re.search(r"<span class=n>\d\.\de-\d\d</span>", text)  # and in captions
    assert nice_ticks(1.7) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert nice_ticks(1.28) == [0.0, 0.5, 1.0, 1.5]  # not 0, 0.427, 0.854 ...
    assert nice_ticks(7.45) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert nice_ticks(137) == [0, 50, 100, 150]
    assert nice_ticks(0.0) == [0.0, 1.0]
    labels = re.findall(r'text-anchor="middle" fill="#556">([^<]+)</text>', text)
    assert labels and all(re.fullmatch(r"\d+(\.\d)?", v) for v in labels), labels


def _chromium() -> str | None:
    return shutil.which("chromium") or (str(Path("/usr/bin/chromium")) if Path("/usr/bin/chromium").exists() else None)


def _screenshot(url: str, out: Path, profile: Path) -> Image.Image:
    browser = _chromium()
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1280,2000", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return Image.open(out)


def _share_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 18) -> float:
    a = np.asarray(image.convert("RGB")).astype(int)
    return float((np.abs(a - np.array(colour)).max(axis=-1) <= tolerance).mean())


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_the_report_renders_in_a_headless_browser(page, tmp_path: Path) -> None:
    path, _, _ = page
    shot = _screenshot(path.resolve().as_uri(), tmp_path / "report.png", tmp_path / "profile")
    assert shot.format == "PNG" and shot.size == (1280, 2000)
    pixels = np.asarray(shot.convert("RGB"))
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # not blank
    assert _share_near(shot, FAIL_RED) > 0.0005  # the FAIL banner and the failed artifact's verdicts
    assert _share_near(shot, PASS_GREEN) > 0.0001  # the passing artifacts' verdicts
    # the first photo's reference matte, clicked: enlarged over a dark overlay covering the page, a close mark
    zoomed = np.asarray(_screenshot(path.resolve().as_uri() + "#p0-1", tmp_path / "zoomed.png",
                                    tmp_path / "profile2").convert("L"))
    assert (zoomed[:100, :1200] < 60).mean() > 0.9  # the page's title and banner are under the overlay
    corner = zoomed[:60, -80:]
    assert (corner < 60).mean() > 0.5 and (corner > 200).any()  # the white close mark on the overlay, top right
    matte = zoomed[150:1850, 100:1180]  # the enlarged matte: black around a white ellipse 500+ px wide
    assert (matte < 60).mean() > 0.3 and (matte > 200).sum(axis=1).max() > 500
