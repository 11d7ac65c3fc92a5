"""Fixtures shared by tests/ and parity_tests/."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = REPO.parent / "shared"
# The parity suite gates every drift budget on this checkpoint when set (e.g. a team's trained model).
USER_CHECKPOINT_ENV = "MODNET_EDGE_PARITY_CHECKPOINT"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests that need it skip (with the reason) when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data folder {SHARED} is not present beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def portraits_dir(shared_dir: Path) -> Path:
    folder = shared_dir / "data" / "p3m-portraits" / "image"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not present")
    return folder


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A network trained once per session with the "quick" preset on the built-in SYNTHETIC set
    (60 SGD steps at 128 px, identity-initialised residual blocks; deterministic; ~1-1.5 min on 2 cores).

    Numerically tamer than the kaiming random init (fp16 ONNX drift on real portraits ~4e-6 instead of
    ~7e-5), but NOT within the 1e-6 fp16 budget on out-of-distribution real photos: see train/config.py."""
    import os

    import modnet_edge

    user = os.environ.get(USER_CHECKPOINT_ENV)
    if user:  # gate a real, deployment-trained checkpoint (every budget applies: parity_tests/conftest.py)
        if not Path(user).is_file():
            raise pytest.UsageError(f"{USER_CHECKPOINT_ENV}={user}: no such checkpoint file")
        return Path(user)
    return modnet_edge.train("quick", output=tmp_path_factory.mktemp("quick-train"), progress=False)
