"""Fixtures shared by tests/ and parity_tests/."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = REPO.parent / "shared"


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
