"""What every stage shares: the preprocessing spec, artifact metadata and the one table of formats.

Data flows one way through the toolkit (train -> export -> runtimes -> parity/benchmarks); this module
sits underneath all of them and imports none of them.  Stages are referred to by dotted *names* in the
format table and imported lazily, so the table can say which formats exist without importing torch,
onnxruntime or any converter.
"""

from __future__ import annotations

from modnet_edge.core.errors import ArtifactError, ConfigError, MetadataError  # noqa: F401
from modnet_edge.core.files import (RECORD_NAME, TEMP_MARK, AppendOutput, LogFile, atomic_output,  # noqa: F401
                                    atomic_write_bytes, atomic_write_text, check_output_folder, check_output_path,
                                    is_ours, manifest_path, path_size, read_manifest, read_manifest_record,
                                    reconcile_metadata, recover_folder, remove_if_ours, remove_stale_temporaries,
                                    sha256_path, write_manifest)
from modnet_edge.core.formats import (FORMATS, PRECISION_TABLE, PRECISIONS, Format, Option, Precision,  # noqa: F401
                                      format_of_path, get_format, precision_row, resolve)
from modnet_edge.core.metadata import (INTEGRITY_PLACEHOLDER, METADATA_KEY, METADATA_SCHEMA,  # noqa: F401
                                       VERSION, ArtifactMetadata, integrity_digest, seal_artifact, tool_versions,
                                       verify_integrity)
from modnet_edge.core.spec import PreprocessSpec  # noqa: F401

