"""The benchmark runner, the standalone edge runner and the HTML report, on real backends and tiny models.

Artifacts are 64x64 static-shape exports of the seeded random-init network (one export each per
session), so every run here takes milliseconds per inference.  The report is rendered in headless
Chromium when it is installed (CI installs it; the test says why it skips otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from modnet_edge.benchmarks.results import read_jsonl
from modnet_edge.benchmarks.runner import BenchConfig, run_benchmarks, subject_for_path
from modnet_edge.cli import main
from modnet_edge.parity_tests.drift import BUDGETS

REPO = Path(__file__).resolve().parents[1]
EDGE_RUNNER = REPO / "benchmarks" / "edge_runner.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A saved random-init checkpoint and its 64x64 static ONNX exports (fp32 and fp16)."""
    from modnet_edge import export
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    folder = tmp_path_factory.mktemp("bench-models")
    ckpt = save_checkpoint(folder / "tiny.pt", build_from_checkpoint(random_checkpoint(3)))
    out = {"ckpt": ckpt}
    for precision in ("fp32", "fp16"):
        out[precision] = export(ckpt, "onnx", precision, folder / f"tiny.{precision}.onnx", static_shape=(64, 64))
    return out


def test_runner_model_and_end_to_end_side_by_side(models):
    subjects = [subject_for_path(models["fp32"]), subject_for_path(models["ckpt"])]
    cfg = BenchConfig(sizes=((64, 64),), modes=("model", "end-to-end"), warmup=1, iterations=3, threads=1)
    results = run_benchmarks(subjects, cfg, progress=False)
    assert [(r.artifact["format"], r.mode) for r in results] == [
        ("onnx", "model"), ("onnx", "end-to-end"), ("pytorch", "model"), ("pytorch", "end-to-end")]
    assert len({r.run_id for r in results}) == 1  # one run: ratios between them are legitimate
    for r in results:
        lat = r.latency_ms
        assert lat.count == 3 and 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
        assert r.fps == pytest.approx(1000.0 / lat.p50)
        assert r.config["threads"] == 1 and r.config["batch"] == 1 and r.input_size == (64, 64)
        assert r.device["cores"] and r.device["cpu"] and "onnxruntime" in r.versions and "torch" in r.versions
        assert r.memory["peak_rss_mb"] > 0
    onnx_model = results[0]
    assert onnx_model.runtime["name"] == "onnxruntime" and onnx_model.artifact["sha256"]
    assert results[1].config["model_input_size"] == [64, 64]  # static model: the photo is resized to 64x64
    # end-to-end includes decode + pre/postprocessing, so it cannot be faster than the model call alone
    assert results[1].latency_ms.min > 0


def test_static_model_is_measured_at_its_own_size_and_batch(models):
    cfg = BenchConfig(sizes=((96, 96),), warmup=0, iterations=2, batch=2)
    (r,) = run_benchmarks([subject_for_path(models["fp32"])], cfg, progress=False)
    assert r.input_size == (64, 64) and r.config["batch"] == 1
    assert any("static-shape model" in n for n in r.notes) and any("static batch of 1" in n for n in r.notes)


def test_foreign_model_without_metadata_gets_a_generic_model_only_run(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])])
    path = tmp_path / "relu.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    onnx.save(model, path)
    cfg = BenchConfig(sizes=((32, 32),), modes=("model", "end-to-end"), warmup=0, iterations=2)
    results = run_benchmarks([subject_for_path(path)], cfg, progress=False)
    assert [r.mode for r in results] == ["model"]  # unknown preprocessing: no honest end-to-end figure
    assert any("no modnet-edge metadata" in n for n in results[0].notes)


