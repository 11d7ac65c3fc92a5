"""Naming parts of the network by PyTorch module path, in every format's own tensor and node names.

Exporters and the precision doctor both need to say "this part of MODNet" in a converted graph: keep
``lr_branch.conv_lr16x`` in float, or compare the tensor that ``hr_branch.conv_hr2x.3`` produced.  A
*module selector* ``module:<path>`` names a module and everything inside it; this module resolves it:

* ONNX (PyTorch's exporter): node names are the scopes of the modules they came from,
  ``/net/hr_branch/conv_hr2x/conv_hr2x.3/layers/layers.1/Concat``.  Only modules whose ``forward`` ran
  leave a scope segment, and a segment names the module relative to an ancestor, so segments are
  matched against the module tree (:func:`module_of_scope`) rather than joined with dots.
* TFLite (litert-torch): tensor names carry ``<class>_<attribute>`` per module level
  (``...HRBranch_hr_branch/...Sequential_conv_hr2x/...``): :func:`tflite_pattern`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

MODULE_PREFIX = "module:"

# MODNet's natural groups (what a precision search keeps or lowers as one) -> their module paths;
# backbone stages are grouped by stride
_FEATURES = "backbone.model.features."
MODULE_GROUPS: dict[str, tuple[str, ...]] = {
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


def describe_kept(items: Sequence[str]) -> list[str]:
    """Kept-in-higher-precision items with each complete group's module selectors shown as the group."""
    items = list(items)
    paths = {i[len(MODULE_PREFIX):] for i in items if is_module_selector(i)}
    out: list[str] = []
    covered: set[str] = set()
    for group, modules in MODULE_GROUPS.items():
        for variant in ("se", "e-aspp"):  # a group may name a block of either low-resolution variant
            need = {m for m in modules if m.rstrip("$") in _module_names(variant)}
            if need and need <= paths:
                out.append(group)
                covered |= need
                break
    out += [i.removeprefix(MODULE_PREFIX) for i in items
            if not (is_module_selector(i) and i[len(MODULE_PREFIX):] in covered)]
    return out


def is_module_selector(item: str) -> bool:
    return isinstance(item, str) and item.startswith(MODULE_PREFIX)


def selector_path(item: str) -> str:
    """The module path of a selector (``module:a.b`` everything inside a.b; ``module:a.b$`` only a.b's
    own ops, none of its children's)."""
    return item[len(MODULE_PREFIX):].strip(".").rstrip("$")


def selector_module(item: str) -> str:
    """The module a selector names, with its ``$`` (own ops only) kept, as the resolvers take it."""
    return item[len(MODULE_PREFIX):].strip(".")


def _own_only(module: str) -> tuple[str, bool]:
    return (module[:-1], True) if module.endswith("$") else (module, False)


@lru_cache(maxsize=4)
def _module_names(lr_block: str) -> tuple[str, ...]:
    from modnet_edge.model.network import MODNet, ModelConfig

    return tuple(n for n, _ in MODNet(ModelConfig(lr_block=lr_block)).named_modules() if n)


def module_names(model_config: Any = None) -> tuple[str, ...]:
    """Qualified module names of the network a config (a ModelConfig or its dict) describes."""
    lr_block = "se"
    if model_config is not None:
        lr_block = model_config.get("lr_block", "se") if isinstance(model_config, dict) else model_config.lr_block
    return _module_names(lr_block)


def module_of_scope(scope: str, modules: Sequence[str]) -> str | None:
    """The module path of an ONNX node name's scope, or None for a node outside every module.

    Memoised: a precision search resolves every node against dozens of module
    selectors per candidate (measured: 5 s of a 12 s export keeping 32 selectors in FP32).

    Each segment is matched to the shortest descendant of the module found so far whose qualified
    name is, or ends with, that segment (``/backbone/features.3/...`` -> ``backbone.model.features.3``).
    """
    return _module_of_scope(scope, tuple(modules))


@lru_cache(maxsize=16384)
def _module_of_scope(scope: str, modules: tuple[str, ...]) -> str | None:
    parts = [p for p in scope.strip("/").split("/")[:-1] if p]  # the last part is the op's own name
    if parts and parts[0] == "net":  # the export wrapper's attribute
        parts = parts[1:]
    current = ""
    for seg in parts:
        prefix = f"{current}." if current else ""
        found = [m for m in modules if m.startswith(prefix) and (m == prefix + seg or m.endswith("." + seg))]
        if not found:
            break
        current = min(found, key=len)
    return current or None


def within(path: str | None, module: str) -> bool:
    """Whether module ``path`` is ``module`` or inside it."""
    return path is not None and (path == module or path.startswith(module + "."))


def onnx_nodes_in(model: Any, modules: Iterable[str], model_config: Any = None) -> list[str]:
    """Names of the ONNX nodes computed inside any of ``modules`` (module paths; ``path$``: that
    module's own nodes only)."""
    names = module_names(model_config)
    wanted = [_own_only(m) for m in modules]
    found = []
    for n in model.graph.node:
        path = module_of_scope(n.name, names)
        if any(path == m if own else within(path, m) for m, own in wanted):
            found.append(n.name)
    return found


@lru_cache(maxsize=4)
def _called_modules(lr_block: str) -> frozenset[str]:
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


def tflite_pattern(module: str, model_config: Any = None) -> str:
    """A regex on litert-torch tensor names that matches the ops inside ``module``: one
    ``<class>_<attribute>`` level per module on the way whose forward ran."""
    lr_block = "se"
    if model_config is not None:
        lr_block = model_config.get("lr_block", "se") if isinstance(model_config, dict) else model_config.lr_block
    module, own = _own_only(module)
    called = _called_modules(lr_block)
    parts = module.split(".")
    chain = [parts[i - 1] for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in called]
    # litert-torch joins the names of fused tensors with ';' (``..._lr_branch;2``)
    return "/".join(r"[^/]*_" + re.escape(seg) for seg in chain) + (r"(;|$)" if own else r"(/|;|$)")
