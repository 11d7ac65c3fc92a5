"""training (the ``train/`` folder): the training stage (datasets, losses, the training loop, SOC
adaptation, metrics).

The network and its checkpoints live in :mod:`modnet_edge.model`; training writes checkpoints of it.

``modnet_edge.train(config_or_path, data=None, output=DIR) -> Path`` (this package's :func:`train`)
trains and returns the best checkpoint; the package is imported as ``modnet_edge.training`` so that name
and the function's never meet.
Names are imported lazily, so the CLI can list commands without importing torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

_LAZY = {"TrainConfig": "config", "adapt": "soc"}

__all__ = [*_LAZY, "train"]


def train(config_or_path: Any = None, data: str | Path | None = None, output: str | Path = "runs/modnet",
          resume: bool | str | Path = False, **overrides: Any) -> Path:
    """Train MODNet and return the best checkpoint (see :func:`modnet_edge.training.trainer.train`)."""
    from modnet_edge.training.trainer import train as _train

    return _train(config_or_path, data=data, output=output, resume=resume, **overrides)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