def test_bench_command_adds_the_pytorch_baseline_for_ratio_targets(models, tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    code = main(["bench", str(models["fp32"]), "--size", "64x64", "--iterations", "2", "--warmup", "0",
                 "--threads", "1", "--json", str(out), "--device-class", "any-machine"])
    assert code == 0
    results = read_jsonl(out)
    assert sorted(r.format for r in results) == ["onnx", "pytorch"] and len({r.run_id for r in results}) == 1
    assert "pytorch fp32 baseline" in capsys.readouterr().out


def test_a_checkpoint_among_the_subjects_is_the_baseline_not_measured_twice(models, tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert main(["bench", str(models["ckpt"]), str(models["fp32"]), "--size", "64x64", "--iterations", "2",
                 "--warmup", "0", "--threads", "1", "--json", str(out), "--device-class", "any-machine"]) == 0
    assert sorted(r.format for r in read_jsonl(out)) == ["onnx", "pytorch"]
    assert "adding pytorch fp32 baseline" not in capsys.readouterr().out


def _run_edge(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run edge_runner.py in a fresh interpreter in which importing torch or modnet_edge fails."""
    guard = ("import sys, runpy; sys.modules['torch'] = None; sys.modules['modnet_edge'] = None; "
             f"sys.argv = {[str(EDGE_RUNNER), *args]!r}; runpy.run_path({str(EDGE_RUNNER)!r}, run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", guard], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)


def test_edge_runner_needs_neither_torch_nor_the_toolkit(models, tmp_path):
    out = tmp_path / "board.jsonl"
    proc = _run_edge([str(models["fp16"]), "--iterations", "3", "--warmup", "1", "--threads", "1",
                      "--json", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = read_jsonl(out)  # the toolkit reads what the board wrote
    assert r.source == "edge-runner" and r.artifact["format"] == "onnx" and r.artifact["precision"] == "fp16"
    assert r.input_size == (64, 64) and r.latency_ms.count == 3 and r.device["kind"] == "edge-board"
    assert "float16" in r.config["input_dtype"]
    bad = _run_edge([str(tmp_path / "missing.tflite")], tmp_path)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_edge_runner_size_the_model_cannot_take_is_one_line(tmp_path):
    """A dynamic model at 250x250 (not a multiple of 32): one line naming the shape, exit 2, no traceback."""
    from modnet_edge import export
    from modnet_edge.model.checkpoint import random_checkpoint

    dyn = export(random_checkpoint(1), "onnx", "fp32", tmp_path / "dyn.onnx")
    proc = _run_edge([str(dyn), "--size", "250x250", "--iterations", "1"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "[1, 3, 250, 250]" in proc.stderr and "multiples of 32" in proc.stderr
    neg = _run_edge([str(dyn), "--size", "0x64"], tmp_path)
    assert neg.returncode == 2 and "positive" in neg.stderr


def test_edge_runner_runs_a_tflite_model(tmp_path):
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch", reason="litert-torch converts the tiny test model")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert runs .tflite models")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

        def forward(self, x):
            return torch.sigmoid(self.conv(x))

    model = tmp_path / "tiny.tflite"
    litert_torch.convert(Tiny().eval(), (torch.zeros(1, 3, 32, 32),)).export(str(model))
    out = tmp_path / "pi.jsonl"
    proc = _run_edge([str(model), "--iterations", "3", "--warmup", "1", "--precision", "fp32", "--json", str(out)],
                     tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = read_jsonl(out)
    assert r.artifact["format"] == "tflite" and r.runtime["name"] == "ai_edge_litert" and r.input_size == (32, 32)


# -- the report ------------------------------------------------------------------------------------
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _render(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium) so the page cannot be rendered")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    return subprocess.run([exe, *flags, *extra, page.as_uri()], capture_output=True, text=True, timeout=120)


def test_report_command_writes_a_self_contained_page_that_renders(models, tmp_path):
    bench = tmp_path / "bench.jsonl"
    assert main(["bench", str(models["fp32"]), str(models["fp16"]), "--size", "64x64", "--iterations", "2",
                 "--warmup", "0", "--json", str(bench), "--no-baseline"]) == 0
    out = tmp_path / "report"
    code = main(["report", str(models["fp32"]), str(models["fp16"]), "-o", str(out), "--limit", "1",
                 "--bench", str(bench), "--pictures", "1"])
    summary = json.loads((out / "summary.json").read_text())
    assert code == (0 if summary["pass"] else 1)
    entries = summary["artifacts"]
    assert [(e["format"], e["precision"]) for e in entries] == [("onnx", "fp32"), ("onnx", "fp16")]
    for e in entries:
        assert e["drift"]["mse"] >= 0 and e["fps"] > 0 and e["latency_ms"]["p50"] > 0 and e["size_bytes"] > 0
    # JUnit: one export/drift/speed case per artifact, failures exactly where the summary says
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) == 6
    assert int(suite.get("failures")) == sum(1 for e in entries if e["drift_pass"] is False)
    assert "| `tiny.fp16.onnx` | onnx | fp16 |" in (out / "summary.md").read_text()

    page = (out / "report.html").read_text()
    assert not re.search(r"https?://", page) and "<script" not in page and "<link" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    # input, native reference matte and composite, then per (static-shape) artifact its matte, the numerics drift
    # map and the end-to-end drift map against the native reference
    assert len(sources) == 1 + 2 + 2 * 3
    assert page.count('alt="end-to-end drift') == 2 and "at the network&#x27;s native input" in page
    kinds = [s.split(";", 1)[0] for s in sources]  # mattes and drift maps lossless, photographs as JPEG
    assert kinds.count("data:image/png") == 1 + 2 * 3 and kinds.count("data:image/jpeg") == 2
    assert page.count("<svg") >= 1 and "budget RMS" in page  # the fps chart; each heat map's own scale

    shot = tmp_path / "report.png"
    proc = _render(out / "report.html", tmp_path, "--window-size=1200,1600", f"--screenshot={shot}")
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # not blank
    dom = _render(out / "report.html", tmp_path, "--dump-dom").stdout
    assert "modnet-edge report" in dom and "tiny.fp16.onnx" in dom


def test_drift_heat_map_separates_healthy_from_broken_on_the_budget_scale() -> None:
    """Within the budget's RMS error: black/blue, never red; a broken patch: red-to-white exactly there;
    the boundary band's edge outlined in green."""
    from modnet_edge.report_html import heat_map

    ref = np.zeros((64, 64), np.float32)
    ref[:, 32:] = 1.0
    ref[:, 30:34] = 0.5  # a soft edge: the boundary band
    rng = np.random.default_rng(0)
    healthy = ref + rng.uniform(-5e-4, 5e-4, ref.shape).astype(np.float32)  # all < 1e-3, the fp16 budget's RMS
    broken = healthy.copy()
    broken[4:12, 4:12] += 0.2
    budget = BUDGETS["fp16"].mse
    h = heat_map(ref, healthy, budget).astype(int)
    b = heat_map(ref, broken, budget).astype(int)
    green = (h[..., 1] > 200) & (h[..., 0] < 60)
    assert green.any() and not green[:, :20].any()  # the outline follows the soft edge only
    red_h = (h[..., 0] > 150) & ~green
    assert not red_h.any()
    patch = b[4:12, 4:12]
    assert (patch[..., 0] > 200).all()  # beyond the budget: red or brighter
    assert (b[20:28, 4:12, 0] < 50).all()  # healthy pixels of the same image stay dark
