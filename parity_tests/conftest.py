"""Parity-suite plumbing: where the images come from, and the drift tables printed at the end of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

_TABLES: list[str] = []
SHARED_PORTRAITS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "p3m-portraits" / "image"


@pytest.fixture(scope="session")
def parity_images() -> Path | None:
    """The 10 real portraits when ../shared is present; None means generated synthetic portraits
    (every report says which)."""
    return SHARED_PORTRAITS if SHARED_PORTRAITS.is_dir() else None


@pytest.fixture(scope="session")
def record_parity():
    """Tests hand their ParityReport here so the tables appear in the CI log even when all pass."""
    return lambda report: _TABLES.append(report.table())


def pytest_terminal_summary(terminalreporter) -> None:
    if _TABLES:
        terminalreporter.section("parity drift against the PyTorch reference")
        for table in _TABLES:
            terminalreporter.write_line(table)
            terminalreporter.write_line("")
