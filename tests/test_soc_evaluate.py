"""SOC adaptation, evaluate() and the train/adapt/evaluate commands, on tiny inputs."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import modnet_edge
from modnet_edge.cli import main
from modnet_edge.core.errors import ConfigError, DataError
from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, read_checkpoint, save_checkpoint
from modnet_edge.training.soc import adapt
from modnet_edge.training.synthetic import render_portrait
from modnet_edge.core.videos import VideoWriter


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "random.pt"
    return save_checkpoint(path, build_from_checkpoint(random_checkpoint(1)), provenance={"note": "test"})


def _video(path: Path, frames: int = 6, size: int = 64) -> Path:
    with VideoWriter(path, Fraction(10), size, size) as w:
        for t in range(frames):
            w.write(render_portrait(7, t, size, size).rgb)
    return path


@pytest.mark.video
def test_soc_adapts_convolutions_only_and_reports_consistency(tmp_path, small_checkpoint):
    video = _video(tmp_path / "clip.mp4")
    threads = torch.get_num_threads()
    out = adapt(small_checkpoint, video, tmp_path / "soc", steps=4, size=64, holdout=0.34, progress=False,
                threads=1, device="cpu")
    assert torch.get_num_threads() == threads  # a process-wide setting: given back
    before, after = read_checkpoint(small_checkpoint), read_checkpoint(out)
    bn_keys = [k for k in before.state_dict if "running_" in k or k.endswith("num_batches_tracked")]
    assert bn_keys and all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in bn_keys)
    bn_affine = [k[: -len(".running_mean")] for k in bn_keys if k.endswith("running_mean")]
    assert all(torch.equal(before.state_dict[f"{m}.weight"], after.state_dict[f"{m}.weight"]) for m in bn_affine)
    convs = [k for k in before.state_dict if k.endswith(".weight") and before.state_dict[k].ndim == 4]
    assert any(not torch.equal(before.state_dict[k], after.state_dict[k]) for k in convs)
    summary = json.loads((tmp_path / "soc" / "soc_summary.json").read_text())
    assert summary["frames"] == 6 and summary["held_out"] == 2
    assert np.isfinite(summary["before"]["consistency"]) and np.isfinite(summary["after"]["consistency"])
    assert after.provenance["soc"]["steps"] == 4 and "SOC-adapted" in after.provenance["note"]
    with pytest.raises(ConfigError, match="unknown config key"):
        adapt(small_checkpoint, video, tmp_path / "x", stepz=3)


def test_evaluate_returns_the_five_metrics_and_writes_json(tmp_path, small_checkpoint):
    root = tmp_path / "data"
    (root / "image").mkdir(parents=True)
    (root / "alpha").mkdir()
    for i in range(2):
        s = render_portrait(3, i, 64, 64)
        Image.fromarray(s.rgb).save(root / "image" / f"x{i}.png")
        Image.fromarray((s.alpha * 255).astype(np.uint8)).save(root / "alpha" / f"x{i}.png")
    report = tmp_path / "eval.json"
    result = modnet_edge.evaluate(small_checkpoint, root, json_path=report, progress=False)
    assert set(result) == {"mse", "mad", "sad", "grad", "conn"}
    assert all(np.isfinite(v) and v >= 0 for v in result.values())
    assert 0 < result["mse"] <= result["mad"] <= 1  # MSE <= MAD for errors within [0, 1]
    data = json.loads(report.read_text())
    assert data["images"] == 2 and set(data["per_image"]) == {"x0.png", "x1.png"}
    assert main(["evaluate", str(small_checkpoint), "--data", str(root), "--no-progress", "--limit", "1"]) == 0
    (root / "alpha" / "x1.png").unlink()
    with pytest.raises(DataError, match="unmatched"):
        modnet_edge.evaluate(small_checkpoint, root, progress=False)


def test_commands_report_bad_configs_in_one_line(tmp_path, capsys):
    assert main(["train", "--set", "learnig_rate=0.1", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "modnet-edge train: error:" in err and "learnig_rate" in err
    bad = tmp_path / "cfg.json"
    bad.write_text(json.dumps({"size": 64, "bogus": 1}))
    assert main(["train", str(bad), "-o", str(tmp_path / "r")]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["adapt", str(tmp_path / "missing.pt"), str(tmp_path), "-o", str(tmp_path / "s")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.video
def test_predict_command_accepts_videos(tmp_path, small_checkpoint, capsys):
    video = _video(tmp_path / "walk.mp4", frames=4)
    assert main(["predict", str(small_checkpoint), str(video), "-o", str(tmp_path / "out"), "--ofd",
                 "--threads", "1"]) == 0
    assert "4 frames" in capsys.readouterr().out
    assert (tmp_path / "out" / "walk.alpha.mp4").stat().st_size > 0
    assert (tmp_path / "out" / "walk.composite.mp4").stat().st_size > 0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 20)
    assert main(["predict", str(small_checkpoint), str(broken), "-o", str(tmp_path / "out2")]) == 2
    assert "not a readable video" in capsys.readouterr().err
