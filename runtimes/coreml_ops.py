"""The table of MIL operations the reference execution knows, each a small NumPy function.

Every kernel follows the op's definition in the MIL specification (the coremltools op docs), not
PyTorch's semantics: the point is to check what the *converted program* computes.  Kernels take their
inputs through :class:`OpInputs` and return float32 (or integer/bool) arrays; the executor then rounds
each result to the dtype the program declares, which is where FP16 programs lose precision.  A program
using an operation missing from :data:`KERNELS` is refused before it runs, naming the operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modnet_edge.runtimes import coreml_spatial as spatial

# MIL dtype strings used by ``cast`` -> NumPy.
_CAST_DTYPES = {"fp16": np.float16, "fp32": np.float32, "int32": np.int32, "int16": np.int16, "int8": np.int8,
                "uint8": np.uint8, "uint16": np.uint16, "bool": np.bool_}


class OpInputs:
    """The resolved inputs of one operation: ``x = a["x"]``; ``a.get("bias")`` for optional ones."""

    def __init__(self, op_type: str, values: dict[str, list[Any]]) -> None:
        self.op_type, self._values = op_type, values

    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            raise KeyError(f"{self.op_type} lacks required input '{key}'")
        return self._values[key][0]

    def get(self, key: str, default: Any = None) -> Any:
        return self._values[key][0] if key in self._values else default

    def f32(self, key: str) -> np.ndarray:
        return np.asarray(self[key], dtype=np.float32)

    def many(self, key: str) -> list[Any]:
        return list(self._values.get(key, []))

    def scalar(self, key: str, default: Any = None) -> Any:
        val = self.get(key, default)
        return val.item() if isinstance(val, np.ndarray) else val


Kernel = Callable[[OpInputs, dict[str, Any]], np.ndarray]


# --------------------------------------------------------------------------------------------------
# Constants (weights), including the iOS 16 compressed-weight forms
# --------------------------------------------------------------------------------------------------
def _const(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    return np.asarray(attrs["val"])


def _need_attrs(op: str, attrs: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in attrs or attrs[n] is None]
    if missing:
        raise ValueError(f"{op} lacks attribute(s) {missing}; only the iOS 16 form of this op (values as "
                         "attributes) is supported")


def _affine_dequantize(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    """int8/uint8 weights: ``scale * (q - zero_point)``, scale/zero-point per channel along ``axis``."""
    _need_attrs("constexpr_affine_dequantize", attrs, ("quantized_data", "zero_point", "scale", "axis"))
    q = np.asarray(attrs["quantized_data"])
    scale, zero = np.asarray(attrs["scale"]), np.asarray(attrs["zero_point"])
    axis = int(np.asarray(attrs["axis"])) % q.ndim
    shape = [1] * q.ndim
    shape[axis] = -1
    scale_b = scale.reshape(shape) if scale.ndim else scale
    zero_b = zero.reshape(shape) if zero.ndim else zero
    out = scale_b.astype(np.float32) * (q.astype(np.float32) - zero_b.astype(np.float32))
    return out.astype(scale.dtype)


def unpack_indices(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """Sub-byte indices packed LSB first (an index may straddle two bytes) -> one uint8 per index."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")
    if bits.size < nbits * count:
        raise ValueError(f"{packed.size} bytes cannot hold {count} indices of {nbits} bits")
    groups = bits[: nbits * count].reshape(count, nbits)
    weights = (1 << np.arange(nbits, dtype=np.uint16)).astype(np.uint16)
    return (groups.astype(np.uint16) @ weights).astype(np.uint8)


