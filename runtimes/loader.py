"""Open any model file: choose the format (metadata first, then file suffix) through the one format table.

A model may also be named rather than given as a file: a built-in weights name (``"starter"``,
``"starter-v1"``: a name is a name only when no file of that name exists) or nothing at all (the default
weights) opens the PyTorch network, exactly as :func:`modnet_edge.load_network` does, so every command
that takes a model takes those too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modnet_edge.core import (FORMATS, ArtifactMetadata, Format, PreprocessSpec, format_of_path, get_format,
                              manifest_path, read_manifest_record, reconcile_metadata, recover_folder, resolve)
from modnet_edge.core.errors import ArtifactError, BackendUnavailableError, ConfigError, MetadataError

from modnet_edge.runtimes.base import Backend
from modnet_edge.runtimes.predictor import MattingPredictor


def detect_format(path: str | Path) -> Format:
    """The format of ``path``: its manifest's ``format`` field first, then its suffix."""
    path = Path(path)
    recover_folder(path.parent)  # a writer killed mid-swap of a package: the old one is put back first
    if not path.exists():
        raise ArtifactError("model file does not exist", path)
    mpath = manifest_path(path)
    if mpath.exists() or mpath.is_symlink():
        name = read_manifest_record(mpath).get("format")
        if name in FORMATS:
            return FORMATS[name]
        raise MetadataError(f"manifest names unknown format {name!r}", mpath)
    fmt = format_of_path(path)
    if fmt is None:
        known = sorted({s for f in FORMATS.values() for s in f.suffixes})
        raise ArtifactError(f"cannot tell the model format from the file name; known suffixes: {known}", path)
    return fmt


def names_weights(model: Any) -> bool:
    """Whether ``model`` stands for built-in weights: None (the default ones), or a weights name that is
    not also an existing file (a file of that name is what the user means).  Torch-free."""
    from modnet_edge.model.weights import is_weights_name

    return model is None or (is_weights_name(model) and not Path(model).exists())


def open_backend(model_file: str | Path | None, runtime: str | None = None, format: str | None = None,
                 **options: Any) -> Backend:
    """A backend for any model file of a supported format (not only MODNet), or for built-in weights by
    name (None: the default weights).

    ``runtime`` picks among a format's runtimes (default: its first); other keyword options go to the
    backend (``providers=``, ``threads=``, ``device=`` ...).
    """
    if names_weights(model_file):
        from modnet_edge.model.weights import resolve_checkpoint

        if format not in (None, "pytorch"):
            raise ConfigError(f"built-in weights {model_file or 'starter'!r} are a PyTorch network, not {format}")
        fmt = FORMATS["pytorch"]
        cls = _backend_class(fmt, runtime)
        _check_options(cls, fmt, options, str(model_file))
        return cls(resolve_checkpoint(model_file), **options)
    fmt = get_format(format) if format else detect_format(model_file)
    cls = _backend_class(fmt, runtime)
    _check_options(cls, fmt, options, model_file)
    return cls(model_file, **options)


def _backend_class(fmt: Format, runtime: str | None) -> type:
    try:
        return resolve(fmt.backend(runtime))
    except ImportError as exc:
        raise BackendUnavailableError(f"the {fmt.name} runtime is not installed ({exc.name}); "
                                      f"install it with: {fmt.install_hint('run')}") from None


def _check_options(cls: type, fmt: Format, options: dict[str, Any], where: str | Path) -> None:
    """Refuse an option the chosen backend does not take, naming the ones it does (not a TypeError)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n in params if n not in ("self", "path")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"option(s) {unknown} do not apply to {fmt.name} artifacts run by {cls.__name__} "
                          f"(it takes: {', '.join(accepted) or 'none'})", where)


def load(path: str | Path | None = None, runtime: str | None = None,
         preprocessing: PreprocessSpec | str | None = None, **options: Any) -> MattingPredictor:
    """A matting predictor for any artifact (a checkpoint included), or for built-in weights by name
    (``load("starter")``; no path: the default weights).

    Preprocessing is read from the artifact's embedded metadata and manifest (which must agree).  A
    model that carries none (not exported by modnet-edge) is refused unless ``preprocessing`` states
    it explicitly: ``"modnet-reference"`` or a :class:`PreprocessSpec`.
    """
    backend = open_backend(path, runtime=runtime, **options)
    try:
        meta = reconcile_metadata(backend.path, backend.embedded_metadata)
        if meta is None:
            meta = _foreign_metadata(backend, preprocessing)
        return MattingPredictor(backend, meta)
    except Exception:
        backend.close()
        raise


def _foreign_metadata(backend: Backend, preprocessing: PreprocessSpec | str | None) -> ArtifactMetadata:
    if preprocessing is None:
        raise MetadataError("model carries no modnet-edge metadata (embedded or manifest), so its "
                            "preprocessing is unknown; pass preprocessing='modnet-reference' to state "
                            "it, or use open_backend() for raw inference", backend.path)
    if isinstance(preprocessing, str):
        if preprocessing != "modnet-reference":
            raise MetadataError(f"unknown preprocessing preset {preprocessing!r}", backend.path)
        preprocessing = PreprocessSpec()
    if len(backend.inputs) != 1:
        raise MetadataError(f"a matting model needs one image input, this one has "
                            f"{[i.name for i in backend.inputs]}", backend.path)
    layout = backend.inputs[0].layout or preprocessing.layout
    from dataclasses import replace

    return ArtifactMetadata(format=backend.format, precision="unknown", model={"arch": "unknown"},
                            preprocessing=replace(preprocessing, layout=layout),
                            input_name=backend.inputs[0].name, output_name=backend.outputs[0].name,
                            source={"kind": "foreign"})
