"""Core ML export and the reference execution of its ML Program: structure, exactness, bad input.

Models are converted once per session at 128x128 from the seeded random network (structure and the
FP32 exactness of the executor do not need trained weights; the drift budgets are checked on a trained
network in parity_tests/test_coreml_parity.py).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("coremltools") is None,
                                reason="coremltools is not installed (pip install -e '.[coreml]')")

SIZE = (128, 128)
EXPECTED_OPS = {"const", "cast", "conv", "batch_norm", "instance_norm", "clip", "relu", "add", "mul", "concat",
                "slice_by_index", "upsample_bilinear", "reduce_mean", "reshape", "linear", "expand_dims", "sigmoid"}


def _torch_matte(ckpt, x: np.ndarray) -> np.ndarray:
    from modnet_edge.model.checkpoint import build_from_checkpoint

    with torch.no_grad():
        return build_from_checkpoint(ckpt)(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="session")
def random_ckpt():
    from modnet_edge.model.checkpoint import random_checkpoint

    return random_checkpoint(0)


@pytest.fixture(scope="session")
def packages(tmp_path_factory, random_ckpt) -> dict[str, Path]:
    import modnet_edge

    out = tmp_path_factory.mktemp("coreml")
    return {p: modnet_edge.export(random_ckpt, format="coreml", precision=p, output=out / f"m.{p}.mlpackage",
                                  static_shape=SIZE) for p in ("fp32", "fp16")}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------
# Structure
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_structure_names_shapes_precision_ops(packages):
    from modnet_edge.core import METADATA_KEY, read_manifest
    from modnet_edge.runtimes.coreml_program import MLProgram

    for precision, path in packages.items():
        prog = MLProgram.read(path)
        assert prog.opset == "CoreML6" and prog.specification_version == 7  # iOS 16 / macOS 13
        (inp,), (out,) = prog.inputs, prog.outputs
        assert (inp.name, inp.kind, inp.shape, inp.dtype) == ("input", "tensor", (1, 3, *SIZE), np.float32)
        assert (out.name, out.shape, out.dtype) == ("matte", (1, 1, *SIZE), np.float32)
        assert set(prog.op_types) == EXPECTED_OPS - ({"cast"} if precision == "fp32" else set())
        compute = {v.dtype for op in prog.operations if op.type in ("conv", "instance_norm", "upsample_bilinear")
                   for v in op.outputs}
        assert compute == {"FLOAT16" if precision == "fp16" else "FLOAT32"}
        ups = [op for op in prog.operations if op.type == "upsample_bilinear"]
        assert len(ups) == 8  # 6x up by 2, the image down by 2 and by 4
        meta = json.loads(prog.user_metadata[METADATA_KEY])
        assert meta["precision"] == precision and meta["format"] == "coreml"
        assert meta["extra"]["conversion"] == "torch.export" and meta["extra"]["input_type"] == "tensor"
        assert meta["preprocessing"]["fixed_size"] == list(SIZE)
        assert read_manifest(path).to_dict()["source"] == meta["source"]
        assert prog.description["author"] and prog.description["license"] and prog.description["shortDescription"]


@pytest.mark.slow
def test_fp32_reference_execution_matches_pytorch(packages, random_ckpt):
    """The executor itself, validated: an FP32 program must reproduce PyTorch to MSE <= 1e-9."""
    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend

    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, *SIZE)).astype(np.float32)
    with CoreMLReferenceBackend(packages["fp32"]) as backend:
        out = backend.run({"input": x})["matte"]
    assert float(np.mean((out.astype(np.float64) - _torch_matte(random_ckpt, x)) ** 2)) <= 1e-9


@pytest.mark.slow
def test_fp16_program_is_executed_in_fp16(packages, random_ckpt):
    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend

    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, *SIZE)).astype(np.float32)
    with CoreMLReferenceBackend(packages["fp16"]) as backend:
        weights = [backend.executor.constants[op.inputs["weight"][0].name] for op in backend.program.operations
                   if op.type == "conv"]
        # held as float32 (every kernel computes in float32), each value a float16 number
        assert all(np.array_equal(w, w.astype(np.float16).astype(np.float32)) for w in weights)
        out = backend.run({"input": x})["matte"]
    err = np.abs(out - _torch_matte(random_ckpt, x))
    assert 0 < err.max() < 0.1  # rounded to fp16 along the way, yet the same network


def test_fp16_ops_that_only_move_values_skip_rounding_bit_for_bit(packages):
    """relu/concat/reshape... of float16 values are float16 values: the executor skips their rounding,
    and the output is the same bits as when every FLOAT16 result is rounded."""
    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend

    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, *SIZE)).astype(np.float32)
    with CoreMLReferenceBackend(packages["fp16"]) as backend:
        executor = backend.executor
        skipped = {op.type for op, exact in zip(executor.steps, executor._exact) if exact}
        assert {"relu", "concat"} <= skipped and "conv" not in skipped
        fast = backend.run({"input": x})["matte"]
        executor._exact = [False] * len(executor.steps)
        every = backend.run({"input": x})["matte"]
    np.testing.assert_array_equal(fast, every)
    with CoreMLReferenceBackend(packages["fp32"]) as backend:  # FLOAT32 programs: nothing is FLOAT16
        assert not any(backend.executor._exact)


@pytest.mark.slow
def test_load_runs_core_ml_on_macos_and_reference_everywhere(packages):
    import modnet_edge
    from modnet_edge.core.errors import BackendUnavailableError

    rgb = np.random.default_rng(3).integers(0, 255, (150, 100, 3), dtype=np.uint8)
    with modnet_edge.load(packages["fp16"], runtime="reference") as predictor:
        alpha = predictor.predict(rgb)
        assert predictor.backend.runtime == "reference"
    assert alpha.shape == (150, 100) and 0 <= alpha.min() <= alpha.max() <= 1
    if sys.platform != "darwin":
        with pytest.raises(BackendUnavailableError, match="runtime='reference'"):
            modnet_edge.load(packages["fp16"])


@pytest.mark.slow
def test_enumerated_image_input_model(tmp_path, random_ckpt):
    """Image input (normalisation baked in), enumerated sizes (TorchScript route with the exact
    down-sampling rewrite), FP32 compute: the predictor's uint8 pixels reach the program unchanged."""
    import modnet_edge
    from modnet_edge.core.errors import FeedError
    from modnet_edge.runtimes.coreml_program import MLProgram
    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend

    path = modnet_edge.export(random_ckpt, format="coreml", precision="fp32", output=tmp_path / "img.mlpackage",
                              shapes="enumerated", sizes=[(128, 128), (128, 192)],
                              input_type="image")
    prog = MLProgram.read(path)
    feature = prog.inputs[0]
    assert feature.kind == "image" and feature.enumerated == ((1, 3, 128, 128), (1, 3, 128, 192))
    assert "avg_pool" in prog.op_types and prog.op_types[:3] == ["const", "mul", "add"]  # scale, bias
    pixels = np.random.default_rng(4).integers(0, 256, (1, 3, 128, 192), dtype=np.uint8)
    with modnet_edge.load(path, runtime="reference") as predictor:
        out = predictor.backend.run({"input": pixels})["matte"]
        x = pixels.astype(np.float32) / 127.5 - 1.0
        assert float(np.mean((out.astype(np.float64) - _torch_matte(random_ckpt, x)) ** 2)) <= 1e-9
        normalised = x[:, :, :, :128]
        unrounded = predictor.backend.prepare_input("input", normalised)  # what Core ML hands the program
        assert unrounded.dtype == np.float32 and np.abs(unrounded - pixels[:, :, :, :128]).max() < 1e-3
        np.testing.assert_allclose(predictor.backend.run({"input": unrounded})["matte"],
                                   predictor.backend.run({"input": pixels[:, :, :, :128]})["matte"], atol=1e-5)
        with pytest.raises(FeedError, match="enumerated"):
            predictor.backend.run({"input": pixels[:, :, :96, :]})
        with pytest.raises(FeedError, match="must be 128"):  # the resize rule gives 512x768 here
            predictor.predict(np.zeros((128, 192, 3), np.uint8))
    device_like = CoreMLReferenceBackend(path, round_pixels=True)  # the uint8 picture a device gets
    assert np.array_equal(device_like.prepare_input("input", x[:, :, :, :128] + 0.001), pixels[:, :, :, :128])


