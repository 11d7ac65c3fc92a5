"""The precision doctor: localisation of drift (per-layer comparison with PyTorch) and the search for the
fastest variant within a drift budget.  A network with one planted fault (one convolution scaled so
that only it overflows FP16, its BatchNorm compensating so FP32 computes the same function) is the
ground truth: the doctor must point at that layer, and the search must keep it in FP32."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from modnet_edge.exporters.module_scopes import module_of_scope, tflite_pattern
from modnet_edge.model.parts import module_names

PLANTED = "hr_branch.conv_hr2x.1.layers.0"  # a convolution followed by IBNorm (not folded into anything)
SHAPE = (128, 128)


def _planted_checkpoint(path: Path, scale: float = 3e4) -> Path:
    """The starter weights (healthy in FP16) with the PLANTED convolution computing ``scale`` times its
    output (overflowing FP16's 65504) and its BatchNorm half undoing it; the InstanceNorm half is
    scale-free."""
    from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint
    from modnet_edge.model.weights import resolve_checkpoint

    net = build_from_checkpoint(resolve_checkpoint(None))
    conv = net.get_submodule(PLANTED)
    bn = net.get_submodule(PLANTED.rsplit(".", 1)[0] + ".1.bnorm")
    with torch.no_grad():
        conv.weight.mul_(scale)
        conv.bias.mul_(scale)
        old = torch.sqrt(bn.running_var + bn.eps)
        bn.running_mean.mul_(scale)
        bn.running_var.mul_(scale * scale)
        bn.weight.mul_(torch.sqrt(bn.running_var + bn.eps) / (scale * old))
    save_checkpoint(path, net)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return _planted_checkpoint(tmp_path_factory.mktemp("planted") / "planted.pt")


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> Path:
    """Two sample portraits at 128 px (the artifacts are exported at that static shape)."""
    from PIL import Image

    from modnet_edge.core.images import list_images, unseen_images

    folder = tmp_path_factory.mktemp("held-out")
    for f in list_images(unseen_images())[:2]:
        Image.open(f).convert("RGB").resize(SHAPE).save(folder / f"{f.stem}.png")
    return folder


def test_planted_fault_keeps_fp32_unchanged(planted: Path) -> None:
    """The plant changes nothing in FP32 (so any FP16 drift at that layer is the format's)."""
    from modnet_edge.model.weights import load_network

    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        a = load_network(None)(x)
        b = load_network(planted)(x)
    assert float((a - b).abs().max()) < 1e-4


def test_module_scopes_resolve_exporter_names() -> None:
    names = module_names()
    assert module_of_scope("/net/backbone/features.3/conv/conv.0/Conv", names) == "backbone.model.features.3.conv.0"
    assert module_of_scope("/net/hr_branch/conv_hr2x/conv_hr2x.3/layers/layers.1/Concat", names) == \
        "hr_branch.conv_hr2x.3.layers.1"
    assert module_of_scope("/net/f_branch/Sigmoid", names) == "f_branch"
    assert module_of_scope("/Cast", names) is None
    tfl = ("x._TFLiteWrapper/x.MODNet_net/x.MobileNetV2Backbone_backbone/x.InvertedResidual_13/y.Sequential_conv/"
           "z.Conv2d_0;stuff")
    assert re.search(tflite_pattern("backbone.model.features.13"), tfl)
    assert not re.search(tflite_pattern("backbone.model.features.1"), tfl)


def test_doctor_points_at_the_planted_layer(planted: Path, small_images: Path, tmp_path: Path) -> None:
    from modnet_edge import export
    from modnet_edge.parity_tests.doctor import diagnose

    art = export(planted, "onnx", "fp16", tmp_path / "p.fp16.onnx", static_shape=SHAPE)
    d = diagnose(art, small_images, limit=1, progress=False)
    assert d.first_over is not None and d.first_over.module == PLANTED, d.table()
    assert d.top_added(1)[0].module == PLANTED
    assert math.isinf(d.first_over.rel_l2)
    before = d.layers[: d.layers.index(d.first_over)]
    assert before and all(l.rel_l2 < d.threshold for l in before)  # healthy until the plant
    # the same network in FP32: every mapped layer agrees (the name map is right, not just the verdict)
    ref = diagnose(export(planted, "onnx", "fp32", tmp_path / "p.fp32.onnx", static_shape=SHAPE), small_images,
                   limit=1, progress=False)
    assert ref.first_over is None and len(ref.layers) > 100
    assert max(l.rel_l2 for l in ref.layers) < 1e-3
    out = json.loads(d.write_json(tmp_path / "d.json").read_text())
    assert out["first_over"] == PLANTED and len(out["layers"]) == len(d.layers)


def test_search_keeps_the_planted_block_and_meets_the_budget(planted: Path, small_images: Path,
                                                            tmp_path: Path, capsys) -> None:
    """The chosen artifact is re-measured here, independently of the search's own verdict."""
    from modnet_edge.precision_search import search_precision
    from modnet_edge.parity_tests.parity import budget_for, run_parity
    from modnet_edge.runtimes.loader import load

    out = tmp_path / "best.fp16.onnx"
    result = search_precision(planted, "onnx", "fp16", out, images=small_images, static_shape=SHAPE, limit=2,
                              progress=False)
    assert result.chosen is not None, result.summary()
    assert "hr/2x" in result.chosen.kept
    assert result.ranking[0][0] == "hr/2x" and result.ranking[0][1] > 1e-3  # the overflow ranks first
    assert not next(c for c in result.candidates if not c.kept).passed  # plain FP16 overflows
    told = [line for line in capsys.readouterr().err.splitlines() if line.startswith("search onnx fp16: candidate")]
    assert len(told) == len(result.candidates) and all("MSE" in line and "budget" in line for line in told)
    report = run_parity([out], images=small_images, progress=False)
    budget = budget_for("fp16")
    assert report.results[0].drift.mse <= budget.mse, report.table()
    with load(out) as p:
        kept = p.metadata.extra["fp32_nodes"]["patterns"]
    assert "module:hr_branch.conv_hr2x" in kept
    record = json.loads(Path(f"{out}.search.json").read_text())
    assert record["chosen"]["kept"] == result.chosen.kept


def test_search_refuses_ranking_on_the_held_out_images(small_images: Path, tmp_path: Path) -> None:
    from modnet_edge.precision_search import search_precision
    from modnet_edge.core.errors import ConfigError

    with pytest.raises(ConfigError, match="overlap"):
        search_precision(None, "onnx", "fp16", tmp_path / "x.onnx", images=small_images,
                         ranking_images=small_images)
    with pytest.raises(ConfigError, match="calibration and held-out images overlap"):
        search_precision(None, "onnx", "int8", tmp_path / "x.onnx", images=small_images, calibration=str(small_images))
    with pytest.raises(ConfigError, match="covers"):
        search_precision(None, "tflite", "fp16", tmp_path / "x.tflite")


def test_cli_doctor_and_budget_errors(planted: Path, small_images: Path, tmp_path: Path, capsys) -> None:
    from modnet_edge.cli import main
    from modnet_edge import export

    art = export(planted, "onnx", "fp16", tmp_path / "c.fp16.onnx", static_shape=SHAPE)
    assert main(["doctor", str(art), "--images", str(small_images), "--limit", "1", "--rows", "5"]) == 0
    out = capsys.readouterr().out
    assert f"first layer over rel-L2 1e-02: {PLANTED}" in out
    assert main(["export", "--format", "onnx", "--precision", "fp16", "--budget", "lots",
                 "-o", str(tmp_path / "y.onnx")]) == 2
    assert "budget MSE must be a number, got 'lots'" in capsys.readouterr().err


def test_coreml_fp32_islands_rescue_the_planted_overflow(planted: Path, small_images: Path, tmp_path: Path) -> None:
    """Core ML FP16 overflows at the plant; keeping that block in FP32 (ops chosen by the module they came
    from) meets the FP16 budget in the reference execution, which honours each op's declared type."""
    pytest.importorskip("coremltools")
    from modnet_edge import export
    from modnet_edge.parity_tests.parity import run_parity

    plain = export(planted, "coreml", "fp16", tmp_path / "p.fp16.mlpackage", static_shape=SHAPE)
    kept = export(planted, "coreml", "fp16", tmp_path / "k.fp16.mlpackage", static_shape=SHAPE,
                  keep_float=["module:hr_branch.conv_hr2x"])
    report = run_parity([plain, kept], images=small_images, runtime="reference", progress=False)
    bad, good = report.results
    assert not bad.passed and good.passed, report.table()
    assert good.kept == ["module:hr_branch.conv_hr2x"]


def _random_bn_checkpoint(path: Path) -> Path:
    """The official MODNet architecture with seeded random weights and random BatchNorm statistics (the
    network of the precision-doctor issue, whose FP16 export drifts far past its budget)."""
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    net = build_from_checkpoint(random_checkpoint(3))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.5)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) * 2 + 0.2)
    save_checkpoint(path, net)
    return path


