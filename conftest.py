"""Fixtures shared by tests/ and parity_tests/."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = REPO.parent / "shared"
# The parity suite gates every drift budget on this checkpoint when set (e.g. a team's trained model).
USER_CHECKPOINT_ENV = "MODNET_EDGE_PARITY_CHECKPOINT"


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``video`` read or write video files: skipped, with the reason, without PyAV."""
    if _has_pyav():
        return
    skip = pytest.mark.skip(reason="PyAV is not installed (pip install -e '.[video]'): no video files in or out")
    for item in items:
        if "video" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _torch_threads_unchanged():
    """Fail a test that leaves PyTorch's process-wide thread count changed: later tests would silently
    run with it, and their results would depend on test order."""
    import torch

    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"the test changed torch's thread count from {before} to {after} and did not restore it")


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
    """The network the export and parity tests use: the built-in ``starter`` weights (a network that
    mattes, shipped in the package; no training at test time), written out as a float32 checkpoint file,
    or a team's own checkpoint named by MODNET_EDGE_PARITY_CHECKPOINT.  Every drift budget gates on it."""
    import os

    user = os.environ.get(USER_CHECKPOINT_ENV)
    if user:
        if not Path(user).is_file():
            raise pytest.UsageError(f"{USER_CHECKPOINT_ENV}={user}: no such checkpoint file")
        return Path(user)
    from modnet_edge.model.checkpoint import build_from_checkpoint, save_checkpoint
    from modnet_edge.model.weights import load_weights

    ckpt = load_weights("starter")
    return save_checkpoint(tmp_path_factory.mktemp("starter") / "starter.pt", build_from_checkpoint(ckpt),
                           preprocessing=ckpt.preprocessing, provenance=ckpt.provenance)
