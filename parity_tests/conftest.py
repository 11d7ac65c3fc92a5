"""Parity-suite plumbing: where the images come from, and the drift tables printed at the end of the run."""

from __future__ import annotations

from pathlib import Path

import pytest

_TABLES: list[str] = []


@pytest.fixture(scope="session")
def parity_images() -> Path:
    """The package's unseen photos: no built-in network was trained on them (a user's photos are photos
    the network never saw, and drift there -- where the network hesitates -- is the drift users get)."""
    from modnet_edge.core.images import unseen_images

    return unseen_images()


@pytest.fixture(scope="session")
def record_parity():
    """Tests hand their ParityReport here so the tables appear in the CI log even when all pass."""
    return lambda report: _TABLES.append(report.table())


@pytest.fixture
def record_text():
    """Tests hand any other text for the CI log here (a search summary, a per-image table)."""
    return _TABLES.append


@pytest.fixture(scope="session")
def parity_gate(trained_checkpoint):
    """``gate(report)``: every drift budget gates every result (on the starter weights by default, or
    the checkpoint named by MODNET_EDGE_PARITY_CHECKPOINT); the table is printed at the end either way."""

    def gate(report, only=None) -> None:
        """Gate every result of ``report`` (a ParityReport), or only the ArtifactParity ``only``."""
        if only is None:
            _TABLES.append(report.table())
        failures = [f"{r.artifact}: {r.precision} drift MSE {r.drift.mse:.3e} / band {r.drift.band_mse:.3e} over "
                    f"budget {r.budget}" for r in (report.results if only is None else [only]) if not r.passed]
        assert not failures, "\n".join(failures) + ("\n" + report.table() if only is None else "")

    return gate


def pytest_terminal_summary(terminalreporter) -> None:
    if _TABLES:
        terminalreporter.section("parity drift against the PyTorch reference")
        for table in _TABLES:
            terminalreporter.write_line(table)
            terminalreporter.write_line("")
