"""Writers never destroy what a user owns, and a writer killed mid-write leaves nothing behind for long."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modnet_edge.cli import main
from modnet_edge.core import TEMP_MARK, atomic_output, atomic_write_text, write_manifest
from modnet_edge.core.errors import ArtifactError


def _precious(folder: Path) -> Path:
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    return folder


def test_an_existing_folder_is_never_replaced(tmp_path: Path) -> None:
    d = _precious(tmp_path / "d")
    with pytest.raises(ArtifactError, match="existing folder"):
        atomic_write_text(d, "x")
    assert (d / "keep.txt").read_text() == "precious"


def test_export_refuses_a_folder_as_output_in_one_line(tmp_path: Path, capsys) -> None:
    d = _precious(tmp_path / "d")
    assert main(["export", "--format", "onnx", "-o", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "existing folder" in err and str(d) in err
    assert (d / "keep.txt").read_text() == "precious"


def test_output_below_a_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ArtifactError, match="is a file"):
        atomic_write_text(f / "sub" / "m.json", "{}")


def test_our_own_folder_artifact_is_replaced(tmp_path: Path) -> None:
    """A folder artifact (Core ML .mlpackage) whose manifest names it is ours to replace."""
    from modnet_edge.core import ArtifactMetadata, PreprocessSpec

    pkg = tmp_path / "m.mlpackage"
    with atomic_output(pkg, suffix=".mlpackage") as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("old")
    write_manifest(pkg, ArtifactMetadata(format="coreml", precision="fp16", model={}, preprocessing=PreprocessSpec(),
                                         input_name="input", output_name="matte", source={}))
    with atomic_output(pkg, suffix=".mlpackage") as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("new")
    assert (pkg / "a").read_text() == "new"


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".m.onnx.{int(dead.stdout)}.k2j3{TEMP_MARK}"
    stale.write_bytes(b"half an artifact")
    stale_dir = tmp_path / f".m.mlpackage.{int(dead.stdout)}.x9{TEMP_MARK}.mlpackage"
    stale_dir.mkdir()
    live = tmp_path / f".other.{os.getpid()}.ab{TEMP_MARK}"  # a writer still running: left alone
    live.write_bytes(b"in progress")
    user = tmp_path / ".m.onnx.notes"  # the user's hidden file: not ours
    user.write_text("mine")
    atomic_write_text(tmp_path / "report.json", "{}")
    assert not stale.exists() and not stale_dir.exists()
    assert live.exists() and user.read_text() == "mine"


# A writer that SIGKILLs itself at its N-th rename (1: the pending manifest, 2: the artifact, 3: the
# manifest), i.e. at each instant where a pair of files could be left mixed.
_KILL_AT_RENAME = """
import os, signal, sys
from pathlib import Path
from modnet_edge.core import ArtifactMetadata, PreprocessSpec, atomic_output

target, kill_at = Path(sys.argv[1]), int(sys.argv[2])
real_replace, calls = os.replace, [0]

def replace(src, dst):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

os.replace = replace
meta = ArtifactMetadata(format="onnx", precision="fp16", model={}, preprocessing=PreprocessSpec(),
                        input_name="input", output_name="matte", source={})
with atomic_output(target, manifest=lambda: meta, seal=False) as tmp:
    tmp.write_text("new artifact")
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 99])
def test_artifact_and_manifest_change_as_one_pair_whenever_killed(tmp_path: Path, kill_at: int) -> None:
    from modnet_edge.core import ArtifactMetadata, PreprocessSpec, read_manifest

    target = tmp_path / "m.onnx"
    old = ArtifactMetadata(format="onnx", precision="fp32", model={}, preprocessing=PreprocessSpec(),
                           input_name="input", output_name="matte", source={})
    with atomic_output(target, manifest=lambda: old, seal=False) as tmp:
        tmp.write_text("old artifact")
    proc = subprocess.run([sys.executable, "-c", _KILL_AT_RENAME, str(target), str(kill_at)], capture_output=True)
    assert proc.returncode == (0 if kill_at == 99 else -9), proc.stderr.decode()[-800:]
    meta = read_manifest(target)  # never "sha256 differs": the reader sees one whole pair
    expected = {"old artifact": "fp32", "new artifact": "fp16"}[target.read_text()]
    assert meta is not None and meta.precision == expected
    if kill_at == 3:
        assert target.read_text() == "new artifact"  # the artifact was in place: the new pair is adopted
    atomic_write_text(tmp_path / "next.json", "{}")  # the next write to the folder clears dead writers' temps
    assert not [p.name for p in tmp_path.iterdir() if TEMP_MARK in p.name]


def test_export_never_overwrites_a_file_that_is_not_ours(tmp_path: Path, capsys) -> None:
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "c.pt", build_from_checkpoint(random_checkpoint()))
    mine = tmp_path / "thesis.onnx"
    mine.write_text("a user's file that happens to end in .onnx")
    assert main(["export", str(ckpt), "-o", str(mine), "--static-shape", "64x64"]) == 2
    assert "not an artifact written by modnet-edge" in capsys.readouterr().err
    assert mine.read_text().startswith("a user's file")
    ours = tmp_path / "m.onnx"
    for _ in range(2):  # an artifact of ours is replaced, manifest and all
        assert main(["export", str(ckpt), "-o", str(ours), "--static-shape", "64x64"]) == 0
