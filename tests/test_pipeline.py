"""`modnet-edge pipeline`: the main job end to end on a small scale, with one export that really fails.

Kept to ONNX (fp32 + fp16) so it stays well under a minute on two cores: the other formats have their
own tests, and the pipeline reaches them through the same format-table loop exercised here.  A second,
deliberately broken format entry (a real exporter asked for a precision it refuses) shows that one
failing export becomes a failed entry, the rest still run, and the exit status is 1.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modnet_edge import core
from modnet_edge.cli import main
from modnet_edge.parity_tests.drift import BUDGETS

pytestmark = pytest.mark.slow
SUMMARY_KEYS = {"format", "precision", "path", "size_bytes", "drift", "pass", "latency_ms", "fps", "target",
                "meets_target"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from modnet_edge.training.synthetic import synthetic_portraits
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    folder = tmp_path_factory.mktemp("pipeline")
    ckpt = save_checkpoint(folder / "net.pt", build_from_checkpoint(random_checkpoint(1)))
    images = folder / "images"
    images.mkdir()
    rgb = next(iter(synthetic_portraits(1, seed=5).values()))
    Image.fromarray(rgb[::4, ::4]).save(images / "portrait.png")  # 160x120: the reference rule makes it 672x512
    return ckpt, images


def test_pipeline_end_to_end_with_a_failing_export(setup, tmp_path, monkeypatch, capsys):
    ckpt, images = setup
    onnx = core.FORMATS["onnx"]
    broken = dataclasses.replace(onnx, name="onnx-broken", suffixes=(".broken.onnx",),
                                 variants=("fp32", "int4"), pipeline_precisions=("int4",))
    monkeypatch.setitem(core.FORMATS, "onnx-broken", broken)
    out = tmp_path / "run"
    code = main(["pipeline", str(ckpt), "-o", str(out), "--images", str(images), "--limit", "1",
                 "--formats", "onnx:fp32,onnx-broken", "--size", "64x64", "--iterations", "2", "--warmup", "0",
                 "--threads", "1"])
    printed = capsys.readouterr().out
    assert code == 1  # the broken export is a failed gate
    for name in ("report.html", "summary.json", "junit.xml", "summary.md", "manifest.json", "parity.json",
                 "bench.jsonl"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass"] is False and "real portraits" not in summary["images"]
    entries = {(e["format"], e["precision"]): e for e in summary["artifacts"]}
    assert set(entries) == {("onnx", "fp32"), ("onnx-broken", "int4")}
    for e in entries.values():
        assert SUMMARY_KEYS <= set(e)
    failed = entries[("onnx-broken", "int4")]
    assert failed["status"] == "export-failed" and "int4" in failed["error"] and failed["pass"] is False
    fp32 = entries[("onnx", "fp32")]
    assert fp32["status"] == "ok" and fp32["drift"]["mse"] <= BUDGETS["fp32"].mse and fp32["drift_pass"] is True
    assert fp32["fps"] > 0 and fp32["latency_ms"]["p50"] > 0 and Path(fp32["path"]).is_file()
    assert fp32["pass"] is True and fp32["meets_target"] is None  # no fp32 target on an unknown CPU
    # the reference was measured in the same run as the artifacts
    bench = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    assert {b["artifact"]["format"] for b in bench} == {"onnx", "pytorch"} and len({b["run_id"] for b in bench}) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "modnet-edge pipeline" and manifest["checkpoint"]["trained_here"] is False
    assert manifest["stages"]["total_s"] > 0 and manifest["checkpoint"]["sha256"]
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    export_failures = [c for c in suite.iter("testcase") if c.get("name") == "export" and c.find("failure") is not None]
    assert [c.get("classname") for c in export_failures] == ["modnet_edge.onnx-broken.int4"]
    assert "onnx-broken" in printed and "FAIL (export-failed)" in printed and "report:" in printed
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "modnet.fp32.onnx" in page

    # a rerun into the same folder is allowed (it is the pipeline's own); a foreign folder is refused
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["pipeline", str(ckpt), "-o", str(foreign), "--formats", "onnx"]) == 2
    assert "not written by `modnet-edge pipeline`" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"


def test_pipeline_bad_input_is_refused_before_any_work(setup, tmp_path, capsys):
    ckpt, _ = setup
    assert main(["pipeline", str(ckpt), "-o", str(tmp_path / "a"), "--device-class", "nope"]) == 2
    assert "unknown device class 'nope'" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert main(["pipeline", str(missing), "-o", str(tmp_path / "b")]) == 2
    assert "checkpoint file does not exist" in capsys.readouterr().err
    assert main(["pipeline", str(ckpt), "-o", str(tmp_path / "c"), "--formats", "onnx,nope"]) == 2
    assert "unknown format 'nope'" in capsys.readouterr().err
    assert main(["pipeline", str(ckpt), "-o", str(tmp_path / "c"), "--formats", "onnx:int3"]) == 2
    assert "has precisions" in capsys.readouterr().err
    assert not np.any([(tmp_path / d / "report.html").exists() for d in "abc"])


def test_pipeline_names_what_it_leaves_out_and_why() -> None:
    from modnet_edge.main_job import PipelineOptions, plan_exports

    _, skipped = plan_exports(PipelineOptions(output=Path("unused")))
    onnx = next(line for line in skipped if line.startswith("onnx "))
    assert "int8" in onnx and "--formats onnx:int8" in onnx and "budget" in onnx
    _, asked = plan_exports(PipelineOptions(output=Path("unused"), formats=["onnx:int8"]))
    assert not any(line.startswith("onnx ") for line in asked)  # asked for: nothing to explain


def test_parity_reuses_an_artifacts_mattes_by_its_bytes(setup, tmp_path, monkeypatch) -> None:
    import shutil

    from modnet_edge import export
    from modnet_edge.parity_tests.parity import run_parity
    from modnet_edge.runtimes.predictor import MattingPredictor

    ckpt, images = setup
    first = export(ckpt, "onnx", "fp32", tmp_path / "a.onnx", static_shape=(64, 64))
    calls = []
    real = MattingPredictor.predict

    def counted(self, image, *args, **kwargs):  # the artifact's calls, not the PyTorch reference's
        if self.metadata.format != "pytorch":
            calls.append(1)
        return real(self, image, *args, **kwargs)

    monkeypatch.setattr(MattingPredictor, "predict", counted)
    one = run_parity([first], images=images, progress=False)
    assert len(calls) == 1
    twin = tmp_path / "b.onnx"
    shutil.copyfile(first, twin)  # the same bytes under another name: the same matte
    two = run_parity([twin], images=images, progress=False)
    assert len(calls) == 1 and two.results[0].drift.mse == one.results[0].drift.mse
    other = export(ckpt, "onnx", "fp32", tmp_path / "c.onnx", static_shape=(96, 96))
    run_parity([other], images=images, progress=False)
    assert len(calls) == 2  # other bytes: computed
