"""Verdicts on photos the network never saw: which images they rest on, drift in 8-bit terms, budgets a
person can write, the boundary band where it is not the whole image, and end-to-end rows."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modnet_edge.core.errors import ConfigError
from modnet_edge.core.images import list_images, unseen_images
from modnet_edge.model.weights import WEIGHTS, seen_images
from modnet_edge.parity_tests.drift import BUDGETS, Budget, Drift, boundary_band, parse_budget
from modnet_edge.parity_tests.parity import exposure, image_files, load_images
from modnet_edge.precision_search import split_images

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "p3m-portraits"


# ------------------------------------------------------------------------------------------------
# the images


def test_no_built_in_network_trained_on_the_default_photos() -> None:
    files = list_images(unseen_images())
    assert len(files) >= 7
    for name in WEIGHTS:
        record = seen_images(name)
        assert record, f"{name}: the weights table must record the images it learned from"
        verdicts = exposure(files, {"weights": name})
        assert not [f for f, how in verdicts.items() if how.startswith("trained")], (name, verdicts)


def test_every_command_defaults_to_the_unseen_photos() -> None:
    assert image_files(None) == list_images(unseen_images())
    pictures, source = load_images(None)
    assert set(pictures) == {f.name for f in list_images(unseen_images())} and "unseen" in source
    assert image_files("synthetic") is None and "synthetic" in load_images("synthetic")[1]
    with pytest.raises(ConfigError, match=">= 1"):
        image_files(None, limit=0)
    with pytest.raises(ConfigError, match=">= 1"):
        image_files(None, limit=-1)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/p3m-portraits is not available here")
def test_a_training_photo_is_named_as_one(tmp_path: Path) -> None:
    """By sha256, whatever the file is called: a verdict that rests on it says so."""
    copy = tmp_path / "holiday.jpg"
    shutil.copyfile(SHARED / "image" / "p_07141906.jpg", copy)  # one of starter-v1's eight training photos
    unseen = list_images(unseen_images())[0]
    verdicts = exposure([copy, unseen], {"weights": "starter-v1"})
    assert verdicts == {"holiday.jpg": "trained on as p_07141906.jpg"}
    assert exposure([copy], {"kind": "file"}) == {}  # own checkpoints: nothing recorded, nothing claimed


def test_the_search_splits_choose_and_verify_images(tmp_path: Path) -> None:
    files = list_images(unseen_images())
    choose, verify = split_images(files)
    assert choose and verify and not set(choose) & set(verify) and set(choose) | set(verify) == set(files)
    assert abs(len(choose) - len(verify)) <= 1
    with pytest.raises(ConfigError, match="at least 2 images"):
        split_images(files[:1])


# ------------------------------------------------------------------------------------------------
# drift in 8-bit terms, and budgets in those terms


def test_the_next_photo_bound_grows_with_the_spread() -> None:
    """The search's margin: no spread, no margin; the same mean with a wider spread needs more room, so a
    worst photo just under the budget is not enough when the photos disagree by orders of magnitude."""
    from modnet_edge.search_record import next_photo_bound

    assert next_photo_bound([3e-7] * 4) == pytest.approx(3e-7)
    assert next_photo_bound([5e-7]) == pytest.approx(5e-7)
    tight, wide = next_photo_bound([4e-7, 5e-7, 6e-7]), next_photo_bound([1e-7, 5e-7, 2.5e-6])
    assert 6e-7 < tight < 1e-6 < wide  # geometric means equal (~4.9e-7 and 5e-7); only the spread differs
    assert next_photo_bound([2e-7, 3e-7, 4e-7, 6.5e-7]) < 1e-6 < next_photo_bound([5e-8, 3e-7, 4e-7, 6.5e-7])
    assert next_photo_bound([0.0, 0.0]) == pytest.approx(1e-20)  # fp32: exactly equal mattes


def test_eight_bit_terms_count_levels_exactly() -> None:
    ref = np.full((100, 100), 100 / 255, np.float32)
    cand = ref.copy()
    cand[:10] += 2 / 255  # 10 % of pixels move by 2 levels
    cand[10:11, :50] += 6 / 255  # 0.5 % by 6 levels
    cand[20:40] += 0.3 / 255  # float noise that never changes the 8-bit value
    d = Drift.measure(ref, cand)
    assert d.over_1 == pytest.approx(0.105) and d.over_4 == pytest.approx(0.005) and d.max_levels == 6
    assert d.unsure == 1.0  # alpha 0.39 everywhere: the reference is unsure about every pixel
    pooled = Drift.pool([d, Drift.measure(ref, ref)])
    assert pooled.over_1 == pytest.approx(0.0525) and pooled.max_levels == 6


def test_budgets_in_eight_bit_terms() -> None:
    assert parse_budget("1e-6") == Budget(mse=1e-6)
    b = parse_budget("over4=0.1%, levels=8")
    assert b.mse == math.inf and b.over_4 == pytest.approx(0.001) and b.max_levels == 8
    assert parse_budget("mse=1e-4,band=1e-3,over1=2%").over_1 == pytest.approx(0.02)
    ok = Drift(mse=1.0, mad=0.1, max_abs=0.03, p99_abs=0.02, band_mse=1.0, band_pixels=10, pixels=100, over_1=0.5,
               over_4=0.0009, max_levels=8)
    assert b.admits(ok) and not b.admits(Drift(**{**ok.__dict__, "max_levels": 9}))
    assert not b.admits(Drift(**{**ok.__dict__, "over_4": 0.0011}))
    assert not b.admits(Drift(**{**ok.__dict__, "mse": math.nan}))
    for bad in ("lots", "over4=200%", "fp=1", "mse=nan", "levels=-1", "", "over1"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_boundary_band_is_the_soft_edge_not_the_whole_image() -> None:
    """256 px, a person-like disc with a 3 px soft edge: the band is a thin ring, and drift far from it
    does not count there while drift on it does."""
    yy, xx = np.mgrid[0:256, 0:256]
    r = np.hypot(yy - 128, xx - 128)
    ref = np.clip((70 - r) / 3, 0, 1).astype(np.float32)
    band = boundary_band(ref)
    assert 0.02 < band.mean() < 0.2 and not band[0, 0] and not band[128, 128]
    far = ref.copy()
    far[:8, :8] = 0.5  # a blotch in the background corner, far from the edge
    d = Drift.measure(ref, far)
    assert d.mse > 0 and d.band_mse == 0
    on_edge = ref.copy()
    on_edge[band] = np.clip(on_edge[band] + 0.05, 0, 1)
    d = Drift.measure(ref, on_edge)
    assert d.band_mse > 5 * d.mse
    assert BUDGETS["int8"].band_mse is not None  # the precision that judges the band


# ------------------------------------------------------------------------------------------------
# two rows per artifact: numerics and end to end


def test_end_to_end_row_of_a_static_shape_artifact(tmp_path: Path) -> None:
    """A dynamic artifact is fed what the reference is fed (both rows one measurement); a static one
    squashes the photo, and its end-to-end row measures that against the native reference matte."""
    import modnet_edge
    from modnet_edge.model.checkpoint import random_checkpoint, save_checkpoint, build_from_checkpoint
    from modnet_edge.parity_tests.parity import run_parity

    ckpt = random_checkpoint(0)
    path = save_checkpoint(tmp_path / "r.pt", build_from_checkpoint(ckpt), provenance=ckpt.provenance)
    dyn = modnet_edge.export(path, "onnx", "fp32", tmp_path / "d.onnx")
    static = modnet_edge.export(path, "onnx", "fp32", tmp_path / "s.onnx", static_shape=(64, 64))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(96, 160), (160, 96)]):  # non-square: squashing changes them
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images / f"x{i}.png")
    report = run_parity([dyn, static], images=images, progress=False, keep_mattes=True)
    d, s = report.results
    assert d.input_shape == "dynamic" and d.end_to_end_is_numerics and d.end_to_end.mse == d.drift.mse
    assert s.input_shape == "64x64" and not s.end_to_end_is_numerics
    assert s.passed and s.end_to_end.mse > 1e3 * max(s.drift.mse, 1e-15)  # numerics fine, squash costs
    assert set(report.native_mattes) == {"x0.png", "x1.png"}
    data = json.loads(report.write_json(tmp_path / "p.json").read_text())
    row = data["artifacts"][1]
    assert row["end_to_end"]["same_as_numerics"] is False and row["end_to_end"]["drift"]["mse"] > 0
    assert {"over_1", "over_4", "max_levels", "unsure"} <= set(row["drift"]) and row["worst_image"] in ("x0.png", "x1.png")
    assert [r["image"] for r in data["images"]] == ["x0.png", "x1.png"]
    table = report.table()
    assert "end to end" in table and ">4/255" in table and "worst image" in table
