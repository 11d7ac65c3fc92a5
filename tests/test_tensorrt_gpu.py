"""TensorRT engine builder and backend: run only where TensorRT (>= 10) and a CUDA GPU exist.

Never faked: without the ``tensorrt`` module or without CUDA the whole module is skipped with the
reason.  Engines are built from the same TensorRT-ready ONNX files that CI verifies everywhere, and
each engine's output is compared with that ONNX run by ONNX Runtime (CPU) on the same inputs, so
these tests isolate what TensorRT adds.  Budgets against PyTorch use a trained checkpoint when the
``trained_checkpoint`` fixture is available.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA's wheels; needs an NVIDIA GPU)")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU available to PyTorch: TensorRT engines cannot be built or run", allow_module_level=True)

import modnet_edge  # noqa: E402
from modnet_edge.core import ArtifactMetadata, read_manifest  # noqa: E402
from modnet_edge.core.errors import ArtifactError, FeedError, MetadataError  # noqa: E402
from modnet_edge.core.tools import gpu_environment  # noqa: E402
from modnet_edge.exporters.tensorrt_build import build_engine  # noqa: E402
from modnet_edge.core.containers.engine_file import (  # noqa: E402
    EngineMismatchError, export_raw_plan, read_engine_file, write_engine_file)
from modnet_edge.exporters.skeleton import export_artifact  # noqa: E402
from modnet_edge.runtimes.tensorrt_backend import TensorRTBackend  # noqa: E402
from modnet_edge.model.checkpoint import random_checkpoint, read_checkpoint  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
SIZE = (128, 128)
HAS_WEAK_FP16 = hasattr(trt.BuilderFlag, "FP16")  # removed in TensorRT 11
MODES = ["fp32", "fp16", "int8"] + (["fp16-flag", "int8-fp16-flag"] if HAS_WEAK_FP16 else [])
ONNX_OF = {"fp32": "fp32", "fp16-flag": "fp32", "fp16": "fp16", "int8": "int8", "int8-fp16-flag": "int8"}
# engine vs the same ONNX in ONNX Runtime CPU: mean / max absolute difference of the matte
TOLERANCE = {"fp32": (1e-5, 1e-3), "fp16": (5e-3, 0.1), "fp16-flag": (5e-3, 0.1), "int8": (2e-2, 0.5),
             "int8-fp16-flag": (2e-2, 0.5)}


@pytest.fixture(scope="module")
def checkpoint(request: pytest.FixtureRequest):
    try:
        return read_checkpoint(request.getfixturevalue("trained_checkpoint"))
    except pytest.FixtureLookupError:
        return random_checkpoint(0)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, checkpoint) -> dict:
    folder = tmp_path_factory.mktemp("trt")
    onnx = {}
    for precision in ("fp32", "fp16", "int8"):
        extra = {"calibration": "synthetic", "calibration_size": 8, "calibration_cache": False} \
            if precision == "int8" else {}
        onnx[precision] = export_artifact(checkpoint, "tensorrt-onnx", precision, folder / f"m.{precision}.trt.onnx",
                                               static_shape=SIZE, **extra)
    cache = folder / "timing.cache"
    engines = {mode: build_engine(onnx[ONNX_OF[mode]], folder / f"m.{mode}.engine", build_mode=mode,
                                  timing_cache=cache) for mode in MODES}
    return {"folder": folder, "onnx": onnx, "engines": engines, "cache": cache}


def _inputs(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.random((1, 3, *SIZE)) * 2 - 1).astype(np.float32) for _ in range(n)]


def _run(backend, x: np.ndarray) -> np.ndarray:
    name = backend.inputs[0].name
    out = backend.run({name: backend.prepare_input(name, x)})
    return next(iter(out.values())).astype(np.float32)


def test_engines_record_build_environment_and_trtexec(built: dict) -> None:
    env = gpu_environment(0)
    for mode, path in built["engines"].items():
        meta, plan = read_engine_file(path)
        info = meta.extra["tensorrt"]
        assert info["tensorrt_version"] == trt.__version__ and info["gpu_name"] == torch.cuda.get_device_name(0)
        assert info["compute_capability"] == env["compute_capability"] and info["build_mode"] == mode
        assert info["profile"]["static"] and len(plan) == info["plan_bytes"]
        assert ("--fp16" if mode.endswith("-flag") else "--stronglyTyped") in info["trtexec"]
        expected = {"fp16-flag": "fp16", "int8-fp16-flag": "int8"}.get(mode, mode)
        assert read_manifest(path).precision == meta.precision == expected
    assert built["cache"].stat().st_size > 0, "timing cache not written"


@pytest.mark.parametrize("mode", MODES)
def test_engine_matches_its_onnx_in_onnx_runtime(built: dict, mode: str) -> None:
    with modnet_edge.open_backend(built["onnx"][ONNX_OF[mode]], format="tensorrt-onnx") as ort_backend, \
            TensorRTBackend(built["engines"][mode]) as trt_backend:
        for x in _inputs():
            diff = np.abs(_run(trt_backend, x) - _run(ort_backend, x))
            mean_tol, max_tol = TOLERANCE[mode]
            assert diff.mean() <= mean_tol and diff.max() <= max_tol, (mode, diff.mean(), diff.max())


def test_cuda_graph_replay_equals_plain_enqueue(built: dict) -> None:
    with TensorRTBackend(built["engines"]["fp16"], cuda_graph=True) as graphed, \
            TensorRTBackend(built["engines"]["fp16"]) as plain:
        for x in _inputs(3):  # new data each call: the graph must read the refreshed input buffer
            np.testing.assert_array_equal(_run(graphed, x), _run(plain, x))


def test_dynamic_profile_engine_enforces_its_range(built: dict, checkpoint) -> None:
    onnx = export_artifact(checkpoint, "tensorrt-onnx", "fp16", built["folder"] / "dyn.fp16.trt.onnx",
                                profile="1x3x64x64:1x3x96x96:2x3x128x128")
    engine = build_engine(onnx, built["folder"] / "dyn.engine", timing_cache=built["cache"])
    with TensorRTBackend(engine, cuda_graph=True) as backend:
        dtype = backend.inputs[0].dtype
        for shape in [(1, 3, 64, 96), (2, 3, 128, 128), (1, 3, 64, 96)]:
            out = backend.run({"input": np.zeros(shape, dtype)})["matte"]
            assert out.shape == (shape[0], 1, *shape[2:])
        with pytest.raises(FeedError, match="outside the engine's optimisation profile"):
            backend.run({"input": np.zeros((1, 3, 160, 160), dtype)})


def _with_header(src: Path, dst: Path, **changes: str) -> Path:
    meta, plan = read_engine_file(src)
    meta.extra["tensorrt"].update(changes)
    return write_engine_file(dst, plan, meta)


def test_mismatching_engines_are_refused_clearly(built: dict, tmp_path: Path) -> None:
    src = built["engines"]["fp32"]
    other_gpu = _with_header(src, tmp_path / "gpu.engine", gpu_name="Some Other GPU")
    with pytest.raises(EngineMismatchError, match="Some Other GPU"):
        TensorRTBackend(other_gpu)
    with TensorRTBackend(other_gpu, allow_other_gpu=True) as backend:
        assert backend.warnings and _run(backend, _inputs(1)[0]).shape == (1, 1, *SIZE)
    with pytest.raises(EngineMismatchError, match="TensorRT 9.0.0"):
        TensorRTBackend(_with_header(src, tmp_path / "ver.engine", tensorrt_version="9.0.0"))
    with pytest.raises(EngineMismatchError, match="compute capability 1.0"):
        TensorRTBackend(_with_header(src, tmp_path / "cc.engine", compute_capability="1.0"))
    meta, _ = read_engine_file(src)
    garbage = write_engine_file(tmp_path / "garbage.engine", b"\0" * 4096, meta)
    with pytest.raises(ArtifactError, match="could not deserialize"):
        TensorRTBackend(garbage)


def test_raw_plan_loads_as_a_foreign_model(built: dict, tmp_path: Path) -> None:
    raw = export_raw_plan(built["engines"]["fp16"], tmp_path / "m.plan")
    with modnet_edge.open_backend(raw) as backend:
        assert backend.warnings and backend.embedded_metadata is None
    with pytest.raises(MetadataError, match="carries no modnet-edge metadata"):
        modnet_edge.load(raw)
    with modnet_edge.load(raw, preprocessing="modnet-reference") as pred:
        assert pred.predict(np.full((100, 80, 3), 128, np.uint8)).shape == (100, 80)


def test_export_through_the_format_table_keeps_the_onnx(checkpoint, tmp_path: Path) -> None:
    engine = modnet_edge.export(checkpoint, "tensorrt", "fp16", tmp_path / "t.engine", static_shape=SIZE)
    assert (tmp_path / "t.trt.onnx").is_file() and json.loads((tmp_path / "t.engine.manifest.json").read_text())
    meta = ArtifactMetadata.from_json((tmp_path / "t.engine.manifest.json").read_text())
    assert meta.format == "tensorrt" and meta.extra["tensorrt"]["onnx"]["file"] == "t.trt.onnx"
    with modnet_edge.load(engine) as pred:
        alpha = pred.predict(np.full((90, 120, 3), 100, np.uint8))
        assert alpha.shape == (90, 120) and np.isfinite(alpha).all()
    shutil.rmtree(tmp_path)


def test_engines_meet_the_parity_budgets_with_a_trained_checkpoint(built: dict, request: pytest.FixtureRequest) -> None:
    try:
        request.getfixturevalue("trained_checkpoint")
    except pytest.FixtureLookupError:
        pytest.skip("no trained_checkpoint fixture: budgets are only meaningful for a trained network")
    from modnet_edge.parity_tests.parity import run_parity

    report = run_parity([built["engines"][m] for m in MODES], progress=False)
    print(report.table())
    assert report, report.table()
