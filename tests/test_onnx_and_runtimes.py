"""ONNX export, backends over any model file, the predictor, and artifact metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import modnet_edge
from modnet_edge.core import manifest_path, read_manifest
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError, FeedError, MetadataError
from modnet_edge.model.checkpoint import random_checkpoint
from modnet_edge.model.weights import ALIASES
from modnet_edge.parity_tests.drift import BUDGETS


@pytest.fixture(scope="module")
def onnx_fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return modnet_edge.export(None, "onnx", "fp32", tmp_path_factory.mktemp("onnx") / "m.onnx")


def test_export_writes_artifact_manifest_and_embedded_metadata(onnx_fp32: Path) -> None:
    model = onnx.load(str(onnx_fp32))
    assert model.opset_import[0].version >= 17
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["modnet_edge"])
    assert meta["precision"] == "fp32" and meta["format"] == "onnx"
    assert meta["preprocessing"]["ref_size"] == 512  # no checkpoint given: the built-in starter weights
    assert meta["source"]["kind"] == "builtin" and meta["source"]["weights"] == ALIASES["starter"]
    assert "torch" in meta["tools"] and "onnx" in meta["tools"]
    manifest = read_manifest(onnx_fp32)
    assert manifest is not None and manifest.precision == "fp32"
    assert json.loads(manifest_path(onnx_fp32).read_text())["artifact"]["bytes"] == onnx_fp32.stat().st_size
    assert not [p for p in onnx_fp32.parent.iterdir() if ".modnet-edge-tmp" in p.name], "temp files left behind"


def test_dynamic_batch_height_width(onnx_fp32: Path) -> None:
    with modnet_edge.open_backend(onnx_fp32) as backend:
        assert [i.name for i in backend.inputs] == ["input"]
        assert backend.inputs[0].shape[1] == 3 and not isinstance(backend.inputs[0].shape[2], int)
        for shape in [(1, 3, 64, 96), (2, 3, 128, 64)]:
            out = backend.run({"input": np.zeros(shape, np.float32)})["matte"]
            assert out.shape == (shape[0], 1, *shape[2:])
        assert backend.last_inference_s is not None and len(backend.timings_s) == 2


def test_static_shape_and_fp16_keep_io_types(tmp_path: Path) -> None:
    ckpt = random_checkpoint()
    static = modnet_edge.export(ckpt, "onnx", "fp32", tmp_path / "s.onnx", static_shape=(128, 96))
    with modnet_edge.load(static) as pred:
        assert pred.backend.inputs[0].shape == (1, 3, 128, 96)
        assert pred.spec.fixed_size == (128, 96)
        assert pred.predict(np.zeros((300, 200, 3), np.uint8)).shape == (300, 200)
    half = modnet_edge.export(ckpt, "onnx", "fp16", tmp_path / "h.onnx", keep_io_types=True)
    with modnet_edge.open_backend(half) as backend:
        assert backend.inputs[0].dtype == np.float32 and backend.outputs[0].dtype == np.float32
    pure = modnet_edge.export(ckpt, "onnx", "fp16", tmp_path / "p.onnx")
    with modnet_edge.load(pure) as pred:
        assert pred.backend.inputs[0].dtype == np.float16
        alpha = pred.predict(np.zeros((64, 64, 3), np.uint8))
        assert alpha.dtype == np.float32 and alpha.shape == (64, 64)


def test_bad_export_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="precisions"):
        modnet_edge.export(None, "onnx", "fp8", tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="unknown format"):
        modnet_edge.export(None, "caffe", "fp32", tmp_path / "x.caffe")
    with pytest.raises(ConfigError, match="multiple of 32"):
        modnet_edge.export(None, "onnx", "fp32", tmp_path / "x.onnx", static_shape=(100, 100))
    with pytest.raises(ConfigError, match="unknown onnx export option"):
        modnet_edge.export(None, "onnx", "fp32", tmp_path / "x.onnx", colour="red")


def test_interrupted_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx.checker, "check_model", boom)
    with pytest.raises(KeyboardInterrupt):
        modnet_edge.export(None, "onnx", "fp32", tmp_path / "i.onnx")
    assert list(tmp_path.iterdir()) == []


def test_predictor_inputs_and_sizes(onnx_fp32: Path, tmp_path: Path) -> None:
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 255, (123, 77, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    with modnet_edge.load(onnx_fp32) as pred:
        a = pred.predict(rgb)
        assert a.shape == (123, 77) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
        np.testing.assert_array_equal(pred.predict(tmp_path / "a.png"), a)
        np.testing.assert_array_equal(pred.predict(Image.fromarray(rgb)), a)
        batch = pred.predict_batch([rgb, rgb[:50], rgb])
        assert [x.shape for x in batch] == [(123, 77), (50, 77), (123, 77)]
        np.testing.assert_allclose(batch[0], a, atol=1e-5)  # stacked with the third image, same answer
        np.testing.assert_allclose(batch[0], batch[2], atol=1e-6)  # rows of one batch: no bit-equality promised
        assert set(pred.last_timings_s) == {"preprocess", "infer", "postprocess", "total"}


def test_checkpoint_is_an_artifact_too(tmp_path: Path) -> None:
    from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint

    path = save_checkpoint(tmp_path / "c.pt", build_from_checkpoint(random_checkpoint()))
    onnx_path = modnet_edge.export(path, "onnx", "fp32", tmp_path / "c.onnx")
    rgb = np.random.default_rng(1).integers(0, 255, (96, 64, 3), dtype=np.uint8)
    with modnet_edge.load(path) as torch_pred, modnet_edge.load(onnx_path) as onnx_pred:
        assert torch_pred.backend.format == "pytorch"
        assert np.mean((torch_pred.predict(rgb) - onnx_pred.predict(rgb)) ** 2) <= BUDGETS["fp32"].mse


def _foreign_nhwc_model(path: Path) -> Path:
    """A tiny non-MODNet 'matting' model: NHWC image -> sigmoid(mean over channels), no metadata."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, "h", "w", 3])
    y = helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [1, "h", "w", 1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [3])
    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["m"], keepdims=1),
             helper.make_node("Sigmoid", ["m"], ["alpha"])]
    model = helper.make_model(helper.make_graph(nodes, "foreign", [x], [y], [axes]),
                              opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, str(path))
    return path


