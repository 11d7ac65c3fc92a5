"""The MODNet network (Ke et al., "MODNet: Real-Time Trimap-Free Portrait Matting via Objective
Decomposition", AAAI 2022), with parameter names identical to the official implementation so the
official checkpoints load strictly.

Reads top to bottom: building blocks, the MobileNetV2 backbone, the three branches, the model.
Foreign checkpoint keys are remapped in :mod:`modnet_edge.model.checkpoint`, not here.

One deliberate departure from the official module tree: the official code registers the backbone twice
(``backbone`` and ``lr_branch.backbone``, the same object).  Here it is registered once, as
``backbone``; ``named_parameters()`` is identical and the twin keys are folded on load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# -------------------------------------------------------------------------------------------------
# Blocks
# -------------------------------------------------------------------------------------------------


class IBNorm(nn.Module):
    """BatchNorm on the first half of the channels, affine-free InstanceNorm on the second half."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.bnorm_channels = in_channels // 2
        self.inorm_channels = in_channels - self.bnorm_channels
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        self.inorm = nn.InstanceNorm2d(self.inorm_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn_x = self.bnorm(x[:, : self.bnorm_channels].contiguous())
        in_x = self.inorm(x[:, self.bnorm_channels :].contiguous())
        return torch.cat((bn_x, in_x), dim=1)


class Conv2dIBNormRelu(nn.Module):
    """Convolution, then optionally IBNorm and ReLU (the official module names: ``layers.N``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 with_ibn: bool = True, with_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                                             padding=padding, dilation=dilation, groups=groups, bias=bias)]
        if with_ibn:
            layers.append(IBNorm(out_channels))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention on the 1/32 features.

    The channel weights are broadcast by plain multiplication with a (N, C, 1, 1) tensor: numerically
    identical to ``expand_as`` and accepted by every converter (litert-torch rejects ``expand_as``).
    """

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 1) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(in_channels, in_channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(in_channels // reduction, out_channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(self.pool(x).flatten(1))
        return x * w[:, :, None, None]


class EfficientASPP(nn.Module):
    """The paper's e-ASPP: ASPP made cheap for real time.

    Channels are first compressed 4x by one pointwise convolution; each rate is then a *depthwise*
    atrous 3x3 convolution (no cross-channel mixing per branch); the branches (plus a global-pool branch)
    are fused once by a single pointwise convolution.  Output has ``in_channels // 4`` channels.
    """

    def __init__(self, in_channels: int, rates: tuple[int, ...] = (1, 2, 4, 8), compression: int = 4) -> None:
        super().__init__()
        mid = in_channels // compression
        self.out_channels = mid
        self.compress = Conv2dIBNormRelu(in_channels, mid, 1)
        self.branches = nn.ModuleList(
            Conv2dIBNormRelu(mid, mid, 3, padding=r, dilation=r, groups=mid, bias=False) for r in rates)
        self.fuse = Conv2dIBNormRelu(mid * (len(rates) + 1), mid, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.compress(x)
        pooled = x.mean(dim=(2, 3), keepdim=True) * torch.ones_like(x)
        return self.fuse(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


# -------------------------------------------------------------------------------------------------
# MobileNetV2 backbone (official layout: ``backbone.model.features.N``)
# -------------------------------------------------------------------------------------------------


def _conv_bn_relu6(inp: int, oup: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = round(inp * expansion)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expansion != 1:  # pointwise expansion
            layers += [nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [  # depthwise, then linear pointwise projection
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2, width 1.0, features only (19 stages: stem, 17 inverted residuals, 1x1 to 1280)."""

    # expansion t, output channels c, repeats n, first stride s
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        features: list[nn.Module] = [_conv_bn_relu6(in_channels, 32, 3, 2)]
        channels = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(channels, c, s if i == 0 else 1, expansion=t))
                channels = c
        features.append(_conv_bn_relu6(channels, 1280, 1, 1))
        self.features = nn.Sequential(*features)


class MobileNetV2Backbone(nn.Module):
    """Taps the encoder after stages 1, 3, 6, 13 and 18: strides 2, 4, 8, 16, 32."""

    TAPS = (1, 3, 6, 13, 18)
    enc_channels = (16, 24, 32, 96, 1280)

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.model = MobileNetV2(in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, stage in enumerate(self.model.features):
            x = stage(x)
            if i in self.TAPS:
                taps.append(x)
        return taps


# -------------------------------------------------------------------------------------------------
# Branches
# -------------------------------------------------------------------------------------------------


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class LRBranch(nn.Module):
    """Low-resolution (semantic) branch: SE or e-ASPP on 1/32, 5x5 convs at 1/16 and 1/8."""

    def __init__(self, enc_channels: tuple[int, ...], lr_block: str = "se") -> None:
        super().__init__()
        if lr_block == "se":
            self.se_block = SEBlock(enc_channels[4], enc_channels[4], reduction=4)
            lr_in = enc_channels[4]
        elif lr_block == "e-aspp":
            self.e_aspp = EfficientASPP(enc_channels[4])
            lr_in = self.e_aspp.out_channels
        else:
            raise ValueError(f"lr_block must be 'se' or 'e-aspp', not {lr_block!r}")
        self.conv_lr16x = Conv2dIBNormRelu(lr_in, enc_channels[3], 5, stride=1, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc_channels[3], enc_channels[2], 5, stride=1, padding=2)
        self.conv_lr = Conv2dIBNormRelu(enc_channels[2], 1, 3, stride=2, padding=1, with_ibn=False, with_relu=False)

    def forward(self, enc32x: torch.Tensor, with_head: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(semantic, lr8x); the semantic head only with ``with_head`` (the matte does not need it)."""
        ctx = self.se_block(enc32x) if hasattr(self, "se_block") else self.e_aspp(enc32x)
        lr16x = self.conv_lr16x(_up2(ctx))
        lr8x = self.conv_lr8x(_up2(lr16x))
        semantic = torch.sigmoid(self.conv_lr(lr8x)) if with_head else None
        return semantic, lr8x


class HRBranch(nn.Module):
    """High-resolution (detail) branch at 1/2 and 1/4, fed with the image and encoder features."""

    def __init__(self, hr: int, enc_channels: tuple[int, ...]) -> None:
        super().__init__()
        c = Conv2dIBNormRelu
        self.tohr_enc2x = c(enc_channels[0], hr, 1)
        self.conv_enc2x = c(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = c(enc_channels[1], hr, 1)
        self.conv_enc4x = c(2 * hr, 2 * hr, 3, padding=1)
        self.conv_hr4x = nn.Sequential(c(3 * hr + 3, 2 * hr, 3, padding=1), c(2 * hr, 2 * hr, 3, padding=1),
                                       c(2 * hr, hr, 3, padding=1))
        self.conv_hr2x = nn.Sequential(c(2 * hr, 2 * hr, 3, padding=1), c(2 * hr, hr, 3, padding=1),
                                       c(hr, hr, 3, padding=1), c(hr, hr, 3, padding=1))
        self.conv_hr = nn.Sequential(c(hr + 3, hr, 3, padding=1),
                                     c(hr, 1, 1, with_ibn=False, with_relu=False))

    def forward(self, img: torch.Tensor, enc2x: torch.Tensor, enc4x: torch.Tensor, lr8x: torch.Tensor,
                with_head: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(detail, hr2x); the detail head only with ``with_head`` (the matte does not need it)."""
        img2x = F.interpolate(img, scale_factor=0.5, mode="bilinear", align_corners=False)
        img4x = F.interpolate(img, scale_factor=0.25, mode="bilinear", align_corners=False)
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((img2x, enc2x), dim=1))
        hr4x = self.conv_enc4x(torch.cat((hr4x, self.tohr_enc4x(enc4x)), dim=1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, _up2(lr8x), img4x), dim=1))
        hr2x = self.conv_hr2x(torch.cat((_up2(hr4x), enc2x), dim=1))
        detail = torch.sigmoid(self.conv_hr(torch.cat((_up2(hr2x), img), dim=1))) if with_head else None
        return detail, hr2x


class FusionBranch(nn.Module):
    """Fuses semantics (1/8, upsampled) with detail (1/2) into the full-resolution matte."""

    def __init__(self, hr: int, enc_channels: tuple[int, ...]) -> None:
        super().__init__()
        c = Conv2dIBNormRelu
        self.conv_lr4x = c(enc_channels[2], hr, 5, padding=2)
        self.conv_f2x = c(2 * hr, hr, 3, padding=1)
        self.conv_f = nn.Sequential(c(hr + 3, hr // 2, 3, padding=1),
                                    c(hr // 2, 1, 1, with_ibn=False, with_relu=False))

    def forward(self, img: torch.Tensor, lr8x: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        lr2x = _up2(self.conv_lr4x(_up2(lr8x)))
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        return torch.sigmoid(self.conv_f(torch.cat((_up2(f2x), img), dim=1)))


# -------------------------------------------------------------------------------------------------
# The model
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines the parameter shapes; stored in checkpoints and artifact metadata."""

    arch: str = "modnet"
    backbone: str = "mobilenetv2"
    in_channels: int = 3
    hr_channels: int = 32
    lr_block: str = "se"  # "se" (official) or "e-aspp"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        cfg = cls(**data)
        if cfg.arch != "modnet" or cfg.backbone != "mobilenetv2":
            raise ValueError(f"unsupported architecture {cfg.arch}/{cfg.backbone}")
        return cfg


class MattingHeads(NamedTuple):
    """The three supervised outputs, which the training losses and SOC compare with each other."""

    semantic: torch.Tensor  # (N, 1, H/16, W/16): coarse foreground probability
    detail: torch.Tensor  # (N, 1, H, W): boundary detail
    matte: torch.Tensor  # (N, 1, H, W): the fused alpha matte, what ``forward`` returns


class MODNet(nn.Module):
    """MODNet.  ``img`` is (N, 3, H, W) in [-1, 1] with H and W multiples of 32.

    Two entries, neither depending on train/eval mode, so a caller never unpacks by mode:
    ``forward(img)`` is the matte alone, the one graph exporters trace and runtimes run (the semantic
    and detail heads are not computed); :meth:`heads` returns all three outputs for the losses of
    training and SOC.  Training under DDP wraps :meth:`heads` in a module of its own (DDP only syncs
    gradients of what runs through a module's ``forward``)."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        enc = MobileNetV2Backbone.enc_channels
        self.backbone = MobileNetV2Backbone(self.config.in_channels)
        self.lr_branch = LRBranch(enc, self.config.lr_block)
        self.hr_branch = HRBranch(self.config.hr_channels, enc)
        self.f_branch = FusionBranch(self.config.hr_channels, enc)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """The alpha matte (N, 1, H, W) in [0, 1]."""
        return self._run(img, with_heads=False)[2]

    def heads(self, img: torch.Tensor) -> MattingHeads:
        """Semantic, detail and matte, in training and in eval mode alike."""
        semantic, detail, matte = self._run(img, with_heads=True)
        assert semantic is not None and detail is not None
        return MattingHeads(semantic, detail, matte)

    def _run(self, img: torch.Tensor, with_heads: bool, stem: torch.Tensor | None = None
             ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """``stem``: what the backbone reads when it is not ``img`` itself (the 8-bit input of
        :mod:`modnet_edge.model.pixel_input`, whose first convolution does the normalisation)."""
        enc2x, enc4x, _, _, enc32x = self.backbone(img if stem is None else stem)
        semantic, lr8x = self.lr_branch(enc32x, with_heads)
        detail, hr2x = self.hr_branch(img, enc2x, enc4x, lr8x, with_heads)
        return semantic, detail, self.f_branch(img, lr8x, hr2x)


def build_modnet(config: ModelConfig | dict | None = None) -> MODNet:
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return MODNet(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
