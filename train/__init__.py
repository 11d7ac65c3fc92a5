"""train: the PyTorch stage (the MODNet network, checkpoints; datasets, losses, training, SOC and metrics).

``modnet_edge.train(config_or_path, data=None, output=DIR) -> Path`` trains and returns the best
checkpoint; the package itself is callable so that spelling works although ``train`` is a package.
"""

from .checkpoint import (Checkpoint, load_network, read_checkpoint, remap_official_state_dict, save_checkpoint,
                         to_official_state_dict)
from .network import MODNet, ModelConfig, build_modnet, count_parameters
from .trainer import train

__all__ = ["Checkpoint", "MODNet", "ModelConfig", "build_modnet", "count_parameters", "load_network",
           "read_checkpoint", "remap_official_state_dict", "save_checkpoint", "to_official_state_dict", "train"]

from modnet_edge.core import make_module_callable  # noqa: E402

make_module_callable(__name__, train)
