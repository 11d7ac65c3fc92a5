"""Images in every form users pass, and the shared preprocessing (checked against PyTorch's own 'area')."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from modnet_edge.core import PreprocessSpec
from modnet_edge.core.errors import ConfigError, InputImageError
from modnet_edge.core.images import read_image, read_matte, to_rgb_uint8
from modnet_edge.core.preprocess import area_resize, postprocess, preprocess


@pytest.mark.parametrize("src,dst", [((97, 131), (64, 96)), ((64, 96), (97, 131)), ((512, 512), (512, 512)),
                                     ((1080, 1920), (512, 896))])
def test_area_resize_equals_torch_area(src: tuple[int, int], dst: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (*src, 3)).astype(np.float32)
    ours = area_resize(img, *dst)
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None], size=dst, mode="area")[0].permute(1, 2, 0)
    assert ours.shape == (*dst, 3)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=2e-4)


@pytest.mark.parametrize("hw,expected", [
    ((1080, 1920), (512, 896)),   # short side > 512: rescale to 512, floor to 32
    ((300, 400), (512, 672)),     # long side < 512: upscale short side to 512
    ((400, 600), (384, 576)),     # within range: only floor to multiples of 32
    ((1920, 1080), (896, 512)),
    ((512, 512), (512, 512)),
])
def test_reference_resize_rule(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert PreprocessSpec().target_size(*hw) == expected


def test_fixed_size_and_invalid_specs() -> None:
    assert PreprocessSpec(fixed_size=(256, 320)).target_size(1000, 17) == (256, 320)
    with pytest.raises(ConfigError):
        PreprocessSpec(fixed_size=(250, 320))
    with pytest.raises(ConfigError):
        PreprocessSpec(layout="CHW")


def test_preprocess_normalises_to_minus_one_one_and_layouts() -> None:
    rgb = np.zeros((512, 768, 3), np.uint8)  # already within the reference rule: not resized
    rgb[:, :48] = 255
    x = preprocess(rgb, PreprocessSpec())
    assert x.shape == (1, 3, 512, 768) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert preprocess(rgb, PreprocessSpec(layout="NHWC")).shape == (1, 512, 768, 3)
    assert preprocess(rgb[:64, :96], PreprocessSpec()).shape == (1, 3, 512, 768)  # small: upscaled


def test_postprocess_returns_input_size_in_unit_range() -> None:
    alpha = postprocess(np.full((1, 1, 64, 96), 1.5, np.float32), 100, 150)
    assert alpha.shape == (100, 150) and alpha.max() == 1.0


def _jpeg_with_orientation(path: Path, orientation: int) -> None:
    im = Image.new("RGB", (80, 40), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 40, 40))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    _jpeg_with_orientation(tmp_path / "rot.jpg", 6)  # 'rotate 90 CW to display'
    rgb = read_image(tmp_path / "rot.jpg")
    assert rgb.shape == (80, 40, 3)  # portrait after transposition
    assert rgb[5, 20, 2] > 200 and rgb[75, 20, 0] > 200  # blue on top, red at the bottom


def test_grey_rgba_16bit_and_float_inputs(tmp_path: Path) -> None:
    grey = np.full((40, 50), 128, np.uint8)
    assert to_rgb_uint8(grey).shape == (40, 50, 3)
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 1] = 200
    assert to_rgb_uint8(rgba)[0, 0].tolist() == [0, 200, 0]
    sixteen = np.full((40, 50, 3), 65535, np.uint16)
    assert to_rgb_uint8(sixteen).max() == 255
    Image.fromarray(np.full((40, 50), 30000, np.uint16)).save(tmp_path / "g16.png")
    assert read_image(tmp_path / "g16.png")[0, 0, 0] == round(30000 / 65535 * 255)
    assert to_rgb_uint8(np.full((40, 50, 3), 0.5, np.float32))[0, 0, 0] == 128
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "rgba.png").shape == (40, 50, 3)
    assert to_rgb_uint8(Image.fromarray(grey)).shape == (40, 50, 3)


@pytest.mark.parametrize("make,match", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, not an image"), "not a readable image"),
])
def test_bad_image_files(tmp_path: Path, make, match: str) -> None:
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(InputImageError, match=match) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_image(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[:600])
    with pytest.raises(InputImageError, match="corrupt or truncated"):
        read_image(tmp_path / "t.jpg")


def test_size_and_channel_limits(tmp_path: Path) -> None:
    with pytest.raises(InputImageError, match=">= 32"):
        to_rgb_uint8(np.zeros((31, 100, 3), np.uint8))
    Image.new("L", (16385, 32)).save(tmp_path / "wide.png")
    with pytest.raises(InputImageError, match="<= 16384"):
        read_image(tmp_path / "wide.png")
    with pytest.raises(InputImageError, match="1, 3 or 4 channels"):
        to_rgb_uint8(np.zeros((40, 40, 2), np.uint8))
    with pytest.raises(InputImageError, match=r"\[0, 1\]"):
        to_rgb_uint8(np.full((40, 40, 3), 2.0, np.float32))


def test_read_matte_forms(tmp_path: Path) -> None:
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "m.png")
    assert read_matte(tmp_path / "m.png").max() == 1.0
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(InputImageError, match="one channel"):
        read_matte(tmp_path / "c.png")


_PEAK = """
import resource, sys
import numpy as np
from modnet_edge.core import PreprocessSpec
from modnet_edge.core.images import read_image
from modnet_edge.core.preprocess import postprocess, preprocess
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rgb = read_image(sys.argv[1])
x = preprocess(rgb, PreprocessSpec())
alpha = postprocess(np.full((1, 1) + x.shape[2:], 0.5, np.float32), *rgb.shape[:2])
print(x.shape, alpha.shape, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


@pytest.mark.slow
def test_the_largest_accepted_image_has_bounded_peak_memory(tmp_path) -> None:
    """8192 x 8192 (the pixel cap, 192 MiB decoded): decode + preprocess + postprocess to a full-size alpha
    peak at ~505 MiB here (it was 4.9 GB when area resizing turned the whole image into float64): Pillow's
    own decoded copy, the RGB array and the float32 alpha; one pixel more is refused from the header."""
    import subprocess
    import sys

    from modnet_edge.core.images import MAX_PIXELS, read_image

    big = tmp_path / "big.png"
    Image.new("RGB", (8192, 8192), (90, 120, 150)).save(big)
    proc = subprocess.run([sys.executable, "-c", _PEAK, str(big)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shapes, peak = proc.stdout.rsplit(" ", 1)
    assert "(1, 3, 512, 512)" in shapes and "(8192, 8192)" in shapes
    decoded = 8192 * 8192 * 3
    assert int(peak) < 3.5 * decoded, f"peak {int(peak) / 2**20:.0f} MiB for a {decoded / 2**20:.0f} MiB image"
    over = tmp_path / "over.png"
    Image.new("L", (8192, 8193)).save(over)
    assert 8192 * 8193 > MAX_PIXELS
    with pytest.raises(InputImageError, match="MP"):
        read_image(over)
