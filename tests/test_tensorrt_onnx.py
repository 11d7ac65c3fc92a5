"""TensorRT-ready ONNX, verified on every machine: profiles, strongly typed FP16, the graph checker, the
format table rows, the trtexec command, and the clear errors where TensorRT is not installed.

Numerical parity of these files against PyTorch (with a trained checkpoint) is in
``parity_tests/test_tensorrt_onnx_parity.py``; engine building and running in ``test_tensorrt_gpu.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modnet_edge
from modnet_edge.cli import main as cli_main
from modnet_edge.core import FORMATS, read_manifest
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError
from modnet_edge.exporters.tensorrt_onnx import check_tensorrt_ready, keep_normalization_fp32, trtexec_command
from modnet_edge.exporters.tensorrt_profile import ShapeProfile
from modnet_edge.runtimes.loader import detect_format
from modnet_edge.model.checkpoint import random_checkpoint

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("trt_onnx")
    ckpt = random_checkpoint(0)
    return {
        "fp32": modnet_edge.export(ckpt, "tensorrt-onnx", "fp32", folder / "m.fp32.trt.onnx", static_shape=(64, 64)),
        "fp16": modnet_edge.export(ckpt, "tensorrt-onnx", "fp16", folder / "m.fp16.trt.onnx", static_shape=(64, 64)),
        "dyn": modnet_edge.export(ckpt, "tensorrt-onnx", "fp32", folder / "m.dyn.trt.onnx",
                                  profile="1x3x64x64:1x3x96x96:2x3x128x128"),
        "fp16-mixed": modnet_edge.export(ckpt, "tensorrt-onnx", "fp16", folder / "m.mixed.trt.onnx",
                                         static_shape=(64, 64), keep_io_types=False, keep_float=["/f_branch/"]),
    }


# -- profiles -------------------------------------------------------------------------------------
def test_profile_parsing_validation_and_trtexec_args() -> None:
    p = ShapeProfile.parse("1x3x256x256:1x3x512x512:4x3x1024x1024")
    assert p == ShapeProfile.parse({"min": [1, 3, 256, 256], "opt": "1x3x512x512", "max": (4, 3, 1024, 1024)})
    assert not p.is_static and p.static_size is None and p.static_batch is None
    assert p.trtexec_args()[0] == "--minShapes=input:1x3x256x256"
    assert p.contains((2, 3, 512, 640)) and not p.contains((1, 3, 2048, 512))
    assert p.onnx_export_args() == {"static_shape": None, "batch": None}
    assert ShapeProfile.parse("1x3x256x256:1x3x512x512:1x3x1024x1024").onnx_export_args() == \
        {"static_shape": None, "batch": 1}
    static = ShapeProfile.resolve((128, 96), 2)
    assert static.is_static and static.trtexec_args() == [] and static.onnx_export_args() == \
        {"static_shape": (128, 96), "batch": 2}
    assert ShapeProfile.resolve().min == (1, 3, 512, 512)
    for bad, msg in [("1x3x250x256:1x3x512x512:1x3x1024x1024", "multiples of 32"),
                     ("1x4x256x256:1x4x512x512:1x4x1024x1024", "3 \\(RGB\\) channels"),
                     ("1x3x512x512:1x3x256x256:1x3x1024x1024", "min <= opt <= max"),
                     ("1x3x256x256:1x3x512x512", "three shapes"),
                     ("1x3x256:1x3x512x512:1x3x1024x1024", "4 dimensions"),
                     ("axbxc:1x3x512x512:1x3x1024x1024", "four integers")]:
        with pytest.raises(ConfigError, match=msg):
            ShapeProfile.parse(bad)
    with pytest.raises(ConfigError, match="not both"):
        ShapeProfile.resolve((64, 64), None, "1x3x64x64:1x3x64x64:1x3x64x64")
    with pytest.raises(ConfigError, match="contradicts"):
        ShapeProfile.resolve(None, 4, "1x3x64x64:1x3x64x64:2x3x64x64")


# -- exported files -------------------------------------------------------------------------------
def test_fp32_file_is_tensorrt_ready_and_records_profile_and_builds(exported: dict[str, Path]) -> None:
    path = exported["fp32"]
    model = onnx.load(str(path))
    assert check_tensorrt_ready(model)["problems"] == []
    meta = read_manifest(path)
    assert meta is not None and meta.format == "tensorrt-onnx" and meta.precision == "fp32"
    info = meta.extra["tensorrt"]
    assert info["profile"] == {"input": "input", "min": [1, 3, 64, 64], "opt": [1, 3, 64, 64],
                               "max": [1, 3, 64, 64], "static": True}
    assert info["build_modes"] == ["fp32", "fp16-flag"]
    assert "--noTF32" in info["trtexec"]["fp32"] and "--fp16" in info["trtexec"]["fp16-flag"]
    assert "INormalizationLayer" in info["instance_norm"]
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 64, 64]
    assert detect_format(path).name == "tensorrt-onnx"
    with modnet_edge.load(path) as pred:
        alpha = pred.predict(np.full((90, 70, 3), 128, np.uint8))
        assert alpha.shape == (90, 70) and np.isfinite(alpha).all()


def test_fp16_file_is_strongly_typed_with_fp32_normalization(exported: dict[str, Path]) -> None:
    model = onnx.load(str(exported["fp16"]))
    assert check_tensorrt_ready(model)["problems"] == []
    # float32 I/O by default: the image is cast inside, the matte leaves unrounded
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers = {i: n for n in model.graph.node for i in n.input}
    norms = [n for n in model.graph.node if n.op_type == "InstanceNormalization"]
    assert len(norms) == 16
    for n in norms:
        cast_in, cast_out = producers[n.input[0]], consumers[n.output[0]]
        assert cast_in.op_type == "Cast" and cast_in.attribute[0].i == TensorProto.FLOAT
        assert cast_out.op_type == "Cast" and cast_out.attribute[0].i == TensorProto.FLOAT16
        assert inits[n.input[1]].data_type == TensorProto.FLOAT
    conv_w = inits[next(n for n in model.graph.node if n.op_type == "Conv").input[1]]
    assert conv_w.data_type == TensorProto.FLOAT16
    meta = read_manifest(exported["fp16"])
    assert meta.extra["tensorrt"]["build_modes"] == ["fp16"]
    assert meta.extra["tensorrt"]["trtexec"]["fp16"].endswith("--stronglyTyped")
    with modnet_edge.load(exported["fp16"]) as pred:
        assert pred.backend.inputs[0].dtype == np.float32
        assert np.isfinite(pred.predict(np.full((64, 64, 3), 90, np.uint8))).all()


def test_fp16_with_fp32_islands_and_fp16_io(exported: dict[str, Path]) -> None:
    model = onnx.load(str(exported["fp16-mixed"]))
    assert check_tensorrt_ready(model)["problems"] == []
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    inits = {i.name: i.data_type for i in model.graph.initializer}
    conv_types = {(n.name.split("/")[2], inits[n.input[1]]) for n in model.graph.node if n.op_type == "Conv"}
    assert ("f_branch", TensorProto.FLOAT) in conv_types and ("f_branch", TensorProto.FLOAT16) not in conv_types
    assert ("backbone", TensorProto.FLOAT16) in conv_types
    info = read_manifest(exported["fp16-mixed"]).extra["tensorrt"]
    assert info["fp32_nodes"]["patterns"] == ["/f_branch/"] and info["fp32_nodes"]["nodes"] > 4
    with modnet_edge.load(exported["fp16-mixed"]) as pred:
        assert pred.backend.inputs[0].dtype == np.float16
        assert np.isfinite(pred.predict(np.full((64, 64, 3), 90, np.uint8))).all()
    with pytest.raises(ConfigError, match="matches no node"):
        from modnet_edge.exporters.onnx_mixed_precision import keep_matching_fp32

        keep_matching_fp32(model, ["/no_such_branch/"])


def test_profile_file_has_dynamic_axes_and_records_the_range(exported: dict[str, Path]) -> None:
    model = onnx.load(str(exported["dyn"]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    meta = read_manifest(exported["dyn"])
    assert meta.preprocessing.fixed_size is None and meta.input_shape == ["batch", 3, "height", "width"]
    assert meta.extra["tensorrt"]["profile"]["max"] == [2, 3, 128, 128]
    assert "--maxShapes=input:2x3x128x128" in meta.extra["tensorrt"]["trtexec"]["fp32"]
    with modnet_edge.open_backend(exported["dyn"]) as backend:
        assert backend.run({"input": np.zeros((2, 3, 96, 128), np.float32)})["matte"].shape == (2, 1, 96, 128)


def test_cli_prints_the_trtexec_command_without_tensorrt(exported: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["tensorrt-build", str(exported["dyn"]), "--print-trtexec", "--mode", "fp16-flag",
                     "--timing-cache", "t.cache", "--workspace-mib", "2048"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("trtexec --onnx=") and "--fp16" in out and "--timingCacheFile=t.cache" in out
    assert "--memPoolSize=workspace:2048M" in out and "m.dyn.engine" in out
    assert cli_main(["tensorrt-build", str(exported["dyn"]), "--print-trtexec", "--mode", "int8"]) == 2
    assert "needs the int8 ONNX" in capsys.readouterr().err


# -- the graph checker ----------------------------------------------------------------------------
def _qdq_graph(zero_point: np.ndarray, quantize_conv_output: bool = False, bias_dq: bool = False) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(DQ(int8 weights, per channel)) [-> Q -> DQ] -> y."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w_q")
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s"), numpy_helper.from_array(zero_point, "zp"),
             w, numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_s"),
             numpy_helper.from_array(np.zeros(4, np.int8), "w_zp"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["wd"], name="wdq", axis=0)]
    bias = "b"
    if bias_dq:
        inits.append(numpy_helper.from_array(np.zeros(4, np.int32), "b_q"))
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "w_s"], ["bd"], name="bdq"))
        bias = "bd"
    nodes.append(helper.make_node("Conv", ["xd", "wd", bias], ["c"], name="conv"))
    if quantize_conv_output:
        nodes += [helper.make_node("QuantizeLinear", ["c", "s", "zp"], ["cq"], name="q2"),
                  helper.make_node("DequantizeLinear", ["cq", "s", "zp"], ["y"], name="dq2")]
    else:
        nodes.append(helper.make_node("Relu", ["c"], ["y"], name="relu"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def test_checker_accepts_tensorrt_style_qdq_and_names_each_violation() -> None:
    clean = check_tensorrt_ready(_qdq_graph(np.array(0, np.int8)))
    assert clean["problems"] == [] and clean["quantized_convs"] == 1 and clean["convs"] == 1
    problems = " | ".join(check_tensorrt_ready(_qdq_graph(np.array(3, np.uint8), True, True))["problems"])
    for expected in ("zero point type UINT8", "non-zero zero point", "quantized (int32) bias",
                     "dequantizes INT32", "output is quantized for a non-Conv consumer"):
        assert expected in problems
    odd = _qdq_graph(np.array(0, np.int8))
    odd.graph.node[-1].op_type = "Elu"
    odd.graph.node.append(helper.make_node("Custom", ["y"], ["z"], name="c", domain="com.example"))
    problems = " | ".join(check_tensorrt_ready(odd)["problems"])
    assert "op Elu" in problems and "custom domain 'com.example'" in problems


def test_keep_normalization_fp32_matches_a_float32_reference() -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    scale, bias = rng.random(4).astype(np.float16) + 0.5, rng.random(4).astype(np.float16)
    graph = helper.make_graph(
        [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], name="in", epsilon=1e-5)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4, 8, 8])],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    assert keep_normalization_fp32(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Cast", "InstanceNormalization", "Cast"]
    x = (rng.standard_normal((1, 4, 8, 8)) * 300).astype(np.float16)  # large: sum of squares would overflow fp16
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    xf = x.astype(np.float32)
    ref = (xf - xf.mean((2, 3), keepdims=True)) / np.sqrt(xf.var((2, 3), keepdims=True) + 1e-5)
    ref = ref * scale.astype(np.float32)[None, :, None, None] + bias.astype(np.float32)[None, :, None, None]
    assert y.dtype == np.float16 and np.abs(y.astype(np.float32) - ref).max() < 5e-3


# -- options, errors, and the TensorRT-only parts -------------------------------------------------
def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    ckpt = random_checkpoint(0)
    cases = [({"precision": "int4"}, r"exports precisions \['fp32', 'fp16', 'int8'\]"),
             ({"precision": "fp32", "keep_io_types": True}, "'keep_io_types' applies to precision fp16"),
             ({"precision": "fp32", "keep_float": ["/f_branch/"]}, "applies to precision fp16 or int8"),
             ({"precision": "fp16", "calibration": "synthetic"}, "'calibration' applies to precision int8"),
             ({"precision": "fp32", "static_shape": (64, 64), "profile": "1x3x64x64:1x3x64x64:1x3x64x64"}, "not both"),
             ({"precision": "fp32", "static_shape": (60, 64)}, "multiple"),
             ({"precision": "int8", "calibration": "synthetic", "methd": "minmax"},
              "unknown tensorrt-onnx export option 'methd'")]
    for options, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            modnet_edge.export(ckpt, "tensorrt-onnx", output=tmp_path / "x.trt.onnx", **options)
    assert not list(tmp_path.iterdir()), "a failed export left files behind"
    with pytest.raises(ConfigError, match="unknown TensorRT build mode"):
        trtexec_command("a.onnx", "a.engine", "int4", ShapeProfile.resolve())


def test_plain_onnx_is_not_accepted_by_the_builder(tmp_path: Path) -> None:
    plain = modnet_edge.export(random_checkpoint(0), "onnx", "fp32", tmp_path / "p.onnx", static_shape=(64, 64))
    from modnet_edge.exporters.tensorrt_build import read_onnx_metadata

    with pytest.raises(ArtifactError, match="not a TensorRT-ready one"):
        read_onnx_metadata(plain)


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here: the not-installed errors cannot be observed")
def test_tensorrt_parts_say_clearly_that_tensorrt_is_missing(exported: dict[str, Path], tmp_path: Path) -> None:
    fmt = FORMATS["tensorrt"]
    assert fmt.suffixes == (".engine", ".plan") and fmt.export_extra == fmt.run_extra == "tensorrt"
    assert not fmt.can_export() and not fmt.can_run()
    with pytest.raises(BackendUnavailableError, match="needs .*tensorrt"):
        modnet_edge.export(random_checkpoint(0), "tensorrt", "fp16", tmp_path / "m.engine")
    from modnet_edge.core import ArtifactMetadata, PreprocessSpec
    from modnet_edge.core.containers.engine_file import write_engine_file

    meta = ArtifactMetadata(format="tensorrt", precision="fp16", preprocessing=PreprocessSpec(), model={})
    engine = write_engine_file(tmp_path / "m.engine", b"not a real plan", meta)
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        modnet_edge.open_backend(engine)
    assert cli_main(["tensorrt-build", str(exported["fp16"])]) == 2
    assert json.loads(Path(str(exported["fp16"]) + ".manifest.json").read_text())["format"] == "tensorrt-onnx"


def test_fp32_islands_compose_without_fp16_round_trips() -> None:
    """A second call (e.g. fp32_nodes after the normalization pass) joins the regions: no Cast to FP16
    and back between FP32 nodes, no duplicate names, results as computed in FP32."""
    import onnxruntime as ort

    from modnet_edge.exporters.onnx_mixed_precision import keep_nodes_fp32

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="a"),
         helper.make_node("InstanceNormalization", ["r", "s", "b"], ["n"], name="b"),
         helper.make_node("Relu", ["n"], ["y"], name="c")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 2, 4, 4])],
        [numpy_helper.from_array(np.ones(2, np.float16), "s"), numpy_helper.from_array(np.zeros(2, np.float16), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    assert keep_nodes_fp32(model, lambda n: n.op_type == "InstanceNormalization") == 1
    assert keep_nodes_fp32(model, lambda n: n.name in ("a", "c")) == 2
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Cast", "Relu", "InstanceNormalization", "Relu", "Cast"]
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 4)).astype(np.float16)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    r = np.maximum(x.astype(np.float32), 0)
    ref = np.maximum((r - r.mean((2, 3), keepdims=True)) / np.sqrt(r.var((2, 3), keepdims=True) + 1e-5), 0)
    assert y.dtype == np.float16 and np.abs(y.astype(np.float32) - ref).max() < 2e-3
