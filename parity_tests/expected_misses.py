"""Artifacts of the built-in starter weights that are measured over their drift budget today.

Each is a strict expected failure naming its measured drift: the test turns red the day the artifact
meets its budget (then remove it here), and it is never skipped or hidden.  Budgets are not loosened to
pass.  The list applies to the starter weights only: with ``MODNET_EDGE_PARITY_CHECKPOINT`` set, every
artifact gates.  Measured on the package's four sample portraits (see the drift tables in the CI log).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

# artifact file name -> what was measured (MSE / band MSE against the budget)
# (measured 2026-12-01, Intel Xeon AVX-512 VNNI, 2 threads; INT8 artifacts at 128x128 static shape.  These
# are the plain variants; what the precision search makes of them must pass: see
# test_searched_onnx_int8_meets_the_budget, and `export(..., budget="auto")`)
STARTER_MISSES: dict[str, str] = {
    "modnet.int8.onnx": "ONNX Runtime static QDQ int8, MSE 5.0e-4 with 8-bit weights (VNNI), 1.96e-3 with the "
                        "7-bit weights chosen without VNNI, vs 1e-4 (5-20x)",
    "modnet.int8.nchw.tflite": "LiteRT full int8, MSE 6.81e-4 / band 6.98e-4 vs 1e-4 / 1e-3 (7x)",
    "modnet.int8.nhwc.tflite": "LiteRT full int8 NHWC, MSE 6.81e-4 / band 6.98e-4 vs 1e-4 / 1e-3 (7x)",
    "modnet.int8-a16.nchw.tflite": "LiteRT int8 weights + int16 activations, MSE 2.30e-4 / band 2.36e-4 (2.3x)",
    "modnet.int8-dynamic.nchw.tflite": "LiteRT dynamic-range int8, MSE 1.00e-3 / band 1.03e-3 (10x)",
    "modnet.int8-weights.nchw.tflite": "LiteRT int8 weights only, MSE 1.53e-4 / band 1.57e-4 (1.5x)",
    "m.int8.trt.onnx": "TensorRT-ready Q/DQ int8, backbone float, MSE 1.27e-4 / band 1.33e-4 (1.3x)",
}


def gated(names: Iterable[str]) -> list:
    """pytest params for ``names``: the starter's known misses as strict expected failures."""
    user = bool(os.environ.get("MODNET_EDGE_PARITY_CHECKPOINT"))
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=f"over budget on the starter weights: "
                                                    f"{STARTER_MISSES[n]}"))
            if n in STARTER_MISSES and not user else n for n in names]