@pytest.mark.slow
def test_range_shaped_e_aspp_model(tmp_path):
    """A bounded size range, and the e-ASPP variant (fill_like), in FP16."""
    import modnet_edge
    from modnet_edge.core.errors import FeedError
    from modnet_edge.runtimes.coreml_program import MLProgram
    from modnet_edge.model.checkpoint import random_checkpoint
    from modnet_edge.model.network import ModelConfig

    ckpt = random_checkpoint(5, ModelConfig(lr_block="e-aspp"))
    path = modnet_edge.export(ckpt, format="coreml", precision="fp16", output=tmp_path / "r.mlpackage",
                              shapes="range", size_range=(64, 192))
    prog = MLProgram.read(path)
    assert prog.inputs[0].ranges[2:] == ((64, 192), (64, 192)) and "fill_like" in prog.op_types
    x = np.random.default_rng(6).uniform(-1, 1, (1, 3, 64, 160)).astype(np.float32)
    with modnet_edge.load(path, runtime="reference") as predictor:
        out = predictor.backend.run({"input": x})["matte"]
        assert out.shape == (1, 1, 64, 160)
        assert float(np.mean((out.astype(np.float64) - _torch_matte(ckpt, x)) ** 2)) < 1e-3
        for bad in [(1, 3, 64, 224), (1, 3, 80, 96)]:  # above the range; not a multiple of 32
            with pytest.raises(FeedError):
                predictor.backend.run({"input": np.zeros(bad, np.float32)})


