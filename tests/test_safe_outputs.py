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


# A writer that SIGKILLs itself just before its N-th commit step -- a record append, a rename, the removal
# of the old package -- i.e. at each instant where an artifact and its manifest could be left mixed or a
# package missing.  A "package" is a folder artifact like a Core ML .mlpackage.
_KILL_AT_STEP = """
import os, shutil, signal, sys
from pathlib import Path
from modnet_edge.core import ArtifactMetadata, PreprocessSpec, atomic_output
from modnet_edge.core import files

target, kill_at, kind, content = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
steps = [0]

def step(real):
    def wrapped(*args, **kwargs):
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapped

meta = ArtifactMetadata(format="coreml" if kind == "package" else "onnx", precision="fp16", model={},
                        preprocessing=PreprocessSpec(), input_name="input", output_name="matte", source={})
with atomic_output(target, suffix=".mlpackage" if kind == "package" else None, manifest=lambda: meta,
                   seal=False) as tmp:
    if kind == "package":
        (tmp / "Data").mkdir(parents=True)
        (tmp / "Data" / "weights.bin").write_text(content)
    else:
        tmp.write_text(content)
    os.replace, shutil.rmtree = step(os.replace), step(shutil.rmtree)  # the commit's steps from here on
    files._append_record = step(files._append_record)
print(steps[0])
"""

_STEPS = {"file": 3, "package": 5}  # record, [old package aside], artifact in, manifest in, [old package removed]


def _content(target: Path) -> str:
    return (target / "Data" / "weights.bin").read_text() if target.is_dir() else target.read_text()


def _write(target: Path, kind: str, content: str, kill_at: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _KILL_AT_STEP, str(target), str(kill_at), kind, content],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["file", "package"])
def test_artifact_and_manifest_change_as_one_pair_whenever_killed(tmp_path: Path, kind: str) -> None:
    """Killed before each commit step in turn: every reader finds the whole old pair or the whole new
    one (never a missing package, never "sha256 differs"), and the next write leaves no temporaries."""
    from modnet_edge.core import read_manifest
    from modnet_edge.runtimes.loader import detect_format

    name = "m.mlpackage" if kind == "package" else "m.onnx"
    for kill_at in range(1, _STEPS[kind] + 2):
        folder = tmp_path / f"kill-{kill_at}"
        folder.mkdir()
        target = folder / name
        first = _write(target, kind, "old")
        assert first.returncode == 0, first.stderr[-800:]
        proc = _write(target, kind, "new", kill_at)
        killed = kill_at <= _STEPS[kind]
        assert proc.returncode == (-9 if killed else 0), proc.stderr[-800:]
        assert killed or int(proc.stdout) == _STEPS[kind]  # every step of the commit was covered
        assert detect_format(target).name == ("coreml" if kind == "package" else "onnx")  # a reader puts it back
        meta = read_manifest(target)
        assert meta is not None and _content(target) in ("old", "new")
        assert meta.precision == "fp16" and read_manifest(target) is not None
        if not killed:
            assert _content(target) == "new"
        assert _write(folder / "next.onnx", "file", "x").returncode == 0
        left = [p.name for p in folder.iterdir() if TEMP_MARK in p.name]
        assert not left, (kill_at, left)
        assert _write(target, kind, "newer").returncode == 0 and _content(target) == "newer"  # still ours


_SLOW_WRITER = """
import sys, time
from pathlib import Path
from modnet_edge.core import ArtifactMetadata, PreprocessSpec, atomic_output

target, content, delay = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
meta = ArtifactMetadata(format="coreml", precision="fp16", model={}, preprocessing=PreprocessSpec(),
                        input_name="input", output_name="matte", source={}, extra={"writer": content})
with atomic_output(target, suffix=".mlpackage", manifest=lambda: meta, seal=False) as tmp:
    (tmp / "Data").mkdir(parents=True)
    (tmp / "Data" / "weights.bin").write_text(content)
    time.sleep(delay)
"""


def test_two_writers_to_one_package_end_with_one_consistent_pair(tmp_path: Path) -> None:
    """Two writers overlap (a slow one and a fast one, the fast one killed or not): whoever commits last,
    the package and its manifest are one pair; the manifest describes the package in place."""
    from modnet_edge.core import read_manifest

    for trial, kill_fast in enumerate((False, True, False)):
        target = tmp_path / f"t{trial}" / "m.mlpackage"
        target.parent.mkdir()
        slow = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target), "slow", "3"])
        fast = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target), "fast", "0.5"])
        if kill_fast:
            import time

            time.sleep(2.5 + trial * 0.1)
            fast.kill()
        assert slow.wait(120) == 0 and fast.wait(120) in (0, -9)
        meta = read_manifest(target)
        assert meta is not None and meta.extra["writer"] == _content(target)
        assert not [p for p in target.parent.iterdir() if TEMP_MARK in p.name]


def test_export_never_overwrites_a_file_that_is_not_ours(tmp_path: Path, capsys) -> None:
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    ckpt = save_checkpoint(tmp_path / "c.pt", build_from_checkpoint(random_checkpoint()))
    mine = tmp_path / "thesis.onnx"
    mine.write_text("a user's file that happens to end in .onnx")
    assert main(["export", str(ckpt), "-o", str(mine), "--static-shape", "64x64"]) == 2
    assert "not written by modnet-edge" in capsys.readouterr().err
    assert mine.read_text().startswith("a user's file")
    ours = tmp_path / "m.onnx"
    for _ in range(2):  # an artifact of ours is replaced, manifest and all
        assert main(["export", str(ckpt), "-o", str(ours), "--static-shape", "64x64"]) == 0
