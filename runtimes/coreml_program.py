"""Read a Core ML ML Program (.mlpackage) into plain Python objects: features, operations, weights.

Core ML models only execute on Apple systems, yet the parity gate must hold in Linux CI.  This module
is the reading half of the answer: it opens the package through coremltools' own readers (the model
package manifest, the protobuf specification and the weight-blob reader), decodes every constant into
a NumPy array and lists the program's operations with their bindings, so
:mod:`modnet_edge.runtimes.coreml_reference` can execute exactly what was written to disk, not what the
converter had in memory.  Damaged or foreign packages are refused here with an :class:`ArtifactError`
naming the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.errors import ArtifactError
from modnet_edge.core.tools import import_coremltools

# MIL data type names (MIL.proto DataType) -> NumPy dtypes.  Sub-byte types only occur packed in uint8.
MIL_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "FLOAT16": np.dtype(np.float16), "FLOAT32": np.dtype(np.float32),
    "FLOAT64": np.dtype(np.float64), "INT8": np.dtype(np.int8), "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64), "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16), "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64),
}
# Blob-reader method per stored type (fp16 is returned as raw uint16 and reinterpreted).
_BLOB_READERS = {"FLOAT32": "read_float_data", "FLOAT16": "read_fp16_data", "INT8": "read_int8_data",
                 "UINT8": "read_uint8_data", "INT16": "read_int16_data", "UINT16": "read_uint16_data",
                 "INT32": "read_int32_data", "UINT32": "read_uint32_data"}
# Feature-description (FeatureTypes.proto) array types -> NumPy.
_ARRAY_DTYPES = {"FLOAT32": np.dtype(np.float32), "FLOAT16": np.dtype(np.float16), "DOUBLE": np.dtype(np.float64),
                 "INT32": np.dtype(np.int32), "INT8": np.dtype(np.int8)}


# --------------------------------------------------------------------------------------------------
# Features (the model's public inputs and outputs)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Feature:
    """One model input or output as the Core ML model description declares it.

    ``kind`` is "tensor" (MLMultiArray) or "image" (pixel buffer, uint8 RGB/BGR, fed as (1, 3, H, W)
    values 0..255).  ``shape`` has None where the size is flexible; ``enumerated`` lists the allowed
    shapes of an enumerated-shape input and ``ranges`` the (lower, upper) bound per dimension (upper
    -1: unbounded) of a range-shaped one.
    """

    name: str
    kind: str
    dtype: np.dtype
    shape: tuple[int | None, ...]
    default_shape: tuple[int, ...]
    enumerated: tuple[tuple[int, ...], ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()
    color_space: str | None = None

    def check_shape(self, shape: tuple[int, ...]) -> str | None:
        """Why ``shape`` is not allowed for this feature (None when it is)."""
        if len(shape) != len(self.default_shape):
            return f"rank {len(shape)} instead of {len(self.default_shape)}"
        if self.enumerated:
            if tuple(shape) not in self.enumerated:
                return f"shape {tuple(shape)} is not one of the enumerated shapes {list(self.enumerated)}"
            return None
        if self.ranges:
            for axis, (size, (lo, hi)) in enumerate(zip(shape, self.ranges)):
                if size < lo or (hi >= 0 and size > hi):
                    return f"dimension {axis} is {size}, outside the allowed range [{lo}, {hi if hi >= 0 else 'inf'}]"
            return None
        if tuple(shape) != self.default_shape:
            return f"shape {tuple(shape)} differs from the fixed shape {self.default_shape}"
        return None


def _feature(desc: Any, where: Path) -> Feature:
    ftype = desc.type
    which = ftype.WhichOneof("Type")
    if which == "multiArrayType":
        arr = ftype.multiArrayType
        dname = type(arr).ArrayDataType.Name(arr.dataType)
        if dname not in _ARRAY_DTYPES:
            raise ArtifactError(f"feature '{desc.name}' has unsupported array type {dname}", where)
        default = tuple(int(s) for s in arr.shape)
        enumerated = tuple(tuple(int(s) for s in e.shape) for e in arr.enumeratedShapes.shapes)
        ranges = tuple((int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges)
        flexible = _flexible_axes(default, enumerated, ranges)
        shape = tuple(None if i in flexible else s for i, s in enumerate(default))
        return Feature(desc.name, "tensor", _ARRAY_DTYPES[dname], shape, default, enumerated, ranges)
    if which == "imageType":
        img = ftype.imageType
        space = type(img).ColorSpace.Name(img.colorSpace)
        if space not in ("RGB", "BGR"):
            raise ArtifactError(f"image feature '{desc.name}' has color space {space}; only RGB/BGR images "
                                "are supported", where)
        default = (1, 3, int(img.height), int(img.width))
        enumerated = tuple((1, 3, int(s.height), int(s.width)) for s in img.enumeratedSizes.sizes)
        ranges: tuple[tuple[int, int], ...] = ()
        if img.HasField("imageSizeRange"):
            r = img.imageSizeRange
            ranges = ((1, 1), (3, 3), (int(r.heightRange.lowerBound), int(r.heightRange.upperBound)),
                      (int(r.widthRange.lowerBound), int(r.widthRange.upperBound)))
        flexible = _flexible_axes(default, enumerated, ranges)
        shape = tuple(None if i in flexible else s for i, s in enumerate(default))
        return Feature(desc.name, "image", np.dtype(np.uint8), shape, default, enumerated, ranges, space)
    raise ArtifactError(f"feature '{desc.name}' is of type {which}; only multi-arrays and images are supported",
                        where)


def _flexible_axes(default: tuple[int, ...], enumerated: tuple[tuple[int, ...], ...],
                   ranges: tuple[tuple[int, int], ...]) -> set[int]:
    axes = {i for i in range(len(default)) if len({e[i] for e in enumerated}) > 1} if enumerated else set()
    return axes | {i for i, (lo, hi) in enumerate(ranges) if lo != hi}


# --------------------------------------------------------------------------------------------------
# The program
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Var:
    """A named value of the program with its declared type (None where a dimension is symbolic)."""

    name: str
    dtype: str  # MIL type name, e.g. "FLOAT16"
    shape: tuple[int | None, ...] | None  # None: not a tensor (or unknown rank)


@dataclass(frozen=True)
class Arg:
    """One binding of an operation input: a variable name or an immediate value."""

    name: str | None = None
    value: np.ndarray | None = None


@dataclass
class Operation:
    type: str
    name: str
    inputs: dict[str, list[Arg]]
    outputs: list[Var]
    attributes: dict[str, Any] = field(default_factory=dict)  # decoded values (const: "val")


@dataclass
class MLProgram:
    """An ML Program as stored in a .mlpackage: features, the main function's operations, metadata."""

    path: Path
    specification_version: int
    opset: str
    inputs: list[Feature]
    outputs: list[Feature]
    function_inputs: list[Var]
    function_outputs: list[str]
    operations: list[Operation]
    user_metadata: dict[str, str]
    description: dict[str, str]  # author, license, shortDescription, versionString

    @property
    def op_types(self) -> list[str]:
        """The distinct operation types, in first-use order."""
        return list(dict.fromkeys(op.type for op in self.operations))

    @classmethod
    def read(cls, path: str | Path, decode_weights: bool = True) -> MLProgram:
        """Open ``path`` (a .mlpackage directory); ``decode_weights=False`` reads structure only."""
        return _read_program(Path(path), decode_weights)


