"""The shared calibration source, its adapters and the activation-range cache (no model conversion here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modnet_edge.calibration import (CacheKey, CalibrationCache, CalibrationSource, LiteRTCalibrationData,
                                     OrtCalibrationReader, as_source, select_indices)
from modnet_edge.calibration.adapters import chunk_size
from modnet_edge.core import PreprocessSpec
from modnet_edge.core.errors import ConfigError, DataError
from modnet_edge.core.images import read_image
from modnet_edge.core.preprocess import preprocess

SPEC = PreprocessSpec(fixed_size=(64, 96))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(6):
        h, w = (80 + 10 * i, 120 - 5 * i)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_folder_selection_is_deterministic_and_seeded(folder: Path) -> None:
    a = CalibrationSource.from_folder(folder, size=3, seed=1)
    b = CalibrationSource.from_folder(folder, size=3, seed=1)
    assert a.names == b.names and len(a) == 3
    others = {tuple(CalibrationSource.from_folder(folder, size=3, seed=s).names) for s in range(6)}
    assert len(others) > 1, "the seed must change the selection"
    assert a.names == sorted(a.names), "selected files are read in path order"
    assert CalibrationSource.from_folder(folder).names == [f"img{i}.png" for i in range(6)]
    assert select_indices(10, 4, 7) == select_indices(10, 4, 7) == sorted(select_indices(10, 4, 7))


def test_inputs_are_exactly_the_predictor_preprocessing(folder: Path) -> None:
    src = CalibrationSource.from_folder(folder, size=2, seed=0).bind(SPEC)
    for name, x in zip(src.names, src.inputs()):
        np.testing.assert_array_equal(x, preprocess(read_image(folder / name), SPEC))
        assert x.shape == (1, 3, 64, 96) and x.dtype == np.float32
    nhwc = CalibrationSource.from_folder(folder, size=1).bind(PreprocessSpec(fixed_size=(32, 32), layout="NHWC"))
    assert next(nhwc.inputs()).shape == (1, 32, 32, 3)
    dynamic = CalibrationSource.from_folder(folder, size=6).bind(PreprocessSpec(ref_size=64))
    assert {x.shape[2:] for x in dynamic.inputs()} == {(PreprocessSpec(ref_size=64).target_size(*read_image(
        folder / n).shape[:2])) for n in dynamic.names}


def test_source_is_reiterable_and_fingerprinted(folder: Path) -> None:
    src = CalibrationSource.from_folder(folder, size=4, seed=2).bind(SPEC)
    first, second = list(src.inputs()), list(src.inputs())
    assert all(np.array_equal(a, b) for a, b in zip(first, second)) and len(first) == 4
    fp = src.fingerprint()
    assert fp == CalibrationSource.from_folder(folder, size=4, seed=2).bind(SPEC).fingerprint()
    assert fp != CalibrationSource.from_folder(folder, size=4, seed=3).bind(SPEC).fingerprint()
    assert fp != CalibrationSource.from_folder(folder, size=4, seed=2).bind(SPEC.with_fixed_size((32, 32))).fingerprint()
    assert src.describe()["data_sha256"] == fp and src.describe()["kind"] == "folder"
    sub = src.subset(1, 3)
    assert len(sub) == 2 and all(np.array_equal(a, b) for a, b in zip(sub.inputs(), first[1:3]))


def test_fingerprint_is_remembered_across_sources_until_a_file_changes(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new source over the same unchanged files reuses the fingerprint without reading a sample; a file
    written again (new bytes) is read and hashed again."""
    import modnet_edge.calibration.source as source_module

    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"c{i}.png")
    first = CalibrationSource.from_folder(tmp_path).bind(SPEC).fingerprint()
    reads: list[Path] = []
    real = source_module._read_file
    monkeypatch.setattr(source_module, "_read_file", lambda p: reads.append(p) or real(p))
    assert CalibrationSource.from_folder(tmp_path).bind(SPEC).fingerprint() == first and not reads
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "c1.png")
    os.utime(tmp_path / "c1.png", ns=(1, 1))  # a clock as coarse as some file systems keep could miss the rewrite
    again = CalibrationSource.from_folder(tmp_path).bind(SPEC)
    assert again.fingerprint() != first and len(reads) == 3
    assert again.fingerprint() == CalibrationSource.from_arrays(list(again.inputs())).bind(SPEC).fingerprint()
    synthetic = CalibrationSource.from_synthetic(2, image_size=(32, 48)).bind(SPEC)
    assert synthetic.fingerprint() == CalibrationSource.from_synthetic(2, image_size=(32, 48)).bind(SPEC).fingerprint()
    assert synthetic.fingerprint() != CalibrationSource.from_synthetic(2, seed=1, image_size=(32, 48)).bind(
        SPEC).fingerprint()


def test_bad_folders_are_clear_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        CalibrationSource.from_folder(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(DataError, match="holds no images"):
        CalibrationSource.from_folder(empty)
    with pytest.raises(DataError, match="not a folder"):
        CalibrationSource.from_folder(folder / "img0.png")
    with pytest.raises(DataError, match=r"asked for 10 calibration samples but .* has only 6"):
        CalibrationSource.from_folder(folder, size=10)
    with pytest.raises(DataError, match="positive integer"):
        CalibrationSource.from_folder(folder, size=0)
    broken = tmp_path / "broken"
    broken.mkdir()
    Image.new("RGB", (64, 64)).save(broken / "a.png")
    (broken / "b.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    src = CalibrationSource.from_folder(broken).bind(SPEC)
    with pytest.raises(DataError, match=r"b\.jpg"):
        list(src.inputs())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permission bits do not restrict the root user (or non-POSIX system)")
def test_unreadable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(DataError, match="not readable"):
            CalibrationSource.from_folder(locked)
    finally:
        locked.chmod(0o755)


def test_spec_binding_and_shape_mismatch(folder: Path) -> None:
    src = CalibrationSource.from_folder(folder, size=2).bind(SPEC)
    assert src.bind(SPEC) is src
    with pytest.raises(DataError, match="bound to preprocessing NCHW 64x96 but the model takes NCHW 32x32"):
        src.bind(SPEC.with_fixed_size((32, 32)))
    with pytest.raises(DataError, match="not bound"):
        list(CalibrationSource.from_folder(folder, size=1).inputs())
    reader = OrtCalibrationReader(src, "input", [1, 3, 128, 128])
    with pytest.raises(DataError, match=r"dimension 2 must be 128"):
        reader.get_next()
    arrays = CalibrationSource.from_arrays([np.zeros((1, 3, 32, 32), np.float32)])
    with pytest.raises(DataError, match="has shape"):
        list(arrays.bind(SPEC).inputs())
    with pytest.raises(DataError, match=r"\(1, C, H, W\)"):
        CalibrationSource.from_arrays([np.zeros((3, 32, 32), np.float32)])


def test_adapters_feed_each_tool(folder: Path) -> None:
    src = CalibrationSource.from_folder(folder, size=4, seed=0).bind(SPEC)
    expected = list(src.inputs())
    reader = OrtCalibrationReader(src, "input", [1, 3, 64, 96])
    got = [reader.get_next() for _ in range(5)]
    assert got[-1] is None and len(reader) == 4
    assert all(np.array_equal(g["input"], e) for g, e in zip(got, expected))
    reader.rewind()
    assert np.array_equal(reader.get_next()["input"], expected[0])
    reader.set_range(2, 4)
    assert np.array_equal(reader.get_next()["input"], expected[2])
    batched = OrtCalibrationReader(src, "input", [2, 3, 64, 96])
    assert batched.get_next()["input"].shape == (2, 3, 64, 96) and len(batched) == 2
    with pytest.raises(DataError, match="static batch of 3"):
        OrtCalibrationReader(src, "input", [3, 3, 64, 96]).get_next()
    litert = LiteRTCalibrationData(src, "input", [1, 3, 64, 96])
    assert len(list(litert)) == len(list(litert)) == 4, "ai-edge-quantizer iterates twice"
    assert set(litert.as_mapping()) == {"serving_default"}
    assert [chunk_size(n) for n in (1, 7, 12, 16, 100)] == [1, 7, 6, 8, 5]


def test_datasets_factories_and_synthetic(folder: Path) -> None:
    class Sample:
        def __init__(self, rgb: np.ndarray) -> None:
            self.rgb = rgb

    images = [np.full((40, 40, 3), i * 20, np.uint8) for i in range(5)]
    ds = CalibrationSource.from_dataset([Sample(im) for im in images], size=2, seed=4)
    assert [n for n in ds.names] == CalibrationSource.from_dataset(images, size=2, seed=4).names
    tuples = CalibrationSource.from_dataset([(im, None) for im in images]).bind(SPEC)
    assert len(list(tuples.inputs())) == 5
    dicts = CalibrationSource.from_dataset([{"mask": im} for im in images]).bind(SPEC)
    with pytest.raises(DataError, match="without an 'image'"):
        next(dicts.inputs())
    factory = CalibrationSource.from_images(lambda: (im for im in images), size=3).bind(SPEC)
    assert len(list(factory.inputs())) == 3 and len(list(factory.inputs())) == 3
    short = CalibrationSource.from_images(lambda: iter(images[:2]), size=4).bind(SPEC)
    with pytest.raises(DataError, match="yielded only 2 images; 4 were asked for"):
        list(short.inputs())
    with pytest.raises(DataError, match="len\\(\\) and indexing"):
        CalibrationSource.from_dataset(iter(images))
    synthetic = pytest.importorskip("modnet_edge.training.synthetic", reason="synthetic set not installed")
    syn = as_source("synthetic", size=2, seed=5).bind(SPEC)
    first = next(syn.inputs())
    np.testing.assert_array_equal(first, preprocess(synthetic.render_portrait(5, 0, 512, 512).rgb, SPEC))
    with pytest.raises(DataError, match="already has 2 samples"):
        as_source(syn, size=3)
    with pytest.raises(DataError, match="needs calibration data"):
        as_source(None)
    assert len(as_source(folder, size=2)) == 2


@pytest.mark.video
def test_video_frames(tmp_path: Path) -> None:
    import av
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    src = CalibrationSource.from_video(path, size=4, seed=0)
    assert len(src) == 4 and src.names == CalibrationSource.from_video(path, size=4, seed=0).names
    frames = [rgb for _, rgb in src.images()]
    index = [int(n.split("frame")[1]) for n in src.names]
    means = [f.mean() for f in frames]
    assert all(abs(m - 20 * i) < 12 for m, i in zip(means, index)), (means, index)
    assert [f.mean() for _, f in src.images()] == means, "a second pass decodes the same frames"
    with pytest.raises(DataError, match="has only 12"):
        CalibrationSource.from_video(path, size=50)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(DataError, match="not a readable video"):
        as_source(bad)


def test_cache_entries_are_keyed_and_atomic(tmp_path: Path) -> None:
    cache = CalibrationCache(tmp_path / "cache")
    key = CacheKey.make("tool-1", "m" * 64, "d" * 64, "minmax", percentile=None)
    assert key.digest != CacheKey.make("tool-1", "m" * 64, "e" * 64, "minmax").digest
    assert key.digest != CacheKey.make("tool-1", "m" * 64, "d" * 64, "entropy", percentile=None).digest
    assert key.digest != CacheKey.make("tool-2", "m" * 64, "d" * 64, "minmax", percentile=None).digest
    assert not cache.has(key) and cache.misses == 1
    with pytest.raises(RuntimeError):
        with cache.store(key) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not cache.has(key) and not list((tmp_path / "cache").iterdir()), "nothing half-written is left"
    cache.write_bytes(key, b"ranges", ".json")
    assert cache.has(key) and cache.hits == 1 and cache.read_bytes(key, ".json") == b"ranges"
    assert '"method": "minmax"' in cache.path(key).with_name(cache.path(key).name + ".key.json").read_text()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        CalibrationCache(tmp_path / "file")
