"""`modnet-edge quality`: our network and a peer model on the same labelled images, in one table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from modnet_edge.benchmarks.quality import compare_quality, iou
from modnet_edge.cli import main
from modnet_edge.core.errors import ConfigError


def _peer(path: Path) -> Path:
    """A stand-in for MediaPipe's selfie model: NHWC 256x256 in [0, 1] -> sigmoid(20 (red - 0.5))."""
    x = helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, 256, 256, 3])
    y = helper.make_tensor_value_info("activation_10", TensorProto.FLOAT, [1, 256, 256, 1])
    starts = helper.make_tensor("s", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("e", TensorProto.INT64, [1], [1])
    axes = helper.make_tensor("a", TensorProto.INT64, [1], [3])
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    gain = helper.make_tensor("gain", TensorProto.FLOAT, [], [20.0])
    nodes = [helper.make_node("Slice", ["input_1", "s", "e", "a"], ["red"]),
             helper.make_node("Sub", ["red", "half"], ["centred"]),
             helper.make_node("Mul", ["centred", "gain"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["activation_10"])]
    graph = helper.make_graph(nodes, "peer", [x], [y], initializer=[starts, ends, axes, half, gain])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _folders(root: Path) -> tuple[Path, Path]:
    yy, xx = np.mgrid[0:96, 0:128]
    person = ((((xx - 64) / 30.0) ** 2 + ((yy - 70) / 45.0) ** 2) <= 1)
    rgb = np.where(person[..., None], [220, 60, 60], [20, 120, 30]).astype(np.uint8)
    for kind, target in (("portraits", "matte"), ("seg", "mask")):
        (root / kind / "image").mkdir(parents=True)
        (root / kind / target).mkdir()
        for stem in ("p_09ba26b4", "unseen1"):
            Image.fromarray(rgb).save(root / kind / "image" / f"{stem}.png")
            Image.fromarray(person.astype(np.uint8) * 255).save(root / kind / target / f"{stem}.png")
    return root / "portraits", root / "seg"


def test_starter_and_a_peer_in_one_table(tmp_path: Path) -> None:
    portraits, seg = _folders(tmp_path)
    peer = _peer(tmp_path / "selfie.onnx")
    report = compare_quality(["starter", f"mediapipe-selfie={peer}"], portraits=portraits, segmentation=seg,
                             progress=False)
    rows = {(r["model"], r["images"]): r for r in report.rows}
    # the starter's record names its training photos: those are reported apart, never mixed with unseen ones
    assert rows[("starter (built-in)", "seen in training")]["count"] == 1
    assert rows[("starter (built-in)", "unseen portraits")]["count"] == 1
    assert rows[("mediapipe-selfie", "unseen portraits")]["count"] == 2
    peer_iou = rows[("mediapipe-selfie", "person masks")]["metrics"]["iou"]
    assert peer_iou > 0.95  # the red person, found by the stand-in's red channel, fed in [0, 1] NHWC at 256
    for r in report.rows:
        assert all(np.isfinite(v) for v in r["metrics"].values())
    table = report.table()
    assert "starter (built-in)" in table and "mediapipe-selfie" in table and "IoU" in table
    assert report.conditions["peers"]["mediapipe-selfie"]["license"] == "Apache-2.0"


def test_quality_command_and_bad_input(tmp_path: Path, capsys) -> None:
    portraits, _ = _folders(tmp_path)
    assert main(["quality", "starter", "--portraits", str(portraits), "--json", str(tmp_path / "q.json"),
                 "--no-progress"]) == 0
    assert "seen in training" in capsys.readouterr().out
    assert json.loads((tmp_path / "q.json").read_text())["rows"]
    assert main(["quality", "nope=x.tflite", "--portraits", str(portraits)]) == 2
    assert "unknown peer" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="portraits folder"):
        compare_quality(["starter"])
    assert iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0 and iou(np.ones((4, 4)), np.zeros((4, 4))) == 0.0
