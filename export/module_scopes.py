"""Module paths of the network (:mod:`modnet_edge.model.parts`) resolved in each format's own node and
tensor names, so a selector such as ``module:lr_branch.conv_lr16x`` keeps or compares the same part in
every converted graph:

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

from modnet_edge.model.parts import called_modules, lr_block_of, module_names, own_only, within


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


def onnx_nodes_in(model: Any, modules: Iterable[str], model_config: Any = None) -> list[str]:
    """Names of the ONNX nodes computed inside any of ``modules`` (module paths; ``path$``: that
    module's own nodes only)."""
    names = module_names(model_config)
    wanted = [own_only(m) for m in modules]
    found = []
    for n in model.graph.node:
        path = module_of_scope(n.name, names)
        if any(path == m if own else within(path, m) for m, own in wanted):
            found.append(n.name)
    return found


def tflite_pattern(module: str, model_config: Any = None) -> str:
    """A regex on litert-torch tensor names that matches the ops inside ``module``: one
    ``<class>_<attribute>`` level per module on the way whose forward ran."""
    module, own = own_only(module)
    called = called_modules(lr_block_of(model_config))
    parts = module.split(".")
    chain = [parts[i - 1] for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in called]
    # litert-torch joins the names of fused tensors with ';' (``..._lr_branch;2``)
    return "/".join(r"[^/]*_" + re.escape(seg) for seg in chain) + (r"(;|$)" if own else r"(/|;|$)")
