"""MODNet's training objectives (paper eq. 2-5), the segmentation pretraining loss and the SOC losses.

Notation follows the paper: ``s_p`` semantic (1/16 resolution), ``d_p`` detail, ``alpha_p`` matte,
``alpha_g`` ground truth, ``m_d`` the transition band (the trimap's unknown region).

* L_s = 1/2 ||s_p - G(alpha_g)||_2, G = 1/16 downsampling then Gaussian blur (eq. 2)
* L_d = m_d ||d_p - alpha_g||_1 (eq. 3)
* L_alpha = ||alpha_p - alpha_g||_1 + L_c, L_c the compositional loss (eq. 4)
* L = lambda_s L_s + lambda_d L_d + lambda_alpha L_alpha, default 1 / 10 / 1 (eq. 5)

Norms are taken as per-pixel means (so the weights do not depend on resolution); the detail term is
averaged over band pixels only, as the mask ``m_d`` in eq. 3 intends.  The compositional loss uses the
true foreground and background when the dataset knows them (synthetic and composited data) and the
``image * alpha`` approximation otherwise (plain image + matte folders).

The ``official`` preset reproduces what the authors' released trainer does instead: semantic weight
10 (not 1), squared error without the 1/2, the detail L1 averaged over *all* pixels (zero outside the
band), and the matte L1 and compositional terms each given an extra 4x term restricted to the band.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modnet_edge.training.config import LOSS_PRESETS, LossWeights

__all__ = ["LOSS_PRESETS", "LossWeights", "modnet_loss", "segmentation_loss", "soc_losses", "semantic_target",
           "transition_band"]


def gaussian_blur(x: torch.Tensor, sigma: float = 0.8, ksize: int = 3) -> torch.Tensor:
    """Depthwise Gaussian blur of an (N, C, H, W) tensor with reflected borders."""
    r = ksize // 2
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.pad(x, (r, r, r, r), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def semantic_target(alpha: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """G(alpha): 16x downsampling (area average, i.e. the mean of each 16x16 cell) then a 3x3 Gaussian blur.

    ``size`` is the semantic output's (h, w); by default H/16 x W/16."""
    size = size or (alpha.shape[-2] // 16, alpha.shape[-1] // 16)
    return gaussian_blur(F.interpolate(alpha, size=size, mode="area"))


def band_kernel(height: int, width: int, ratio: float) -> int:
    """Odd structuring-element size proportional to the image: ``ratio`` x the shorter side, >= 3."""
    k = max(3, int(round(min(height, width) * ratio)))
    return k + 1 - k % 2


def transition_band(alpha: torch.Tensor, ratio: float = 1 / 32, eps: float = 1.0 / 255) -> torch.Tensor:
    """The trimap's unknown region as a float mask: dilate(alpha > 0) minus erode(alpha = 1).

    The structuring element grows with the image (``ratio`` x short side), so the band covers the same
    share of the subject at every training resolution."""
    k = band_kernel(alpha.shape[-2], alpha.shape[-1], ratio)
    fg_any = (alpha > eps).to(alpha.dtype)
    fg_sure = (alpha >= 1 - eps).to(alpha.dtype)
    dilated = F.max_pool2d(fg_any, k, stride=1, padding=k // 2)
    eroded = 1.0 - F.max_pool2d(1.0 - fg_sure, k, stride=1, padding=k // 2)
    return (dilated - eroded).clamp(0.0, 1.0)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def modnet_loss(semantic: torch.Tensor, detail: torch.Tensor, matte: torch.Tensor, alpha: torch.Tensor,
                rgb: torch.Tensor, band: torch.Tensor, weights: LossWeights = LOSS_PRESETS["paper"],
                fg: torch.Tensor | None = None, bg: torch.Tensor | None = None,
                has_fgbg: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The supervised objective; returns the total and each weighted-in term (for logging).

    ``rgb`` is the input image in [0, 1]; ``fg``/``bg`` the known layers (used per sample where
    ``has_fgbg`` is true).  All tensors are (N, C, H, W); predictions are promoted to float32 so the loss
    is computed at full precision under autocast."""
    semantic, detail, matte = semantic.float(), detail.float(), matte.float()
    sem_gt = semantic_target(alpha, tuple(semantic.shape[-2:]))
    l_s = F.mse_loss(semantic, sem_gt) * (0.5 if weights.half_semantic else 1.0)

    d_err = (detail - alpha).abs()
    l_d = _masked_mean(d_err, band) if weights.detail_over_band else (d_err * band).mean()

    comp_pred, comp_gt = matte * rgb, alpha * rgb  # the image-only approximation
    if fg is not None and bg is not None and has_fgbg is not None and bool(has_fgbg.any()):
        sel = has_fgbg.view(-1, 1, 1, 1).to(torch.bool)
        comp_pred = torch.where(sel, matte * fg + (1 - matte) * bg, comp_pred)
        comp_gt = torch.where(sel, rgb, comp_gt)
    a_err = (matte - alpha).abs()
    c_err = (comp_pred - comp_gt).abs()
    l_a = a_err.mean() + c_err.mean()
    if weights.boundary_matte:
        l_a = l_a + weights.boundary_matte * ((a_err * band).mean() + (c_err * band).mean())
    total = weights.semantic * l_s + weights.detail * l_d + weights.matte * l_a
    return {"loss": total, "semantic": l_s.detach(), "detail": l_d.detach(), "matte": l_a.detach()}


def segmentation_loss(semantic: torch.Tensor, mask: torch.Tensor, weights: LossWeights = LOSS_PRESETS["paper"]
                      ) -> dict[str, torch.Tensor]:
    """Pretraining on person segmentation: only L_s, with the binary mask standing in for alpha.

    Only the backbone and the low-resolution branch receive gradients (the paper pretrains exactly
    those on segmentation data); the trainer puts only their parameters in the optimizer."""
    semantic = semantic.float()
    l_s = F.mse_loss(semantic, semantic_target(mask, tuple(semantic.shape[-2:])))
    l_s = l_s * (0.5 if weights.half_semantic else 1.0)
    return {"loss": weights.semantic * l_s, "semantic": l_s.detach()}


def soc_losses(semantic: torch.Tensor, detail: torch.Tensor, matte: torch.Tensor, frozen_detail: torch.Tensor,
               band_ratio: float = 1 / 32, dd_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Sub-objectives consistency (SOC) on unlabeled images (paper section "SOC").

    L_cons = 1/2 ||G(alpha~) - s~||_2 + m~_d ||alpha~ - d~||_1: the three branches must agree with each
    other; m~_d is the transition band of the predicted matte.  L_dd = m~_d ||d~ - d'||_1 keeps the
    detail branch close to the frozen copy M' so agreement is not reached by blurring the details away.
    """
    semantic, detail, matte = semantic.float(), detail.float(), matte.float()
    band = transition_band(matte.detach(), band_ratio, eps=0.05)
    l_sem = 0.5 * F.mse_loss(semantic_target(matte, tuple(semantic.shape[-2:])), semantic)
    l_det = _masked_mean((matte - detail).abs(), band)
    l_cons = l_sem + l_det
    l_dd = _masked_mean((detail - frozen_detail.float()).abs(), band)
    return {"loss": l_cons + dd_weight * l_dd, "consistency": l_cons.detach(), "detail_drop": l_dd.detach()}
