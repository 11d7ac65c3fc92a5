"""The network's parts, named once: the groups a precision search keeps or lowers as one, the presets
a ``keep_float`` option takes, and module selectors -- one vocabulary for every format's exporter, the
search and the doctor.

A *module selector* ``module:<path>`` names a module of :class:`~modnet_edge.model.network.MODNet` and
everything inside it (``module:<path>$``: only that module's own ops, none of its children's).  A group
and a preset are names for sets of modules; exporters resolve module paths into their own graph's node
or tensor names (:mod:`modnet_edge.exporters.module_scopes`), so a name means the same part everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

MODULE_PREFIX = "module:"

# MODNet's natural groups (what a precision search keeps or lowers as one) -> their module paths;
# backbone stages are grouped by stride
_FEATURES = "backbone.model.features."
GROUPS: dict[str, tuple[str, ...]] = {
    "backbone/2x": tuple(f"{_FEATURES}{i}" for i in (0, 1)),
    "backbone/4x": tuple(f"{_FEATURES}{i}" for i in (2, 3)),
    "backbone/8x": tuple(f"{_FEATURES}{i}" for i in (4, 5, 6)),
    "backbone/16x": tuple(f"{_FEATURES}{i}" for i in range(7, 14)),
    "backbone/32x": tuple(f"{_FEATURES}{i}" for i in range(14, 19)),
    "lr/context": ("lr_branch.se_block", "lr_branch.e_aspp"),
    "lr/16x": ("lr_branch.conv_lr16x",),
    "lr/8x": ("lr_branch.conv_lr8x",),
    "hr/encoder": ("hr_branch.tohr_enc2x", "hr_branch.conv_enc2x", "hr_branch.tohr_enc4x", "hr_branch.conv_enc4x"),
    "hr/4x": ("hr_branch.conv_hr4x",),
    "hr/2x": ("hr_branch.conv_hr2x",),
    "fusion/4x": ("f_branch.conv_lr4x",),
    "fusion/2x": ("f_branch.conv_f2x",),
    "fusion/head": ("f_branch.conv_f",),
    # the branches' own ops, outside every block: resizes, concatenations, the final sigmoid
    "branch-glue": ("lr_branch$", "hr_branch$", "f_branch$"),
}

# keep_float presets -> module paths ("*.inorm": every module of that name, the instance norms of the
# IBNorm blocks); "image-concat" (INT8) and "io" (FP16) are not modules: each exporter finds those ops
PRESETS: dict[str, tuple[str, ...]] = {
    "fusion-head": ("f_branch.conv_f",),
    "instance-norm": ("*.inorm",),
    "backbone": ("backbone",),
    "lr-branch": ("lr_branch",),
    "hr-branch": ("hr_branch",),
    "fusion-branch": ("f_branch",),
}


def preset_modules(name: str, model_config: Any = None) -> list[str]:
    """The module paths preset ``name`` stands for, in the network ``model_config`` describes (what the
    exporters' resolvers take)."""
    names = module_names(model_config)
    out: list[str] = []
    for path in PRESETS[name]:
        out += [n for n in names if n.endswith(path[1:])] if path.startswith("*.") else [path]
    return out


def preset_selectors(name: str, model_config: Any = None) -> list[str]:
    """The module selectors preset ``name`` stands for (``module:<path>`` each)."""
    return [f"{MODULE_PREFIX}{m}" for m in preset_modules(name, model_config)]


def describe_kept(items: Sequence[str]) -> list[str]:
    """Kept-in-higher-precision items with each complete group's module selectors shown as the group."""
    items = list(items)
    paths = {i[len(MODULE_PREFIX):] for i in items if is_module_selector(i)}
    out: list[str] = []
    covered: set[str] = set()
    for group, modules in GROUPS.items():
        for variant in ("se", "e-aspp"):  # a group may name a block of either low-resolution variant
            need = {m for m in modules if m.rstrip("$") in _module_names(variant)}
            if need and need <= paths:
                out.append(group)
                covered |= need
                break
    out += [i.removeprefix(MODULE_PREFIX) for i in items
            if not (is_module_selector(i) and i[len(MODULE_PREFIX):] in covered)]
    return out


def group_of(path: str) -> str | None:
    """The group of :data:`GROUPS` module ``path`` belongs to (None: outside every group)."""
    for group, modules in GROUPS.items():
        for m in modules:
            module, own = own_only(m)
            if (path == module) if own else within(path, module):
                return group
    return None


def is_module_selector(item: str) -> bool:
    return isinstance(item, str) and item.startswith(MODULE_PREFIX)


def selector_path(item: str) -> str:
    """The module path of a selector (``module:a.b`` everything inside a.b; ``module:a.b$`` only a.b's
    own ops, none of its children's)."""
    return item[len(MODULE_PREFIX):].strip(".").rstrip("$")


def selector_module(item: str) -> str:
    """The module a selector names, with its ``$`` (own ops only) kept, as the resolvers take it."""
    return item[len(MODULE_PREFIX):].strip(".")


def within(path: str | None, module: str) -> bool:
    """Whether module ``path`` is ``module`` or inside it."""
    return path is not None and (path == module or path.startswith(module + "."))


def own_only(module: str) -> tuple[str, bool]:
    """(module path, whether only its own ops are meant) of a selector's module (``path$``: own ops only)."""
    return (module[:-1], True) if module.endswith("$") else (module, False)


@lru_cache(maxsize=4)
def _module_names(lr_block: str) -> tuple[str, ...]:
    from modnet_edge.model.network import MODNet, ModelConfig

    return tuple(n for n, _ in MODNet(ModelConfig(lr_block=lr_block)).named_modules() if n)


def module_names(model_config: Any = None) -> tuple[str, ...]:
    """Qualified module names of the network a config (a ModelConfig or its dict) describes."""
    return _module_names(lr_block_of(model_config))


def lr_block_of(model_config: Any = None) -> str:
    """The low-resolution block variant ("se" or "e-aspp") a config (a ModelConfig or its dict) describes."""
    if model_config is None:
        return "se"
    return model_config.get("lr_block", "se") if isinstance(model_config, dict) else model_config.lr_block


@lru_cache(maxsize=4)
def called_modules(lr_block: str) -> frozenset[str]:
    """Modules whose ``forward`` runs (a Sequential iterated by hand does not): only they leave a level
    in converted graphs' names."""
    import torch

    from modnet_edge.model.network import MODNet, ModelConfig

    net = MODNet(ModelConfig(lr_block=lr_block)).eval()
    called: set[str] = set()
    names = {m: n for n, m in net.named_modules() if n}
    handles = [m.register_forward_hook(lambda m, i, o: called.add(names[m])) for m in names]
    with torch.no_grad():
        net(torch.zeros(1, 3, 64, 64))
    for h in handles:
        h.remove()
    return frozenset(called)