def read_spec(path: Path) -> tuple[Any, Path]:
    """The model's protobuf specification and the folder its ``@model_path`` refers to."""
    if not path.exists():
        raise ArtifactError("Core ML model does not exist", path)
    if not path.is_dir():
        raise ArtifactError("not an .mlpackage directory (ML Programs are stored as packages; a single "
                            ".mlmodel file holds only legacy neural networks)", path)
    if not (path / "Manifest.json").is_file():
        raise ArtifactError("not a Core ML package: Manifest.json is missing", path)
    ct = import_coremltools()
    try:
        from coremltools.libmodelpackage import ModelPackage

        specfile = Path(ModelPackage(str(path)).getRootModel().path())
    except Exception as exc:  # the C++ reader raises RuntimeError with a terse message
        raise ArtifactError(f"corrupt Core ML package manifest: {str(exc).strip() or type(exc).__name__}",
                            path) from None
    if not specfile.is_file():
        raise ArtifactError(f"the package's root model file {specfile.name} is missing", path)
    spec = ct.proto.Model_pb2.Model()
    try:
        spec.ParseFromString(specfile.read_bytes())
    except Exception as exc:  # google.protobuf DecodeError
        raise ArtifactError(f"corrupt model specification {specfile.name}: {exc}", path) from None
    return spec, specfile.parent


