"""Core ML (.mlpackage): the metadata JSON is one user-defined metadata entry of the model description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modnet_edge.core.containers import from_entry
from modnet_edge.core.metadata import METADATA_KEY, ArtifactMetadata

TEMP_SUFFIX = ".mlpackage"  # coremltools saves a package only to a path with this suffix


def write(model: Any, meta: ArtifactMetadata, path: Path) -> None:
    """Embed ``meta`` in a ``coremltools.models.MLModel`` and save the package to ``path``."""
    model.user_defined_metadata[METADATA_KEY] = meta.to_json()
    model.save(str(path))


def read(path: Path) -> ArtifactMetadata | None:
    from modnet_edge.core.tools import import_coremltools

    spec = import_coremltools().utils.load_spec(str(path))
    return from_entry(spec.description.metadata.userDefined.get(METADATA_KEY), path)
