"""Training data folders: layouts, pairing, augmentation determinism and the clear errors for bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modnet_edge.core.errors import DataError, InputImageError
from modnet_edge.training.datasets import build_datasets, find_layout
from modnet_edge.training.soc import load_unlabeled
from modnet_edge.training.synthetic import render_portrait


def _write_pairs(root: Path, n: int = 3, size=(80, 64), target: str = "matte") -> Path:
    (root / "image").mkdir(parents=True)
    (root / target).mkdir()
    for i in range(n):
        s = render_portrait(11, i, size[1], size[0])
        Image.fromarray(s.rgb).save(root / "image" / f"p{i}.jpg")
        a = s.alpha if target != "mask" else (s.alpha > 0.5).astype(np.float32)
        Image.fromarray((a * 255).astype(np.uint8)).save(root / target / f"p{i}.png")
    return root


def test_matting_folder_items_and_per_epoch_determinism(tmp_path):
    root = _write_pairs(tmp_path / "d", n=4)
    task, train, val = build_datasets(root, 64, val_fraction=0.25, seed=3)
    assert task == "matting" and len(train) == 3 and val is not None and len(val) == 1
    item = train[0]
    assert item["image"].shape == (3, 64, 64) and item["alpha"].shape == (1, 64, 64)
    assert float(item["image"].min()) >= -1.0 and float(item["image"].max()) <= 1.0
    assert not bool(item["has_fgbg"])
    again = train[0]
    assert torch.equal(item["image"], again["image"])  # same (seed, epoch, index) -> same sample
    train.set_epoch(1)
    assert not torch.equal(item["image"], train[0]["image"])  # a new epoch draws new augmentation
    assert torch.equal(val[0]["image"], val[0]["image"])


def test_alpha_folder_name_segmentation_and_composite_layouts(tmp_path):
    _write_pairs(tmp_path / "a", target="alpha")
    assert find_layout(tmp_path / "a")[0] == "matting"
    _write_pairs(tmp_path / "s", target="mask")
    task, train, _ = build_datasets(tmp_path / "s", 64, val_fraction=0.0)
    assert task == "segmentation" and set(np.unique(train[0]["alpha"].numpy())) <= {0.0, 1.0}
    comp = tmp_path / "c"
    for sub in ("fg", "alpha", "bg"):
        (comp / sub).mkdir(parents=True)
    for i in range(2):
        s = render_portrait(5, i, 64, 64)
        Image.fromarray((s.fg * 255).astype(np.uint8)).save(comp / "fg" / f"f{i}.png")
        Image.fromarray((s.alpha * 255).astype(np.uint8)).save(comp / "alpha" / f"f{i}.png")
        Image.fromarray((s.bg * 255).astype(np.uint8)).save(comp / "bg" / f"b{i}.jpg")
    task, train, _ = build_datasets(comp, 64, val_fraction=0.0)
    item = train[1]
    assert task == "matting" and bool(item["has_fgbg"])
    recomposed = item["alpha"] * item["fg"] + (1 - item["alpha"]) * item["bg"]
    assert float((recomposed - item["rgb"]).abs().mean()) < 0.02  # image = fg over bg after augmentation
    with pytest.raises(DataError, match="does not fit"):
        build_datasets(tmp_path / "s", 64, task="matting")


def test_empty_folders_are_refused(tmp_path):
    (tmp_path / "e" / "image").mkdir(parents=True)
    (tmp_path / "e" / "matte").mkdir()
    with pytest.raises(DataError, match="contains no images"):
        build_datasets(tmp_path / "e", 64)
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="unrecognised data layout"):
        build_datasets(tmp_path / "x", 64)
    with pytest.raises(DataError, match="does not exist"):
        build_datasets(tmp_path / "missing", 64)


def test_unmatched_stems_are_listed(tmp_path):
    root = _write_pairs(tmp_path / "d", n=3)
    (root / "matte" / "p1.png").rename(root / "matte" / "other.png")
    with pytest.raises(DataError, match=r"unmatched file stems.*'p1'.*'other'"):
        build_datasets(root, 64)


def test_mattes_of_wrong_size_or_channel_count_are_refused(tmp_path):
    root = _write_pairs(tmp_path / "size", n=2)
    Image.new("L", (40, 40)).save(root / "matte" / "p0.png")
    with pytest.raises(DataError, match=r"matte is 40x40 but its image p0.jpg is 80x64 \(and not a scaled copy"):
        build_datasets(root, 64)
    root = _write_pairs(tmp_path / "half", n=1)  # a half-resolution copy (same aspect) is resized, not refused
    Image.open(root / "matte" / "p0.png").resize((40, 32)).save(root / "matte" / "p0.png")
    _, train, _ = build_datasets(root, 64, val_fraction=0.0)
    assert train[0]["alpha"].shape == (1, 64, 64)
    root = _write_pairs(tmp_path / "la", n=2)
    Image.new("LA", (80, 64)).save(root / "matte" / "p1.png")
    with pytest.raises(DataError, match=r"mode LA \(2 channels\)"):
        build_datasets(root, 64)
    root = _write_pairs(tmp_path / "rgb", n=1)
    rgb = np.zeros((64, 80, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(root / "matte" / "p0.png")
    _, train, _ = build_datasets(root, 64, val_fraction=0.0)
    with pytest.raises(InputImageError, match="one channel"):
        train[0]


@pytest.mark.video
def test_unlabeled_sources_and_unreadable_videos(tmp_path):
    root = _write_pairs(tmp_path / "d", n=2)
    assert len(load_unlabeled(root / "image")) == 2
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 this is not a video" * 50)
    with pytest.raises(InputImageError, match="not a readable video"):
        load_unlabeled(bad)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputImageError, match="empty"):
        load_unlabeled(empty)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="no images or videos"):
        load_unlabeled(tmp_path / "none")
