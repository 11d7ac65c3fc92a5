"""The gate itself: an artifact over its budget fails it, in the suite and on the command line.

The over-budget artifact is real: an fp32 ONNX export of a network whose one convolution was nudged by
0.5%, checked against the un-nudged checkpoint as its reference.  (A gate that cannot fail would pass
every other test in this suite.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modnet_edge
from modnet_edge.cli import main
from modnet_edge.parity_tests.parity import run_parity
from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint
from modnet_edge.model.weights import load_weights


@pytest.fixture(scope="module")
def over_budget(tmp_path_factory) -> tuple[Path, Path]:
    """(fp32 ONNX of a nudged starter network, the un-nudged starter checkpoint)."""
    out = tmp_path_factory.mktemp("gate")
    ckpt = load_weights("starter")
    reference = save_checkpoint(out / "reference.pt", build_from_checkpoint(ckpt), provenance=ckpt.provenance)
    nudged = build_from_checkpoint(ckpt)
    with torch.no_grad():
        nudged.f_branch.conv_f[0].layers[0].weight.mul_(1.005)
    artifact = modnet_edge.export(save_checkpoint(out / "nudged.pt", nudged), "onnx", "fp32", out / "nudged.onnx",
                                  static_shape=(128, 128))
    return artifact, reference


def test_over_budget_artifact_fails_the_gate(over_budget, parity_images, parity_gate) -> None:
    artifact, reference = over_budget
    report = run_parity([artifact], images=parity_images, reference=reference, limit=2, progress=False)
    (result,) = report.results
    assert result.precision == "fp32" and not result.passed and not report
    assert result.drift.mse > result.budget.mse  # measured over the fp32 budget, not merely "different"
    with pytest.raises(AssertionError, match="over budget"):
        parity_gate(report)


def test_parity_command_exits_1_on_an_over_budget_artifact(over_budget, parity_images, tmp_path, capsys) -> None:
    artifact, reference = over_budget
    code = main(["parity", str(artifact), "--images", str(parity_images), "--reference", str(reference),
                 "--limit", "2", "--json", str(tmp_path / "p.json")])
    assert code == 1
    assert "FAIL" in capsys.readouterr().out
    assert (tmp_path / "p.json").is_file()
