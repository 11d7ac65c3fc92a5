"""MODNet that reads the 8-bit image itself: the normalisation folded into the first convolution, exactly.

A full-integer artifact (TFLite int8, ONNX QDQ int8, TensorRT int8) quantises its input.  The
normalised image ``x = (p / 255 - mean) / std`` cannot be an 8-bit tensor without rounding: for the
default mean = std = 0.5 it is ``(p - 127.5) / 127.5``, whose zero point would be 127.5, not an
integer.  The pixels ``p`` themselves are integers in [0, 255]: an 8-bit tensor with scale 1 holds them
exactly.  So the network here takes ``p`` and does the normalisation's work inside, where it costs no
rounding:

**The backbone's first convolution** (3x3, stride 2, zero padding 1) reads the pixels directly, its
weights scaled by ``a_c = 1 / (255 std_c)`` per input channel.  The offset ``-a_c k_c`` (``k_c = 255
mean_c``, the pixel value a normalised zero means) cannot go into the bias: the convolution pads the
*normalised* image with zeros, i.e. with pixels of value ``k_c`` (127.5 for the default mean), and a
bias would add the offset at padded taps as well -- wrong on every border pixel (and 127.5 is no 8-bit
value to pad with).  Instead the offset rides on a fourth input channel, an *inside mask* ``M`` where
the image is and 0 in the padding, with weights ``sum_c w_c a_c (128 - k_c) / M``; the pixel channels
are ``p - 128``.  Zero padding then pads every channel with a true zero, and inside the image the four
channels sum to exactly ``sum_c w_c a_c (p_c - k_c) = sum_c w_c x_c``: the original convolution of the
normalised image, border included.

The stem input ``[p - 128, 127 * inside]`` spans [-128, 127]: an 8-bit tensor at scale 1 holds it
exactly whatever the activation type -- int8 with zero point 0 (TensorRT, TFLite, ONNX ``int8``) or
uint8 with zero point 128 (ONNX Runtime's default), whose bytes are the pixels themselves.  With the
default mean the mask weight is ``sum_c w_c / (255 * 127)``, far below the pixel weights' ``w_c /
127.5``, so per-channel weight quantisation keeps the stem's grid (a mask of 255 on ``[p, mask]``, the
uncentred layout, would widen it by up to 29 % on the starter weights).

**The other readers of the image** (the high-resolution branch's concatenations with the image and
its 1/2 and 1/4 downscaled copies, and the fusion branch's with the image) get the normalised image
computed once from the pixels inside the graph, ``(p / 255 - mean) / std`` in float, the very ops of the
reference preprocessing.  Folding those too would not make the int8 graph more exact: each of them is
a concatenation with feature maps, which shares one quantisation scale between image and features
(hence the ``image-concat`` keep-float preset), and the bilinear 1/2 and 1/4 copies hold quarter-pixel
values that no 8-bit tensor holds anyway.  Computing the image once keeps those concatenations the
same ops as in the float-input graph (same keep-float choices, same speed), and exact wherever they
run in float.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from modnet_edge.model.network import MattingHeads, MODNet

# the stem input [p - OFFSET, MASK * inside]: both channels in [-128, 127] (see the module docstring)
OFFSET, MASK = 128, 127


class PixelInput(nn.Module):
    """8-bit pixels (as float, (N, 3, H, W)) -> (the stem convolution's input, the normalised image)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], offset: int = OFFSET, mask: int = MASK) -> None:
        super().__init__()
        self.offset, self.mask = int(offset), int(mask)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centred = pixels - self.offset if self.offset else pixels
        inside = torch.full_like(pixels[:, :1], float(self.mask))
        normalised = (pixels / 255.0 - self.mean) / self.std  # the reference preprocessing's order of ops
        return torch.cat((centred, inside), dim=1), normalised


def fold_stem(conv: nn.Conv2d, mean: Sequence[float], std: Sequence[float], offset: int = OFFSET,
              mask: int = MASK) -> nn.Conv2d:
    """The first convolution over ``[p - offset, mask * inside]`` that equals ``conv`` over the
    zero-padded normalised image, border included (weights computed in float64)."""
    if conv.in_channels != 3 or conv.groups != 1 or conv.padding_mode != "zeros":
        raise ValueError(f"the stem to fold must be a plain 3-channel convolution with zero padding, not {conv}")
    folded = nn.Conv2d(4, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                       bias=conv.bias is not None)
    with torch.no_grad():
        w = conv.weight.detach().double()
        a = 1.0 / (255.0 * torch.tensor(list(std), dtype=torch.float64))
        k = 255.0 * torch.tensor(list(mean), dtype=torch.float64)
        pixel_w = w * a.view(1, 3, 1, 1)
        mask_w = (pixel_w * (offset - k).view(1, 3, 1, 1)).sum(dim=1, keepdim=True) / mask
        folded.weight.copy_(torch.cat((pixel_w, mask_w), dim=1))
        if conv.bias is not None:
            folded.bias.copy_(conv.bias.detach())
    return folded.to(conv.weight.dtype)


class PixelInputMODNet(MODNet):
    """MODNet whose input is the 8-bit image (N, 3, H, W) as float values 0..255 (see the module
    docstring); ``forward`` is the matte, as :class:`MODNet`'s.  Built from a trained network, whose
    weights it copies: its modules keep their names (``backbone.model.features.0.0`` is the folded
    stem), so module selectors and graph node names mean the same parts as in the float-input graph."""

    def __init__(self, net: MODNet, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__(net.config)
        self.load_state_dict(net.state_dict())
        self.train(net.training)
        self.pixels = PixelInput(mean, std)
        stem = self.backbone.model.features[0]
        stem[0] = fold_stem(stem[0], mean, std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """The alpha matte (N, 1, H, W) of 8-bit pixels (N, 3, H, W)."""
        stem, img = self.pixels(pixels)
        return self._run(img, with_heads=False, stem=stem)[2]

    def heads(self, pixels: torch.Tensor) -> MattingHeads:
        stem, img = self.pixels(pixels)
        semantic, detail, matte = self._run(img, with_heads=True, stem=stem)
        assert semantic is not None and detail is not None
        return MattingHeads(semantic, detail, matte)