def test_exact_downsampling_rewrite_matches_interpolate(random_ckpt):
    """The avg-pool rewrite of 1/2 and 1/4 bilinear downsampling computes the same averages as
    ``interpolate``; the two kernels sum in different orders (and, with 2+ threads at 256 px and up,
    differ by one float step in ~30% of elements), so the comparison allows float rounding only --
    a wrong window or offset moves the matte by orders of magnitude more."""
    from modnet_edge.exporters.coreml_convert import ExactDownsampling
    from modnet_edge.model.checkpoint import build_from_checkpoint

    net = build_from_checkpoint(random_ckpt).eval()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(11))
    feat = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        plain = net(x)
        down = [torch.nn.functional.interpolate(feat, scale_factor=s, mode="bilinear") for s in (0.5, 0.25)]
        with ExactDownsampling():
            rewritten = net(x)
            down_rw = [torch.nn.functional.interpolate(feat, scale_factor=s, mode="bilinear") for s in (0.5, 0.25)]
            odd = torch.nn.functional.interpolate(torch.ones(1, 1, 6, 6), scale_factor=0.25, mode="bilinear")
    torch.testing.assert_close(rewritten, plain, rtol=1e-5, atol=1e-6)
    for ref, ours in zip(down, down_rw):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(torch.roll(ours, 1, dims=3), ref, rtol=1e-5, atol=1e-6)  # a shifted window fails
    assert odd.shape == (1, 1, 1, 1)  # not divisible by 4: left to interpolate itself


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
def test_export_option_errors(random_ckpt, tmp_path):
    import modnet_edge
    from modnet_edge.core.errors import ConfigError

    cases = [dict(precision="int4"), dict(output=tmp_path / "m.onnx"), dict(static_shape=(100, 128)),
             dict(deployment_target="iOS18"), dict(input_type="video"), dict(shapes="ragged"),
             dict(shapes="range", static_shape=(512, 512), size_range=(64, 256)), dict(colour="rgb"),
             dict(precision="fp16", compute_precision="fp32"), dict(static_shape=(128, 128), shapes="range"),
             dict(static_shape=(128,)), dict(shapes="enumerated", sizes=[(128, 96, 3)]), dict(compress_threshold=4096),
             dict(precision="int8-weights", compress_threshold=0)]
    for case in cases:
        kwargs = {"precision": "fp16", "output": tmp_path / "m.mlpackage", **case}
        with pytest.raises(ConfigError):
            modnet_edge.export(random_ckpt, format="coreml", **kwargs)
    assert not any(tmp_path.iterdir())


