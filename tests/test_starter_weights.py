"""The built-in starter weights, the composites they were trained on, and the staged preset that makes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import modnet_edge
from modnet_edge.core.errors import CheckpointError
from modnet_edge.model import weights as weights_mod
from modnet_edge.model.weights import ALIASES, DEFAULT_WEIGHTS, get_weights, load_weights, resolve_checkpoint


def test_the_table_says_what_ships() -> None:
    w = get_weights(DEFAULT_WEIGHTS)
    assert w.name == ALIASES["starter"] and len(w.sha256) == 64 and w.recipe.startswith(f"modnet-edge train {w.name}")
    assert all(d["license"] for d in w.data) and not w.synthetic_only
    assert len(w.training_images) == 8 and not {"p_514ca06a", "p_818e689d"} & set(w.training_images)  # held out
    assert w.quality, "measured quality is part of the record"


def test_starter_loads_as_float32_and_is_the_default_everywhere() -> None:
    ckpt = load_weights()
    assert ckpt.kind == "builtin" and ckpt.provenance["weights"] == ALIASES["starter"]  # the row, not the alias
    assert all(v.dtype == torch.float32 for v in ckpt.state_dict.values() if v.is_floating_point())
    assert resolve_checkpoint(None).source_info()["weights_sha256"] == ckpt.source_info()["weights_sha256"]
    assert resolve_checkpoint("starter").kind == "builtin"
    net = modnet_edge.load_network()
    assert not net.training and sum(p.numel() for p in net.parameters()) == 6_487_075


def test_a_corrupted_weights_file_is_refused(tmp_path, monkeypatch) -> None:
    bad = tmp_path / "starter-v1.fp16.pt"
    data = bytearray(weights_mod.weights_file("starter").read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(weights_mod, "weights_file", lambda name: bad)
    with pytest.raises(CheckpointError, match="sha256"):
        load_weights("starter")


def test_starter_mattes_a_sample_portrait_confidently(tmp_path) -> None:
    """Not a quality benchmark (see `modnet-edge quality`): a guard that the shipped file is the trained
    network, not a toy -- a decided matte with both person and background in it, on the two P3M
    portraits every built-in network held out of training."""
    from modnet_edge.core.images import list_images, unseen_images
    from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint

    ckpt = load_weights()
    path = save_checkpoint(tmp_path / "starter.pt", build_from_checkpoint(ckpt), provenance=ckpt.provenance)
    with modnet_edge.load(path) as predictor:
        for image in [f for f in list_images(unseen_images()) if f.stem in ("p_514ca06a", "p_818e689d")]:
            alpha = predictor.predict(image)
            unsure = float(np.mean((alpha > 0.05) & (alpha < 0.95)))
            person = float(np.mean(alpha >= 0.5))
            assert unsure < 0.15 and 0.1 < person < 0.9, (image.name, unsure, person)


# ------------------------------------------------------------------------------------------------
# Composites and the staged preset


def _portrait_folder(root: Path, n: int = 3) -> Path:
    """Tiny matting folder: an ellipse 'person' over a gradient, anchored at the bottom."""
    (root / "image").mkdir(parents=True)
    (root / "matte").mkdir()
    yy, xx = np.mgrid[0:96, 0:80]
    for i in range(n):
        alpha = (((xx - 40) / 22.0) ** 2 + ((yy - 70 + 4 * i) / 40.0) ** 2 <= 1).astype(np.uint8) * 255
        rgb = np.stack([xx * 3 % 255, yy * 2 % 255, np.full_like(xx, 60 + 40 * i)], 2).astype(np.uint8)
        Image.fromarray(rgb).save(root / "image" / f"p{i}.png")
        Image.fromarray(alpha).save(root / "matte" / f"p{i}.png")
    return root


def test_composites_are_valid_deterministic_and_hold_out_validation(tmp_path) -> None:
    from modnet_edge.training.composites import background_region
    from modnet_edge.training.datasets import build_datasets

    root = _portrait_folder(tmp_path / "d")
    _, train, val = build_datasets(root, 64, compose=True, val_fraction=0.34, samples_per_epoch=6,
                                   synthetic_mix=0.5, seed=3)
    assert len(train) == 6 and val is not None and len(val) == 1
    held = Path(val.pairs[0][0]).stem
    assert held not in train.description and "held out" in val.description
    for i in range(len(train)):
        s = train[i]
        assert s["image"].shape == (3, 64, 64) and s["alpha"].shape == (1, 64, 64) and bool(s["has_fgbg"])
        assert 0 <= float(s["alpha"].min()) and float(s["alpha"].max()) <= 1
    again = build_datasets(root, 64, compose=True, val_fraction=0.34, samples_per_epoch=6, synthetic_mix=0.5,
                           seed=3)[1]
    assert torch.equal(train[2]["image"], again[2]["image"])  # a pure function of (seed, epoch, index)
    train.set_epoch(1)
    assert not torch.equal(train[2]["image"], again[2]["image"])
    alpha = np.zeros((100, 100), np.float32)
    alpha[40:, 30:70] = 1.0
    y0, y1, x0, x1 = background_region(alpha)
    assert float(alpha[y0:y1, x0:x1].max()) == 0.0 and (y1 - y0) * (x1 - x0) >= 100 * 30


def test_staged_preset_chains_stages_and_resumes(tmp_path, monkeypatch) -> None:
    from modnet_edge.training import config as config_mod
    from modnet_edge.model.checkpoint import read_checkpoint

    tiny = {"size": 64, "batch_size": 2, "epochs": 1, "samples_per_epoch": 2, "compose": True, "val_fraction": 0.34,
            "threads": 1, "progress": False, "save_every": 0, "zero_init_residual": True, "optimizer": "adam",
            "lr_schedule": "cosine", "lr": 1e-3}
    monkeypatch.setitem(config_mod.STAGED_PRESETS, "tiny-stages", [tiny, {**tiny, "size": 96}])
    root = _portrait_folder(tmp_path / "d")
    best = modnet_edge.train("tiny-stages", data=root, output=tmp_path / "run")
    assert best == tmp_path / "run" / "best.pt" and (tmp_path / "run" / "stage-2" / "done").is_file()
    stage2 = json.loads((tmp_path / "run" / "stage-2" / "config.json").read_text())
    assert stage2["init"] == str(tmp_path / "run" / "stage-1" / "best.pt") and stage2["size"] == 96
    assert read_checkpoint(best).provenance["config"]["extra"]["stage"] == "2/2"
    before = (tmp_path / "run" / "stage-1" / "best.pt").stat().st_mtime_ns
    modnet_edge.train("tiny-stages", data=root, output=tmp_path / "run", resume=True)  # finished: nothing reruns
    assert (tmp_path / "run" / "stage-1" / "best.pt").stat().st_mtime_ns == before
