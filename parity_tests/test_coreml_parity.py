"""Core ML parity, gated on any system: every precision's ML Program executed by the NumPy reference
(plus Core ML itself on macOS) against the PyTorch reference on the portraits.

The artifacts come from the session's checkpoint (the built-in starter weights, or the team's own) at
a modest fixed size, so the suite stays cheap; every precision gates on its budget (the starter's known
misses are strict expected failures, see ``expected_misses``).  The executor's own exactness (FP32
program vs PyTorch, MSE <= 1e-9) always gates.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from modnet_edge.parity_tests.expected_misses import gated
from modnet_edge.parity_tests.drift import BUDGETS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("coremltools") is None,
                                 reason="coremltools is not installed (pip install -e '.[coreml]')")]

SIZE = (256, 256)
# palettization (k-means) needs scikit-learn, the optional "coreml-palettize" extra
PALETTIZED = ("palettized-6bit", "palettized-4bit") if importlib.util.find_spec("sklearn") else ()
PRECISIONS = ("fp32", "fp16", "int8-weights", *PALETTIZED)


@pytest.fixture(scope="module")
def coreml_packages(trained_checkpoint, tmp_path_factory) -> dict[str, Path]:
    import modnet_edge

    out = tmp_path_factory.mktemp("coreml-parity")
    return {p: modnet_edge.export(trained_checkpoint, format="coreml", precision=p,
                                  output=out / f"modnet.{p}.mlpackage", static_shape=SIZE) for p in PRECISIONS}


@pytest.fixture(scope="module")
def coreml_report(coreml_packages, parity_images, record_parity):
    """fp32/fp16 on every portrait; the weight-compressed variants (whose decoding is also checked
    exactly below) on the first five, to keep the suite's NumPy execution time down."""
    from modnet_edge.parity_tests.parity import ParityReport, run_parity

    float_report = run_parity([coreml_packages[p] for p in ("fp32", "fp16")], images=parity_images, progress=False)
    compressed = [coreml_packages[p] for p in PRECISIONS if p not in ("fp32", "fp16")]
    compressed_report = run_parity(compressed, images=parity_images, limit=5, progress=False)
    record_parity(float_report)
    record_parity(compressed_report)
    return ParityReport(float_report.results + compressed_report.results, float_report.images,
                        float_report.image_source)


def test_coreml_runs_where_it_can(coreml_report):
    results = coreml_report.results
    assert {r.runtime for r in results} == ({"coreml", "reference"} if sys.platform == "darwin" else {"reference"})
    assert {r.precision for r in results if r.runtime == "reference"} == set(PRECISIONS)
    fp32 = next(r for r in results if r.precision == "fp32" and r.runtime == "reference")
    assert fp32.drift.mse <= BUDGETS["fp32"].mse  # the executor itself reproduces PyTorch, on any checkpoint


@pytest.mark.parametrize("name", gated(f"modnet.{p}.mlpackage" for p in PRECISIONS))
def test_coreml_package_within_budget(name, coreml_report, parity_gate):
    for result in (r for r in coreml_report.results if Path(r.artifact).name == name):  # each runtime
        parity_gate(coreml_report, only=result)


def test_compressed_weights_decode_as_coremltools_does(coreml_packages):
    """Our decoding of int8 and palettised weights against coremltools' own decompression."""
    from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops

    from modnet_edge.runtimes.coreml_reference import CoreMLReferenceBackend

    for precision in ("int8-weights", *PALETTIZED):
        with CoreMLReferenceBackend(coreml_packages[precision]) as backend:
            ops = [op for op in backend.program.operations if op.type.startswith("constexpr_")]
            assert len(ops) >= 10  # every weight tensor of >= 65536 elements is compressed
            for op in ops:
                a = op.attributes
                if op.type == "constexpr_lut_to_dense":
                    expected = constexpr_ops.constexpr_lut_to_dense.decompress(a["lut"], a["indices"], a["shape"])
                else:
                    expected = constexpr_ops.constexpr_affine_dequantize.decompress(
                        a["quantized_data"], a["zero_point"], a["scale"], a["axis"])
                np.testing.assert_array_equal(backend.executor.constants[op.outputs[0].name], expected)
