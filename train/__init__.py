"""train: the PyTorch stage (the MODNet network, checkpoints; training, SOC and metrics)."""

from .checkpoint import (Checkpoint, load_network, read_checkpoint, remap_official_state_dict, save_checkpoint,
                         to_official_state_dict)
from .network import MODNet, ModelConfig, build_modnet, count_parameters

__all__ = ["Checkpoint", "MODNet", "ModelConfig", "build_modnet", "count_parameters", "load_network",
           "read_checkpoint", "remap_official_state_dict", "save_checkpoint", "to_official_state_dict"]
