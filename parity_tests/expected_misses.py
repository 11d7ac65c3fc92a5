"""Artifacts of the built-in starter weights that are measured over their drift budget today.

Each is a strict expected failure naming its measured drift: the test turns red the day the artifact
meets its budget (then remove it here), and it is never skipped or hidden.  Budgets are not loosened to
pass.  The list applies to the starter weights only: with ``MODNET_EDGE_PARITY_CHECKPOINT`` set, every
artifact gates.  Measured on the package's unseen photos (see the drift tables in the CI log).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

# artifact file name -> what was measured (MSE / band MSE against the budget)
# (measured 2026-12-06 on the package's 7 unseen photos, AMD EPYC AVX2 without VNNI, 2 threads; INT8
# artifacts at 128x128 static shape.  These
# are the plain variants; what the precision search makes of them must pass: see
# test_searched_onnx_int8_meets_the_budget, and `export(..., budget="auto")`)
STARTER_MISSES: dict[str, str] = {
    # measured 2026-12-06 on the 7 unseen photos, AMD EPYC (AVX2), 2 threads: plain fp16 ONNX is over its
    # budget where the starter hesitates (grace_hopper 3.6e-6); the searched fp16 variant meets it, see
    # test_search_generalises.py.  (The TensorRT-ready int8 file, 1.27e-4 on the old sample portraits,
    # measures 8.2e-5 on the unseen photos and gates.)
    "dynamic.fp16.onnx": "plain fp16 ONNX on unseen photos, MSE 1.47e-6 / band 1.55e-6 vs 1e-6 (1.5x); 1.1 % of "
                         "pixels move by more than 1/255, at most 12 levels",
    "modnet.int8.onnx": "ONNX Runtime static QDQ int8, MSE 1.5e-3 on the unseen photos with the 7-bit weights "
                        "chosen without VNNI (5.0e-4 with 8-bit weights on VNNI, old sample portraits), vs 1e-4 (5-15x)",
    "modnet.int8.nchw.tflite": "LiteRT full int8, MSE 6.4e-4 / band 6.4e-4 vs 1e-4 / 1e-3 (6x)",
    "modnet.int8.nhwc.tflite": "LiteRT full int8 NHWC, MSE 6.4e-4 / band 6.4e-4 vs 1e-4 / 1e-3 (6x)",
    "modnet.int8-a16.nchw.tflite": "LiteRT int8 weights + int16 activations, MSE 1.4e-4 / band 1.4e-4 (1.4x)",
    "modnet.int8-dynamic.nchw.tflite": "LiteRT dynamic-range int8, MSE 2.4e-4 / band 2.4e-4 (2.4x)",
    "modnet.int8-weights.nchw.tflite": "LiteRT int8 weights only, MSE 1.2e-4 / band 1.2e-4 (1.2x)",
}


def gated(names: Iterable[str]) -> list:
    """pytest params for ``names``: the starter's known misses as strict expected failures."""
    user = bool(os.environ.get("MODNET_EDGE_PARITY_CHECKPOINT"))
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=f"over budget on the starter weights: "
                                                    f"{STARTER_MISSES[n]}"))
            if n in STARTER_MISSES and not user else n for n in names]
