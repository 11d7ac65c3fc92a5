"""TFLite export internals that need no converter: the graph rewrites compute the same matte, and the
converter's chatter is silenced without losing it when a conversion fails."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from modnet_edge.core.tools import quiet_tool
from modnet_edge.exporters.tflite_export import (CONVERTER_QUIET, ConvIBNormReLU, IBNormReLU, InstanceNormByMoments,
                                              converter_friendly)
from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint
from modnet_edge.model.network import IBNorm, ModelConfig


@pytest.mark.parametrize("lr_block", ["se", "e-aspp"])
def test_converter_friendly_network_computes_the_same_matte(lr_block):
    net = build_from_checkpoint(random_checkpoint(5, ModelConfig(lr_block=lr_block))).eval()
    # non-trivial running statistics and affine parameters, so a wrongly folded batch norm shows
    generator = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0), (m.weight.data, 0.5, 1.5),
                              (m.bias.data, -0.3, 0.3)):
                t.copy_(torch.rand(t.shape, generator=generator) * (hi - lo) + lo)
    friendly = converter_friendly(net)
    x = torch.rand(2, 3, 96, 128, generator=generator) * 2 - 1
    with torch.no_grad():
        want, got = net(x), friendly(x)
    assert float((want - got).abs().max()) < 1e-5 and float(((want - got) ** 2).mean()) < 1e-12
    assert not any(isinstance(m, IBNorm) for m in friendly.modules()), "every IBNorm + ReLU is rewritten"
    folded = [m for m in friendly.modules() if isinstance(m, ConvIBNormReLU)]
    per_half = [m for m in friendly.modules() if isinstance(m, IBNormReLU)]
    assert len(folded) + len(per_half) == sum(isinstance(m, IBNorm) for m in net.modules())
    assert bool(per_half) == (lr_block == "e-aspp")  # only e-ASPP has grouped convolutions before IBNorm
    assert all(isinstance(m.inorm, InstanceNormByMoments) for m in folded + per_half)
    assert any(isinstance(m, IBNorm) for m in net.modules()), "the original network must be left untouched"


def test_converter_chatter_is_silenced_and_given_back_when_conversion_fails(capfd):
    torchao = logging.getLogger("torchao")
    level, env = torchao.level, os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    with quiet_tool(**CONVERTER_QUIET):
        os.write(2, b"I0000 flatbuffer_export.cc: estimated ops\n")  # C++ logging, straight to descriptor 2
        torchao.warning("Failed to load an optional kernel")
        print("litert-torch stage log")
    out, err = capfd.readouterr()
    assert "flatbuffer_export" not in err and "optional kernel" not in err and "stage log" not in out
    with pytest.raises(RuntimeError, match="lowering failed"):
        with quiet_tool(**CONVERTER_QUIET):
            os.write(2, b"the converter's clue\n")
            raise RuntimeError("lowering failed")
    assert "the converter's clue" in capfd.readouterr().err
    assert torchao.level == level and os.environ.get("LITERT_TORCH_SHOW_PROGRESS") == env