def test_failed_export_leaves_nothing_behind(random_ckpt, tmp_path, monkeypatch):
    """The package is written to a temporary directory first: a failure mid-save leaves no package."""
    import modnet_edge
    from modnet_edge.exporters import coreml_export

    class HalfWriter(SimpleNamespace):
        def save(self, path: str) -> None:
            Path(path).mkdir()
            (Path(path) / "Manifest.json").write_text("{}")
            raise OSError("disk full")

    model = HalfWriter(user_defined_metadata={}, input_description={}, output_description={})
    monkeypatch.setattr(coreml_export, "convert", lambda *a, **k: model)
    monkeypatch.setattr(coreml_export, "_source", lambda *a, **k: (None, "stub"))
    monkeypatch.setattr(coreml_export, "_CONVERTED", {})  # neither a remembered conversion nor this stub kept
    with pytest.raises(OSError, match="disk full"):
        modnet_edge.export(random_ckpt, "coreml", "fp16", tmp_path / "m.mlpackage", static_shape=SIZE)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_corrupt_and_incomplete_packages(packages, tmp_path):
    from modnet_edge.core.errors import ArtifactError
    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend

    src = packages["fp16"]
    data = Path("Data/com.apple.CoreML")
    cases = {}
    cases["spec"] = _copy(src, tmp_path / "spec")
    (cases["spec"] / data / "model.mlmodel").write_bytes(b"\x0f\xffnot a protobuf" * 10)
    cases["manifest"] = _copy(src, tmp_path / "manifest")
    (cases["manifest"] / "Manifest.json").unlink()
    cases["weights"] = _copy(src, tmp_path / "weights")
    (cases["weights"] / data / "weights" / "weight.bin").unlink()
    cases["truncated"] = _copy(src, tmp_path / "truncated")
    blob = cases["truncated"] / data / "weights" / "weight.bin"
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 3])
    cases["file"] = tmp_path / "file.mlpackage"
    cases["file"].write_bytes(b"zip?")
    expected = {"spec": "corrupt model specification", "manifest": "Manifest.json is missing",
                "weights": "weight.bin is missing", "truncated": "truncated or corrupt weight file",
                "file": "not an .mlpackage directory"}
    for name, path in cases.items():
        with pytest.raises(ArtifactError, match=expected[name]) as info:
            CoreMLReferenceBackend(path)
        assert str(path) in str(info.value)


