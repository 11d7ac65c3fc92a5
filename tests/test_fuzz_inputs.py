"""Property-based fuzzing of everything that parses untrusted bytes: image decoding, artifact metadata,
manifests and the TFLite metadata walker.  Whatever the bytes, the only exceptions are the toolkit's
typed errors (one clear line for the user), never a raw IndexError, struct.error or MemoryError.
Bounded for CI: a fixed number of examples per property, no deadline."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from modnet_edge.core import ArtifactMetadata, PreprocessSpec, read_manifest
from modnet_edge.core.errors import ModnetEdgeError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


_VALID = _png(40, 36)


@st.composite
def mangled_image(draw) -> bytes:
    """Random bytes, or a valid PNG with a few bytes flipped, truncated or with garbage appended."""
    kind = draw(st.sampled_from(["random", "flip", "truncate", "append", "huge-header"]))
    data = bytearray(_VALID)
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=512))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "append":
        data += draw(st.binary(min_size=1, max_size=64))
    else:  # a header claiming an enormous image (width, height in the IHDR chunk)
        data[16:24] = struct.pack(">II", draw(st.integers(1, 2**31 - 1)), draw(st.integers(1, 2**31 - 1)))
    return bytes(data)


@FUZZ
@given(data=mangled_image())
def test_image_decoding_fails_only_with_typed_errors(tmp_path_factory, data: bytes) -> None:
    from modnet_edge.core.images import read_image, read_matte

    path = tmp_path_factory.mktemp("img") / "x.png"
    path.write_bytes(data)
    for reader in (read_image, read_matte):
        try:
            out = reader(path)
        except ModnetEdgeError:
            continue
        assert isinstance(out, np.ndarray) and out.size > 0


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                     lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                         max_size=4), max_leaves=12)


@st.composite
def mangled_metadata(draw) -> dict:
    """A valid metadata dict with some fields replaced by arbitrary JSON values (or removed)."""
    base = ArtifactMetadata(format="onnx", precision="fp32", preprocessing=PreprocessSpec(), model={}).to_dict()
    for key in draw(st.lists(st.sampled_from(sorted(base) + ["preprocessing.mean", "preprocessing.fixed_size",
                                                               "preprocessing.layout", "bogus"]), max_size=4)):
        outer, _, inner = key.partition(".")
        if draw(st.booleans()) and not inner:
            base.pop(outer, None)
        elif inner and isinstance(base.get("preprocessing"), dict):
            base["preprocessing"][inner] = draw(_JSON)
        else:
            base[outer] = draw(_JSON)
    return base


@FUZZ
@given(meta=mangled_metadata())
def test_metadata_parsing_fails_only_with_typed_errors(meta: dict) -> None:
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError):
        return
    try:
        parsed = ArtifactMetadata.from_json(text)
    except ModnetEdgeError:
        return
    assert isinstance(parsed.preprocessing, PreprocessSpec)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_manifest_parsing_fails_only_with_typed_errors(tmp_path_factory, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("manifest")
    artifact = folder / "m.onnx"
    artifact.write_bytes(b"model bytes")
    (folder / "m.onnx.manifest.json").write_bytes(data)
    try:
        read_manifest(artifact)
    except ModnetEdgeError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096), flips=st.lists(st.integers(0, 10_000), max_size=6))
def test_tflite_metadata_walker_fails_only_with_typed_errors(data: bytes, flips: list[int]) -> None:
    from modnet_edge.core.containers.tflite_file import embed_tflite_metadata, read_tflite_metadata

    pytest.importorskip("ai_edge_litert", reason="writing a .tflite needs the tflite extra")
    # a real minimal flatbuffer (metadata only) with bytes flipped, or plain random bytes
    base = bytearray(_minimal_tflite(embed_tflite_metadata)) if flips else bytearray(data)
    for at in flips:
        if base:
            base[at % len(base)] ^= 0x5A
    try:
        read_tflite_metadata(bytes(base))
    except ModnetEdgeError:
        pass


_MINIMAL: list[bytes] = []


def _minimal_tflite(embed) -> bytes:
    if not _MINIMAL:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema

        model = schema.ModelT()
        model.version = 3
        model.buffers = [schema.BufferT()]
        model.subgraphs, model.operatorCodes, model.metadata = [], [], []
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        _MINIMAL.append(embed(bytes(builder.Output()), {"modnet_edge": b'{"format": "tflite"}'}))
    return _MINIMAL[0]
