"""Metadata inside a .tflite file: write with ai-edge-litert's schema, read with the standard library.

A TFLite model is a FlatBuffer whose root ``Model`` table has a ``metadata`` vector of (name, buffer
index) entries; the modnet-edge JSON goes into one named :data:`~modnet_edge.core.METADATA_KEY`.
Writing uses the schema bindings that ship with ai-edge-litert (an export-time dependency).  Reading
must work on a device that has only ``tflite-runtime`` (no schema module, no flatbuffers package), so
:func:`read_tflite_metadata` walks the few tables it needs by hand.  Field numbers are those of the
public TFLite schema: Model{version=0, operator_codes=1, subgraphs=2, description=3, buffers=4,
metadata_buffer=5, metadata=6, signature_defs=7}, Metadata{name=0, buffer=1}, Buffer{data=0,
offset=1, size=2} (offset/size address data stored after the FlatBuffer, in models over 2 GB).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from modnet_edge.core.metadata import METADATA_KEY, ArtifactMetadata
from modnet_edge.core.errors import ArtifactError

_IDENTIFIER = b"TFL3"


class _Table:
    """A FlatBuffer table at ``pos`` of ``buf``: field lookup through its vtable, bounds-checked."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vt = pos - _i32(buf, pos)
        self.vt, self.vt_len = vt, _u16(buf, vt)

    def _field(self, index: int) -> int | None:
        entry = 4 + 2 * index
        if entry >= self.vt_len:
            return None
        off = _u16(self.buf, self.vt + entry)
        return self.pos + off if off else None

    def uint(self, index: int, fmt: str = "<I", default: int = 0) -> int:
        p = self._field(index)
        return struct.unpack_from(fmt, self.buf, p)[0] if p is not None else default

    def _target(self, index: int) -> int | None:
        p = self._field(index)
        return None if p is None else p + _u32(self.buf, p)

    def string(self, index: int) -> str | None:
        t = self._target(index)
        if t is None:
            return None
        n = _u32(self.buf, t)
        return self.buf[t + 4:t + 4 + n].decode("utf-8", errors="replace")

    def bytes_vector(self, index: int) -> bytes | None:
        t = self._target(index)
        if t is None:
            return None
        n = _u32(self.buf, t)
        return bytes(self.buf[t + 4:t + 4 + n])

    def tables(self, index: int) -> list[_Table]:
        t = self._target(index)
        if t is None:
            return []
        n = _u32(self.buf, t)
        out = []
        for i in range(n):
            slot = t + 4 + 4 * i
            out.append(_Table(self.buf, slot + _u32(self.buf, slot)))
        return out


def _u16(b: bytes, p: int) -> int:
    return struct.unpack_from("<H", b, p)[0]


def _u32(b: bytes, p: int) -> int:
    return struct.unpack_from("<I", b, p)[0]


def _i32(b: bytes, p: int) -> int:
    return struct.unpack_from("<i", b, p)[0]


def check_tflite_bytes(data: bytes, where: str | Path = "model") -> None:
    """Refuse what cannot be a TFLite FlatBuffer (empty, truncated, wrong identifier)."""
    if len(data) < 8:
        raise ArtifactError(f"not a TFLite model ({len(data)} bytes; truncated or empty)", where)
    if data[4:8] != _IDENTIFIER:
        raise ArtifactError(f"not a TFLite model (file identifier {data[4:8]!r}, expected {_IDENTIFIER!r})", where)
    root = _u32(data, 0)
    if not 8 <= root < len(data):
        raise ArtifactError("TFLite model is corrupt (root table offset out of range)", where)


def read_tflite_metadata(data: bytes, where: str | Path = "model") -> dict[str, bytes]:
    """All metadata entries of a .tflite as {name: bytes} (standard library only)."""
    check_tflite_bytes(data, where)
    try:
        model = _Table(data, _u32(data, 0))
        buffers = model.tables(4)
        out: dict[str, bytes] = {}
        for entry in model.tables(6):
            name = entry.string(0)
            index = entry.uint(1)
            if name is None or index >= len(buffers):
                continue
            buffer = buffers[index]
            offset, size = buffer.uint(1, "<Q"), buffer.uint(2, "<Q")
            if offset > 1:
                out[name] = bytes(data[offset:offset + size])
            else:
                out[name] = buffer.bytes_vector(0) or b""
        return out
    except (struct.error, IndexError) as exc:
        raise ArtifactError(f"TFLite model is corrupt (cannot read its tables: {exc})", where) from None


def read_modnet_metadata(data: bytes, where: str | Path = "model") -> bytes | None:
    """The modnet-edge JSON entry of a .tflite, or None for a model exported elsewhere."""
    return read_tflite_metadata(data, where).get(METADATA_KEY)


def embed_tflite_metadata(data: bytes, entries: dict[str, bytes]) -> bytes:
    """``data`` with metadata entries added (an entry of the same name is replaced)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    for buffer in model.buffers:  # packing is vectorised only for numpy data (else one call per byte)
        if buffer.data is not None and not isinstance(buffer.data, np.ndarray):
            buffer.data = np.frombuffer(bytes(buffer.data), dtype=np.uint8)
    kept = []
    for entry in model.metadata or []:
        if _name(entry.name) in entries:
            model.buffers[entry.buffer].data = None  # the replaced entry's payload goes too
        else:
            kept.append(entry)
    model.metadata = kept
    for name, payload in entries.items():
        buf = schema.BufferT()
        buf.data = np.frombuffer(bytes(payload), dtype=np.uint8)
        model.buffers.append(buf)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


TEMP_SUFFIX = None


def write(model: bytes, meta: ArtifactMetadata, path: Path) -> None:
    """Embed ``meta`` in the FlatBuffer ``model`` (bytes) and write it to ``path``."""
    path.write_bytes(embed_tflite_metadata(model, {METADATA_KEY: meta.to_json().encode()}))


def read(path: Path) -> ArtifactMetadata | None:
    from modnet_edge.core.containers import from_entry

    return from_entry(read_modnet_metadata(path.read_bytes(), path), path)
