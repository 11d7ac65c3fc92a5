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
STARTER_MISSES: dict[str, str] = {}


def gated(names: Iterable[str]) -> list:
    """pytest params for ``names``: the starter's known misses as strict expected failures."""
    user = bool(os.environ.get("MODNET_EDGE_PARITY_CHECKPOINT"))
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=f"over budget on the starter weights: "
                                                    f"{STARTER_MISSES[n]}"))
            if n in STARTER_MISSES and not user else n for n in names]
