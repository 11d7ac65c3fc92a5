"""Typed errors for everything a user can get wrong.

Every stage raises one of these (never a bare library traceback) so the CLI can print one clear line
naming the file and the problem and exit non-zero, and so callers can catch by category.
"""

from __future__ import annotations

from pathlib import Path


class ModnetEdgeError(Exception):
    """Base class: a problem with the user's input, files or environment (not a bug in the toolkit)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class InputImageError(ModnetEdgeError):
    """An image is missing, unreadable, too small/large or has an unusable channel layout."""


class CheckpointError(ModnetEdgeError):
    """A checkpoint is unreadable, unsafe (pickled code) or of another architecture."""


class ArtifactError(ModnetEdgeError):
    """An exported model file is missing, truncated, corrupt or of an unknown format."""


class MetadataError(ArtifactError):
    """An artifact's embedded metadata or manifest is missing, malformed or inconsistent."""


class BackendUnavailableError(ModnetEdgeError):
    """The runtime a model needs (or the requested device/provider) is not installed on this machine."""


class ConfigError(ModnetEdgeError):
    """An option, config file or command-line value is invalid."""


class DataError(ModnetEdgeError):
    """A dataset or calibration folder is empty, unmatched or inconsistent."""


class FeedError(ModnetEdgeError):
    """Arrays fed to a backend do not match the model's inputs (names, rank, static dims or dtype)."""


class BudgetError(ModnetEdgeError):
    """No variant of an artifact meets the drift budget it was asked to meet (a verdict: CLI exit 1)."""
