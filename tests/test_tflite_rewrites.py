"""The exact graph rewrites applied before TFLite conversion (fast: PyTorch only, no converter)."""

from __future__ import annotations

import torch

from modnet_edge.export.tflite_export import IBNormReLU, InstanceNormByMoments, converter_friendly
from modnet_edge.train.checkpoint import build_from_checkpoint, random_checkpoint
from modnet_edge.train.network import IBNorm


def test_converter_friendly_network_computes_the_same_matte():
    net = build_from_checkpoint(random_checkpoint(5)).eval()
    # train-mode batch-norm statistics would hide a wrong half; give the running stats real values
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    friendly = converter_friendly(net)
    x = torch.rand(2, 3, 96, 128) * 2 - 1
    with torch.no_grad():
        want, got = net(x, inference=True), friendly(x, inference=True)
    assert torch.allclose(want, got, atol=1e-5), float((want - got).abs().max())
    assert not any(isinstance(m, IBNorm) for m in friendly.modules())  # every IBNorm+ReLU was rewritten
    rewritten = [m for m in friendly.modules() if isinstance(m, IBNormReLU)]
    assert len(rewritten) == sum(isinstance(m, IBNorm) for m in net.modules())
    assert all(isinstance(m.inorm, InstanceNormByMoments) for m in rewritten)
    assert any(isinstance(m, IBNorm) for m in net.modules()), "the original network must be left untouched"
