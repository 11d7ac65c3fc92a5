"""FP32 islands in an FP16 ONNX graph: chosen nodes compute in FP32, the rest stays FP16.

A strongly typed engine (TensorRT ``STRONGLY_TYPED``, the only FP16 route TensorRT 11 keeps) runs every
layer in the type the graph gives it, so a mixed-precision FP16 model must say FP32 in the graph
itself -- the job NVIDIA's ModelOpt AutoCast does; this is the small part of it this project needs.

Selected nodes get FP32 copies of their FP16 initializers, a ``Cast`` to FP32 on each FP16 input
that comes from outside the selection, and a ``Cast`` back to FP16 on each output that something
outside the selection (or the graph output) reads.  Consecutive selected nodes pass FP32 tensors
directly to each other, so a selected region never round-trips through FP16 inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from modnet_edge.core.errors import ConfigError

from modnet_edge.exporters.module_scopes import onnx_nodes_in
from modnet_edge.model.parts import PRESETS, is_module_selector, preset_modules, selector_module


def keep_nodes_fp32(model: Any, select: Callable[[Any], bool],
                    fp32_weights: dict[str, dict[int, Any]] | None = None) -> int:
    """Make every node for which ``select(node)`` is true compute in FP32; returns how many changed.

    Only nodes that read or write an FP16 tensor are changed (Cast nodes never: they define types).
    The model is modified in place and stays topologically sorted.  ``fp32_weights`` ({node name:
    {input index: array}}, from :func:`twin_weights` of the same network exported in FP32) gives the
    islands their original FP32 weights; without it they get FP16 weights upcast, which keeps the
    rounding of every weight (on a network whose FP16 drift comes from its weights, such islands
    change nothing: measured on a randomly initialised MODNet, matte MSE 7.3e-4 with or without).
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    inits = {i.name: i for i in model.graph.initializer}
    types.update({name: init.data_type for name, init in inits.items()})

    def is_fp16(name: str) -> bool:
        return bool(name) and types.get(name) == TensorProto.FLOAT16

    chosen = [n for n in model.graph.node if n.op_type != "Cast" and select(n)
              and any(is_fp16(t) for t in (*n.input, *n.output))]
    chosen_ids = {id(n) for n in chosen}
    # a Cast t -> "<t>/fp32" left by an earlier call becomes redundant when t's producer turns FP32
    # (the producer then writes "<t>/fp32" itself, without the FP16 round trip)
    earlier_casts = {n.output[0]: n for n in model.graph.node
                     if n.op_type == "Cast" and n.output[0] == f"{n.input[0]}/fp32"}
    dropped = {id(earlier_casts[f"{t}/fp32"]) for n in chosen for t in n.output
               if is_fp16(t) and f"{t}/fp32" in earlier_casts}
    producers = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        if id(n) in dropped:
            continue
        for t in n.input:
            readers.setdefault(t, []).append(n)
    graph_outputs = {o.name for o in model.graph.output}
    # "<t>/fp32" made by an earlier call (an FP32 initializer copy, a Cast, or an FP32 node's output
    # before its Cast back) is reused: each is exactly t in FP32
    existing = set(inits) | {o for n in model.graph.node for o in n.output}
    fp32_name: dict[str, str] = {}  # fp16 tensor -> its fp32 twin
    new_nodes: list[Any] = []
    for node in model.graph.node:
        if id(node) in dropped:
            continue
        if id(node) not in chosen_ids:
            new_nodes.append(node)
            continue
        for i, t in enumerate(node.input):
            if not is_fp16(t):
                continue
            if t not in fp32_name:
                twin = f"{t}/fp32"
                source = producers.get(t)
                if source is not None and source.op_type == "Cast" and types.get(source.input[0]) == TensorProto.FLOAT:
                    twin = source.input[0]  # t is a rounded FP32 tensor (e.g. the input cast): use the original
                elif twin in existing:
                    pass
                elif t in inits:
                    original = (fp32_weights or {}).get(node.name, {}).get(i)
                    arr = numpy_helper.to_array(inits[t]).astype(np.float32)
                    if original is not None and original.shape == arr.shape:
                        arr = original.astype(np.float32)
                        twin = f"{t}/fp32/{node.name}"  # the original weights belong to this node only
                    model.graph.initializer.append(numpy_helper.from_array(arr, twin))
                else:
                    new_nodes.append(helper.make_node("Cast", [t], [twin], name=f"{twin}/cast", to=TensorProto.FLOAT))
                fp32_name[t] = twin
            node.input[i] = fp32_name[t]
        back: list[Any] = []
        for i, t in enumerate(node.output):
            if not is_fp16(t):
                continue
            twin = f"{t}/fp32"
            node.output[i] = twin
            fp32_name[t] = twin
            if t in graph_outputs or any(id(r) not in chosen_ids for r in readers.get(t, [])):
                back.append(helper.make_node("Cast", [twin], [t], name=f"{t}/cast_fp16", to=TensorProto.FLOAT16))
        new_nodes.append(node)
        new_nodes.extend(back)
    read = {t for n in new_nodes for t in n.input} | graph_outputs
    new_nodes = [n for n in new_nodes if n.op_type != "Cast" or any(o in read for o in n.output)]  # dead casts
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    used = {t for n in model.graph.node for t in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    stale = [vi for vi in model.graph.value_info if vi.name in fp32_name]
    for vi in stale:  # the fp16 type recorded for a renamed tensor would now be wrong
        model.graph.value_info.remove(vi)
    return len(chosen)


def select_nodes(model: Any, items: Sequence[str], model_config: Any = None, what: str = "fp32_nodes") -> set[str]:
    """Node names chosen by ``items``: module selectors ``module:<path>`` and presets (the network's parts,
    :mod:`modnet_edge.model.parts`) or regexes on node names (which carry the module path, e.g.
    ``/f_branch/``).  Each item must match something: a typo would otherwise silently keep nothing."""
    import re

    selected: set[str] = set()
    for item in items:
        if is_module_selector(item) or item in PRESETS:
            modules = [selector_module(item)] if is_module_selector(item) else preset_modules(item, model_config)
            found = set(onnx_nodes_in(model, modules, model_config))
        else:
            try:
                regex = re.compile(item)
            except re.error as exc:
                raise ConfigError(f"{what} {item!r} is not a valid regular expression ({exc})") from None
            found = {n.name for n in model.graph.node if regex.search(n.name)}
        if not found:
            raise ConfigError(f"{what} {item!r} matches no node of the graph")
        selected |= found
    return selected


def keep_matching_fp32(model: Any, patterns: Sequence[str], model_config: Any = None,
                       fp32_weights: dict[str, dict[int, Any]] | None = None) -> int:
    """Run in FP32 the nodes chosen by ``patterns`` (:func:`select_nodes`); returns how many changed."""
    selected = select_nodes(model, patterns, model_config)
    return keep_nodes_fp32(model, lambda n: n.name in selected, fp32_weights)


def twin_weights(fp32_model: Any) -> dict[str, dict[int, Any]]:
    """{node name: {input index: FP32 array}} of an FP32 export: the weights FP32 islands should use.
    PyTorch's exporter names nodes by module scope, so the FP16 and FP32 exports of one network have
    the same node names with initializers at the same inputs."""
    from onnx import numpy_helper

    inits = {i.name: i for i in fp32_model.graph.initializer}
    return {n.name: {i: numpy_helper.to_array(inits[t]) for i, t in enumerate(n.input) if t in inits}
            for n in fp32_model.graph.node}
