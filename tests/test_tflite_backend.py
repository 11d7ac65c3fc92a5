"""The LiteRT backend over .tflite models that modnet-edge did not make (NCHW, NHWC, int8 I/O, dynamic
shape), corrupt files, and TFLite export options refused before any conversion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the tflite extra (ai-edge-litert) is not installed")
litert_torch = pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
torch = pytest.importorskip("torch")

import modnet_edge  # noqa: E402
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError, FeedError, MetadataError  # noqa: E402
from modnet_edge.core.containers.tflite_file import embed_tflite_metadata, read_tflite_metadata  # noqa: E402
from modnet_edge.runtimes.litert_backend import LiteRTBackend  # noqa: E402
from modnet_edge.model.checkpoint import random_checkpoint  # noqa: E402


class _TinyMatte(torch.nn.Module):
    """A stand-in 'foreign' matting model: RGB in, sigmoid alpha out (NCHW, or NHWC with permutes)."""

    def __init__(self, nhwc: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)
        self.nhwc = nhwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            return torch.sigmoid(self.conv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        return torch.sigmoid(self.conv(x))


def _convert(module: torch.nn.Module, sample: torch.Tensor, path: Path, **kwargs) -> Path:
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    path.write_bytes(litert_torch.convert(module.eval(), (sample,), **kwargs).model_content())
    return path


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("foreign")
    models = {
        "nchw": _convert(_TinyMatte(), torch.zeros(1, 3, 64, 64), root / "nchw.tflite"),
        "nhwc": _convert(_TinyMatte(nhwc=True), torch.zeros(1, 64, 64, 3), root / "nhwc.tflite"),
    }
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(str(models["nchw"]), recipe.static_wi8_ai8())
    rng = np.random.default_rng(0)
    data = {"serving_default": [{"args_0": rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)} for _ in range(4)]}
    result = q.quantize(q.calibrate(data), enable_progress_report=False)
    models["int8"] = root / "int8.tflite"
    models["int8"].write_bytes(bytes(result.quantized_model))
    return models


def test_float_models_in_either_layout(foreign: dict[str, Path]) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    with modnet_edge.open_backend(foreign["nchw"], threads=1) as nchw, \
            modnet_edge.open_backend(foreign["nhwc"], xnnpack=False) as nhwc:
        assert nchw.inputs[0].layout == "NCHW" and nhwc.inputs[0].layout == "NHWC"
        assert nchw.inputs[0].shape == (1, 3, 64, 64) and nhwc.outputs[0].shape == (1, 64, 64, 1)
        assert nchw.embedded_metadata is None and nchw.describe()["interpreter"] == "ai-edge-litert"
        a = nchw.run({nchw.inputs[0].name: x})[nchw.outputs[0].name]
        b = nhwc.run({nhwc.inputs[0].name: x.transpose(0, 2, 3, 1).copy()})[nhwc.outputs[0].name]
        np.testing.assert_allclose(a[0, 0], b[0, ..., 0], atol=1e-6)
    with pytest.raises(MetadataError, match="preprocessing='modnet-reference'"):
        modnet_edge.load(foreign["nchw"])
    image = np.random.default_rng(2).integers(0, 255, (90, 70, 3), dtype=np.uint8)
    alphas = []
    for name in ("nchw", "nhwc"):
        with modnet_edge.load(foreign[name], preprocessing="modnet-reference") as pred:
            assert pred.spec.layout == name.upper() and pred.spec.fixed_size == (64, 64)
            alphas.append(pred.predict(image))
    assert alphas[0].shape == (90, 70)
    np.testing.assert_allclose(alphas[0], alphas[1], atol=1e-6)


def test_int8_io_is_quantised_from_the_models_own_parameters(foreign: dict[str, Path]) -> None:
    with modnet_edge.open_backend(foreign["int8"]) as q8, modnet_edge.open_backend(foreign["nchw"]) as f32:
        info = q8.inputs[0]
        assert info.dtype == np.int8 and q8.outputs[0].dtype == np.int8
        scale, zero = q8.quantization(info.name)
        x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
        with pytest.raises(FeedError, match="must be int8, got float32 .*prepare_input"):
            q8.run({info.name: x})
        xq = q8.prepare_input(info.name, x)
        assert xq.dtype == np.int8
        np.testing.assert_array_equal(xq, np.clip(np.rint(x / scale) + zero, -128, 127).astype(np.int8))
        out = q8.dequantize_output(q8.outputs[0].name, q8.run({info.name: xq})[q8.outputs[0].name])
        ref = f32.run({f32.inputs[0].name: x})[f32.outputs[0].name]
        assert out.dtype == np.float32 and np.abs(out - ref).max() < 0.03
        assert "quantization" in q8.describe()["inputs"][0]
    image = np.random.default_rng(4).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with modnet_edge.load(foreign["int8"], preprocessing="modnet-reference") as p8, \
            modnet_edge.load(foreign["nchw"], preprocessing="modnet-reference") as p32:
        assert np.abs(p8.predict(image) - p32.predict(image)).max() < 0.03


def test_dynamic_shape_model_is_resized_per_call(tmp_path: Path) -> None:
    dim = torch.export.Dim("h", min=2, max=64)
    path = _convert(_TinyMatte(nhwc=True), torch.zeros(1, 64, 64, 3), tmp_path / "dyn.tflite",
                    dynamic_shapes=({1: 32 * dim, 2: 32 * dim},))
    with modnet_edge.open_backend(path) as backend:
        assert backend.inputs[0].shape[1] is None and backend.inputs[0].shape[3] == 3
        for hw in (64, 96, 64):
            out = backend.run({backend.inputs[0].name: np.zeros((1, hw, hw, 3), np.float32)})
            assert out[backend.outputs[0].name].shape == (1, hw, hw, 1)
    with modnet_edge.load(path, preprocessing="modnet-reference") as pred:
        assert pred.spec.layout == "NHWC" and pred.spec.fixed_size is None
        assert pred.predict(np.zeros((100, 140, 3), np.uint8)).shape == (100, 140)


def test_metadata_entries_round_trip(foreign: dict[str, Path]) -> None:
    data = foreign["nchw"].read_bytes()
    once = embed_tflite_metadata(data, {"modnet_edge": b'{"a": 1}', "other": b"x"})
    twice = embed_tflite_metadata(once, {"modnet_edge": b'{"a": 2}'})
    meta = read_tflite_metadata(twice)
    assert meta["modnet_edge"] == b'{"a": 2}' and meta["other"] == b"x" and "min_runtime_version" in meta
    assert abs(len(twice) - len(once)) < 64, "a replaced entry does not keep its old payload"


def test_corrupt_and_missing_models(foreign: dict[str, Path], tmp_path: Path) -> None:
    cases = {"empty.tflite": b"", "junk.tflite": os.urandom(4096),
             "truncated.tflite": foreign["nchw"].read_bytes()[: len(foreign["nchw"].read_bytes()) // 2],
             "header-only.tflite": foreign["nchw"].read_bytes()[:8]}
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ArtifactError):
            modnet_edge.open_backend(tmp_path / name)
    with pytest.raises(ArtifactError, match="does not exist"):
        LiteRTBackend(tmp_path / "missing.tflite")
    with pytest.raises(BackendUnavailableError if not _installed("tflite_runtime") else ArtifactError):
        LiteRTBackend(tmp_path / "empty.tflite", interpreter="tflite-runtime")
    with pytest.raises(ConfigError, match="interpreter must be one of"):
        LiteRTBackend(foreign["nchw"], interpreter="tf-nightly")


def test_export_options_refused_before_conversion(tmp_path: Path) -> None:
    ckpt = random_checkpoint()
    bad = [({"precision": "int4"}, "tflite' exports precisions"),
           ({"precision": "fp16", "calibration": "synthetic"}, "'calibration' applies to precision int8 or int8-a16"),
           ({"precision": "int8-dynamic", "calibration": "synthetic"}, "applies to precision int8 or int8-a16"),
           ({"precision": "fp32", "keep_float": ["fusion-head"]}, "'keep_float' applies to precision fp16 or int8"),
           ({"precision": "fp32", "layout": "CHW"}, r"layout='CHW': choose from \['NCHW', 'NHWC'\]"),
           ({"precision": "fp32", "static_shape": (100, 100)}, "multiple of 32"),
           ({"precision": "fp32", "opset": 17}, "unknown tflite export option 'opset'")]
    for options, message in bad:
        with pytest.raises(ConfigError, match=message):
            modnet_edge.export(ckpt, "tflite", output=tmp_path / "x.tflite", **options)
    with pytest.raises(modnet_edge.DataError, match="needs calibration data"):
        modnet_edge.export(ckpt, "tflite", "int8", tmp_path / "y.tflite")
    assert not list(tmp_path.iterdir())


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