def _read_program(path: Path, decode_weights: bool) -> MLProgram:
    spec, model_dir = read_spec(path)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise ArtifactError(f"this Core ML model is a {kind or 'empty'!r} model, not an ML Program; the "
                            "reference execution runs ML Programs only", path)
    functions = spec.mlProgram.functions
    if "main" not in functions:
        raise ArtifactError(f"ML Program has no 'main' function (has {sorted(functions)})", path)
    func = functions["main"]
    if func.opset not in func.block_specializations:
        raise ArtifactError(f"ML Program main function has no block for its opset {func.opset}", path)
    block = func.block_specializations[func.opset]
    decoder = _ValueDecoder(path, model_dir, decode_weights)
    operations = [_operation(op, decoder, path) for op in block.operations]
    meta = spec.description.metadata
    return MLProgram(
        path=path, specification_version=int(spec.specificationVersion), opset=func.opset,
        inputs=[_feature(d, path) for d in spec.description.input],
        outputs=[_feature(d, path) for d in spec.description.output],
        function_inputs=[_var(v) for v in func.inputs], function_outputs=list(block.outputs),
        operations=operations, user_metadata=dict(meta.userDefined),
        description={"author": meta.author, "license": meta.license,
                     "shortDescription": meta.shortDescription, "versionString": meta.versionString})


def _var(named: Any) -> Var:
    vtype = named.type
    if vtype.WhichOneof("type") != "tensorType":
        return Var(named.name, vtype.WhichOneof("type") or "unknown", None)
    t = vtype.tensorType
    shape = tuple(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None for d in t.dimensions)
    return Var(named.name, _dtype_name(t.dataType), shape)


def _dtype_name(number: int) -> str:
    from coremltools.proto import MIL_pb2

    try:
        return MIL_pb2.DataType.Name(number)
    except ValueError:
        return f"unknown type {number}"


def _operation(op: Any, decoder: _ValueDecoder, where: Path) -> Operation:
    inputs: dict[str, list[Arg]] = {}
    for key, argument in op.inputs.items():
        args = []
        for binding in argument.arguments:
            which = binding.WhichOneof("binding")
            if which == "name":
                args.append(Arg(name=binding.name))
            elif which == "value":
                args.append(Arg(value=decoder.decode(binding.value, f"{op.type} input {key}")))
            else:
                raise ArtifactError(f"operation {op.type} input '{key}' has an empty binding", where)
        inputs[key] = args
    attributes = {}
    for key, value in op.attributes.items():
        attributes[key] = decoder.decode(value, f"{op.type} attribute {key}") if key != "name" else \
            _string(value)
    outputs = [_var(o) for o in op.outputs]
    if not outputs:
        raise ArtifactError(f"operation {op.type} declares no outputs", where)
    name = attributes.get("name") or outputs[0].name
    return Operation(op.type, str(name), inputs, outputs, attributes)


