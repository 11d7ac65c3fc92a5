"""Artifact metadata: the facts a predictor needs, embedded in every artifact and in its manifest, and
the integrity record that binds an artifact's bytes to them."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import MetadataError
from modnet_edge.core.formats import PRECISIONS
from modnet_edge.core.spec import PreprocessSpec

VERSION = "0.1.0"
METADATA_KEY = "modnet_edge"  # key of the JSON metadata entry embedded in every artifact
METADATA_SCHEMA = 1
INTEGRITY_PLACEHOLDER = "0" * 64  # an artifact's integrity record before sealing (see seal_artifact)


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
        if d["precision"] not in PRECISIONS:
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


# ---------------------------------------------------------------------------------------------------
# Integrity: a record inside every artifact that binds all of its bytes, so tampering and corruption are
# caught without the manifest.  The digest covers every byte of the file(s) -- weights, graph and the
# embedded metadata JSON alike -- with the 64 characters of the record itself read as the placeholder (a
# record cannot hash itself).  Sealing rewrites the record in place: same length, no offset moves.
# ---------------------------------------------------------------------------------------------------
def _record_span(record: str) -> tuple[bytes, bytes]:
    """How a record appears in the stored JSON, and the same with the placeholder."""
    return (f'"integrity": "{record}"'.encode(), f'"integrity": "{INTEGRITY_PLACEHOLDER}"'.encode())


def _content_digest(path: Path, raw: bytes, record: str) -> str | None:
    """sha256 of every byte of an artifact's file(s) (and, for a folder, their names), the record inside
    the first occurrence of ``raw`` read as the placeholder; None when ``raw`` or its record is not found."""
    stored, blank = _record_span(record)
    if raw.count(stored) != 1:
        return None
    blanked = raw.replace(stored, blank)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h, found = hashlib.sha256(), False
    for f in files:
        data = f.read_bytes()
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        at = -1 if found else data.find(raw)
        if at >= 0:
            data, found = data[:at] + blanked + data[at + len(raw):], True
        h.update(data)
    return h.hexdigest() if found else None


def integrity_digest(path: str | Path, meta: ArtifactMetadata, raw: bytes) -> str:
    """The integrity record an artifact whose embedded metadata is stored as ``raw`` should carry."""
    content = _content_digest(Path(path), raw, meta.integrity)
    if content is None:
        raise MetadataError("the embedded metadata (with exactly one integrity record) was not found in the "
                            "artifact's bytes", path)
    return content


def seal_artifact(path: str | Path, meta: ArtifactMetadata) -> None:
    """Write the integrity record into an artifact whose embedded metadata is ``meta.to_json()`` (with
    the placeholder, or a record copied from the artifact it was made from); ``meta.integrity`` is updated
    so the manifest carries it too."""
    path = Path(path)
    raw = meta.to_json().encode()  # as embedded (its record is read as the placeholder, so any value works)
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
    """Refuse an artifact whose bytes or embedded metadata changed after export, and one that carries no
    integrity record at all: a record left at the placeholder (or not a sha256) would otherwise switch the
    check off for anyone who edits the metadata.  Metadata not read from a file (a checkpoint's, built in
    memory) has no record to check."""
    raw = getattr(meta, "raw", None)
    if raw is None:
        return
    record = meta.integrity
    if record == INTEGRITY_PLACEHOLDER or len(record) != len(INTEGRITY_PLACEHOLDER) or \
            not set(record) <= set("0123456789abcdef"):
        raise MetadataError("the artifact carries no valid integrity record (it is the unsealed placeholder or "
                            "not a sha256): it was not sealed by modnet-edge export, or the record was edited; "
                            "re-export it", path)
    if integrity_digest(path, meta, raw) != record:
        raise MetadataError("the artifact does not match the integrity record in its own metadata: its weights, "
                            "graph or embedded metadata were changed after export (tampered or corrupted)", path)


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
