"""A precision chosen on photos the network never saw holds on other photos it never saw.

The search chooses its FP16 variant on half of the package's unseen photos (pooled, every single image
and the 90 % bound for one more photo within the budget: a margin from their spread) and verifies the
choice on the other half.  Here the chosen
artifact is measured once more, independently, on a third set: the person-free photos held out of
every built-in network's training (``data/person-free/eval`` of a source checkout), where the network's
hesitation over what is background is what reduced precision turns into drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modnet_edge.core import get_format
from modnet_edge.core.images import list_images, unseen_images
from modnet_edge.parity_tests.parity import BUDGETS, exposure, run_parity

pytestmark = pytest.mark.slow

OTHER_UNSEEN = Path(__file__).resolve().parents[1] / "data" / "person-free" / "eval"


@pytest.mark.skipif(not OTHER_UNSEEN.is_dir(), reason="data/person-free/eval is part of a source checkout only")
@pytest.mark.parametrize("fmt", ["onnx", "tensorrt-onnx"])
def test_fp16_choice_holds_on_other_unseen_photos(fmt: str, trained_checkpoint: Path, tmp_path: Path,
                                                  record_parity, record_text) -> None:
    from modnet_edge.precision_search import search_precision

    suffix = get_format(fmt).suffixes[0]
    out = tmp_path / f"searched.fp16{suffix}"
    result = search_precision(trained_checkpoint, fmt, "fp16", out, progress=False)
    assert result.chosen is not None, result.summary()
    chosen_on, verified_on = set(result.choose.images), set(result.verify.images)
    assert chosen_on and verified_on and not chosen_on & verified_on
    assert chosen_on | verified_on == {f.name for f in list_images(unseen_images())}
    assert result.verify.passed, result.summary()

    # every other held-out person-free photo: a third, independent set (two of the package's unseen photos
    # are downscaled copies of photos in that folder: those are left out, or the set would not be independent)
    packaged = [_thumbnail(f) for f in list_images(unseen_images())]
    others = [f for f in list_images(OTHER_UNSEEN) if not any(_same_photo(_thumbnail(f), p) for p in packaged)][::2]
    assert len(others) >= 10
    assert not exposure(others, {"weights": "starter"})  # never trained on
    report = run_parity([out], images=others, progress=False)
    record_parity(report)
    (r,) = report.results
    record_text(result.summary() + "\n" + _per_image(r))
    assert r.budget == BUDGETS["fp16"]
    assert r.passed, report.table()


def _thumbnail(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _same_photo(a: np.ndarray, b: np.ndarray) -> bool:
    """The same photo at another size or JPEG quality (different photos differ by far more than 3 %)."""
    return float(np.mean(np.abs(a - b))) < 0.03


def test_the_same_photo_test_tells_copies_from_other_photos() -> None:
    pytest.importorskip("PIL")
    packaged = {f.name: _thumbnail(f) for f in list_images(unseen_images())}
    if not OTHER_UNSEEN.is_dir():
        pytest.skip("data/person-free/eval is part of a source checkout only")
    eval_thumbs = {f.name: _thumbnail(f) for f in list_images(OTHER_UNSEEN)}
    assert _same_photo(packaged["china.jpg"], eval_thumbs["china.jpg"])  # the same scikit-learn photo, resized
    assert _same_photo(packaged["sunset.jpg"], eval_thumbs["sunset_by_Aitzol_Berasategi.jpg"])
    pairs = [(a, b) for a in packaged for b in eval_thumbs if _same_photo(packaged[a], eval_thumbs[b])]
    assert sorted(pairs) == [("china.jpg", "china.jpg"), ("sunset.jpg", "sunset_by_Aitzol_Berasategi.jpg")]


def _per_image(result) -> str:
    lines = [f"{result.artifact.rsplit('/', 1)[-1]} per image: {'image':<30} {'MSE':>8} {'>1/255':>7} {'>4/255':>7} "
             f"{'max lv':>6} {'unsure':>6}"]
    for name, d in result.per_image.items():
        lines.append(f"  {name:<30} {d.mse:8.1e} {d.over_1:7.2%} {d.over_4:7.2%} {d.max_levels:6d} {d.unsure:6.1%}")
    return "\n".join(lines)
