"""What a resumable checkpoint stores besides the weights, and the process-level setup of a run.

Checkpoints are read back with ``torch.load(weights_only=True)``, which accepts tensors, numbers,
strings, lists and dicts only -- so NumPy's and Python's RNG states are converted to those here
instead of being pickled as objects.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modnet_edge.core.errors import ConfigError


def capture_rng() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and every CUDA device) generator states, weights_only-safe."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, pstate, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(list(pstate), dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


@dataclass
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def all_mean(self, value: float, device: torch.device) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def close(self) -> None:
        if self.initialised_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_distributed(device: torch.device) -> Dist:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1); a no-op otherwise.

    NCCL on CUDA, gloo on CPU.  Works for one node with several GPUs and for several nodes alike:
    torchrun provides RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.distributed.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    here = False
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        here = True
    return Dist(rank, world, local, here)


def optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move restored optimizer buffers (momentum, Adam moments) onto the training device."""
    for st in optimizer.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                st[k] = v.to(device)
