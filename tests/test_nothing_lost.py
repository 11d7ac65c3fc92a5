"""Nothing lost, second sweep (issue 26): every case the sweep found, as a test that failed before the fix.

Outputs are ours (by our own record) or refused, whatever command writes; integrity cannot be switched
off; a bad calibration cache entry is recalculated, not trusted; every failure is one line with the right
exit status (2 bad input, 3 the machine).  Most cases use a tiny hand-made artifact, so they take
milliseconds; the kill tests of files and packages are in tests/test_safe_outputs.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import modnet_edge
from modnet_edge.cli import main
from modnet_edge.core import (INTEGRITY_PLACEHOLDER, METADATA_KEY, RECORD_NAME, TEMP_MARK, ArtifactMetadata,
                              PreprocessSpec, atomic_write_text, manifest_path)
from modnet_edge.core.errors import (ArtifactError, CheckpointError, EnvironmentFailure, InputImageError,
                                     MetadataError, ModnetEdgeError)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SIDE = 32


def _tiny_model(weight: float = 0.0):
    """input (1, 3, 32, 32) -> mean over channels + a weight plane -> sigmoid -> matte (1, 1, 32, 32)."""
    from onnx import TensorProto, helper, numpy_helper

    plane = np.linspace(-1, 1, SIDE * SIDE, dtype=np.float32).reshape(1, 1, SIDE, SIDE) + weight
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
         helper.make_node("Add", ["m", "w"], ["s"]), helper.make_node("Sigmoid", ["s"], ["matte"])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("matte", TensorProto.FLOAT, [1, 1, SIDE, SIDE])],
        [numpy_helper.from_array(plane, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def tiny_artifact(path: Path, weight: float = 0.0) -> Path:
    """A sealed ONNX artifact with its manifest, written by the real writer (milliseconds)."""
    from modnet_edge.exporters.skeleton import write_artifact

    meta = ArtifactMetadata(format="onnx", precision="fp32", model={"arch": "tiny"},
                            preprocessing=PreprocessSpec(fixed_size=(SIDE, SIDE)), input_shape=[1, 3, SIDE, SIDE])
    return write_artifact(path, meta, _tiny_model(weight))


@pytest.fixture()
def art(tmp_path: Path) -> Path:
    return tiny_artifact(tmp_path / "m.onnx")


def _photo(path: Path, value: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((SIDE * 2, SIDE * 2, 3), value, np.uint8)).save(path)
    return path


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"modnet-edge {command}: error:"), err
    return err


# ------------------------------------------------------------------------------------------------------
# 1. Every output is ours or refused
# ------------------------------------------------------------------------------------------------------
def test_predict_never_replaces_a_users_file_named_like_an_output(art, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    _photo(tmp_path / "in" / "a.jpg")
    out.mkdir()
    (out / "a.alpha.png").write_bytes(b"the user's own matte")
    assert main(["predict", str(art), str(tmp_path / "in"), "-o", str(out)]) == 2
    assert "a.alpha.png" in _one_line_error(capsys, "predict")
    assert (out / "a.alpha.png").read_bytes() == b"the user's own matte"
    assert not (out / "a.composite.png").exists()  # refused before any work


def test_predict_into_its_input_folder_never_reads_its_own_outputs(art, tmp_path, capsys) -> None:
    s = tmp_path / "s"
    _photo(s / "a.jpg")
    for _ in range(2):  # the second run replaces its own mattes and does not matte them
        assert main(["predict", str(art), str(s), "-o", str(s)]) == 0
    names = sorted(p.name for p in s.iterdir())
    assert names == [RECORD_NAME, "a.alpha.png", "a.composite.png", "a.jpg"], names
    (s / "b.alpha.png").write_bytes((s / "a.alpha.png").read_bytes())  # the user's copy: an input now
    _photo(s / "b.jpg")
    capsys.readouterr()
    assert main(["predict", str(art), str(s), "-o", str(s)]) == 2  # b.jpg's matte would replace it
    assert "b.alpha.png" in _one_line_error(capsys, "predict")


def test_export_decides_ours_by_record_not_by_bytes_and_refuses_links(art, tmp_path, capsys) -> None:
    notes = tmp_path / "notes.onnx"
    notes.write_text('my notes on modnet_edge: "toolkit_version" and the metadata key')  # looks like ours
    assert main(["export", "nothing.pt", "-o", str(notes)]) == 2
    assert "not written by modnet-edge" in _one_line_error(capsys, "export")
    assert notes.read_text().startswith("my notes")
    user_manifest = tmp_path / "x.onnx.manifest.json"
    user_manifest.write_text("my own notes")
    assert main(["export", "nothing.pt", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "x.onnx.manifest.json" in _one_line_error(capsys, "export")
    assert user_manifest.read_text() == "my own notes"
    link = tmp_path / "link.onnx"
    link.symlink_to(art)
    assert main(["export", "nothing.pt", "-o", str(link)]) == 2
    assert "symbolic link" in _one_line_error(capsys, "export")
    assert link.is_symlink()
    # an artifact of ours, edited by the user afterwards, is the user's again
    data = bytearray(art.read_bytes())
    data[-1] ^= 1
    art.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="not written by modnet-edge"):
        tiny_artifact(art)


def test_our_own_artifact_is_replaced_and_its_copy_with_manifest_too(art, tmp_path) -> None:
    tiny_artifact(art, weight=1.0)  # the record proves it ours
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in (art, manifest_path(art)):
        (copy / p.name).write_bytes(p.read_bytes())  # no record there: the manifest naming it proves it
    tiny_artifact(copy / art.name, weight=2.0)
    assert modnet_edge.load(copy / art.name).metadata.model == {"arch": "tiny"}


def _run_of_ours(folder: Path) -> None:
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    net = build_from_checkpoint(random_checkpoint())
    for name in ("best.pt", "last.pt"):
        save_checkpoint(folder / name, net)
    atomic_write_text(folder / "config.json", "{}\n")


def test_train_refuses_a_run_folder_without_resume_and_never_a_users_file(tmp_path, capsys) -> None:
    run = tmp_path / "run0"
    _run_of_ours(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "quick", "-o", str(run), "--max-steps", "1"]) == 2
    assert "--resume" in _one_line_error(capsys, "train")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    mine = tmp_path / "mine"
    mine.mkdir()
    for name, text in (("config.json", '{"mine": true}'), ("epochs.csv", "my,columns\n"), ("log.jsonl", "{}\n")):
        (mine / name).write_text(text)
        for resume in ([], ["--resume"]):
            assert main(["train", "quick", "-o", str(mine), "--max-steps", "1", *resume]) == 2
            err = _one_line_error(capsys, "train")
            assert name in err and "not written by modnet-edge" in err, err
        assert (mine / name).read_text() == text
        (mine / name).unlink()


def test_a_users_log_jsonl_is_never_appended_to(tmp_path) -> None:
    from modnet_edge.training.logs import RunLog

    (tmp_path / "log.jsonl").write_text("my log\n")
    with pytest.raises(ArtifactError, match="log.jsonl"):
        RunLog(tmp_path, tensorboard=False)
    assert (tmp_path / "log.jsonl").read_text() == "my log\n"
    (tmp_path / "log.jsonl").unlink()
    RunLog(tmp_path, tensorboard=False).record("start", step=0)  # ours now ...
    (tmp_path / "log.jsonl").write_text("replaced by the user\n")  # ... until the user replaces it
    with pytest.raises(ArtifactError, match="log.jsonl"):
        RunLog(tmp_path, tensorboard=False)
    fresh = tmp_path / "fresh"
    log = RunLog(fresh, tensorboard=False)
    log.record("start", step=0)
    log.epoch_row({"epoch": 1, "loss": 0.5})
    again = RunLog(fresh, tensorboard=False)  # ours: continued by a resumed run
    again.record("start", step=5)
    again.epoch_row({"epoch": 2, "loss": 0.4})
    assert len((fresh / "log.jsonl").read_text().splitlines()) == 2
    assert (fresh / "epochs.csv").read_text().splitlines()[1:] == ["1,0.5", "2,0.4"]


def test_pipeline_folder_is_recognised_after_ctrl_c_and_a_fake_manifest_is_not(tmp_path) -> None:
    from modnet_edge.main_job import _prepare_output

    out = tmp_path / "out"
    _prepare_output(out)  # the run is stopped right after it started: manifest.json says "running"
    atomic_write_text(out / "artifacts" / "modnet.fp32.onnx", "an artifact of the stopped run")
    (out / "artifacts" / "notes.txt").write_text("the user's")
    _prepare_output(out)  # re-run into its own folder: accepted, our leftovers go, the user's stay
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == [RECORD_NAME, "notes.txt"]
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"kind": "modnet-edge pipeline"}))
    with pytest.raises(modnet_edge.ConfigError, match="not written by `modnet-edge pipeline`"):
        _prepare_output(fake)
    (out / "summary.json").write_text("the user's summary")  # a file the run would replace
    with pytest.raises(ArtifactError, match="summary.json"):
        _prepare_output(out)


def test_report_refuses_before_work_a_users_file_at_its_outputs(art, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "junit.xml").write_text("<mine/>")
    assert main(["report", str(art), "-o", str(out)]) == 2
    assert "junit.xml" in _one_line_error(capsys, "report")
    assert (out / "junit.xml").read_text() == "<mine/>"


def test_json_and_log_outputs_are_never_inputs(art, tmp_path, capsys) -> None:
    _photo(tmp_path / "x.png")
    assert main(["parity", str(art), "--images", str(tmp_path), "--json", str(art)]) == 2
    assert "also an input" in _one_line_error(capsys, "parity")
    before = art.read_bytes()
    assert main(["info", str(art), "--log-file", str(art)]) == 2
    assert art.read_bytes() == before


# ------------------------------------------------------------------------------------------------------
# 3. Integrity that cannot be switched off
# ------------------------------------------------------------------------------------------------------
def _edit_metadata(src: Path, dst: Path, change) -> Path:
    model = onnx.load(str(src))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            meta = json.loads(prop.value)
            change(meta, model)
            prop.value = json.dumps(meta, sort_keys=True)
    onnx.save(model, str(dst))
    return dst


def test_a_placeholder_record_does_not_switch_the_check_off(art, tmp_path) -> None:
    from onnx import numpy_helper

    def tamper(meta, model):
        meta["integrity"] = INTEGRITY_PLACEHOLDER
        w = numpy_helper.to_array(model.graph.initializer[0]).copy()
        w.flat[0] += 5.0  # and a weight changed
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "w"))

    bad = _edit_metadata(art, tmp_path / "placeholder.onnx", tamper)  # no manifest beside it
    with pytest.raises(MetadataError, match="no valid integrity record"):
        modnet_edge.load(bad)


def test_a_foreign_model_opens_only_when_the_caller_states_its_preprocessing(tmp_path) -> None:
    foreign = tmp_path / "foreign.onnx"
    onnx.save(_tiny_model(), str(foreign))
    with pytest.raises(MetadataError, match="preprocessing='modnet-reference'"):
        modnet_edge.load(foreign)
    with modnet_edge.load(foreign, preprocessing="modnet-reference") as predictor:  # the deliberate opt-in
        assert predictor.predict(np.zeros((SIDE, SIDE, 3), np.uint8)).shape == (SIDE, SIDE)


_ART_BYTES: list[bytes] = []


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_bit_anywhere_is_refused(tmp_path_factory, where: float, bit: int) -> None:
    """Any single bit of the artifact flipped -- weights, graph, names, the metadata JSON, the record --
    and it no longer loads (no manifest beside it: the embedded record alone must catch it)."""
    if not _ART_BYTES:
        _ART_BYTES.append(tiny_artifact(tmp_path_factory.mktemp("sealed") / "m.onnx").read_bytes())
    data = bytearray(_ART_BYTES[0])
    data[int(where * len(data))] ^= 1 << bit
    path = tmp_path_factory.mktemp("flipped") / "m.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(ModnetEdgeError):
        modnet_edge.load(path)


def test_the_digest_covers_every_fifth_of_a_real_artifact(tmp_path) -> None:
    """A flipped byte in each fifth of a real (26 MB) MODNet artifact is caught by the record alone."""
    from modnet_edge.core import verify_integrity
    from modnet_edge.core.containers import read_embedded
    from modnet_edge.model.checkpoint import random_checkpoint

    real = modnet_edge.export(random_checkpoint(), "onnx", "fp32", tmp_path / "real.onnx", static_shape=(64, 64))
    meta = read_embedded("onnx", real)
    original = real.read_bytes()
    for k in range(25):
        data = bytearray(original)
        data[(2 * k + 1) * len(data) // 50] ^= 0x10
        real.write_bytes(bytes(data))
        with pytest.raises(MetadataError):
            verify_integrity(real, meta)


@pytest.mark.parametrize("field,value", [("mean", [1e30] * 3), ("std", [1e-30] * 3), ("mean", [-3.0] * 3),
                                         ("std", [50.0] * 3), ("fixed_size", [65536, 65536]),
                                         ("ref_size", 10 ** 9)])
def test_absurd_preprocessing_is_refused(field, value) -> None:
    with pytest.raises(MetadataError):
        PreprocessSpec.from_dict({**PreprocessSpec().to_dict(), field: value})


def test_non_finite_weights_are_refused_at_export_and_load(tmp_path) -> None:
    import torch

    from modnet_edge.model.checkpoint import random_checkpoint, read_checkpoint

    ckpt = random_checkpoint()
    ckpt.state_dict = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
                       for k, v in ckpt.state_dict.items()}
    with pytest.raises(CheckpointError, match="NaN or infinity"):
        modnet_edge.export(ckpt, "onnx", "fp32", tmp_path / "nan.onnx", static_shape=(64, 64))
    assert not (tmp_path / "nan.onnx").exists()
    torch.save({"state_dict": {"module." + k: v for k, v in ckpt.state_dict.items()}}, tmp_path / "nan.ckpt")
    with pytest.raises(CheckpointError, match="NaN or infinity"):
        read_checkpoint(tmp_path / "nan.ckpt")


def test_a_model_that_outputs_nan_is_an_error_not_a_black_matte(tmp_path) -> None:
    from onnx import numpy_helper

    def poison(meta, model):  # a NaN weight, and a record computed for it (as an old exporter would have)
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(
            np.full((1, 1, SIDE, SIDE), np.nan, np.float32), "w"))

    foreign = tmp_path / "nan.onnx"
    model = _tiny_model()
    poison(None, model)
    onnx.save(model, str(foreign))
    with modnet_edge.load(foreign, preprocessing="modnet-reference") as predictor:
        with pytest.raises(ArtifactError, match="NaN or infinity"):
            predictor.predict(np.zeros((SIDE, SIDE, 3), np.uint8))


def test_a_pickle_payload_never_runs(tmp_path, capsys) -> None:
    import torch

    from modnet_edge.model.checkpoint import read_checkpoint

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"state_dict": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects or code"):
        read_checkpoint(tmp_path / "evil.pt")
    _photo(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "evil.pt"), str(tmp_path / "x.png"), "-o", str(tmp_path / "o")]) == 2
    assert main(["export", str(tmp_path / "evil.pt"), "-o", str(tmp_path / "e.onnx")]) == 2
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------------
# Calibration cache entries are checked, and a bad one is recalculated with a note
# ------------------------------------------------------------------------------------------------------
def _ort_entry(scale: float = 1.0, lowest: float = -1.0) -> bytes:
    def arr(v):
        return {"data": [v], "dtype": "float32", "CLS": "numpy.array"}

    data = {"input": {"lowest": arr(lowest * scale), "highest": arr(1.0 * scale), "CLS": "TensorData"},
            "/conv/Relu_output_0": {"lowest": arr(0.0), "highest": arr(5.2 * scale), "CLS": "TensorData"}}
    return json.dumps({"CLS": "TensorsData", "data": data,
                       "calibration_method": {"CLS": "CalibrationMethod", "value": "CalibrationMethod.MinMax"}}).encode()


@pytest.mark.parametrize("case", ["edited", "not json", "x1000 resealed", "nan resealed", "list resealed"])
def test_a_bad_cache_entry_is_recalculated_with_a_note(tmp_path, capsys, case) -> None:
    from modnet_edge.calibration import CacheKey, CalibrationCache
    from modnet_edge.core import sha256_path
    from modnet_edge.exporters.qdq import ort_cache_check

    cache = CalibrationCache(tmp_path / "cache")
    key = CacheKey.make("onnxruntime-x", "m" * 64, "d" * 64, "minmax")
    check = ort_cache_check("input", PreprocessSpec())
    cache.write_bytes(key, _ort_entry(), ".ort.json")
    assert cache.has(key, ".ort.json", check)  # a sound entry is a hit
    entry = cache.path(key, ".ort.json")
    bad = {"edited": _ort_entry(scale=1000.0), "not json": b"{oops", "x1000 resealed": _ort_entry(scale=1000.0),
           "nan resealed": _ort_entry(lowest=float("nan")), "list resealed": b"[1, 2]"}[case]
    entry.write_bytes(bad)
    if case != "edited":  # the sidecar updated too: only the checks of the content can catch it
        sidecar = entry.with_name(entry.name + ".key.json")
        sidecar.write_text(json.dumps({**key.to_dict(), "payload_sha256": sha256_path(entry)}))
    capsys.readouterr()
    assert not cache.has(key, ".ort.json", check)
    note = capsys.readouterr().err.strip()
    assert len(note.splitlines()) == 1 and note.startswith("note: calibration cache entry") and "recalculating" in note
    assert not entry.exists() and any(p.name.startswith(entry.name + ".invalid-") for p in entry.parent.iterdir())
    cache.write_bytes(key, _ort_entry(), ".ort.json")  # recalculated: stored again, and sound
    assert cache.has(key, ".ort.json", check)


# ------------------------------------------------------------------------------------------------------
# 4. Every failure one line, the right exit status
# ------------------------------------------------------------------------------------------------------
def test_disk_full_while_writing_is_one_line_exit_3_and_nothing_half_written(art, tmp_path, monkeypatch,
                                                                               capsys) -> None:
    import errno

    import PIL.Image

    _photo(tmp_path / "in" / "a.png")
    real_save = PIL.Image.Image.save

    def full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # half a file on disk, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PIL.Image.Image, "save", full)
    out = tmp_path / "out"
    assert main(["predict", str(art), str(tmp_path / "in"), "-o", str(out)]) == 3
    assert "no space left on device" in _one_line_error(capsys, "predict")
    assert not [p for p in out.iterdir() if p.name != RECORD_NAME]  # no PNG, no temporary


def test_disk_full_in_the_checkpoint_and_manifest_writes_is_an_environment_failure(art, tmp_path,
                                                                                      monkeypatch) -> None:
    import errno

    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    real_write = Path.write_bytes

    def full(self, data):
        if TEMP_MARK in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(EnvironmentFailure, match="no space left"):
        save_checkpoint(tmp_path / "c.pt", build_from_checkpoint(random_checkpoint()))
    assert not list(tmp_path.glob("*.pt")) and not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]
    monkeypatch.undo()
    import builtins

    real_open = builtins.open

    def full_open(file, mode="r", *args, **kwargs):  # the pending manifest is the first "x" write
        if "x" in mode and str(file).endswith(".pending-manifest"):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    old = art.read_bytes()
    with pytest.raises(EnvironmentFailure, match="no space left"):
        tiny_artifact(art, weight=3.0)
    monkeypatch.undo()
    assert art.read_bytes() == old and modnet_edge.load(art)  # the old pair is whole


def test_a_file_size_limit_is_one_line_exit_3(art, tmp_path) -> None:
    """``ulimit -f``: the write fails with EFBIG (Python ignores SIGXFSZ); nothing half-written is left."""
    (tmp_path / "in").mkdir()
    noise = np.random.default_rng(0).integers(0, 255, (SIDE * 2, SIDE * 2, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "in" / "a.png")  # its composite PNG: ~12 kB, over the limit
    out = tmp_path / "out"
    code = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))\n"
            "from modnet_edge.cli import main\nsys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "predict", str(art), str(tmp_path / "in"), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "file too large" in lines[0], proc.stderr
    assert not (out / "a.composite.png").exists() and not [p for p in out.iterdir() if TEMP_MARK in p.name]
    assert Image.open(out / "a.alpha.png").size == (SIDE * 2, SIDE * 2)  # written whole before the limit hit


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_log_files_that_cannot_take_the_log(tmp_path, capsys) -> None:
    assert main(["formats", "--log-file", "/dev/full"]) == 3
    assert "/dev/full" in _one_line_error(capsys, "formats")
    (tmp_path / "logs").mkdir()
    assert main(["formats", "--log-file", str(tmp_path / "logs")]) == 2
    assert "folder" in _one_line_error(capsys, "formats")
    (tmp_path / "real.log").write_text("")
    (tmp_path / "link.log").symlink_to(tmp_path / "real.log")
    assert main(["formats", "--log-file", str(tmp_path / "link.log")]) == 2
    assert "symbolic link" in _one_line_error(capsys, "formats")


@pytest.mark.parametrize("argv,needle", [
    (["export", "-o", "{tmp}/x.onnx", "--static-shape", "65536x65536"], "2048"),
    (["export", "-o", "{tmp}/x.onnx", "--format", "tflite", "--static-shape", "4096"], "2048"),
    (["parity", "{art}", "--limit", "0"], "limit"),
    (["parity", "{art}", "--limit", "-1"], "limit"),
    (["parity", "{art}", "--budget", "fp32=NaN"], "finite number"),
    (["predict", "{art}", "{tmp}/x.png", "-o", "{tmp}/o", "--ofd-threshold", "nan"], "ofd_threshold"),
    (["predict", "{art}", "{tmp}/x.png", "-o", "{tmp}/o", "--threads", "100000"], "threads"),
    (["predict", "{art}", "{tmp}/x.png", "-o", "{tmp}/o", "--threads", "0"], "threads"),  # was ignored
    (["benchmark", "{art}", "--size", "65536"], "2048"),
    (["export", "{tmp}", "-o", "{tmp}/y.onnx"], "is a folder"),
])
def test_absurd_values_are_one_line_exit_2(art, tmp_path, capsys, argv, needle) -> None:
    _photo(tmp_path / "x.png")
    argv = [a.format(tmp=tmp_path, art=art) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: one line too (cli.Parser)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_threads_100000_does_not_hang(art, tmp_path) -> None:
    _photo(tmp_path / "x.png")
    proc = subprocess.run([sys.executable, "-m", "modnet_edge.cli", "predict", str(art), str(tmp_path / "x.png"),
                           "-o", str(tmp_path / "o"), "--threads", "100000"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("manifest,needle", [
    ("folder", "is a folder"), ("[1, 2]", "not an object"), ('{"format": 7}', "wrong type|must be a string"),
    ('{"format": "onnx", "artifact": []}', "must be an object"),
    ('{"format": "onnx", "artifact": {"sha256": 5}}', "wrong type"),
])
def test_manifests_of_the_wrong_shape_are_one_line(art, capsys, manifest, needle) -> None:
    mpath = manifest_path(art)
    mpath.unlink()
    if manifest == "folder":
        mpath.mkdir()
    else:
        mpath.write_text(manifest)
    with pytest.raises(MetadataError, match=needle):
        modnet_edge.load(art)
    assert main(["info", str(art)]) == 2
    _one_line_error(capsys, "info")


def test_a_float32_tiff_is_read_as_its_values_or_refused_clearly(tmp_path) -> None:
    from modnet_edge.core.images import read_image

    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tif")
    rgb = read_image(tmp_path / "f.tif")
    assert rgb.shape == (48, 64, 3) and rgb[0, -1, 0] == 255 and rgb[0, 32, 0] == np.rint(ramp[0, 32] * 255)
    Image.fromarray(ramp * 200, mode="F").save(tmp_path / "g.tif")
    with pytest.raises(InputImageError, match=r"\[0, 1\]"):
        read_image(tmp_path / "g.tif")


def test_onnx_runtime_warnings_never_reach_a_pipe_with_colour_codes(tmp_path) -> None:
    """ONNX Runtime colours its warnings even into pipes; its log is kept to errors (a warning such as an
    unused initializer is not the user's to act on), and nothing it prints carries escape codes."""
    from onnx import TensorProto, helper, numpy_helper

    model = _tiny_model()
    model.graph.initializer.append(numpy_helper.from_array(np.ones(3, np.float32), "unused"))
    path = tmp_path / "warns.onnx"
    onnx.save(model, str(path))
    code = "import sys; from modnet_edge import open_backend; open_backend(sys.argv[1]).close()"
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stderr and "unused" not in proc.stderr, proc.stderr
    assert TensorProto and helper  # (imported for the model above)


def test_reading_a_package_killed_mid_swap_restores_it(tmp_path) -> None:
    """The reader side of a kill between the two renames: the old package was set aside, the new one not
    yet in; the reader (and the next writer) put the old one back instead of raising FileNotFoundError."""
    from modnet_edge.core import read_manifest, write_manifest

    pkg = tmp_path / "m.mlpackage"
    from modnet_edge.core import atomic_output

    with atomic_output(pkg, suffix=".mlpackage") as tmp:
        tmp.mkdir()
        (tmp / "weights.bin").write_text("old")
    write_manifest(pkg, ArtifactMetadata(format="coreml", precision="fp16", model={},
                                         preprocessing=PreprocessSpec()))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    os.replace(pkg, tmp_path / f".m.mlpackage.{int(dead.stdout)}.ab12{TEMP_MARK}.backup")
    assert not pkg.exists()
    assert read_manifest(pkg) is not None and (pkg / "weights.bin").read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name]


def test_out_of_memory_is_the_machines_and_other_runtime_errors_stay_bugs() -> None:
    from modnet_edge.core.errors import environment_failure

    oom = RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried "
                       "to allocate 51539607552 bytes")
    assert isinstance(environment_failure(oom), EnvironmentFailure)
    assert isinstance(environment_failure(MemoryError()), EnvironmentFailure)
    assert environment_failure(RuntimeError("shape mismatch")) is None


def test_a_checkpoint_of_another_network_is_one_line(tmp_path, capsys) -> None:
    import torch

    torch.save({"w": torch.zeros(3)}, tmp_path / "other.pt")
    assert main(["export", str(tmp_path / "other.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "unexpected keys" in _one_line_error(capsys, "export")
