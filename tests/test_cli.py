"""The command line: every subcommand has --help, mirrors the API, and fails with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modnet_edge.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: modnet-edge " + command in capsys.readouterr().out


def test_export_predict_parity_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--precision", "fp32", "-o", str(onnx_path)]) == 0
    assert "built-in 'starter' weights" in capsys.readouterr().out
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(images / name)
    out = tmp_path / "out"
    assert main(["predict", str(onnx_path), str(images), "-o", str(out)]) == 0
    assert "built-in weights 'starter'" in capsys.readouterr().err  # predict names the network behind it
    assert sorted(p.name for p in out.iterdir()) == ["a.alpha.png", "a.composite.png", "b.alpha.png",
                                                    "b.composite.png"]
    assert Image.open(out / "a.alpha.png").size == (90, 70)
    report = tmp_path / "parity.json"
    assert main(["parity", str(onnx_path), "--images", str(images), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["pass"] is True and data["artifacts"][0]["drift"]["mse"] < 1e-9
    assert "PASS" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "missing.onnx"), "x.png", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modnet-edge predict: error:") and "missing.onnx" in err and "Traceback" not in err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"garbage")
    assert main(["export", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "bad.ckpt" in capsys.readouterr().err


def test_formats_lists_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    assert "onnx" in out and "pytorch" in out
