"""ONNX (and TensorRT-ready ONNX): the metadata JSON is one ``metadata_props`` entry of the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modnet_edge.core.containers import from_entry
from modnet_edge.core.errors import ArtifactError
from modnet_edge.core.metadata import METADATA_KEY, ArtifactMetadata

TEMP_SUFFIX = None


def embed(model: Any, meta: ArtifactMetadata) -> None:
    """Store ``meta`` in ``model.metadata_props`` (replacing a previous entry) and describe the I/O."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    model.producer_name = "modnet-edge"
    model.doc_string = (f"MODNet portrait matting, {meta.precision}; input 'input' (N,3,H,W) RGB in [-1,1], "
                        "H and W multiples of 32; output 'matte' (N,1,H,W) alpha in [0,1]")


def write(model: Any, meta: ArtifactMetadata, path: Path) -> None:
    """Embed ``meta``, check the graph, save it to ``path``."""
    import onnx

    embed(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def embedded_in(model: Any, where: str | Path) -> ArtifactMetadata | None:
    """The metadata of an in-memory ``onnx.ModelProto``."""
    return from_entry(next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None), where)


def read(path: Path) -> ArtifactMetadata | None:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a broken file
        raise ArtifactError(f"not a readable ONNX model ({type(exc).__name__})", path) from None
    return embedded_in(model, path)