def _string(value: Any) -> str:
    strings = value.immediateValue.tensor.strings.values
    return str(strings[0]) if strings else ""


class _ValueDecoder:
    """Decodes MIL values: immediate tensors from the protobuf, blob values through coremltools'
    weight-blob reader (one reader per weight file, opened on first use)."""

    def __init__(self, package: Path, model_dir: Path, decode_weights: bool) -> None:
        self.package, self.model_dir, self.decode_weights = package, model_dir, decode_weights
        self._readers: dict[Path, Any] = {}

    def decode(self, value: Any, what: str) -> Any:
        vtype = value.type.WhichOneof("type")
        if vtype != "tensorType":
            raise ArtifactError(f"{what}: values of type {vtype} are not supported", self.package)
        tensor_type = value.type.tensorType
        dname = _dtype_name(tensor_type.dataType)
        shape = tuple(int(d.constant.size) for d in tensor_type.dimensions)
        which = value.WhichOneof("value")
        if which == "immediateValue":
            return self._immediate(value.immediateValue.tensor, dname, shape, what)
        if which == "blobFileValue":
            return self._blob(value.blobFileValue, dname, shape, what) if self.decode_weights else None
        raise ArtifactError(f"{what}: value has no data ({which})", self.package)

    def _immediate(self, tensor: Any, dname: str, shape: tuple[int, ...], what: str) -> Any:
        which = tensor.WhichOneof("value")
        if dname == "STRING":
            vals = list(tensor.strings.values)
            return vals[0] if not shape else np.asarray(vals, dtype=object).reshape(shape)
        if dname not in MIL_DTYPES:
            raise ArtifactError(f"{what}: immediate values of type {dname} are not supported", self.package)
        dtype = MIL_DTYPES[dname]
        if which == "bytes":
            arr = np.frombuffer(tensor.bytes.values, dtype=dtype.newbyteorder("<")).astype(dtype)
        elif which in ("floats", "ints", "bools", "longInts", "doubles"):
            arr = np.asarray(list(getattr(tensor, which).values)).astype(dtype)
        elif which is None:
            arr = np.zeros(0, dtype=dtype)
        else:
            raise ArtifactError(f"{what}: immediate value stored as {which} is not supported", self.package)
        try:
            return arr.reshape(shape)
        except ValueError:
            raise ArtifactError(f"{what}: {arr.size} values do not fill the declared shape {shape}",
                                self.package) from None

    def _blob(self, blob: Any, dname: str, shape: tuple[int, ...], what: str) -> np.ndarray:
        rel = blob.fileName
        if not rel.startswith("@model_path/"):
            raise ArtifactError(f"{what}: weight file reference {rel!r} is not inside the package", self.package)
        wfile = self.model_dir / rel[len("@model_path/"):]
        if not wfile.is_file():
            raise ArtifactError(f"weight file {wfile.relative_to(self.package)} is missing (needed by {what})",
                                self.package)
        if dname not in _BLOB_READERS:
            raise ArtifactError(f"{what}: stored weights of type {dname} are not supported", self.package)
        reader = self._readers.get(wfile)
        if reader is None:
            import_coremltools()
            from coremltools.libmilstoragepython import _BlobStorageReader

            reader = self._readers[wfile] = _BlobStorageReader(str(wfile))
        try:
            raw = np.array(getattr(reader, _BLOB_READERS[dname])(int(blob.offset)))
        except Exception as exc:  # RuntimeError/ValueError from the C++ reader: truncated or damaged blob
            raise ArtifactError(f"cannot read {what} from {wfile.name} at offset {blob.offset} (truncated or "
                                f"corrupt weight file?): {exc}", self.package) from None
        arr = raw.view(np.float16) if dname == "FLOAT16" else raw.astype(MIL_DTYPES[dname], copy=False)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ArtifactError(f"{what}: {wfile.name} holds {arr.size} values at offset {blob.offset}, the "
                                f"program declares shape {shape}", self.package)
        return arr.reshape(shape)
