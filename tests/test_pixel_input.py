"""The 8-bit image as the model's input: the normalisation folded into the first convolution exactly
(border included), the exact 'area' resize of 8-bit pixels, the spec and metadata that say so, and the
predictor, exporters, edge runner and ``info`` that act on it."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import modnet_edge
from modnet_edge.calibration import CalibrationSource
from modnet_edge.core import PreprocessSpec
from modnet_edge.core.errors import ConfigError, MetadataError
from modnet_edge.core.preprocess import normalise, preprocess, resize_pixels
from modnet_edge.model.checkpoint import build_from_checkpoint
from modnet_edge.model.pixel_input import PixelInputMODNet
from modnet_edge.model.weights import resolve_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _bordered(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like RGB image whose border is far from mid-grey (white top and bottom, black left and
    right): a convolution that pads with the wrong value shows on every border pixel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (127 + 100 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 5.0)[..., None]).repeat(3, axis=2)
    im = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    im[:3], im[-3:] = 255, 255
    im[:, :3], im[:, -3:] = 0, 0
    return im


def _naive_fold(net: torch.nn.Module, spec: PreprocessSpec) -> torch.nn.Module:
    """The fold that is *not* exact: stem weights scaled, the offset in a bias, zero padding in pixel
    space (so padded taps read pixel 0, a normalised -1, instead of a normalised 0)."""
    naive = copy.deepcopy(net)
    conv = naive.backbone.model.features[0][0]
    a = torch.tensor([1 / (255 * s) for s in spec.std]).view(1, 3, 1, 1)
    k = torch.tensor([255 * m for m in spec.mean]).view(1, 3, 1, 1)
    folded = torch.nn.Conv2d(3, conv.out_channels, 3, conv.stride, conv.padding, bias=True)
    with torch.no_grad():
        folded.weight.copy_(conv.weight * a)
        folded.bias.copy_(-(conv.weight * a * k).sum(dim=(1, 2, 3)))
    naive.backbone.model.features[0][0] = folded
    return naive


@pytest.fixture(scope="module")
def starter():
    return resolve_checkpoint("starter")


# ---------------------------------------------------------------------------------------------- fold
def test_folded_input_is_the_network_on_the_normalised_image_border_included(starter) -> None:
    net = build_from_checkpoint(starter)
    spec = starter.preprocessing
    pixels = torch.from_numpy(_bordered(96, 128).transpose(2, 0, 1)[None].astype(np.float32))
    x = (pixels / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        reference = net(x)
        folded = PixelInputMODNet(net, spec.mean, spec.std).eval()(pixels)
        naive = _naive_fold(net, spec)._run(x, with_heads=False, stem=pixels)[2]
    assert float(torch.mean((folded - reference) ** 2)) < 1e-12
    # the naive fold differs on the border: far above the FP32 budget there, and in the matte as a whole
    border = torch.zeros_like(reference, dtype=torch.bool)
    border[..., :4, :], border[..., -4:, :], border[..., :, :4], border[..., :, -4:] = True, True, True, True
    assert float(torch.mean((naive - reference)[border] ** 2)) > 1e-5
    assert float(torch.mean((naive - reference) ** 2)) > 1e-6


def test_fold_keeps_module_names_and_the_stem_mask_weights(starter) -> None:
    net = build_from_checkpoint(starter)
    folded = PixelInputMODNet(net, (0.5,) * 3, (0.5,) * 3)
    names = {n for n, _ in net.named_modules()}
    assert names <= {n for n, _ in folded.named_modules()}  # selectors name the same parts
    stem = folded.backbone.model.features[0][0]
    w = net.backbone.model.features[0][0].weight.detach().double()
    assert stem.in_channels == 4
    torch.testing.assert_close(stem.weight[:, :3].double(), w / 127.5, rtol=1e-6, atol=1e-9)
    # [p - 128, 127 * inside]: the mask weight carries sum_c w_c * a * (128 - 127.5) / 127, far below a pixel
    # weight, so it does not widen the stem's per-channel weight grid
    torch.testing.assert_close(stem.weight[:, 3:].double(), w.sum(dim=1, keepdim=True) / (255 * 127), rtol=1e-5,
                               atol=1e-12)
    assert float(stem.weight[:, 3:].detach().abs().max()) < 0.05 * float(stem.weight[:, :3].detach().abs().max())


# ------------------------------------------------------------------------------------- preprocessing
def _exact_area(im: np.ndarray, height: int, width: int) -> np.ndarray:
    """Brute-force reference: each window's mean as a Fraction, rounded half up."""
    h, w = im.shape[:2]
    out = np.zeros((height, width, *im.shape[2:]), np.uint8)
    for i in range(height):
        r0, r1 = (i * h) // height, -((-(i + 1) * h) // height)
        for j in range(width):
            c0, c1 = (j * w) // width, -((-(j + 1) * w) // width)
            window = im[r0:r1, c0:c1].reshape(-1, *im.shape[2:]).astype(np.int64)
            for idx in np.ndindex(*im.shape[2:]):
                mean = Fraction(int(window[(slice(None), *idx)].sum()), window.shape[0])
                out[(i, j, *idx)] = int(mean + Fraction(1, 2))  # floor(mean + 1/2): half up
    return out


@pytest.mark.parametrize("shape,size", [((37, 53, 3), (32, 32)), ((20, 9), (32, 64)), ((64, 64, 3), (32, 32))])
def test_resize_pixels_is_the_exact_area_mean_rounded_half_up(shape, size) -> None:
    im = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(resize_pixels(im, *size), _exact_area(im, *size))


def test_resize_pixels_rounds_ties_up() -> None:
    im = np.array([[1, 2], [3, 4]], np.uint8)  # one window, mean 2.5
    assert resize_pixels(im, 1, 1)[0, 0] == 3
    assert resize_pixels(np.array([[0, 1]], np.uint8), 1, 1)[0, 0] == 1  # 0.5 -> 1


def test_uint8_spec_feeds_pixels_and_normalising_them_is_the_float_spec_bit_for_bit() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    for layout in ("NCHW", "NHWC"):
        spec = PreprocessSpec(fixed_size=(64, 96), layout=layout, input_dtype="uint8")
        x = preprocess(rgb, spec)
        assert x.dtype == np.uint8 and x.shape == ((1, 3, 64, 96) if layout == "NCHW" else (1, 64, 96, 3))
        np.testing.assert_array_equal(normalise(x, spec), preprocess(rgb, dataclasses.replace(spec, input_dtype="float32")))


def test_spec_records_and_checks_the_input_kind() -> None:
    spec = PreprocessSpec(input_dtype="uint8")
    assert spec.to_dict()["input_dtype"] == "uint8"
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    old = PreprocessSpec().to_dict()
    old.pop("input_dtype")  # metadata written before the field existed: a float input
    assert PreprocessSpec.from_dict(old).input_dtype == "float32"
    with pytest.raises(ConfigError, match="input_dtype"):
        PreprocessSpec(input_dtype="int16")
    with pytest.raises(MetadataError, match="input_dtype"):
        PreprocessSpec.from_dict({**old, "input_dtype": 8})


# -------------------------------------------------------------------------------------------- exports
@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two bordered photos of sizes the 64x64 artifacts must resize (so the rounding rule is exercised)."""
    root = tmp_path_factory.mktemp("photos")
    files = []
    for i, (h, w) in enumerate([(100, 75), (70, 130)]):
        Image.fromarray(_bordered(h, w, seed=i)).save(root / f"bordered{i}.png")
        files.append(root / f"bordered{i}.png")
    return files


@pytest.fixture(scope="module")
def calib() -> CalibrationSource:
    return CalibrationSource.from_images([_bordered(80, 80, seed=s) for s in range(2)])


def test_fp32_onnx_reading_8bit_pixels_matches_pytorch_within_the_fp32_budget(starter, photos, tmp_path: Path) -> None:
    paths = [modnet_edge.export(starter, "onnx", "fp32", tmp_path / "s.fp32.onnx", static_shape=(64, 64),
                                input_type="uint8"),
             modnet_edge.export(starter, "onnx", "fp32", tmp_path / "d.fp32.onnx", input_type="uint8")]
    for path in paths:
        model = onnx.load(str(path))
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        meta = modnet_edge.load(path).metadata
        assert meta.preprocessing.input_dtype == "uint8" and meta.extra["input"]["dtype"] == "uint8"
    report = modnet_edge.parity(paths, images=photos, progress=False)
    # the reference network reads the same rounded pixels, normalised: drift is the model's only
    for r in report.results:
        assert r.drift.mse <= 1e-9 and r.passed, (r.artifact, r.drift)


def test_predictor_feeds_uint8_pixels_to_an_8bit_input_model(starter, tmp_path: Path) -> None:
    path = modnet_edge.export(starter, "onnx", "fp32", tmp_path / "m.fp32.onnx", static_shape=(64, 64),
                              input_type="uint8")
    rgb = _bordered(100, 75)
    with modnet_edge.load(path) as predictor:
        x = predictor.prepare(rgb)
        assert x.dtype == np.uint8
        np.testing.assert_array_equal(x[0].transpose(1, 2, 0), resize_pixels(rgb, 64, 64))
        alpha = predictor.predict(rgb)
    assert alpha.shape == (100, 75) and np.isfinite(alpha).all()


def _stem_q(model: onnx.ModelProto) -> tuple[float, int, int]:
    """(scale, zero point, zero point's ONNX type) of the Q/DQ pair the first Conv reads."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and "/backbone/" in n.name)
    dq = producers[conv.input[0]]
    assert dq.op_type == "DequantizeLinear"
    zero = inits[dq.input[2]]
    return float(numpy_helper.to_array(inits[dq.input[1]])), int(numpy_helper.to_array(zero)), zero.data_type


@pytest.mark.parametrize("activation_type,zero,zero_type", [("uint8", 128, onnx.TensorProto.UINT8),
                                                           ("int8", 0, onnx.TensorProto.INT8)])
def test_onnx_int8_reads_8bit_pixels_with_an_exact_stem(starter, calib, tmp_path: Path, activation_type: str,
                                                        zero: int, zero_type: int) -> None:
    path = modnet_edge.export(starter, "onnx", "int8", tmp_path / "m.int8.onnx", static_shape=(64, 64),
                              input_type="uint8", activation_type=activation_type, calibration=calib,
                              calibration_cache="off")
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    # [p - 128, 127 * inside] at scale 1: every pixel (and the mask) is its own level; as uint8 (zero point
    # 128) the stem's bytes are the pixels themselves
    assert _stem_q(model) == (1.0, zero, zero_type)
    with modnet_edge.load(path) as predictor:
        assert predictor.metadata.preprocessing.input_dtype == "uint8"
        alpha = predictor.predict(_bordered(64, 64))
    assert np.isfinite(alpha).all()


def test_image_concat_preset_does_not_take_the_8bit_stem(starter, calib, tmp_path: Path) -> None:
    from modnet_edge.exporters.onnx_graph import float_graph
    from modnet_edge.exporters.qdq import pixel_stem, resolve_keep_float

    model = float_graph(starter, static_shape=(64, 64), pixel_input=True)
    nodes = resolve_keep_float(model, ["image-concat"])
    stem_nodes, stem_tensor = pixel_stem(model)
    assert len([n for n in nodes if "Concat" in n]) == 3 and not set(nodes) & set(stem_nodes)
    float_model = float_graph(starter, static_shape=(64, 64))
    assert pixel_stem(float_model) is None
    assert len(resolve_keep_float(float_model, ["image-concat"])) == len(nodes)


def test_tensorrt_ready_int8_reads_uint8_through_a_cast(starter, calib, tmp_path: Path) -> None:
    from modnet_edge.exporters.tensorrt_onnx import check_tensorrt_ready

    path = modnet_edge.export(starter, "tensorrt-onnx", "int8", tmp_path / "m.int8.trt.onnx", static_shape=(64, 64),
                              input_type="uint8", keep_float=[], calibration=calib, calibration_cache="off")
    model = onnx.load(str(path))
    assert check_tensorrt_ready(model)["problems"] == []
    assert _stem_q(model) == (1.0, 0, onnx.TensorProto.INT8)  # TensorRT is symmetric: zero point 0


def test_input_type_applies_where_the_table_says(starter, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="input_type"):
        modnet_edge.export(starter, "onnx", "fp16", tmp_path / "m.fp16.onnx", input_type="uint8")
    with pytest.raises(ConfigError, match="input_type"):
        modnet_edge.export(starter, "tflite", "fp32", tmp_path / "m.fp32.tflite", input_type="uint8")
    with pytest.raises(ConfigError, match="choose from"):
        modnet_edge.export(starter, "onnx", "fp32", tmp_path / "m.fp32.onnx", input_type="int16")
    assert all(o.name != "input_type" for o in modnet_edge.FORMATS["tensorrt"].options)


def test_edge_runner_and_info_know_the_input_kind(starter, tmp_path: Path) -> None:
    path = modnet_edge.export(starter, "onnx", "fp32", tmp_path / "m.fp32.onnx", static_shape=(64, 64),
                              input_type="uint8")
    out = tmp_path / "bench.jsonl"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "edge_runner.py"), str(path), "--iterations", "2",
                          "--warmup", "1", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    row = json.loads(out.read_text().splitlines()[0])
    assert row["config"]["input_dtype"] == "uint8" and row["config"]["input_kind"].startswith("8-bit image")
    assert "8-bit image" in run.stdout
    info = modnet_edge.info(str(path))
    assert info["inputs"][0]["dtype"] == "uint8" and info["metadata"]["preprocessing"]["input_dtype"] == "uint8"
