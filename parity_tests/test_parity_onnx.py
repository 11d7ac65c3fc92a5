"""ONNX artifacts (fp32 and fp16, dynamic and static) against the PyTorch reference, within budget."""

from __future__ import annotations

from pathlib import Path

import pytest

import modnet_edge
from modnet_edge.parity_tests.parity import BUDGETS, run_parity

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def onnx_artifacts(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("parity-onnx")
    return [
        modnet_edge.export(trained_checkpoint, "onnx", "fp32", out / "dynamic.fp32.onnx"),
        modnet_edge.export(trained_checkpoint, "onnx", "fp16", out / "dynamic.fp16.onnx"),
        modnet_edge.export(trained_checkpoint, "onnx", "fp16", out / "keepio.fp16.onnx", keep_io_types=True),
        modnet_edge.export(trained_checkpoint, "onnx", "fp32", out / "static512.fp32.onnx", static_shape=(512, 512)),
    ]


def test_onnx_artifacts_within_budget(onnx_artifacts: list[Path], parity_images: Path | None, parity_gate,
                                      tmp_path: Path) -> None:
    report = run_parity(onnx_artifacts, images=parity_images, progress=False)
    report.write_json(tmp_path / "parity.json")
    assert ("folder" in report.image_source) == (parity_images is not None)
    for result in report.results:
        assert result.budget == BUDGETS[result.precision]
    parity_gate(report)
