"""The precision table is the one place a precision's facts live: every stage reads its row."""

from __future__ import annotations

import pytest

from modnet_edge.core import FORMATS, PRECISION_TABLE, precision_row
from modnet_edge.core.errors import ConfigError


def test_every_stage_reads_the_row() -> None:
    from modnet_edge.benchmarks.targets import _precision_matches
    from modnet_edge.exporters.tflite_quantize import MODES
    from modnet_edge.parity_tests.doctor import threshold_for
    from modnet_edge.parity_tests.drift import BUDGETS, budget_for

    for name, row in PRECISION_TABLE.items():
        assert budget_for(name) == BUDGETS[name]
        assert (budget_for(name).mse, budget_for(name).band_mse) == (row.budget_mse, row.budget_band_mse)
        assert threshold_for(name) == row.doctor_threshold
        assert _precision_matches(row.family, name) and _precision_matches("*", name) and _precision_matches(name, name)
        if row.converter_name("tflite"):
            assert MODES[row.converter_name("tflite")] == name
    assert set(MODES.values()) == {p for p in FORMATS["tflite"].variants if p != "fp32"}
    # a format calibrates exactly the precisions whose row says so (where its exporter takes calibration data)
    assert {p for f in FORMATS.values() for p in f.variants if f.calibrated(p)} == \
        {n for n, r in PRECISION_TABLE.items() if r.calibrated}


def test_names_are_matched_exactly_never_by_prefix() -> None:
    from modnet_edge.benchmarks.targets import _precision_matches
    from modnet_edge.parity_tests.doctor import threshold_for
    from modnet_edge.parity_tests.drift import BUDGETS, Budget, budget_for

    for bad in ("int8-foo", "fp16x", "palettized"):
        with pytest.raises(ConfigError, match="precision"):
            budget_for(bad)
        with pytest.raises(ConfigError, match="unknown precision"):
            threshold_for(bad)
        with pytest.raises(ConfigError, match="unknown precision"):
            precision_row(bad)
    own = Budget(mse=5e-5)  # a user's budget replaces one precision's, not its family's
    assert budget_for("int8", {**BUDGETS, "int8": own}) == own
    assert budget_for("int8-weights", {"int8": own, "int8-weights": budget_for("int8-weights")}) != own
    assert not _precision_matches("int8", "fp16") and not _precision_matches("int", "int8-a16")
    assert _precision_matches("int8", "int8-a16") and _precision_matches("palettized", "palettized-4bit")


def test_search_facts_live_in_the_format_rows() -> None:
    """The search reads how a kept set becomes exporter options from the rows: ONNX FP16 keeps its input
    through keep_io_types, Core ML through a keep_float item, TensorRT-ready FP16 has float32 I/O already
    (its search never keeps 'io'), INT8 keeps the image concatenations as a keep_float item."""
    from modnet_edge.model.parts import GROUPS as MODULE_GROUPS
    from modnet_edge.precision_search import SEARCHABLE, kept_options, search_groups

    group = next(iter(MODULE_GROUPS))
    selectors = [f"module:{m}" for m in MODULE_GROUPS[group]]
    assert kept_options("onnx", "fp16", [group, "io"]) == {"keep_float": selectors, "keep_io_types": True}
    assert kept_options("onnx", "fp16", [group]) == {"keep_float": selectors, "keep_io_types": False}
    assert kept_options("coreml", "fp16", ["io", group]) == {"keep_float": [*selectors, "io"]}
    assert kept_options("tensorrt-onnx", "fp16", [group, "io"]) == {"keep_float": selectors}
    for fmt in ("onnx", "tensorrt-onnx", "tflite"):
        assert kept_options(fmt, "int8", ["image-concat", group]) == {"keep_float": [*selectors, "image-concat"]}
    assert "io" not in search_groups("tensorrt-onnx", "fp16") and "io" in search_groups("coreml", "fp16")
    assert search_groups("tflite", "int8")[-1] == "image-concat"
    assert SEARCHABLE == {(f.name, p) for f in FORMATS.values() for p in f.variants if f.search(p) is not None}
    assert sum(f.search_twin for f in FORMATS.values()) == 1
    with pytest.raises(ConfigError, match="precision search covers"):
        kept_options("coreml", "int8-weights", [])


def test_parts_are_named_once_in_the_model_package() -> None:
    """Groups and presets name modules that exist in both low-resolution variants (or in one, for the
    variant's own block), and the exporters' preset lists are the model's."""
    from modnet_edge.exporters.qdq import KEEP_FLOAT_PRESETS as ONNX_PRESETS
    from modnet_edge.exporters.tflite_quantize import KEEP_FLOAT_PRESETS as TFLITE_PRESETS
    from modnet_edge.model.parts import GROUPS, PRESETS, module_names, preset_selectors, selector_path

    both = set(module_names({"lr_block": "se"})) | set(module_names({"lr_block": "e-aspp"}))
    for group, modules in GROUPS.items():
        assert all(m.rstrip("$") in both for m in modules), group
    for preset in PRESETS:
        for variant in ("se", "e-aspp"):
            selectors = preset_selectors(preset, {"lr_block": variant})
            assert selectors and all(selector_path(s) in module_names({"lr_block": variant}) for s in selectors)
    norms = preset_selectors("instance-norm")  # the IBNorm blocks' instance norms, wherever they are
    assert norms == [f"module:{n}" for n in module_names() if n.endswith(".inorm")] and len(norms) > 10
    assert ONNX_PRESETS == TFLITE_PRESETS == ("image-concat", *PRESETS)


def test_a_format_never_searches_a_group_it_keeps_already() -> None:
    """The shared FP16 ranking (measured on the twin) ranks 'io'; TensorRT-ready FP16 keeps float32 I/O
    already, so its search order leaves 'io' out while the twin's keeps it."""
    from modnet_edge.precision_search import _Search

    ranking = [("io", 3.0), ("backbone/2x", 2.0), ("hr/2x", 1.0)]
    orders = {}
    for fmt in ("tensorrt-onnx", "onnx", "coreml"):
        search = _Search.__new__(_Search)
        search.fmt, search.precision, search.tried, search.deadline, search.note = fmt, "fp16", {}, None, ""
        search.order = []
        search.trial = lambda k, s=search: s.tried.setdefault(k, type("C", (), {"passed": k >= 1})())
        search.bisect(lambda: ranking)
        orders[fmt] = search.order
    assert orders["tensorrt-onnx"] == ["backbone/2x", "hr/2x"]
    assert orders["onnx"] == orders["coreml"] == ["io", "backbone/2x", "hr/2x"]
