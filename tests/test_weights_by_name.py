"""Built-in weights by name, everywhere a model is taken: load(), predict, export, parity, info (issue 27).

A weights name (``starter``, ``starter-v1``) is a name only when no file of that name exists; no model at
all is the default weights, as ``load_network()`` has always done.  ``predict``'s first positional is read
for what it is (model or input), and the weights note every command prints is one short line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modnet_edge
from modnet_edge.cli import main
from modnet_edge.core.errors import ArtifactError
from modnet_edge.model.weights import ALIASES, describe_weights


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_load_takes_a_weights_name_or_nothing(photo: Path) -> None:
    by_name = modnet_edge.load("starter")
    default = modnet_edge.load()
    versioned = modnet_edge.load(ALIASES["starter"])
    alphas = [p.predict(str(photo)) for p in (by_name, default, versioned)]
    assert alphas[0].shape == (48, 64)
    assert np.array_equal(alphas[0], alphas[1]) and np.array_equal(alphas[0], alphas[2])  # one network
    assert by_name.metadata.source["weights"] == ALIASES["starter"]  # the row's own name is recorded
    assert str(by_name.backend.path) == f"<built-in weights {ALIASES['starter']}>"
    for p in (by_name, default, versioned):
        p.close()


def test_a_file_named_like_weights_is_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("starter").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="cannot tell the model format"):
        modnet_edge.load("starter")


def test_predict_with_no_model_a_name_or_a_model_anywhere_among_options(tmp_path: Path, photo: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    outs = [tmp_path / f"out{i}" for i in range(3)]
    for argv, out in zip([[str(photo), "-o", str(outs[0])],  # no model: the default weights
                          ["starter", str(photo), "-o", str(outs[1])],
                          ["starter", "-o", str(outs[2]), str(photo)]], outs):  # options between positionals
        assert main(["predict", *argv]) == 0, argv
        written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # not our folder record
        assert written == ["photo.alpha.png", "photo.composite.png"]
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if line.startswith("note: built-in weights")]
    assert len(notes) == 3 and all(len(line) < 120 for line in notes)  # one short line, not a paragraph
    assert "modnet-edge weights" in notes[0]


@pytest.mark.parametrize("argv, message", [
    (["startr", "{photo}"], "startr: neither a model .* nor an image, a video or a folder \\(did you mean starter\\?\\)"),
    (["{photo}", "starter"], "starter: a model among the inputs; the model comes first"),
    (["starter"], "starter: a model, but no image, video or folder to matte follows it"),
    (["{missing}.onnx", "{photo}"], "model file does not exist"),
])
def test_predict_says_which_argument_is_which(argv, message, tmp_path: Path, photo: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(photo=photo, missing=tmp_path / "missing") for a in argv]
    assert main(["predict", *args, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("modnet-edge predict: error:")
    assert re.search(message, err), err


def test_export_info_and_parity_take_weights_names(tmp_path: Path, photo: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    onnx = tmp_path / "s.onnx"
    assert main(["export", "starter", "--static-shape", "64", "-o", str(onnx)]) == 0
    assert main(["info", "starter"]) == 0
    info = capsys.readouterr().out
    assert f"<built-in weights {ALIASES['starter']}>: pytorch" in info and "parameters: 6,487,075" in info
    assert main(["info", str(onnx)]) == 0
    info = capsys.readouterr().out
    assert "trained_on" not in info and max(len(line) for line in info.splitlines()) < 200  # no prose dump
    images = tmp_path / "images"
    images.mkdir()
    photo.rename(images / photo.name)
    report = tmp_path / "parity.json"
    assert main(["parity", str(onnx), "--reference", "starter", "--images", str(images), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["artifacts"][0]["drift"]["mse"] < 1e-9


def test_the_weights_note_is_one_short_line() -> None:
    line = describe_weights({"weights": "starter"})
    assert line is not None and "\n" not in line and len(line) < 120
    assert line.startswith(f"built-in weights '{ALIASES['starter']}'") and "held-out" in line
    assert describe_weights({"kind": "file"}) is None


def test_the_starter_preset_trains_the_default_weights() -> None:
    """``train starter`` reproduces what ``starter`` names (the default stays v1 until a version beats it on
    held-out portraits, person masks and person-free photos: modnet_edge/assets/weights/README.md)."""
    from modnet_edge.model.weights import ALIASES
    from modnet_edge.training.config import STAGED_PRESETS

    assert STAGED_PRESETS["starter"] == STAGED_PRESETS[ALIASES["starter"]]


def test_a_path_to_the_weights_file_as_reference_leaves_the_named_weights_intact(tmp_path: Path,
                                                                                photo: Path) -> None:
    """The built-in file read by path (as stored, fp16) and by name (loaded as fp32) are two readings: the
    first must not stand in for the second later in the process (parity then refused every artifact of
    the built-in weights: "weights hash differs")."""
    from modnet_edge.model.weights import weights_file

    artifact = modnet_edge.export(None, "onnx", "fp32", tmp_path / "m.onnx", static_shape=(64, 64))
    by_path = modnet_edge.parity([artifact], images=[photo], reference=weights_file("starter-v1"), progress=False)
    by_record = modnet_edge.parity([artifact], images=[photo], progress=False)
    assert by_path.results[0].passed and by_record.results[0].passed
