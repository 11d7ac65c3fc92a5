"""The one shape of every export: check options from the format table -> convert -> embed metadata ->
write the artifact and its manifest as one pair.

A format module only converts: its converter (named in the table) takes ``(checkpoint, precision,
output, **options)`` with options already checked against the table, and returns a :class:`Converted` -- the
model in memory plus the facts only the conversion knows.  Everything else every artifact needs
(availability, the output path rules, provenance, tool versions, the embedded metadata, the integrity
record, the atomic artifact + manifest pair) happens here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core import (ArtifactMetadata, PreprocessSpec, atomic_output, check_output_path, format_of_path,
                              get_format, manifest_path, resolve, tool_versions)
from modnet_edge.core.console import activity
from modnet_edge.core.containers import container_for
from modnet_edge.core.errors import BackendUnavailableError, ConfigError, DataError
from modnet_edge.core.formats import Format


@dataclass
class Converted:
    """What a converter hands back.  ``model`` is what the format's container writes (an
    ``onnx.ModelProto``, FlatBuffer bytes, a ``coremltools`` MLModel, a TensorRT plan)."""

    model: Any
    preprocessing: PreprocessSpec
    input_shape: list[int | str]
    extra: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)  # versions besides the format row's tools


def export_artifact(checkpoint: Any, format_name: str, precision: str, output: str | Path | None = None,
                    **options: Any) -> Path:
    """Export ``checkpoint`` (path, :class:`Checkpoint`, built-in weights name or None for the starter)
    to ``format_name`` at ``precision``; returns the artifact path, its manifest written beside it."""
    from modnet_edge.model.checkpoint import check_finite
    from modnet_edge.model.weights import resolve_checkpoint

    fmt = get_format(format_name)
    if fmt.converter is None:
        raise ConfigError(f"format {format_name!r} is not an export target")
    checked = fmt.check_options(precision, options)
    if fmt.calibrated(precision) and checked.get("calibration") is None:
        raise DataError(f"{fmt.name} {precision} export needs calibration data: pass calibration= a folder of "
                        "representative images, a video, 'synthetic', or a CalibrationSource")
    if not fmt.can_export():
        raise BackendUnavailableError(f"exporting {fmt.name} needs {list(fmt.export_requires)}; "
                                      f"install with: {fmt.install_hint('export')}")
    if output is not None:
        check_export_output(fmt, output)  # before minutes of conversion, not after
    ckpt = resolve_checkpoint(checkpoint)
    check_finite(ckpt.state_dict, ckpt.path or "checkpoint")  # a checkpoint handed over in memory too
    if output is None:
        stem = ckpt.path.stem if ckpt.path else str(ckpt.provenance.get("weights", "modnet"))
        output = Path(f"{stem}.{precision}{fmt.suffixes[0]}")
        check_export_output(fmt, output)  # the default name may be taken by a file that is not ours
    with activity(f"export {fmt.name} {precision}"):  # named by the heartbeat during a long conversion
        converted = resolve(fmt.converter)(ckpt, precision, Path(output), **checked)
    meta = ArtifactMetadata(format=fmt.name, precision=precision, preprocessing=converted.preprocessing,
                            model=ckpt.model_config.to_dict(), input_shape=converted.input_shape,
                            source=ckpt.source_info(), tools={**tool_versions(*fmt.tools), **converted.tools},
                            extra=converted.extra)
    return write_artifact(output, meta, converted.model)


def write_artifact(output: str | Path, meta: ArtifactMetadata, model: Any) -> Path:
    """Embed ``meta`` in ``model`` with the format's container and write artifact + manifest as one pair
    (sealed with the integrity record); the previous pair, if any, stays whole until the new one is."""
    container = container_for(meta.format)
    with atomic_output(output, suffix=container.TEMP_SUFFIX, manifest=lambda: meta) as tmp:
        container.write(model, meta, tmp)
    return Path(output)


def check_export_output(fmt: Format, output: str | Path) -> None:
    """An export's output: writable, ours to overwrite (the artifact and the manifest beside it: see
    :func:`~modnet_edge.core.files.is_ours`), no symbolic link, and named with the format's suffix."""
    check_output_path(output)
    check_output_path(manifest_path(output))
    named = format_of_path(output)
    if named is not fmt:  # a file's suffix is how every loader recognises its format
        raise ConfigError(f"output {Path(output).name!r} does not end in {' or '.join(fmt.suffixes)}, the suffix "
                          f"of {fmt.name} artifacts" + (f" (it names a {named.name} file)" if named else ""))
