"""Where each format keeps the metadata inside its artifact: write it in, read it back.

One module per container (``onnx_file``, ``tflite_file``, ``coreml_file``, ``engine_file``), each
with ``write(model, meta, path)`` -- embed the metadata JSON, then save the in-memory model -- and
``read(path)``.  Exporters write through :func:`container_for` (see ``export/skeleton.py``); backends
and ``modnet-edge info`` read through :func:`read_embedded`.  Living under every stage, it is what
lets runtimes read an artifact without importing an exporter, and exporters never import a runtime.
Modules import their tool (onnx, coremltools, ai-edge-litert) only when called.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from modnet_edge.core.errors import ConfigError
from modnet_edge.core.metadata import ArtifactMetadata


def container_for(format_name: str) -> ModuleType:
    """The container module of ``format_name`` (``write``, ``read`` and ``TEMP_SUFFIX``), named by the
    format table's ``container`` column (the TensorRT-ready ONNX is an ONNX file)."""
    from modnet_edge.core.formats import get_format

    module = get_format(format_name).container
    if module is None:
        raise ConfigError(f"format {format_name!r} has no artifact container (it is not an exported artifact)")
    return importlib.import_module(f"{__name__}.{module}")


def read_embedded(format_name: str, path: str | Path) -> ArtifactMetadata | None:
    """The metadata embedded in the artifact at ``path`` (None: made by another tool, no metadata)."""
    return container_for(format_name).read(Path(path))


def from_entry(raw: Any, where: str | Path) -> ArtifactMetadata | None:
    """Parse the stored metadata entry (str or bytes) of an artifact; None when the entry is absent."""
    return None if raw is None else ArtifactMetadata.from_json(raw, where)
