"""Quantisation-aware fine-tuning: the simulated quantisation (rounding, gradient, placement as the
exporters place it), a short self-distillation run with exact resume, and the top-floor record of the
drift before and after on exported artifacts.  Tiny shapes and a few steps: the mechanics, not the
figures (README has those, from longer runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import modnet_edge
from modnet_edge.calibration import CalibrationSource
from modnet_edge.core import PreprocessSpec
from modnet_edge.core.errors import ConfigError
from modnet_edge.model.checkpoint import build_from_checkpoint, read_checkpoint
from modnet_edge.model.weights import resolve_checkpoint
from modnet_edge.training.qat import QatRun, fine_tune, qat_config
from modnet_edge.training.quant_sim import (OP_PRESETS, PART_PRESETS, ActivationQuant, WeightQuant, fake_quant,
                                         prepare)

SHAPE = (64, 64)


def _images(n: int, seed: int = 0, size: tuple[int, int] = (80, 72)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    out = []
    for _ in range(n):
        blob = ((yy - rng.uniform(20, 50)) ** 2 + (xx - rng.uniform(20, 50)) ** 2 < rng.uniform(200, 500))
        im = rng.integers(0, 80, (*size, 3)) + 150 * blob[..., None]
        out.append(np.clip(im, 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def starter():
    return resolve_checkpoint("starter")


# ------------------------------------------------------------------------------------ rounding, grads
def test_fake_quant_rounds_to_the_grid_and_passes_the_gradient_inside_it_only() -> None:
    x = torch.tensor([-3.0, -0.26, 0.24, 0.76, 9.0], requires_grad=True)
    y = fake_quant(x, torch.tensor(0.5), torch.tensor(2.0), 0, 7)  # grid -1.0 .. 2.5 in steps of 0.5
    assert y.tolist() == [-1.0, -0.5, 0.0, 1.0, 2.5]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_weights_round_per_output_channel_symmetrically() -> None:
    w = torch.tensor([[1.0, -0.3, 0.01], [100.0, 50.2, -0.4]]).view(2, 3, 1, 1)
    q = WeightQuant(127)(w)
    for c in range(2):
        scale = w[c].abs().max() / 127
        torch.testing.assert_close(q[c], torch.round(w[c] / scale) * scale)
    assert len(torch.unique(WeightQuant(64)(torch.linspace(-1, 1, 1000).view(1, -1, 1, 1)))) == 129  # 7-bit


def test_activation_grid_is_the_exporters_compute_scale_zp() -> None:
    from onnxruntime.quantization.quant_utils import compute_scale_zp

    from modnet_edge.training.quant_sim import SCHEMES

    for scheme, qtype in (("onnx", np.uint8), ("tflite", np.int8), ("tensorrt-onnx", np.int8)):
        s = SCHEMES[scheme]
        q = ActivationQuant(s)
        q.low.fill_(-0.73)
        q.high.fill_(5.1)
        scale, zero = q.grid()
        ort_zero, ort_scale = compute_scale_zp(np.array(-0.73, np.float32), np.array(5.1, np.float32),
                                               qtype(s.qmin), qtype(s.qmax), symmetric=s.symmetric)
        assert abs(float(scale) - float(ort_scale)) < 1e-7 * float(ort_scale) and int(zero) == int(ort_zero)


# --------------------------------------------------------------------------------------- placement
def _quantised_producers(p) -> list[str]:
    """What each activation quantiser reads: 'module:<class>' or 'fn:<name>'."""
    modules = dict(p.model.named_modules())
    out = []
    for node in p.model.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], ActivationQuant):
            src = node.args[0]
            out.append(f"module:{type(modules[src.target]).__name__}" if src.op == "call_module"
                       else f"{src.op}:{getattr(src.target, '__name__', src.target)}")
    return out


def test_every_op_placement_follows_the_exported_graph(starter) -> None:
    p = prepare(build_from_checkpoint(starter), "onnx")
    producers = _quantised_producers(p)
    # the folded conv+BN+ReLU6 of MobileNetV2 is one tensor: never quantised between conv and BN or BN and ReLU6
    assert "module:ReLU6" in producers
    modules = dict(p.model.named_modules())
    for node in p.model.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], ActivationQuant):
            src = node.args[0]
            if src.op == "call_module" and isinstance(modules[src.target], torch.nn.Conv2d):
                assert not any(u.op == "call_module" and isinstance(modules.get(u.target), torch.nn.BatchNorm2d)
                               for u in src.users if u is not node)
    assert producers.count("placeholder:img") == 1  # the image, once, for every reader
    called = [modules[n.target] for n in p.model.graph.nodes if n.op == "call_module"]
    # every convolution and linear layer the matte runs, per channel; IBNorm's own BatchNorms per tensor
    assert sum(w.per_channel for w in p.weights) == sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in called)
    assert sum(not w.per_channel for w in p.weights) == 16 == sum(isinstance(m, torch.nn.InstanceNorm2d) for m in called)


def test_tensorrt_placement_quantises_convolution_inputs_only(starter) -> None:
    p = prepare(build_from_checkpoint(starter), "tensorrt-onnx", keep_float=["backbone"])
    modules = dict(p.model.named_modules())
    for node in p.model.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], ActivationQuant):
            assert all(u.op == "call_module" and isinstance(modules[u.target], torch.nn.Conv2d) for u in node.users)
    assert not any(n.startswith("backbone") for n, m in p.net.named_modules() if hasattr(m, "parametrizations"))


def test_keep_float_takes_the_exporters_names_and_refuses_node_patterns(starter) -> None:
    from modnet_edge.exporters.qdq import KEEP_FLOAT_PRESETS

    assert set(PART_PRESETS) | set(OP_PRESETS) == set(KEEP_FLOAT_PRESETS)  # one vocabulary with the exporters
    full = prepare(build_from_checkpoint(starter), "onnx")
    kept = prepare(build_from_checkpoint(starter), "onnx",
                   keep_float=["module:f_branch.conv_f", "instance-norm", "image-concat"])
    assert len(kept.weights) < len(full.weights) and len(kept.activations) < len(full.activations)
    with pytest.raises(ConfigError, match="node-name patterns"):
        prepare(build_from_checkpoint(starter), "onnx", keep_float=["/f_branch/.*Conv"])
    with pytest.raises(ConfigError, match="names no module"):
        prepare(build_from_checkpoint(starter), "onnx", keep_float=["module:f_branch.nothing"])


def test_simulation_quantises_the_tensors_onnx_runtime_does_on_its_grids(starter, tmp_path: Path) -> None:
    """Calibrated on the same images, the simulation rounds the very tensors the exported Q/DQ graph
    does, on the same grids: every activation scale and zero point of the one is in the other (a tensor
    quantised in one place only -- a BatchNorm's input in front of its folded convolution, a resize on
    a grid of its own -- shows as a grid the other lacks).  Their mattes are not compared: a quantised
    MODNet is chaotic, float rounding noise flips roundings that grow through the InstanceNorms
    (measured at 128x128: fp32 against fp64 arithmetic of the same simulation differ by 2.4e-4 MSE,
    simulation against ONNX Runtime by 3.0e-4, float against ONNX Runtime by 8.7e-4)."""
    from onnx import load, numpy_helper

    spec = PreprocessSpec().with_fixed_size(SHAPE)
    source = CalibrationSource.from_images(_images(4)).bind(spec)
    path = modnet_edge.export(starter, "onnx", "int8", tmp_path / "m.int8.onnx", static_shape=SHAPE, calibration=source,
                              calibration_cache="off", target_cpu="x86-vnni")
    sim = prepare(build_from_checkpoint(starter), "onnx")
    sim.calibrate(torch.from_numpy(x) for x in source.inputs())

    model = load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    exported = {(float(inits[n.input[1]]), int(inits[n.input[2]])) for n in model.graph.node
                if n.op_type == "QuantizeLinear" and n.input[0] not in inits}
    simulated = {(float(q.grid()[0]), int(q.grid()[1])) for q in sim.activations.values()}

    def within(a: set, b: set) -> list:
        return [(s, z) for s, z in a if not any(abs(s - t) <= 1e-4 * s and z == y for t, y in b)]

    assert len(exported) > 100
    assert within(exported, simulated) == [] and within(simulated, exported) == []


# ----------------------------------------------------------------------------------- fine-tuning run
def _config(**kw):
    return qat_config({"shape": SHAPE, "size": 64, "batch_size": 1, "steps": 4, "lr": 1e-4, "recalibrate_every": 2,
                       "save_every": 2, "log_every": 1, "progress": False, **kw})


def test_short_run_writes_a_float_checkpoint_logs_and_resumes_exactly(starter, tmp_path: Path) -> None:
    images = _images(2)
    straight = fine_tune(starter, images, tmp_path / "straight", _config())
    tuned = read_checkpoint(straight)
    assert tuned.provenance["qat"]["step"] == 4 and "weights" not in tuned.provenance
    before = build_from_checkpoint(starter).state_dict()
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict.items())  # it learned something
    assert all(torch.equal(before[k], v) for k, v in tuned.state_dict.items() if "running_" in k)  # BN frozen
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert kinds.count("drift") == 2 and "calibrate" in kinds and kinds[-1] == "end"
    assert (tmp_path / "straight" / "epochs.csv").read_text().count("\n") == 3  # header + two calibration periods

    half = fine_tune(starter, images, tmp_path / "split", _config(steps=2))
    assert read_checkpoint(half).provenance["qat"]["step"] == 2
    resumed = fine_tune(starter, images, tmp_path / "split", _config(), resume=True)
    a, b = read_checkpoint(straight).state_dict, read_checkpoint(resumed).state_dict
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_resume_refuses_another_scheme(starter, tmp_path: Path) -> None:
    fine_tune(starter, _images(1), tmp_path, _config(steps=2))
    with pytest.raises(ConfigError, match="scheme"):
        QatRun(starter, _images(1), tmp_path, _config(scheme="tflite"), resume=True)


def test_bad_config_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="size must be a multiple of 32"):
        qat_config(size=50)
    with pytest.raises(ConfigError, match="unknown config key"):
        qat_config({"stpes": 3})


def test_top_floor_records_int8_drift_before_and_after(starter, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, rgb in enumerate(_images(2, seed=5, size=(70, 90))):
        Image.fromarray(rgb).save(photos / f"p{i}.png")
    calib = CalibrationSource.from_images(_images(2))
    path = modnet_edge.qat("starter", tmp_path / "run", calibration=calib, images=photos, steps=2, size=64,
                           static_shape=SHAPE, target_cpu="x86-vnni", calibration_cache="off", progress=False)
    record = json.loads((tmp_path / "run" / "qat_summary.json").read_text())
    assert record["checkpoint"] == str(path) and record["config"]["weight_max"] == 127
    before, after = record["drift"]["before"], record["drift"]["after"]
    for row in (before["int8"], after["int8"], after["float_vs_original"], after["int8_vs_own_float"]):
        assert row["images"] == ["p0.png", "p1.png"] and np.isfinite(row["mse"])
    # both INT8 verdicts are against the network QAT started from, not the fine-tuned weights
    assert before["int8"]["reference"] == after["int8"]["reference"]
    drift = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "drift" and "before" in json.loads(line)]
    assert len(drift) == 1


def test_top_floor_refuses_calibration_images_as_drift_images(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    images = _images(2)
    for i, rgb in enumerate(images):
        Image.fromarray(rgb).save(photos / f"p{i}.png")
    with pytest.raises(ConfigError, match="calibration images too"):
        modnet_edge.qat("starter", tmp_path / "run", calibration=str(photos), images=photos, steps=1, size=64,
                        static_shape=SHAPE, progress=False)


@pytest.mark.parametrize("host, target, exact", [({"avx2"}, "x86-vnni", True), ({"avx2"}, "x86-avx2", False),
                                                 ({"avx2", "avx512_vnni"}, "x86-vnni", False),
                                                 ({"avx2", "avx512_vnni"}, None, False), ({"avx2"}, None, False)])
def test_int8_drift_is_measured_as_the_target_cpu_computes(monkeypatch, host, target, exact) -> None:
    """8-bit weights made for VNNI, judged on a CPU without it: ONNX Runtime's saturating u8s8 kernels are
    this host's arithmetic, not the target's, so the verdict runs the Q/DQ graph exactly instead."""
    import platform

    from modnet_edge.core import cpu_features
    from modnet_edge.quant_aware import _as_the_target_computes

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpu_features, "cpu_features", lambda: sorted(host))
    options, said = _as_the_target_computes("onnx", {"target_cpu": target} if target else {})
    assert (options == {"optimization": "none"}) is exact
    assert ("exact Q/DQ" in said) is exact and ("x86-avx2" in said) is exact
    assert _as_the_target_computes("tflite", {}) == ({}, "as exported, in this machine's runtime")


def test_levers_table_measures_each_row_and_keeps_what_it_measured(tmp_path: Path) -> None:
    """The INT8 levers tool: one export and one exact-Q/DQ parity run per row, written after every row."""
    from modnet_edge.parity_tests import int8_levers

    out = tmp_path / "levers.json"
    assert int8_levers.main(["--size", "64", "--calibration-size", "2", "--only", "baseline", "per-tensor",
                             "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["lever"].split(":")[0] for r in rows] == ["baseline", "per-tensor weights"]
    assert all(np.isfinite(r["mse"]) and r["mse"] > 0 and r["images"] for r in rows)
    assert rows[1]["options"]["per_channel"] is False and "per_channel" not in rows[0]["options"]
    mine = tmp_path / "mine.json"
    mine.write_text("a user's notes\n")
    assert int8_levers.main(["--size", "64", "--json", str(mine)]) == 2  # refused before any export
    assert mine.read_text() == "a user's notes\n"
