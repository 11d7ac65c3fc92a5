"""ONNX artifacts (fp32 and fp16, dynamic and static) against the PyTorch reference, within budget."""

from __future__ import annotations

from pathlib import Path

import pytest

import modnet_edge
from modnet_edge.parity_tests.expected_misses import gated
from modnet_edge.parity_tests.parity import BUDGETS, ParityReport, run_parity

pytestmark = pytest.mark.slow


ARTIFACTS = {  # file name -> (precision, export options)
    "dynamic.fp32.onnx": ("fp32", {}),
    "dynamic.fp16.onnx": ("fp16", {}),
    "keepio.fp16.onnx": ("fp16", {"keep_io_types": True}),
    "static512.fp32.onnx": ("fp32", {"static_shape": (512, 512)}),
}


@pytest.fixture(scope="module")
def onnx_report(trained_checkpoint: Path, parity_images: Path, tmp_path_factory: pytest.TempPathFactory,
                record_parity) -> ParityReport:
    out = tmp_path_factory.mktemp("parity-onnx")
    paths = [modnet_edge.export(trained_checkpoint, "onnx", precision, out / name, **options)
             for name, (precision, options) in ARTIFACTS.items()]
    report = run_parity(paths, images=parity_images, progress=False)
    report.write_json(out / "parity.json")
    assert "folder" in report.image_source
    record_parity(report)
    return report


@pytest.mark.parametrize("name", gated(ARTIFACTS))
def test_onnx_artifact_within_budget(name: str, onnx_report: ParityReport, parity_gate) -> None:
    result = next(r for r in onnx_report.results if Path(r.artifact).name == name)
    assert result.precision == ARTIFACTS[name][0] and result.budget == BUDGETS[result.precision]
    parity_gate(onnx_report, only=result)
