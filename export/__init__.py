"""export: checkpoint -> deployable artifacts.

Every format goes through one skeleton (:mod:`.skeleton`): options checked against the format table,
the format's converter, metadata embedded, artifact and manifest written as a pair.  A format module
(``onnx_export``, ``tensorrt_onnx``, ``tensorrt_build``, ``tflite_export``, ``coreml_export``) only
converts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modnet_edge.export.skeleton import export_artifact


def export(checkpoint: Any = None, format: str = "onnx", precision: str = "fp32", output: str | Path | None = None,
           **options: Any) -> Path:
    """Export a checkpoint (path, :class:`Checkpoint`, a built-in weights name, or None for the built-in
    starter weights) to ``format`` at ``precision``; returns the artifact path (its manifest is written
    beside it).  ``options``: the format's export options (``modnet-edge export --help`` lists them).

    The public ``modnet_edge.export`` (this package, made callable on the floor above) adds ``budget=``:
    search for the fastest variant within a drift budget (:mod:`modnet_edge.precision_search`).
    """
    return export_artifact(checkpoint, format, precision, output, **options)
