"""One reading of a device string for every stage that runs the network in PyTorch (training, SOC,
``load_network``, the PyTorch backend): ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

import torch

from modnet_edge.core.errors import ConfigError


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``name`` as a torch device; ``cuda`` without an index is this process's local rank's GPU (DDP)."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], not {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    elif dev.type != "cpu":
        raise ConfigError(f"device must be auto, cpu or cuda[:N], not {name!r}")
    return dev
