"""What every stage shares: the preprocessing spec, artifact metadata and the one table of formats.

Data flows one way through the toolkit (train -> export -> runtimes -> parity/benchmarks); this module
sits underneath all of them and imports none of them.  Stages are referred to by dotted *names* in the
format table and imported lazily, so the table can say which formats exist without importing torch,
onnxruntime or any converter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import importlib
import importlib.util
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError, ConfigError, MetadataError

VERSION = "0.1.0"
METADATA_KEY = "modnet_edge"  # key of the JSON metadata entry embedded in every artifact
METADATA_SCHEMA = 1
INTEGRITY_PLACEHOLDER = "0" * 64  # an artifact's integrity record before sealing (see seal_artifact)
PRECISIONS = ("fp32", "fp16", "int8")


# --------------------------------------------------------------------------------------------------
# Preprocessing spec
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreprocessSpec:
    """How an RGB image becomes the network input and how the output becomes an alpha matte.

    The default is the rule of the official MODNet inference code: with ``ref_size`` 512, rescale so
    the short side is 512 when the long side is < 512 or the short side is > 512, then floor each side
    to a multiple of 32; 'area' resampling in and out; normalise [0, 255] -> [-1, 1].  An artifact with
    a static input shape sets ``fixed_size`` and is fed exactly that (H, W).
    """

    ref_size: int = 512
    multiple: int = 32
    fixed_size: tuple[int, int] | None = None
    resample: str = "area"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # on the [0, 1] scale
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.ref_size < self.multiple or self.multiple < 1:
            raise ConfigError(f"invalid preprocessing: ref_size={self.ref_size}, multiple={self.multiple}")
        if self.resample != "area":
            raise ConfigError(f"invalid preprocessing: unknown resample {self.resample!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"invalid preprocessing: layout must be NCHW or NHWC, not {self.layout!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ConfigError(f"invalid preprocessing: {name} must be three finite numbers, got {values}")
        if not all(v > 0 for v in self.std):
            raise ConfigError(f"invalid preprocessing: std must be positive, got {self.std}")
        if self.fixed_size is not None:
            h, w = self.fixed_size
            if h % self.multiple or w % self.multiple or h <= 0 or w <= 0:
                raise ConfigError(f"invalid preprocessing: fixed_size {self.fixed_size} is not a positive "
                                  f"multiple of {self.multiple}")

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (H, W) for an image of ``height`` x ``width``."""
        if self.fixed_size is not None:
            return tuple(self.fixed_size)  # type: ignore[return-value]
        ref = self.ref_size
        if max(height, width) < ref or min(height, width) > ref:
            if width >= height:
                rh, rw = ref, int(width / height * ref)
            else:
                rh, rw = int(height / width * ref), ref
        else:
            rh, rw = height, width
        rh, rw = rh - rh % self.multiple, rw - rw % self.multiple
        return max(rh, self.multiple), max(rw, self.multiple)

    def with_fixed_size(self, size: tuple[int, int] | None) -> PreprocessSpec:
        if size is None:
            return dataclasses.replace(self, fixed_size=None)
        try:
            h, w = size
            if any(isinstance(v, bool) or int(v) != v for v in (h, w)):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"a static shape is (height, width) in pixels, e.g. (512, 512); got {size!r}") from None
        return dataclasses.replace(self, fixed_size=(int(h), int(w)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fixed_size"] = list(self.fixed_size) if self.fixed_size else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        if not isinstance(data, dict):
            raise MetadataError(f"preprocessing must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MetadataError(f"preprocessing has unknown keys {sorted(unknown)}")
        d = dict(data)
        try:
            for key in ("ref_size", "multiple"):
                if key in d and (isinstance(d[key], bool) or not isinstance(d[key], int)):
                    raise TypeError(f"{key} must be an integer")
            for key in ("resample", "layout"):
                if key in d and not isinstance(d[key], str):
                    raise TypeError(f"{key} must be a string")
            if d.get("fixed_size") is not None:
                d["fixed_size"] = tuple(int(v) for v in d["fixed_size"])
            for key in ("mean", "std"):
                if key in d:
                    d[key] = tuple(float(v) for v in d[key])
            return cls(**d)
        except (TypeError, ValueError, OverflowError, ConfigError) as exc:
            raise MetadataError(f"invalid preprocessing {data}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# Artifact metadata
# --------------------------------------------------------------------------------------------------
@dataclass
class ArtifactMetadata:
    """The facts a predictor needs about an artifact, embedded in the artifact and in its manifest.

    A predictor reads these back from the file itself (never from the caller's memory), so an artifact
    copied to a phone or a CI box carries its own preprocessing, layout and provenance.
    """

    format: str
    precision: str
    preprocessing: PreprocessSpec
    model: dict[str, Any]
    input_name: str = "input"
    output_name: str = "matte"
    input_shape: list[int | str] = field(default_factory=lambda: ["batch", 3, "height", "width"])
    source: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    toolkit_version: str = VERSION
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    schema: int = METADATA_SCHEMA
    # sha256 binding the artifact's bytes and these fields (see seal_artifact); written at export
    integrity: str = INTEGRITY_PLACEHOLDER

    REQUIRED = ("format", "precision", "preprocessing", "model")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["preprocessing"] = self.preprocessing.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = "metadata") -> ArtifactMetadata:
        if not isinstance(data, dict):
            raise MetadataError(f"metadata is not a JSON object ({type(data).__name__})", where)
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise MetadataError(f"metadata lacks required fields {missing}", where)
        if not isinstance(data.get("schema", 1), int) or data.get("schema", 1) > METADATA_SCHEMA:
            raise MetadataError(f"metadata schema {data['schema']} is newer than this toolkit "
                                f"understands ({METADATA_SCHEMA}); upgrade modnet-edge", where)
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in data.items() if k in known}
        kinds = {"format": str, "precision": str, "model": dict, "input_name": str, "output_name": str,
                 "input_shape": list, "source": dict, "tools": dict, "extra": dict, "toolkit_version": str,
                 "created": str, "schema": int, "integrity": str}
        wrong = [k for k, t in kinds.items() if k in d and (not isinstance(d[k], t) or isinstance(d[k], bool))]
        if wrong:
            raise MetadataError(f"metadata fields {wrong} have the wrong type", where)
        if d["precision"] not in PRECISIONS and not str(d["precision"]).startswith(("int8", "int16", "palettized")):
            raise MetadataError(f"metadata has unknown precision {d['precision']!r}", where)
        try:
            d["preprocessing"] = PreprocessSpec.from_dict(d["preprocessing"])
        except MetadataError as exc:
            raise MetadataError(str(exc), where) from exc
        return cls(**d)

    @classmethod
    def from_json(cls, text: str | bytes, where: str | Path = "metadata") -> ArtifactMetadata:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MetadataError(f"metadata is not valid JSON: {exc}", where) from exc
        meta = cls.from_dict(data, where)
        meta.raw = text.encode() if isinstance(text, str) else bytes(text)  # as stored: integrity checks find it
        return meta

    def canonical(self) -> bytes:
        """These fields as canonical JSON, the integrity record itself left out."""
        d = self.to_dict()
        d.pop("integrity", None)
        return json.dumps(d, sort_keys=True).encode()


# ---------------------------------------------------------------------------------------------------
# Integrity: a record inside every artifact that binds its bytes to its embedded metadata, so tampering
# and corruption are caught without the manifest.  The embedded metadata JSON is excluded from the bytes
# hashed (it holds the record); its fields are hashed in canonical form instead.  Sealing rewrites the
# placeholder with the digest in place: same length, so no offset inside the artifact moves.
# ---------------------------------------------------------------------------------------------------
def _content_digest(path: Path, raw: bytes) -> str | None:
    """sha256 of an artifact's file(s) with the first occurrence of ``raw`` cut out (None: not found)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h, found = hashlib.sha256(), False
    for f in files:
        data = f.read_bytes()
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        at = -1 if found else data.find(raw)
        if at >= 0:
            data, found = data[:at] + data[at + len(raw):], True
        h.update(data)
    return h.hexdigest() if found else None


def integrity_digest(path: str | Path, meta: ArtifactMetadata, raw: bytes) -> str:
    content = _content_digest(Path(path), raw)
    if content is None:
        raise MetadataError("the embedded metadata was not found in the artifact's bytes", path)
    return hashlib.sha256(content.encode() + meta.canonical()).hexdigest()


def seal_artifact(path: str | Path, meta: ArtifactMetadata) -> None:
    """Write the integrity record into an artifact whose embedded metadata is ``meta.to_json()`` (with
    the placeholder, or a record copied from the artifact it was made from); ``meta.integrity`` is updated
    so the manifest carries it too."""
    path = Path(path)
    raw = meta.to_json().encode()  # as embedded (the record it holds is cut out of the hash, so any value works)
    if len(meta.integrity) != len(INTEGRITY_PLACEHOLDER):
        raise MetadataError("integrity record of unexpected length in the metadata to seal", path)
    digest = integrity_digest(path, meta, raw)
    meta.integrity = digest
    sealed = meta.to_json().encode()
    assert len(sealed) == len(raw)
    for f in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        data = f.read_bytes()
        at = data.find(raw)
        if at >= 0:
            with open(f, "r+b") as fh:
                fh.seek(at)
                fh.write(sealed)
            return


def verify_integrity(path: str | Path, meta: ArtifactMetadata) -> None:
    """Refuse an artifact whose bytes or embedded metadata changed after export (an artifact written
    before integrity records existed, or metadata not read from the file, is not checked)."""
    raw = getattr(meta, "raw", None)
    if raw is None or meta.integrity == INTEGRITY_PLACEHOLDER:
        return
    if integrity_digest(path, meta, raw) != meta.integrity:
        raise MetadataError("the artifact does not match the integrity record in its own metadata: its weights, "
                            "graph or embedded metadata were changed after export (tampered or corrupted)", path)


def manifest_path(artifact: str | Path) -> Path:
    """Where the manifest of ``artifact`` lives: ``model.onnx`` -> ``model.onnx.manifest.json``."""
    p = Path(artifact)
    return p.with_name(p.name + ".manifest.json")


# Fields that must agree between the embedded metadata and the manifest beside the file.
_CONSISTENT_FIELDS = ("format", "precision", "preprocessing", "model", "input_name", "output_name", "source")


def pending_manifest_path(artifact: str | Path) -> Path:
    """Where a manifest waits while its artifact is being put in place (see :func:`atomic_output`)."""
    m = manifest_path(artifact)
    return m.with_name(m.name + ".pending")


def _manifest_text(meta: ArtifactMetadata, content: Path, name: str) -> str:
    record = meta.to_dict()
    record["artifact"] = {"file": name, "bytes": path_size(content), "sha256": sha256_path(content)}
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def write_manifest(artifact: str | Path, meta: ArtifactMetadata) -> Path:
    """Write the manifest beside ``artifact``: the metadata plus the artifact's size and sha256.

    Exporters pass ``manifest=`` to :func:`atomic_output` instead, so artifact and manifest change as a pair."""
    artifact = Path(artifact)
    out = manifest_path(artifact)
    atomic_write_text(out, _manifest_text(meta, artifact, artifact.name))
    return out


def _adopt_pending_manifest(artifact: Path) -> None:
    """Finish a pair a killed writer left half-renamed: a pending manifest whose sha256 matches the
    artifact now in place describes it and becomes its manifest; one that does not is stale (the kill
    came before the artifact's rename) and is ignored -- the old pair is still whole."""
    pending = pending_manifest_path(artifact)
    if not pending.is_file() or not artifact.exists():
        return
    try:
        expected = (json.loads(pending.read_bytes()).get("artifact") or {}).get("sha256")
    except (OSError, ValueError, AttributeError):
        return
    if expected == sha256_path(artifact):
        try:
            os.replace(pending, manifest_path(artifact))
        except OSError:
            pass  # a concurrent writer finished it first


def read_manifest(artifact: str | Path) -> ArtifactMetadata | None:
    """The manifest's metadata, None when no manifest exists; checks the artifact's sha256 against it."""
    _adopt_pending_manifest(Path(artifact))
    mpath = manifest_path(artifact)
    if not mpath.exists():
        return None
    meta = ArtifactMetadata.from_json(mpath.read_bytes(), mpath)
    record = json.loads(mpath.read_bytes())
    expected = (record.get("artifact") or {}).get("sha256")
    if expected and expected != sha256_path(artifact):
        raise MetadataError(f"artifact does not match its manifest {mpath.name} (sha256 differs): "
                            "it was modified or replaced after export", artifact)
    return meta


def reconcile_metadata(artifact: str | Path, embedded: ArtifactMetadata | None) -> ArtifactMetadata | None:
    """Combine embedded metadata and manifest; refuse when both exist and disagree, or when the artifact
    no longer matches the integrity record in its embedded metadata."""
    if embedded is not None:
        verify_integrity(artifact, embedded)
    manifest = read_manifest(artifact)
    if embedded is None or manifest is None:
        return embedded or manifest
    a, b = embedded.to_dict(), manifest.to_dict()
    diff = [k for k in _CONSISTENT_FIELDS if a.get(k) != b.get(k)]
    if diff:
        raise MetadataError(f"embedded metadata and manifest disagree on {diff}", artifact)
    return embedded


# --------------------------------------------------------------------------------------------------
# The one table of formats
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    """One deployable format: how to recognise it, export it and run it.

    ``exporter`` and each backend are ``module:attribute`` names resolved on use, so listing formats
    never imports a heavy framework.  ``backends`` maps a runtime name to its backend class, the first
    being the default.  ``export_requires`` / ``runtime_requires`` are importable module names; the
    format is exportable / runnable (by its default runtime) here when all of them are installed.
    """

    name: str
    suffixes: tuple[str, ...]
    precisions: tuple[str, ...]
    backends: tuple[tuple[str, str], ...]
    exporter: str | None
    export_requires: tuple[str, ...]
    runtime_requires: tuple[str, ...]
    extra: str | None  # pip extra that installs it
    description: str
    is_dir: bool = False  # the artifact is a directory (e.g. .mlpackage)
    pipeline_precisions: tuple[str, ...] = ()  # what `modnet-edge pipeline` exports by default

    def can_export(self) -> bool:
        return self.exporter is not None and all(_installed(m) for m in self.export_requires)

    def can_run(self) -> bool:
        return all(_installed(m) for m in self.runtime_requires)

    def backend(self, runtime: str | None = None) -> str:
        """The ``module:Class`` of the backend for ``runtime`` (default: the format's first runtime)."""
        if runtime is None:
            return self.backends[0][1]
        for name, target in self.backends:
            if name == runtime:
                return target
        raise ConfigError(f"format {self.name!r} has no runtime {runtime!r}; "
                          f"choose from {[n for n, _ in self.backends]}")

    def install_hint(self) -> str:
        extra = f"[{self.extra}]" if self.extra else ""
        return f'pip install -c constraints.txt "modnet-edge{extra}"'


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("pytorch", (".pt", ".pth", ".ckpt", ".pt2"), ("fp32", "fp16"),
               (("torch", "modnet_edge.runtimes.torch_backend:TorchBackend"),), None,
               ("torch",), ("torch",), None,
               "PyTorch checkpoint (official MODNet or modnet-edge) or torch.export program"),
        Format("onnx", (".onnx",), ("fp32", "fp16", "int8"),
               (("onnxruntime", "modnet_edge.runtimes.onnxruntime_backend:OnnxRuntimeBackend"),),
               "modnet_edge.export.onnx_export:export_onnx", ("torch", "onnx"), ("onnxruntime",), None,
               "ONNX, run by ONNX Runtime (CPU, CUDA, TensorRT or CoreML execution providers)",
               pipeline_precisions=("fp32", "fp16")),
        Format("tflite", (".tflite",), ("fp32", "fp16", "int8"),
               (("litert", "modnet_edge.runtimes.litert_backend:LiteRTBackend"),),
               "modnet_edge.export.tflite_export:export_tflite", ("torch", "litert_torch", "ai_edge_quantizer"),
               ("ai_edge_litert",), "tflite",
               "TFLite / LiteRT FlatBuffer from litert-torch (no TensorFlow): FP32, FP16 weights, INT8 "
               "(static full-integer with calibration, int16 activations, dynamic range, weight-only); NCHW or NHWC",
               pipeline_precisions=("fp32", "fp16")),
        Format("tensorrt-onnx", (".trt.onnx",), ("fp32", "fp16", "int8"),
               (("onnxruntime", "modnet_edge.runtimes.onnxruntime_backend:OnnxRuntimeBackend"),),
               "modnet_edge.export.tensorrt_onnx:export_tensorrt_onnx", ("torch", "onnx", "onnxruntime"),
               ("onnxruntime",), None,
               "TensorRT-ready ONNX (static shape or min/opt/max profile; strongly typed FP16; INT8 Q/DQ), "
               "verified in ONNX Runtime here, built into an engine where TensorRT is installed",
               pipeline_precisions=("fp32", "fp16", "int8")),
        Format("tensorrt", (".engine", ".plan"), ("fp32", "fp16", "int8"),
               (("tensorrt", "modnet_edge.runtimes.tensorrt_backend:TensorRTBackend"),),
               "modnet_edge.export.tensorrt_build:export_tensorrt_engine", ("torch", "onnx", "tensorrt"),
               ("tensorrt",), "tensorrt",
               "TensorRT engine (tied to the TensorRT version and GPU that built it), from the TensorRT-ready ONNX",
               pipeline_precisions=("fp16", "int8")),
        Format("coreml", (".mlpackage",), ("fp16", "fp32", "int8-weights", "palettized-6bit", "palettized-4bit"),
               (("coreml", "modnet_edge.runtimes.coreml_backend:CoreMLBackend"),
                ("reference", "modnet_edge.runtimes.coreml_reference:CoreMLReferenceBackend")),
               "modnet_edge.export.coreml_export:export_coreml", ("torch", "coremltools"), ("coremltools",),
               "coreml",
               "Core ML ML Program (.mlpackage, iOS 16 / macOS 13+); Core ML runs it on macOS, the NumPy "
               "reference execution of its program anywhere (runtime 'reference')",
               is_dir=True, pipeline_precisions=("fp16", "int8-weights")),
    )
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown format {name!r}; known formats: {', '.join(FORMATS)}") from None


def format_of_path(path: str | Path) -> Format | None:
    """The format whose suffix ``path`` has (None when no format claims it)."""
    name = Path(path).name.lower()
    matches = [(len(s), fmt) for fmt in FORMATS.values() for s in fmt.suffixes if name.endswith(s)]
    return max(matches, key=lambda m: m[0])[1] if matches else None  # longest suffix: .trt.onnx over .onnx


def resolve(dotted: str) -> Any:
    """Import ``package.module:attribute`` lazily."""
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------
# Small file helpers shared by every writer
# --------------------------------------------------------------------------------------------------
TEMP_MARK = ".modnet-edge-tmp"  # temporary outputs: .<target>.<pid>.<random>.modnet-edge-tmp[<suffix>]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove temporary outputs in ``folder`` left by writers that died (killed mid-write): recognised by
    their name, and only when the process that made them is gone (a live concurrent writer is left alone)."""
    import shutil

    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not (entry.name.startswith(".") and TEMP_MARK in entry.name):
            continue
        parts = entry.name[: entry.name.rindex(TEMP_MARK)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or _pid_alive(int(parts[1])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def is_our_artifact(path: str | Path) -> bool:
    """Whether an existing file at an output path is an artifact modnet-edge wrote (and so ours to
    replace): its manifest names it, or its bytes hold our embedded metadata."""
    path = Path(path)
    if _replaceable_folder(path):
        return True
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    # the metadata entry's name (ONNX metadata_props, TFLite metadata) or our JSON (engine header)
    return METADATA_KEY.encode() in data or b'"toolkit_version"' in data


def _replaceable_folder(path: Path) -> bool:
    """A folder at an output path may be replaced only when it is an artifact of ours (a Core ML
    .mlpackage with our manifest beside it naming it); anything else is the user's and is kept."""
    mpath = manifest_path(path)
    if not mpath.is_file():
        return False
    try:
        record = json.loads(mpath.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and (record.get("artifact") or {}).get("file") == path.name


def check_output_path(path: str | Path) -> Path:
    """Refuse, before any work, an output path that would destroy something of the user's: an existing
    folder that is not an artifact of ours, or a path below a regular file."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink() and not _replaceable_folder(path):
        raise ArtifactError("output path is an existing folder (not an artifact written by modnet-edge); "
                            "refusing to replace it: choose a file name", path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ArtifactError(f"cannot write here: {parent} is a file, not a folder", path)
            break
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None,
                  manifest: Callable[[], ArtifactMetadata] | None = None, seal: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted export or checkpoint write therefore never leaves a half-written file behind; a
    writer killed outright leaves a temporary that the next write to the folder removes.  An existing
    folder at ``path`` is never deleted unless it is an artifact of ours (see ``_replaceable_folder``).

    ``manifest`` (an artifact's metadata, asked for once the block has written the file) makes artifact
    and manifest change as one pair: the new manifest is written beside as ``.pending`` first, then the
    artifact renamed, then the manifest renamed.  Killed at any instant, readers see the whole old pair
    or the whole new one (:func:`read_manifest` adopts a pending manifest that matches the artifact).
    With ``seal`` the artifact (which embeds ``manifest()``'s JSON) first gets its integrity record.
    """
    import shutil

    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ArtifactError("cannot write here: a parent of the output path is a file", path) from None
    except PermissionError:
        raise ArtifactError("cannot write here: permission denied", path) from None
    remove_stale_temporaries(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_MARK + (suffix or ""),
                                   dir=path.parent)
    except PermissionError:
        raise ArtifactError("cannot write here: permission denied", path) from None
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # writers create it themselves (some refuse to overwrite)
    try:
        yield tmp_path
        if not tmp_path.exists():
            raise RuntimeError(f"writer produced no file at {tmp_path}")
        pending = pending_manifest_path(path)
        if manifest is not None:
            meta = manifest()
            if seal:
                seal_artifact(tmp_path, meta)
            atomic_write_text(pending, _manifest_text(meta, tmp_path, path.name))
        old = None
        if path.is_dir() and not path.is_symlink():  # our own artifact folder (checked above): set aside,
            old = tmp_path.with_name(tmp_path.name + ".old")  # a rename, so the gap without it is tiny
            os.replace(path, old)
        os.replace(tmp_path, path)
        if manifest is not None:
            os.replace(pending, manifest_path(path))
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp_path.exists():
            if tmp_path.is_dir():
                shutil.rmtree(tmp_path, ignore_errors=True)
            else:
                tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a directory's files (names and contents, in sorted order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def path_size(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def tool_versions(*modules: str) -> dict[str, str]:
    """Installed versions of the given distributions (for manifests and benchmark records)."""
    from importlib import metadata

    out = {"modnet-edge": VERSION}
    for m in modules:
        try:
            out[m] = metadata.version(m)
        except metadata.PackageNotFoundError:
            continue
    return out


def make_module_callable(module_name: str, func: Any) -> None:
    """Let ``modnet_edge.export(...)`` / ``modnet_edge.train(...)`` be called although they are packages.

    The public API promises functions with the same names as the stage packages; once a submodule such
    as ``modnet_edge.export.onnx_export`` is imported, Python binds the *package* to that attribute.
    Making the package itself callable keeps both spellings working.
    """
    import sys
    import types

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule
