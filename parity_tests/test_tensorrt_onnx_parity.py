"""Parity of the TensorRT-ready ONNX files against PyTorch, in ONNX Runtime (CPU), with the same budgets
as every other format (:data:`~modnet_edge.parity_tests.parity.BUDGETS`).

What is measured is the *graph TensorRT will build*: FP32 (also the input of TensorRT 10's weakly
typed FP16 build), the strongly typed FP16 graph (InstanceNormalization in FP32), and the INT8 Q/DQ
graph (TensorRT placement, calibrated on person photos that are not the parity portraits).  ONNX
Runtime evaluates Q/DQ as quantize-dequantize rounding at exactly the points TensorRT quantizes, so
the INT8 figure is the model's quantization error, not a runtime's.  The INT8 file keeps the
MobileNetV2 backbone in float (the default ``keep_float``): quantizing it is what breaks the INT8
budget on this network, and it holds only ~10 % of the multiply-accumulates (the high-resolution
branch holds ~48 %), so TensorRT still runs most of the work in INT8.  Engines themselves are
compared with these files on a GPU in ``tests/test_tensorrt_gpu.py``.

Gating follows the suite's policy (``parity_gate`` in ``conftest.py``): every budget gates a user
checkpoint (``MODNET_EDGE_PARITY_CHECKPOINT``); on the built-in toy checkpoint fp32 gates exactly and
fp16/int8 are sanity-bounded, with their verdicts against the real budgets printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modnet_edge.parity_tests.expected_misses import gated
from modnet_edge.parity_tests.parity import BUDGETS, ParityReport, run_parity

pytestmark = pytest.mark.slow

SIZE = (256, 256)
CALIBRATION_SIZE = 16
SHARED_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "person-seg" / "image"
INT8_OPTIONS = {"calibration_method": "minmax"}  # keep_float: the default, the MobileNetV2 backbone


def _calibration():
    from modnet_edge.calibration import CalibrationSource

    if SHARED_PHOTOS.is_dir():
        return CalibrationSource.from_folder(SHARED_PHOTOS, size=CALIBRATION_SIZE, seed=0)
    return CalibrationSource.from_synthetic(CALIBRATION_SIZE, seed=1234)


@pytest.fixture(scope="module")
def trt_onnx(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three TensorRT-ready files, plus full INT8 (every Conv quantized, ``keep_float=()``) to show
    what the default's float backbone buys."""
    import modnet_edge

    out = tmp_path_factory.mktemp("parity-trt-onnx")
    calibration = _calibration()

    def int8(name: str, **options) -> Path:
        return modnet_edge.export(trained_checkpoint, "tensorrt-onnx", "int8", out / name, static_shape=SIZE,
                                  calibration=calibration, calibration_cache=out / "cache", **INT8_OPTIONS, **options)

    return {
        "fp32": modnet_edge.export(trained_checkpoint, "tensorrt-onnx", "fp32", out / "m.fp32.trt.onnx",
                                   static_shape=SIZE),
        "fp16": modnet_edge.export(trained_checkpoint, "tensorrt-onnx", "fp16", out / "m.fp16.trt.onnx",
                                   static_shape=SIZE),
        "int8": int8("m.int8.trt.onnx"),
        "int8-full": int8("m.int8-full.trt.onnx", keep_float=()),
    }


@pytest.fixture(scope="module")
def report(trt_onnx: dict[str, Path], parity_images: Path, record_parity) -> ParityReport:
    """One parity run over all four files (one PyTorch reference pass)."""
    result = run_parity(list(trt_onnx.values()), images=parity_images, progress=False)
    assert "folder" in result.image_source
    shipped = [r for r in result.results if not Path(r.artifact).name.startswith("m.int8-full")]
    record_parity(ParityReport(shipped, result.images, result.image_source))
    return result


SHIPPED = {"m.fp32.trt.onnx": "fp32", "m.fp16.trt.onnx": "fp16", "m.int8.trt.onnx": "int8"}


@pytest.mark.parametrize("name", gated(SHIPPED))
def test_tensorrt_ready_onnx_within_budget(name: str, report: ParityReport, parity_gate) -> None:
    """fp32, fp16 and the default int8 file, each against its budget."""
    result = next(r for r in report.results if Path(r.artifact).name == name)
    assert result.format == "tensorrt-onnx" and result.precision == SHIPPED[name]
    assert result.budget == BUDGETS[result.precision]
    parity_gate(report, only=result)


def test_full_int8_is_what_breaks_the_budget(report: ParityReport, record_parity) -> None:
    """The default keeps the backbone float because quantizing it costs far more drift than the rest."""
    default, full = report.results[2], report.results[3]
    record_parity(ParityReport([full], report.images, report.image_source))
    assert Path(full.artifact).name == "m.int8-full.trt.onnx"
    assert full.drift.mse > 5 * default.drift.mse, report.table()


def test_int8_file_records_its_quantization(trt_onnx: dict[str, Path]) -> None:
    from modnet_edge.core import read_manifest

    info = read_manifest(trt_onnx["int8"]).extra["tensorrt"]
    q = info["quantization"]
    assert q["activations"] == "int8 symmetric per-tensor" and q["keep_float"] == ["/backbone/"]
    assert q["calibration"]["samples"] == CALIBRATION_SIZE and q["float_nodes"] > 0
    assert 0 < info["graph"]["quantized_convs"] < info["graph"]["convs"]
    assert info["build_modes"] == ["int8", "int8-fp16-flag"] and "--stronglyTyped" in info["trtexec"]["int8"]
    assert info["trtexec"]["int8-fp16-flag"].endswith("--int8 --fp16")
    full = read_manifest(trt_onnx["int8-full"]).extra["tensorrt"]
    assert full["quantization"]["keep_float"] == [] and full["graph"]["quantized_convs"] == full["graph"]["convs"]