def test_official_architecture_random_bn_fp16_drift_starts_in_the_backbone(small_images: Path, tmp_path: Path) -> None:
    """The doctor places the start of FP16 drift in the backbone, and FP32 islands there (with the FP32
    input) bring the matte within the FP16 budget, as measured at 512 px in the closing note."""
    from modnet_edge import export
    from modnet_edge.parity_tests.doctor import diagnose
    from modnet_edge.parity_tests.parity import run_parity

    ckpt = _random_bn_checkpoint(tmp_path / "random-bn.pt")
    plain = export(ckpt, "onnx", "fp16", tmp_path / "plain.fp16.onnx", static_shape=SHAPE)
    d = diagnose(plain, small_images, limit=1, progress=False)
    assert d.first_over is not None and d.first_over.module.startswith("backbone."), d.table()
    assert d.matte.mse > 1e-6
    kept = export(ckpt, "onnx", "fp16", tmp_path / "kept.fp16.onnx", static_shape=SHAPE, keep_io_types=True,
                  keep_float=["module:backbone"])
    report = run_parity([plain, kept], images=small_images, progress=False)
    assert not report.results[0].passed and report.results[1].passed, report.table()


class _Scripted:
    """A search whose candidates pass from ``answer`` kept groups on (None: none passes), without exports:
    the order of trials is what is tested."""

    def __init__(self, answer: int | None, groups: int = 16) -> None:
        from modnet_edge.precision_search import _Search

        self.search = _Search.__new__(_Search)
        self.search.fmt, self.search.precision = "onnx", "int8"
        self.search.tried, self.search.deadline, self.search.note = {}, None, ""
        self.search.order = []
        self.calls: list[int] = []
        ranking = [(f"g{i}", 1.0 / (i + 1)) for i in range(groups)]

        def trial(k: int) -> object:
            self.calls.append(k)
            passed = answer is not None and k >= answer
            self.search.tried[k] = type("C", (), {"passed": passed, "kept": [g for g, _ in ranking[:k]]})()
            return self.search.tried[k]

        self.search.trial = trial
        self.ranking = ranking

    def run(self) -> list[int]:
        self.search.bisect(lambda: self.ranking)
        return self.calls


@pytest.mark.parametrize("answer", [1, 2, 3, 5, 8, 9, 16])
def test_search_finds_the_fewest_kept_groups_from_below(answer: int) -> None:
    calls = _Scripted(answer).run()
    passing = [k for k in calls if k >= answer]
    assert min(passing) == answer and answer - 1 in calls  # the smallest passing k, its neighbour failing
    assert len(calls) <= 2 * math.ceil(math.log2(answer)) + 2  # 0, 1, 2, 4 ... then bisection inside
    assert 16 not in calls or answer > 8  # the float network is exported only when nothing less passes


def test_search_stops_when_not_even_the_float_network_passes() -> None:
    calls = _Scripted(None).run()
    assert calls == [0, 1, 2, 4, 8, 16]


def test_search_prefers_fewest_untimed_where_speed_here_is_a_proxy(tmp_path: Path) -> None:
    from modnet_edge.precision_search import _Search

    search = _Search.__new__(_Search)
    search.fmt, search.tried, search.why_untimed = "tensorrt-onnx", {0: None}, ""
    search.work = tmp_path
    assert search.timed_here() is False and "proxy" in search.why_untimed
