"""The INT8 anatomy tool: each rounding alone, on photos, in the simulated INT8 network -- and that the
simulated network is the exported artifact (its drift equals the ONNX INT8 artifact's, Q/DQ computed
exactly).  Tiny shapes: the mechanics, not README's figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modnet_edge.model.checkpoint import build_from_checkpoint
from modnet_edge.model.parts import GROUPS, group_of
from modnet_edge.model.weights import resolve_checkpoint
from modnet_edge.parity_tests.int8_anatomy import INPUT, format_anatomy, int8_anatomy, main
from modnet_edge.training.quant_sim import prepare

SIZE = 128


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two of the package's unseen photos (a portrait and a landscape), already at the artifact's shape
    (lossless), so parity compares mattes where the simulation does: no resize on either side."""
    from PIL import Image

    from modnet_edge.core.images import unseen_images

    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "sunset"):
        with Image.open(unseen_images() / f"{name}.jpg") as im:
            im.convert("RGB").resize((SIZE, SIZE), Image.BOX).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def anatomy(photos: Path):
    return int8_anatomy("starter", size=SIZE, calibration_size=2, images=photos, progress=False)


def test_every_rounding_has_one_row_and_the_groups_add_up(anatomy) -> None:
    sim = prepare(build_from_checkpoint(resolve_checkpoint("starter")).eval(), "onnx")
    acts = [r for r in anatomy.rows if r.kind == "activation"]
    layers = [r for r in anatomy.rows if r.kind == "weights"]
    assert len(acts) == len(sim.activations) and len(layers) == len(sim.weights)
    assert len({r.name for r in layers}) == len(layers)
    assert [r.mse for r in anatomy.rows] == sorted((r.mse for r in anatomy.rows), reverse=True)
    assert all(np.isfinite(r.mse) and r.mse >= 0 for r in anatomy.rows)
    assert all(r.low <= 0 <= r.high and r.low < r.high for r in acts)  # resizes show their input's grid
    image = [r for r in acts if r.name == "image"]
    assert len(image) == 1 and image[0].group == INPUT and image[0].low < 0 < image[0].high
    assert {r.group for r in anatomy.rows} <= {*GROUPS, INPUT, "other"}
    assert any(r.group == "backbone/2x" for r in layers)  # the stem's weights
    sums = anatomy.by_group()
    assert sum(sums.values()) == pytest.approx(sum(r.mse for r in anatomy.rows))
    assert 0 < anatomy.weights_only < anatomy.total and 0 < anatomy.activations_only < anatomy.total * 1.5
    assert anatomy.images == ["astronaut.png", "sunset.png"] and anatomy.seen == {}  # never trained on
    assert 0 < anatomy.half_level_noise < 1e-2  # the float network, dithered input: a yardstick, not a rounding


def test_the_simulated_total_is_the_exported_artifacts_drift(anatomy, photos: Path, tmp_path: Path) -> None:
    """What makes the rows worth reading: every rounding on, the simulation drifts about as much as the
    ONNX INT8 artifact the exporter writes (same calibration, 8-bit weights, Q/DQ computed exactly).
    Measured: within 0.5 % at 512x512 on the 7 unseen photos, 5 % here (128x128, two photos); the two
    mattes are not identical (module docstring), so the bound is 10 %, not a float tolerance."""
    from modnet_edge.exporters.skeleton import export_artifact
    from modnet_edge.model.weights import weights_file
    from modnet_edge.parity_tests.parity import run_parity

    path = tmp_path / "m.int8.onnx"
    export_artifact("starter", "onnx", "int8", path, static_shape=(SIZE, SIZE), calibration="synthetic",
                    calibration_size=2, target_cpu="x86-vnni")
    ref = weights_file(str(resolve_checkpoint("starter").provenance["weights"]))
    r = run_parity([path], images=photos, progress=False, reference=ref, optimization="none").results[0]
    assert r.drift.mse == pytest.approx(anatomy.total, rel=0.1)


def test_kept_float_parts_round_only_what_quantised_parts_read(anatomy, photos: Path) -> None:
    """A float backbone quantises no weight of its own, and of its tensors only the features the
    quantised branches read (a row names the module that makes the tensor)."""
    a = int8_anatomy("starter", size=64, calibration_size=2, keep_float=["backbone"], images=photos,
                     progress=False)
    backbone = [r for r in a.rows if r.group.startswith("backbone/")]
    assert a.rows and all(r.kind == "activation" for r in backbone)
    assert 0 < len(backbone) <= 4 < len([r for r in anatomy.rows if r.group.startswith("backbone/")])
    assert a.keep_float == ["backbone"]
    assert group_of("backbone.model.features.0.0") == "backbone/2x" and group_of("lr_branch") == "branch-glue"
    assert group_of("hr_branch.conv_hr2x.1.layers.0") == "hr/2x" and group_of("") is None


def test_command_writes_its_rows_and_never_replaces_a_users_file(photos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "anatomy.json"
    assert main(["--size", "64", "--calibration-size", "2", "--no-weights", "--no-progress", "--top", "3",
                 "--images", str(photos), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["rows"] and record["by_group"] and record["total"] > 0
    assert "the 3 costliest roundings alone" in capsys.readouterr().out
    mine = tmp_path / "mine.json"
    mine.write_text("a user's notes\n")
    assert main(["--size", str(SIZE), "--json", str(mine)]) == 2
    assert mine.read_text() == "a user's notes\n"
    assert "mine.json" in capsys.readouterr().err
    assert main(["--size", str(SIZE), "--images", str(tmp_path / "nowhere")]) == 2


def test_the_table_says_when_the_photos_were_trained_on(anatomy) -> None:
    import dataclasses

    seen = dataclasses.replace(anatomy, seen={"astronaut.png": "trained on"})
    assert "the network learned from some of these photos" in format_anatomy(seen)
    assert "learned from" not in format_anatomy(anatomy)
