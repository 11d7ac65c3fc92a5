"""Typed errors for everything a user can get wrong.

Every stage raises one of these (never a bare library traceback) so the CLI can print one clear line
naming the file and the problem and exit non-zero, and so callers can catch by category.
"""

from __future__ import annotations

import errno
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


class EnvironmentFailure(ModnetEdgeError):
    """The machine, not the input, stopped the work: out of disk space or quota, over the file-size limit
    (``ulimit -f``), a read-only file system, an I/O error, out of memory.  The CLI exits with
    :data:`EXIT_ENVIRONMENT`, so scripts can tell "fix the machine and rerun" from "fix the input"."""


# Exit statuses of the CLI (README "Exit status"), decided in one place: ``modnet_edge.cli``.
EXIT_GATE = 1  # a verdict: a drift budget, speed target or other gate failed
EXIT_INPUT = 2  # bad input: a file, option or value the user gave
EXIT_ENVIRONMENT = 3  # the machine: disk full, file-size limit, read-only storage, I/O error, out of memory

# errno values that mean "the machine could not take it", whatever file was being written
_ENVIRONMENT_ERRNOS = {getattr(errno, name) for name in ("ENOSPC", "EFBIG", "EDQUOT", "EROFS", "EIO")
                       if hasattr(errno, name)}


# how PyTorch's CPU allocator says it: a RuntimeError, not a MemoryError
_OUT_OF_MEMORY = "can't allocate memory"


def environment_failure(exc: BaseException, path: str | Path | None = None) -> EnvironmentFailure | None:
    """The :class:`EnvironmentFailure` that ``exc`` (or an exception it was raised from) stands for, naming
    ``path`` (else the file the OS error names); None when it is not an environment failure."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, EnvironmentFailure):
            return exc
        if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and _OUT_OF_MEMORY in str(exc)):
            return EnvironmentFailure("out of memory", path)
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            where = path if path is not None else exc.filename
            return EnvironmentFailure(f"{(exc.strerror or str(exc)).lower()} (the machine refused it, not the input)", where)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None
