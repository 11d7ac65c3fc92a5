"""Every artifact carries an integrity record in its own metadata: a flipped weight byte or edited
preprocessing is refused even with no manifest beside the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import modnet_edge
from modnet_edge.core import INTEGRITY_PLACEHOLDER, METADATA_KEY, manifest_path
from modnet_edge.core.errors import MetadataError
from modnet_edge.model.checkpoint import random_checkpoint


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40  # deep inside the weights of any of these formats
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    return modnet_edge.export(random_checkpoint(), "onnx", "fp32", tmp_path_factory.mktemp("integrity") / "m.onnx",
                              static_shape=(64, 64))


def _orphan(src: Path, tmp_path: Path) -> Path:
    """A copy with no manifest beside it: only the embedded record can catch a change."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    dst = tmp_path / src.name
    (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    assert not manifest_path(dst).exists()
    return dst


def test_exported_metadata_and_manifest_carry_the_record(onnx_file: Path) -> None:
    props = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    record = json.loads(props[METADATA_KEY])["integrity"]
    assert record != INTEGRITY_PLACEHOLDER and len(record) == 64
    assert json.loads(manifest_path(onnx_file).read_text())["integrity"] == record
    with modnet_edge.load(_orphan(onnx_file, onnx_file.parent / "copy")) as predictor:  # intact: loads
        assert predictor.predict(np.zeros((64, 64, 3), np.uint8)).shape == (64, 64)


def test_a_flipped_weight_byte_is_refused_without_a_manifest(onnx_file: Path, tmp_path: Path) -> None:
    bad = _orphan(onnx_file, tmp_path)
    _flip_middle_byte(bad)
    with pytest.raises(MetadataError, match="integrity"):
        modnet_edge.load(bad)


def test_edited_preprocessing_is_refused_without_a_manifest(onnx_file: Path, tmp_path: Path) -> None:
    model = onnx.load(str(onnx_file))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            meta = json.loads(prop.value)
            meta["preprocessing"]["mean"] = [0.4, 0.4, 0.4]  # still valid values: only the record catches it
            prop.value = json.dumps(meta, sort_keys=True)
    onnx.save(model, str(tmp_path / "edited.onnx"))
    with pytest.raises(MetadataError, match="integrity"):
        modnet_edge.load(tmp_path / "edited.onnx")


@pytest.mark.parametrize("mean,std", [([0.5, 0.5], [0.5, 0.5, 0.5]), ([0.5, 0.5, 0.5], [0.5, 0.0, 0.5]),
                                      ([float("nan"), 0.5, 0.5], [0.5, 0.5, 0.5])])
def test_invalid_preprocessing_values_are_refused(mean, std) -> None:
    from modnet_edge.core import PreprocessSpec

    with pytest.raises(modnet_edge.ModnetEdgeError, match="mean|std"):
        PreprocessSpec.from_dict({**PreprocessSpec().to_dict(), "mean": mean, "std": std})


@pytest.mark.slow
def test_tflite_and_coreml_artifacts_are_sealed_too(tmp_path: Path) -> None:
    ckpt = random_checkpoint()
    made = []
    if modnet_edge.FORMATS["tflite"].can_export():
        made.append((modnet_edge.export(ckpt, "tflite", "fp32", tmp_path / "m.tflite", static_shape=(64, 64)), {}))
    if modnet_edge.FORMATS["coreml"].can_export():
        made.append((modnet_edge.export(ckpt, "coreml", "fp32", tmp_path / "m.mlpackage", static_shape=(64, 64)),
                     {"runtime": "reference"}))
    if not made:
        pytest.skip("neither the tflite nor the coreml extra is installed")
    for artifact, options in made:
        copy = _orphan(artifact, tmp_path / "copies" / artifact.suffix.strip("."))
        with modnet_edge.load(copy, **options):
            pass
        target = copy if copy.is_file() else copy / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
        _flip_middle_byte(target)
        with pytest.raises(MetadataError, match="integrity"):
            modnet_edge.load(copy, **options)