def _lut_to_dense(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    """Palettised weights: each packed n-bit index selects an entry of the look-up table."""
    _need_attrs("constexpr_lut_to_dense", attrs, ("indices", "lut", "shape"))
    lut = np.asarray(attrs["lut"])
    if lut.ndim != 1 or lut.size not in (2, 4, 16, 64, 256):
        raise ValueError(f"constexpr_lut_to_dense: look-up table of shape {lut.shape} (needs 2..256 entries)")
    nbits = int(np.log2(lut.size))
    shape = tuple(int(v) for v in np.asarray(attrs["shape"]))
    idx = unpack_indices(attrs["indices"], nbits, int(np.prod(shape, dtype=np.int64)))
    return lut[idx].reshape(shape)


# --------------------------------------------------------------------------------------------------
# Element-wise and activation operations
# --------------------------------------------------------------------------------------------------
def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Kernel:
    def kernel(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
        x, y = np.asarray(a["x"]), np.asarray(a["y"])
        if np.issubdtype(x.dtype, np.floating) or np.issubdtype(y.dtype, np.floating):
            x, y = x.astype(np.float32), y.astype(np.float32)
        return fn(x, y)
    return kernel


def _sigmoid(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    x = a.f32("x")
    # exp of a negative argument only: no overflow for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def _clip(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    return np.minimum(np.maximum(a.f32("x"), np.float32(a.scalar("alpha"))), np.float32(a.scalar("beta")))


def _cast(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    dtype = str(a.scalar("dtype"))
    if dtype not in _CAST_DTYPES:
        raise ValueError(f"cast to {dtype!r} is not supported")
    return np.asarray(a["x"]).astype(_CAST_DTYPES[dtype])


# --------------------------------------------------------------------------------------------------
# Normalisation, reduction, linear algebra
# --------------------------------------------------------------------------------------------------
def _channel(v: np.ndarray | None, rank: int) -> np.ndarray | None:
    """A per-channel vector shaped to broadcast over (N, C, *spatial)."""
    return None if v is None else np.asarray(v, np.float32).reshape((1, -1) + (1,) * (rank - 2))


def _batch_norm(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    x = a.f32("x")
    mean, var = _channel(a["mean"], x.ndim), _channel(a["variance"], x.ndim)
    eps = np.float32(a.scalar("epsilon", 1e-5))
    out = (x - mean) / np.sqrt(var + eps)
    gamma, beta = _channel(a.get("gamma"), x.ndim), _channel(a.get("beta"), x.ndim)
    if gamma is not None:
        out = out * gamma
    return out + beta if beta is not None else out


def _instance_norm(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    """Normalise each (sample, channel) over its spatial positions (biased variance, as MIL/PyTorch)."""
    x = a.f32("x")
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32)
    centred = x - mean
    var = np.mean(np.square(centred, dtype=np.float32), axis=axes, keepdims=True, dtype=np.float64)
    out = centred / np.sqrt(var.astype(np.float32) + np.float32(a.scalar("epsilon", 1e-5)))
    gamma, beta = _channel(a.get("gamma"), x.ndim), _channel(a.get("beta"), x.ndim)
    if gamma is not None:
        out = out * gamma
    return out + beta if beta is not None else out


def _axes(a: OpInputs, rank: int) -> tuple[int, ...] | None:
    axes = a.get("axes")
    return None if axes is None else tuple(int(v) % rank for v in np.atleast_1d(axes))


def _reduce_mean(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    x = a.f32("x")
    out = x.mean(axis=_axes(a, x.ndim), keepdims=bool(a.scalar("keep_dims", False)), dtype=np.float64)
    return np.asarray(out, dtype=np.float32)


def _linear(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    out = np.matmul(a.f32("x"), a.f32("weight").T)
    bias = a.get("bias")
    return out + np.asarray(bias, np.float32) if bias is not None else out


# --------------------------------------------------------------------------------------------------
# Shapes, slicing, joining
# --------------------------------------------------------------------------------------------------
def _concat(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    values = [np.asarray(v) for v in a.many("values")]
    axis = int(a.scalar("axis"))
    if bool(a.scalar("interleave", False)):  # channels taken alternately from each input
        ax = axis % values[0].ndim
        stacked = np.stack(values, axis=ax + 1)
        shape = list(values[0].shape)
        shape[ax] = -1
        return stacked.reshape(shape)
    return np.concatenate(values, axis=axis)


def _slice_by_index(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    x = np.asarray(a["x"])
    rank = x.ndim
    begin, end = np.asarray(a["begin"]).reshape(-1), np.asarray(a["end"]).reshape(-1)
    stride = np.asarray(a.get("stride", np.ones(rank, np.int32))).reshape(-1)
    bmask = np.asarray(a.get("begin_mask", np.zeros(rank, bool))).reshape(-1)
    emask = np.asarray(a.get("end_mask", np.zeros(rank, bool))).reshape(-1)
    smask = np.asarray(a.get("squeeze_mask", np.zeros(rank, bool))).reshape(-1)
    index: list[Any] = []
    for i in range(rank):
        if smask[i]:
            index.append(int(begin[i]))
            continue
        index.append(slice(None if bmask[i] else int(begin[i]), None if emask[i] else int(end[i]), int(stride[i])))
    return np.asarray(x[tuple(index)])


def _reshape(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    x = np.asarray(a["x"])
    shape = [int(v) for v in np.asarray(a["shape"]).reshape(-1)]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]  # 0 copies the input dimension
    return x.reshape(shape)


def _expand_dims(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    x = np.asarray(a["x"])
    out_rank = x.ndim + len(np.atleast_1d(a["axes"]))
    return np.expand_dims(x, tuple(int(v) % out_rank for v in np.atleast_1d(a["axes"])))


def _squeeze(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    x = np.asarray(a["x"])
    axes = _axes(a, x.ndim)
    return np.squeeze(x, axis=axes) if axes is not None else np.squeeze(x)


def _tile(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    return np.tile(np.asarray(a["x"]), [int(v) for v in np.asarray(a["reps"]).reshape(-1)])


def _fill_like(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    value = np.asarray(a.get("value", np.float32(0.0)))
    return np.full(np.asarray(a["ref_tensor"]).shape, value, dtype=value.dtype)


def _fill(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    value = np.asarray(a.get("value", np.float32(0.0)))
    return np.full([int(v) for v in np.asarray(a["shape"]).reshape(-1)], value, dtype=value.dtype)


def _shape(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    return np.asarray(np.shape(a["x"]), dtype=np.int32)


# --------------------------------------------------------------------------------------------------
# Spatial operations (implemented in coreml_spatial)
# --------------------------------------------------------------------------------------------------
def _conv(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    return spatial.conv2d(a.f32("x"), a.f32("weight"), a.get("bias"), a.get("strides"), a.get("dilations"),
                          str(a.scalar("pad_type", "valid")), a.get("pad"), int(a.scalar("groups", 1)))


def _avg_pool(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    return spatial.avg_pool2d(a.f32("x"), a["kernel_sizes"], a.get("strides"), str(a.scalar("pad_type", "valid")),
                              a.get("pad"), bool(a.scalar("exclude_padding_from_average", False)),
                              bool(a.scalar("ceil_mode", False)))


def _upsample_bilinear(a: OpInputs, attrs: dict[str, Any]) -> np.ndarray:
    align = bool(a.scalar("align_corners", True))
    half_pixel = bool(a.scalar("half_pixel_centers", not align))
    return spatial.upsample_bilinear(a.f32("x"), float(a.scalar("scale_factor_height", 1.0)),
                                     float(a.scalar("scale_factor_width", 1.0)), align, half_pixel)


KERNELS: dict[str, Kernel] = {
    "const": _const,
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_lut_to_dense": _lut_to_dense,
    "conv": _conv,
    "avg_pool": _avg_pool,
    "upsample_bilinear": _upsample_bilinear,
    "batch_norm": _batch_norm,
    "instance_norm": _instance_norm,
    "linear": _linear,
    "reduce_mean": _reduce_mean,
    "relu": lambda a, attrs: np.maximum(a.f32("x"), np.float32(0.0)),
    "sigmoid": _sigmoid,
    "clip": _clip,
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "real_div": _binary(np.divide),
    "cast": _cast,
    "concat": _concat,
    "slice_by_index": _slice_by_index,
    "reshape": _reshape,
    "expand_dims": _expand_dims,
    "squeeze": _squeeze,
    "tile": _tile,
    "fill": _fill,
    "fill_like": _fill_like,
    "shape": _shape,
}

CONSTANT_OPS = ("const", "constexpr_affine_dequantize", "constexpr_lut_to_dense")
