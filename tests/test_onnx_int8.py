"""ONNX INT8 (static QDQ) export: calibration through the shared source, cache reuse, keep-float, errors.

Mechanics only, on the seeded random network at 64x64 (drift against budgets is measured with a
trained network in parity_tests/)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import modnet_edge
from modnet_edge.calibration import CalibrationSource
from modnet_edge.core import PreprocessSpec, read_manifest
from modnet_edge.core.errors import ConfigError, DataError
from modnet_edge.exporters.qdq import graph_sha256, resolve_keep_float
from modnet_edge.model.checkpoint import random_checkpoint

SHAPE = (64, 64)


@pytest.fixture(scope="module")
def ckpt():
    return random_checkpoint()


@pytest.fixture(scope="module")
def calib() -> CalibrationSource:
    rng = np.random.default_rng(3)
    return CalibrationSource.from_images([rng.integers(0, 255, (72, 90, 3), dtype=np.uint8) for _ in range(4)])


@pytest.fixture(scope="module")
def int8_model(ckpt, calib, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("int8")
    path = modnet_edge.export(ckpt, "onnx", "int8", root / "m.int8.onnx", calibration=calib, static_shape=SHAPE,
                              calibration_cache=root / "cache")
    return path, root / "cache"


def _ops(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_int8_is_static_qdq_with_per_channel_weights(int8_model: tuple[Path, Path]) -> None:
    path, _ = int8_model
    model = onnx.load(str(path))
    ops = _ops(path)
    assert ops.get("QuantizeLinear", 0) > 20 and ops.get("DequantizeLinear", 0) > ops["QuantizeLinear"]
    inits = {i.name: i for i in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    weight_dq = next(n for n in model.graph.node if n.output[0] == conv.input[1])
    assert weight_dq.op_type == "DequantizeLinear"
    scale = onnx.numpy_helper.to_array(inits[weight_dq.input[1]])
    assert scale.shape == (32,), "one weight scale per output channel of the first convolution"
    assert onnx.numpy_helper.to_array(inits[weight_dq.input[0]]).dtype == np.int8
    meta = read_manifest(path)
    assert meta.precision == "int8" and meta.preprocessing.fixed_size == SHAPE
    q = meta.extra["quantization"]
    assert q["method"] == "minmax" and "per-channel" in q["weights"] and q["activations"].startswith("uint8")
    from modnet_edge.core.cpu_features import cpu_features

    vnni = bool({"avx512_vnni", "avx_vnni", "dotprod"} & set(cpu_features()))
    assert q["reduce_range"] is (not vnni) and "this machine" in q["reduce_range_reason"]
    assert q["weights"].startswith("int8" if vnni else "int7")
    cal = meta.extra["calibration"]
    assert cal["samples"] == 4 and cal["cache"] == "miss" and len(cal["data_sha256"]) == 64
    with modnet_edge.load(path) as pred:
        alpha = pred.predict(np.full((70, 50, 3), 127, np.uint8))
        assert alpha.shape == (70, 50) and np.isfinite(alpha).all()
        assert pred.backend.inputs[0].dtype == np.float32, "QDQ models keep float input and output"


def test_second_export_reuses_the_calibration_cache(ckpt, calib, int8_model, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first, cache = int8_model
    import importlib

    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")  # the module, not the function

    def no_calibration(*args, **kwargs):
        raise AssertionError("a cache hit must not run the calibrator")

    monkeypatch.setattr(ort_quantize, "create_calibrator", no_calibration)
    again = modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "again.onnx", calibration=calib,
                               static_shape=SHAPE, calibration_cache=cache)
    assert read_manifest(again).extra["calibration"]["cache"] == "hit"
    assert graph_sha256(onnx.load(str(again))) == graph_sha256(onnx.load(str(first)))
    assert [p.name for p in cache.iterdir() if p.suffix == ".json" and not p.name.endswith(".key.json")]
    with pytest.raises(AssertionError, match="must not run the calibrator"):  # another method misses the cache
        modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "e.onnx", calibration=calib, static_shape=SHAPE,
                           calibration_method="entropy", calibration_cache=cache)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods(ckpt, calib, tmp_path: Path, method: str) -> None:
    path = modnet_edge.export(ckpt, "onnx", "int8", tmp_path / f"{method}.onnx", calibration=calib,
                              static_shape=SHAPE, calibration_method=method, calibration_cache=False)
    meta = read_manifest(path)
    assert meta.extra["quantization"]["method"] == method and meta.extra["calibration"]["cache"] == "disabled"
    with modnet_edge.open_backend(path) as backend:
        out = backend.run({"input": np.zeros((1, 3, *SHAPE), np.float32)})["matte"]
        assert out.shape == (1, 1, *SHAPE) and np.isfinite(out).all()


def test_keep_float_presets_and_regexes(ckpt, calib, int8_model, tmp_path: Path) -> None:
    full, cache = int8_model
    float_model = onnx.load(str(modnet_edge.export(ckpt, "onnx", "fp32", tmp_path / "f.onnx", static_shape=SHAPE)))
    names = resolve_keep_float(float_model, ["image-concat"])
    concat_inputs = {n.name: list(n.input) for n in float_model.graph.node if n.op_type == "Concat"}
    assert {"/net/hr_branch/Concat", "/net/hr_branch/Concat_2", "/net/f_branch/Concat_1"} <= set(names)
    assert all(n in concat_inputs or "Conv" in n for n in names)
    assert all("/f_branch/conv_f/" in n for n in resolve_keep_float(float_model, ["fusion-head"]))
    norms = resolve_keep_float(float_model, ["instance-norm"])
    assert len(norms) == 16 and all(n.endswith("InstanceNormalization") for n in norms)
    parts = {p: set(resolve_keep_float(float_model, [p])) for p in ("backbone", "lr-branch", "hr-branch",
                                                                    "fusion-branch")}
    assert all(parts.values()) and sum(map(len, parts.values())) == len(set().union(*parts.values()))
    # presets name modules (model.parts), resolved through the scopes: exactly the nodes whose names carry
    # those modules' scopes
    scopes = {"fusion-head": "/f_branch/conv_f/", "instance-norm": "/inorm/", "backbone": "/backbone/",
              "lr-branch": "/lr_branch/", "hr-branch": "/hr_branch/", "fusion-branch": "/f_branch/"}
    for preset, scope in scopes.items():
        assert set(resolve_keep_float(float_model, [preset])) == {n.name for n in float_model.graph.node
                                                                  if scope in n.name}, preset
    mixed = modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "mixed.onnx", calibration=calib, static_shape=SHAPE,
                               keep_float=["image-concat", "fusion-head"], calibration_cache=cache)
    assert _ops(mixed)["QuantizeLinear"] < _ops(full)["QuantizeLinear"]
    assert read_manifest(mixed).extra["quantization"]["keep_float"] == ["image-concat", "fusion-head"]
    assert read_manifest(mixed).extra["calibration"]["cache"] == "hit", "keep-float reuses the same ranges"
    with pytest.raises(ConfigError, match="matches no node"):
        resolve_keep_float(float_model, ["no_such_layer_anywhere"])
    with pytest.raises(ConfigError, match="valid regular expression"):
        resolve_keep_float(float_model, ["("])


def test_dynamic_shape_int8_calibrates_at_the_reference_resize(ckpt, tmp_path: Path) -> None:
    small = dataclasses.replace(ckpt, preprocessing=PreprocessSpec(ref_size=64))
    images = [np.random.default_rng(i).integers(0, 255, (60 + 8 * i, 90, 3), dtype=np.uint8) for i in range(3)]
    path = modnet_edge.export(small, "onnx", "int8", tmp_path / "dyn.onnx", calibration=images,
                              calibration_cache=False)
    with modnet_edge.load(path) as pred:
        assert not isinstance(pred.backend.inputs[0].shape[2], int)
        assert pred.predict(images[0]).shape == images[0].shape[:2]
    shapes = json.loads((tmp_path / "dyn.onnx.manifest.json").read_text())["input_shape"]
    assert shapes[2:] == ["height", "width"]


def test_bad_calibration_requests(ckpt, calib, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs calibration data"):
        modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "a.onnx", static_shape=SHAPE)
    folder = tmp_path / "few"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 64)).save(folder / "one.png")
    with pytest.raises(DataError, match="asked for 5 calibration samples"):
        modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "b.onnx", calibration=folder, calibration_size=5,
                           static_shape=SHAPE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "c.onnx", calibration=tmp_path / "empty",
                           static_shape=SHAPE)
    with pytest.raises(ConfigError, match="calibration_method=.kl.: choose from"):
        modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "d.onnx", calibration=calib, calibration_method="kl")
    arrays = CalibrationSource.from_arrays([np.zeros((1, 3, 32, 32), np.float32)])
    with pytest.raises(DataError, match="model takes"):
        modnet_edge.export(ckpt, "onnx", "int8", tmp_path / "e.onnx", calibration=arrays, static_shape=SHAPE,
                           calibration_cache=False)
    assert not list(tmp_path.glob("*.onnx")), "a failed export leaves no artifact behind"


def test_cli_int8_export(int8_model: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    from modnet_edge.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (70, 60, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "cli.int8.onnx"
    code = main(["export", "--format", "onnx", "--precision", "int8", "--static-shape", "64x64", "-o", str(out),
                 "--calibration", str(folder), "--calibration-size", "2", "--calibration-seed", "1",
                 "--calibration-cache", str(int8_model[1]), "--no-progress"])
    assert code == 0 and out.is_file()
    cal = read_manifest(out).extra["calibration"]
    assert cal["kind"] == "folder" and cal["samples"] == 2 and cal["seed"] == 1
    assert main(["export", "--format", "onnx", "--precision", "int8", "-o", str(tmp_path / "x.onnx"),
                 "--calibration", str(tmp_path / "nothing-here")]) == 2
    assert "calibration folder does not exist" in capsys.readouterr().err


def test_reduce_range_follows_the_target_cpu() -> None:
    """7-bit weights only where ONNX Runtime's u8s8 kernels would saturate (x86 without VNNI)."""
    from modnet_edge.core.errors import ConfigError
    from modnet_edge.exporters.onnx_int8 import resolve_reduce_range

    assert resolve_reduce_range(None, "x86-avx2")[1] is True
    assert resolve_reduce_range(None, "x86-vnni")[1] is False
    assert resolve_reduce_range(None, "arm64")[1] is False
    assert resolve_reduce_range(True, "x86-vnni") == ("x86-vnni", True, "set explicitly")
    with pytest.raises(ConfigError, match="target_cpu must be one of"):
        resolve_reduce_range(None, "sparc")