def test_backend_runs_any_model_and_checks_feeds(tmp_path: Path) -> None:
    path = _foreign_nhwc_model(tmp_path / "foreign.onnx")
    with modnet_edge.open_backend(path) as backend:
        assert backend.inputs[0].name == "image" and backend.inputs[0].layout == "NHWC"
        out = backend.run({"image": np.zeros((1, 40, 50, 3), np.float32)})
        assert out["alpha"].shape == (1, 40, 50, 1)
        with pytest.raises(FeedError, match="missing"):
            backend.run({"input": np.zeros((1, 40, 50, 3), np.float32)})
        with pytest.raises(FeedError, match="must be float32"):
            backend.run({"image": np.zeros((1, 40, 50, 3), np.float64)})
        with pytest.raises(FeedError, match="rank"):
            backend.run({"image": np.zeros((40, 50, 3), np.float32)})
        with pytest.raises(FeedError, match="dimension 3 must be 3"):
            backend.run({"image": np.zeros((1, 40, 50, 4), np.float32)})


def test_foreign_model_needs_stated_preprocessing(tmp_path: Path) -> None:
    path = _foreign_nhwc_model(tmp_path / "foreign.onnx")
    with pytest.raises(MetadataError, match="no modnet-edge metadata"):
        modnet_edge.load(path)
    with modnet_edge.load(path, preprocessing="modnet-reference") as pred:
        assert pred.spec.layout == "NHWC"
        assert pred.predict(np.zeros((100, 60, 3), np.uint8)).shape == (100, 60)


def test_truncated_empty_and_unknown_artifacts(onnx_fp32: Path, tmp_path: Path) -> None:
    data = onnx_fp32.read_bytes()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match="cannot load"):
        modnet_edge.open_backend(tmp_path / "t.onnx")
    (tmp_path / "e.onnx").write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty"):
        modnet_edge.open_backend(tmp_path / "e.onnx")
    (tmp_path / "m.xyz").write_bytes(b"1234")
    with pytest.raises(ArtifactError, match="cannot tell the model format"):
        modnet_edge.open_backend(tmp_path / "m.xyz")
    with pytest.raises(ArtifactError, match="does not exist"):
        modnet_edge.load(tmp_path / "missing.onnx")
    with pytest.raises(BackendUnavailableError, match="not available"):
        modnet_edge.open_backend(onnx_fp32, providers=["tensorrt"])


def test_inconsistent_or_broken_metadata(onnx_fp32: Path, tmp_path: Path) -> None:
    import shutil

    art = tmp_path / "m.onnx"
    shutil.copy(onnx_fp32, art)
    record = json.loads(manifest_path(onnx_fp32).read_text())
    record["precision"] = "fp16"
    manifest_path(art).write_text(json.dumps(record))
    with pytest.raises(MetadataError, match="disagree on \\['precision'\\]"):
        modnet_edge.load(art)
    record["precision"] = "fp32"
    record["artifact"]["sha256"] = "0" * 64
    manifest_path(art).write_text(json.dumps(record))
    with pytest.raises(MetadataError, match="sha256 differs"):
        modnet_edge.load(art)
    manifest_path(art).write_text("{not json")
    with pytest.raises(MetadataError, match="not valid JSON"):
        modnet_edge.load(art)
    manifest_path(art).unlink()
    model = onnx.load(str(art))
    for prop in model.metadata_props:
        if prop.key == "modnet_edge":
            bad = json.loads(prop.value)
            del bad["preprocessing"]
            prop.value = json.dumps(bad)
    onnx.save(model, str(art))
    with pytest.raises(MetadataError, match="lacks required fields \\['preprocessing'\\]"):
        modnet_edge.load(art)


def test_static_fp16_graph_traced_small_then_fixed_is_the_static_trace() -> None:
    """A static FP16 graph is traced at 64x64 with dynamic sides and fixed afterwards (FP16 tracing at the
    real size is minutes on a CPU): it must be the graph a static trace gives, node for node and output
    for output."""
    import collections

    import onnxruntime as ort

    from modnet_edge.exporters import onnx_graph
    from modnet_edge.model.weights import resolve_checkpoint

    ck = resolve_checkpoint("starter")
    fixed = onnx_graph.float_graph(ck, "fp16", static_shape=(96, 128), keep_io_types=True)
    traced = onnx_graph._simplify(onnx_graph.float_graph(ck, "fp16", static_shape=(96, 128), keep_io_types=True,
                                                         simplify=False))  # traced at 96x128 itself
    ops = lambda m: collections.Counter(n.op_type for n in m.graph.node)  # noqa: E731
    assert ops(fixed) == ops(traced) and "Shape" not in ops(fixed)
    assert sorted(n.name for n in fixed.graph.node) == sorted(n.name for n in traced.graph.node)
    assert [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 96, 128]
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 96, 128)).astype(np.float32)
    a, b = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for m in (fixed, traced))
    assert a.shape == (1, 1, 96, 128) and np.allclose(a, b, rtol=0, atol=1e-6)