def _mil_package(tmp_path: Path, name: str, body) -> Path:
    """A small foreign ML Program built with the MIL builder (no modnet-edge metadata)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 4, 4))], opset_version=ct.target.iOS16)
    def prog(x):
        return body(mb, x)

    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32)
    path = tmp_path / f"{name}.mlpackage"
    model.save(str(path))
    return path


def test_foreign_program_and_unsupported_op(tmp_path):
    import modnet_edge
    from modnet_edge.core.errors import MetadataError
    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend, UnsupportedOperation
    from modnet_edge.runtimes.loader import open_backend

    foreign = _mil_package(tmp_path, "foreign", lambda mb, x: mb.sigmoid(x=mb.mul(x=x, y=2.0)))
    with open_backend(foreign, runtime="reference") as backend:  # any ML Program runs, not only MODNet
        (name,) = [i.name for i in backend.inputs]
        x = np.linspace(-2, 2, 48, dtype=np.float32).reshape(1, 3, 4, 4)
        (out,) = backend.run({name: x}).values()
        np.testing.assert_allclose(out, 1 / (1 + np.exp(-2 * x)), rtol=1e-6)
    with pytest.raises(MetadataError, match="preprocessing"):
        modnet_edge.load(foreign, runtime="reference")
    unsupported = _mil_package(tmp_path, "sin", lambda mb, x: mb.sin(x=x))
    with pytest.raises(UnsupportedOperation, match=r"\bsin\b"):
        CoreMLReferenceBackend(unsupported)


def test_neural_network_model_is_refused(tmp_path):
    """A Core ML package holding a legacy neural network (not an ML Program) is refused clearly."""
    import coremltools as ct
    from modnet_edge.core.errors import ArtifactError
    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend

    spec = ct.proto.Model_pb2.Model()
    spec.specificationVersion = 4
    for io, name in ((spec.description.input.add(), "x"), (spec.description.output.add(), "y")):
        io.name = name
        io.type.multiArrayType.shape.append(4)
        io.type.multiArrayType.dataType = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    layer = spec.neuralNetwork.layers.add()
    layer.name, layer.input[:], layer.output[:] = "relu", ["x"], ["y"]
    layer.activation.ReLU.SetInParent()
    path = tmp_path / "nn.mlpackage"
    ct.utils.save_spec(spec, str(path))
    with pytest.raises(ArtifactError, match="not an ML Program"):
        CoreMLReferenceBackend(path)


def test_palettization_without_scikit_learn_says_what_to_install(random_ckpt, tmp_path, monkeypatch):
    import importlib.util as util

    import modnet_edge
    from modnet_edge.core.errors import BackendUnavailableError

    real = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(BackendUnavailableError, match=r"coreml-palettize"):
        modnet_edge.export(random_ckpt, format="coreml", precision="palettized-4bit", output=tmp_path / "p.mlpackage")


def test_coremltools_progress_bars_are_hidden_and_given_back_on_failure(capsys):
    from tqdm import tqdm

    from modnet_edge.core.tools import quiet_tool  # what the Core ML exporter wraps coremltools in

    with quiet_tool():
        for _ in tqdm(range(3), desc="Running MIL default pipeline"):
            pass
    assert "Running MIL" not in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="conversion failed"):
        with quiet_tool():
            print("what coremltools said before failing", file=sys.stderr)
            raise RuntimeError("conversion failed")
    assert "what coremltools said before failing" in capsys.readouterr().err


@pytest.mark.slow
def test_weight_compression_reuses_the_plain_conversion_and_matches_a_fresh_one(random_ckpt, tmp_path: Path) -> None:
    """int8-weights after a plain fp16 export compresses the remembered conversion: same program and
    weight bytes as converting afresh, and its own description (nothing of the fp16 export's is left)."""
    import coremltools as ct

    import modnet_edge
    import modnet_edge.exporters.coreml_export as coreml_export
    from modnet_edge.core import read_manifest

    def program_and_weights(path: Path) -> tuple:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        weights = (path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").read_bytes()
        return spec.mlProgram.SerializeToString(), weights, spec.description.metadata.shortDescription

    modnet_edge.export(random_ckpt, format="coreml", precision="fp16", output=tmp_path / "a.mlpackage",
                       static_shape=SIZE)
    assert coreml_export._CONVERTED, "the plain conversion is remembered"
    reused = modnet_edge.export(random_ckpt, format="coreml", precision="int8-weights",
                                output=tmp_path / "b.mlpackage", static_shape=SIZE)
    coreml_export._CONVERTED.clear()
    fresh = modnet_edge.export(random_ckpt, format="coreml", precision="int8-weights",
                               output=tmp_path / "c.mlpackage", static_shape=SIZE)
    assert program_and_weights(reused) == program_and_weights(fresh)
    assert "int8-weights" in program_and_weights(reused)[2]
    assert read_manifest(reused).precision == "int8-weights"
