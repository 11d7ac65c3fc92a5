"""The NumPy kernels of the Core ML reference execution, each against PyTorch or a hand computation.

These need neither coremltools nor a converted model: they pin the MIL semantics the executor relies
on (padding rules, bilinear grid, instance-norm variance, sub-byte index packing) op by op, so a parity
failure later points at the converter or the artifact, not at a kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modnet_edge.runtimes import coreml_spatial as spatial
from modnet_edge.runtimes.coreml_ops import KERNELS, OpInputs, unpack_indices

RNG = np.random.default_rng(0)


def _run(op: str, attrs: dict | None = None, **inputs) -> np.ndarray:
    return KERNELS[op](OpInputs(op, {k: (v if isinstance(v, list) else [v]) for k, v in inputs.items()}), attrs or {})


@pytest.mark.parametrize("cin,cout,k,stride,dilation,groups,pad", [
    (3, 8, 3, 2, 1, 1, 1),      # stem: strided
    (8, 8, 3, 1, 4, 8, 4),      # depthwise, dilated (e-ASPP)
    (8, 8, 3, 2, 1, 8, 1),      # depthwise, strided (MobileNetV2)
    (8, 12, 3, 1, 1, 4, 1),     # general grouped
    (16, 4, 5, 1, 1, 1, 2),     # 5x5 (LR branch)
    (6, 5, 1, 1, 1, 1, 0),      # pointwise
])
def test_conv_matches_torch(cin, cout, k, stride, dilation, groups, pad):
    x = RNG.standard_normal((1, cin, 20, 18)).astype(np.float32)
    w = RNG.standard_normal((cout, cin // groups, k, k)).astype(np.float32)
    b = RNG.standard_normal(cout).astype(np.float32)
    ours = _run("conv", x=x, weight=w, bias=b, strides=np.array([stride] * 2), dilations=np.array([dilation] * 2),
                pad_type="custom", pad=np.array([pad] * 4), groups=np.int32(groups))
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride, pad, dilation, groups)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-4, atol=1e-4)


def test_conv_chunked_columns_match_unchunked(monkeypatch):
    """The im2col buffer is split into row bands when large; the bands must tile the output exactly.

    BLAS does not promise bit-identical sums for differently shaped products (on AVX-512 the banded and
    unbanded results differ by ~1e-6), so the comparison has a float tolerance -- one that a tiling bug
    still fails: a band shifted, overlapped or dropped by one row changes outputs by O(1) here (outputs
    are sums of 36 standard-normal products), checked below on the reference itself."""
    x = RNG.standard_normal((1, 4, 33, 17)).astype(np.float32)
    w = RNG.standard_normal((3, 4, 3, 3)).astype(np.float32)
    full = spatial.conv2d(x, w, None, np.array([2, 1]), None, "custom", np.array([1, 1, 1, 1]), 1)
    monkeypatch.setattr(spatial, "_COLUMN_BUDGET", 4 * 9 * 17 * 2)  # two output rows per band
    banded = spatial.conv2d(x, w, None, np.array([2, 1]), None, "custom", np.array([1, 1, 1, 1]), 1)
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(banded, full, **tol)
    # the tolerance is tight enough to see a one-row tiling error anywhere in the output
    for row in range(full.shape[2]):
        shifted = full.copy()
        shifted[:, :, row] = full[:, :, row - 1] if row else full[:, :, row + 1]
        assert not np.allclose(shifted, full, **tol), f"a copied row {row} would pass the tolerance"
        dropped = full.copy()
        dropped[:, :, row] = 0.0
        assert not np.allclose(dropped, full, **tol), f"a dropped row {row} would pass the tolerance"


def test_same_padding_rules():
    # MIL 'same': total = max((ceil(n/s)-1)*s + k - n, 0), the odd pixel after ('same') or before ('same_lower')
    assert spatial._pads_1d("same", 10, 4, 1, 1, (0, 0)) == (1, 2)
    assert spatial._pads_1d("same_lower", 10, 4, 1, 1, (0, 0)) == (2, 1)
    assert spatial._pads_1d("same", 9, 3, 2, 1, (0, 0)) == (1, 1)
    assert spatial._pads_1d("valid", 9, 3, 2, 1, (5, 5)) == (0, 0)
    with pytest.raises(ValueError, match="pad_type"):
        spatial._pads_1d("reflect", 9, 3, 1, 1, (0, 0))


@pytest.mark.parametrize("scale,align", [(2.0, False), (0.5, False), (0.25, False), (2.0, True), (3.0, False)])
def test_upsample_bilinear_matches_torch(scale, align):
    x = RNG.standard_normal((1, 3, 16, 24)).astype(np.float32)
    ours = _run("upsample_bilinear", x=x, scale_factor_height=np.float32(scale), scale_factor_width=np.float32(scale),
                align_corners=np.bool_(align))
    ref = F.interpolate(torch.from_numpy(x), scale_factor=scale, mode="bilinear", align_corners=align)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_upsample_bilinear_legacy_grid_without_half_pixel_centers():
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    out = _run("upsample_bilinear", x=x, scale_factor_height=np.float32(1), scale_factor_width=np.float32(2),
               align_corners=np.bool_(False), half_pixel_centers=np.bool_(False))
    np.testing.assert_allclose(out[0, 0, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])  # grid i * in/out, clamped


def test_avg_pool_matches_torch():
    x = RNG.standard_normal((1, 2, 12, 10)).astype(np.float32)
    ours = _run("avg_pool", x=x, kernel_sizes=np.array([2, 2]), strides=np.array([4, 4]), pad_type="valid")
    ref = F.avg_pool2d(torch.from_numpy(x), 2, 4)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-6)
    padded = _run("avg_pool", x=x, kernel_sizes=np.array([3, 3]), strides=np.array([2, 2]), pad_type="custom",
                  pad=np.array([1, 1, 1, 1]), exclude_padding_from_average=np.bool_(True), ceil_mode=np.bool_(True))
    ref = F.avg_pool2d(torch.from_numpy(x), 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(padded, ref.numpy(), rtol=1e-6)


def test_norms_match_torch():
    x = (RNG.standard_normal((1, 6, 9, 7)) * 30 + 5).astype(np.float32)
    ours = _run("instance_norm", x=x, epsilon=np.float32(1e-5))
    np.testing.assert_allclose(ours, F.instance_norm(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
    mean, var, gamma, beta = (RNG.standard_normal(6).astype(np.float32) for _ in range(4))
    var = np.abs(var)
    ours = _run("batch_norm", x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=np.float32(1e-5))
    ref = F.batch_norm(*(torch.from_numpy(a) for a in (x, mean, var, gamma, beta)), training=False)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-4)


def test_elementwise_and_shape_ops():
    x = RNG.standard_normal((1, 4, 3, 3)).astype(np.float32) * 10
    np.testing.assert_allclose(_run("sigmoid", x=x), torch.sigmoid(torch.from_numpy(x)).numpy(), rtol=1e-6)
    assert _run("sigmoid", x=np.array([-1e4, 1e4], np.float32)).tolist() == [0.0, 1.0]  # no overflow
    np.testing.assert_array_equal(_run("clip", x=x, alpha=np.float32(0), beta=np.float32(6)), np.clip(x, 0, 6))
    assert _run("reduce_mean", x=x, axes=np.array([-2, -1]), keep_dims=np.bool_(True)).shape == (1, 4, 1, 1)
    cat = _run("concat", values=[x[:, :2], x[:, 2:]], axis=np.int32(1), interleave=np.bool_(False))
    np.testing.assert_array_equal(cat, x)
    inter = _run("concat", values=[x[:, :1], x[:, 1:2]], axis=np.int32(1), interleave=np.bool_(True))
    np.testing.assert_array_equal(inter, x[:, :2])
    sl = _run("slice_by_index", x=x, begin=np.array([0, 2, 0, 0]), end=np.array([1, 4, 0, 0]),
              end_mask=np.array([False, False, True, True]))
    np.testing.assert_array_equal(sl, x[:, 2:4])
    sq = _run("slice_by_index", x=x, begin=np.array([0, 1, 0, 0]), end=np.array([1, 2, 3, 3]),
              squeeze_mask=np.array([False, True, False, False]))
    assert sq.shape == (1, 3, 3)
    assert _run("reshape", x=x, shape=np.array([0, -1])).shape == (1, 36)
    assert _run("expand_dims", x=x[:, :, 0, 0], axes=np.array([-1])).shape == (1, 4, 1)
    assert _run("tile", x=x[:, :, :1, :1], reps=np.array([1, 1, 3, 2])).shape == (1, 4, 3, 2)
    ones = _run("fill_like", ref_tensor=x, value=np.float32(1.0))
    assert ones.shape == x.shape and ones.min() == ones.max() == 1.0
    w, b = RNG.standard_normal((5, 4)).astype(np.float32), RNG.standard_normal(5).astype(np.float32)
    np.testing.assert_allclose(_run("linear", x=x[:, :, 0, 0], weight=w, bias=b), x[:, :, 0, 0] @ w.T + b, rtol=1e-5)
    assert _run("cast", x=np.float32(65519.0).reshape(1), dtype="fp16").dtype == np.float16
    with pytest.raises(ValueError, match="complex"):
        _run("cast", x=x, dtype="complex64")


def _pack_lsb_first(values: np.ndarray, nbits: int) -> np.ndarray:
    """Reference packer written bit by bit from the MIL constexpr_lut_to_dense description."""
    bits = [(int(v) >> b) & 1 for v in values for b in range(nbits)]
    bits += [0] * (-len(bits) % 8)
    return np.array([sum(bit << i for i, bit in enumerate(bits[k:k + 8])) for k in range(0, len(bits), 8)],
                    dtype=np.uint8)


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
def test_unpack_indices_lsb_first(nbits):
    values = RNG.integers(0, 2 ** nbits, 37).astype(np.uint8)
    np.testing.assert_array_equal(unpack_indices(_pack_lsb_first(values, nbits), nbits, values.size), values)
    with pytest.raises(ValueError, match="cannot hold"):
        unpack_indices(_pack_lsb_first(values, nbits)[:1], nbits, values.size)


def test_constexpr_weights():
    lut = np.linspace(-1, 1, 16).astype(np.float16)
    idx = RNG.integers(0, 16, (3, 5)).astype(np.uint8)
    dense = _run("constexpr_lut_to_dense", {"lut": lut, "indices": _pack_lsb_first(idx.ravel(), 4),
                                            "shape": np.array([3, 5], np.uint32)})
    np.testing.assert_array_equal(dense, lut[idx])
    q = RNG.integers(-128, 127, (4, 6)).astype(np.int8)
    scale, zero = np.array([0.5, 0.25, 2.0, 1.0], np.float32), np.array([0, 1, -2, 3], np.int8)
    deq = _run("constexpr_affine_dequantize", {"quantized_data": q, "scale": scale, "zero_point": zero,
                                               "axis": np.int32(0)})
    np.testing.assert_allclose(deq, scale[:, None] * (q.astype(np.float32) - zero[:, None]))
    with pytest.raises(ValueError, match="iOS 16 form"):
        _run("constexpr_lut_to_dense", {"lut": lut})


def test_round_to_half_is_numpys_float16_cast_bit_for_bit():
    """The executor holds FLOAT16 tensors as float32 rounded by round_to_half: it must round exactly as
    NumPy's float16 cast does, at ties, through the subnormals, at overflow and for NaN/infinity."""
    from modnet_edge.runtimes.coreml_reference import round_to_half

    rng = np.random.default_rng(0)
    edges = np.array([0x00000000, 0x80000000, 0x38800000, 0x387FFFFF, 0x33800000, 0x33000000, 0x33000001,
                      0x32FFFFFF, 0x477FEFFF, 0x477FF000, 0x477FE000, 0x7F800000, 0xFF800000, 0x7FC00000,
                      0x7F800001, 0xFFFFFFFF, 0x3F801000, 0x3F803000, 0x3F801001, 0x00000001], np.uint32)
    spaced = np.arange(0, 2**32, 65537, dtype=np.uint64).astype(np.uint32)  # every exponent, odd mantissas
    for bits in (edges, spaced, rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32)):
        x = bits.view(np.float32)
        with np.errstate(all="ignore"):
            want = x.astype(np.float16).astype(np.float32)
        got = round_to_half(x)
        assert got.dtype == np.float32
        same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), [hex(int(b)) for b in bits[~same][:5]]
    grid = rng.normal(0, 3, (2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(round_to_half(grid), grid.astype(np.float16).astype(np.float32))
    assert round_to_half(grid).shape == grid.shape
