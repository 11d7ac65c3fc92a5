"""The MODNet network and its checkpoints: architecture, official key layout, strict and safe loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from modnet_edge.core.errors import CheckpointError
from modnet_edge.model.checkpoint import (build_from_checkpoint, random_checkpoint, read_checkpoint,
                                          remap_official_state_dict, save_checkpoint, to_official_state_dict)
from modnet_edge.model.weights import load_network
from modnet_edge.model.network import MODNet, ModelConfig, count_parameters


def test_parameter_count_matches_official_modnet() -> None:
    assert count_parameters(MODNet()) == 6_487_075  # ~6.49 M, as the official network


def test_forward_is_the_matte_and_heads_are_all_three_in_any_mode() -> None:
    torch.manual_seed(0)
    net = MODNet()
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    net.train()
    semantic, detail, matte = net.heads(x)
    assert semantic.shape == (2, 1, 4, 6) and detail.shape == (2, 1, 64, 96) and matte.shape == (2, 1, 64, 96)
    assert net(x).shape == (2, 1, 64, 96)  # training mode changes nothing about what forward returns
    net.eval()
    with torch.no_grad():
        only = net(x)
        assert isinstance(only, torch.Tensor) and only.shape == (2, 1, 64, 96)
        assert torch.all((only >= 0) & (only <= 1))
        heads = net.heads(x)
    assert heads.semantic.shape == (2, 1, 4, 6) and heads.detail.shape == (2, 1, 64, 96)
    assert torch.equal(heads.matte, only)


def test_backbone_taps_have_official_channels_and_strides() -> None:
    net = MODNet().eval()
    with torch.no_grad():
        taps = net.backbone(torch.zeros(1, 3, 64, 64))
    assert [t.shape[1] for t in taps] == [16, 24, 32, 96, 1280]
    assert [64 // t.shape[2] for t in taps] == [2, 4, 8, 16, 32]


def test_e_aspp_variant_is_cheaper_and_runs() -> None:
    se, easpp = MODNet(), MODNet(ModelConfig(lr_block="e-aspp"))
    assert count_parameters(easpp) < count_parameters(se)
    with torch.no_grad():
        assert easpp.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert not any(k.startswith("lr_branch.se_block") for k in easpp.state_dict())


def _official_layout_state_dict(seed: int) -> tuple[dict, MODNet]:
    """Save a network exactly as the official code does: the backbone registered a second time under
    lr_branch, and the whole model wrapped in nn.DataParallel (keys prefixed with 'module.')."""
    torch.manual_seed(seed)
    net = MODNet().eval()
    twin = MODNet().eval()
    twin.load_state_dict(net.state_dict())
    twin.lr_branch.backbone = twin.backbone  # the official twin registration
    return nn.DataParallel(twin).state_dict(), net


def test_official_checkpoint_loads_strictly_and_gives_same_mattes(tmp_path: Path) -> None:
    sd, net = _official_layout_state_dict(1)
    assert all(k.startswith("module.") for k in sd)
    assert any(k.startswith("module.lr_branch.backbone.") for k in sd)
    path = tmp_path / "modnet_photographic_portrait_matting.ckpt"
    torch.save(sd, path)
    ckpt = read_checkpoint(path)
    assert ckpt.kind == "official"
    loaded = load_network(path)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    # and the inverse mapping reproduces the official key set exactly
    assert set(to_official_state_dict(ckpt.state_dict)) == set(sd)


def test_official_twin_that_differs_is_refused() -> None:
    sd, _ = _official_layout_state_dict(2)
    key = next(k for k in sd if k.startswith("module.lr_branch.backbone.") and k.endswith("weight"))
    sd[key] = sd[key] + 1
    with pytest.raises(CheckpointError, match="shared backbone"):
        remap_official_state_dict(sd)


def test_own_checkpoint_round_trip_with_provenance(tmp_path: Path) -> None:
    ckpt = random_checkpoint(seed=3)
    net = build_from_checkpoint(ckpt)
    path = save_checkpoint(tmp_path / "own.pt", net, provenance={"note": "test"})
    back = read_checkpoint(path)
    assert back.kind == "modnet-edge" and back.provenance["note"] == "test"
    assert back.provenance["weights_sha256"] == ckpt.source_info()["weights_sha256"]
    assert back.file_sha256 and back.source_info()["checkpoint"] == "own.pt"
    assert not list(tmp_path.glob(".own.pt*")), "temporary file left behind"


class _Payload:
    def __reduce__(self):  # what a malicious checkpoint would carry
        return (print, ("side effect",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="pickled"):
        read_checkpoint(path)


def test_checkpoint_of_another_architecture_lists_keys(tmp_path: Path) -> None:
    sd = MODNet().state_dict()
    sd["extra.head.weight"] = torch.zeros(3)
    del sd["f_branch.conv_f2x.layers.0.bias"]
    sd["hr_branch.conv_hr.1.layers.0.weight"] = torch.zeros(2, 32, 1, 1)
    path = tmp_path / "other.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_network(path)
    msg = str(err.value)
    assert "missing keys (1): f_branch.conv_f2x.layers.0.bias" in msg
    assert "unexpected keys (1): extra.head.weight" in msg
    assert "hr_branch.conv_hr.1.layers.0.weight: checkpoint (2, 32, 1, 1) vs model (1, 32, 1, 1)" in msg
    assert str(path) in msg


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"\x00not a zip" * 10, "not a PyTorch checkpoint"),
                                           (b"PK\x03\x04 truncated zip", "not a readable")])
def test_empty_or_corrupt_checkpoint(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint(path)


def test_truncated_checkpoint_and_tampered_weights(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", MODNet())
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "trunc.pt")
    obj = torch.load(path, weights_only=True)
    obj["state_dict"]["f_branch.conv_f2x.layers.0.bias"] += 1
    torch.save(obj, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="sha256"):
        read_checkpoint(tmp_path / "tampered.pt")


def test_non_state_dict_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="not a MODNet checkpoint"):
        read_checkpoint(path)
    assert pickle  # (module used by the pickled-code test's payload)


def test_weights_hash_is_remembered_only_while_the_tensors_are_unchanged() -> None:
    """The hash is remembered per tensor object and version: an in-place change, a replaced tensor or a
    renamed key is hashed again, and the remembered value equals a fresh hash."""
    import hashlib

    from modnet_edge.model.checkpoint import weights_sha256

    torch.manual_seed(0)
    sd = {"a.weight": torch.randn(4, 3), "b.bias": torch.randn(5)}

    def fresh(d: dict[str, torch.Tensor]) -> str:  # the definition, written out
        h = hashlib.sha256()
        for k in sorted(d):
            t = d[k].contiguous()
            h.update(f"{k}|{tuple(t.shape)}|{t.dtype}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    first = weights_sha256(sd)
    assert first == fresh(sd) and weights_sha256(dict(sd)) == first  # a copy of the dict shares the tensors
    with torch.no_grad():
        sd["a.weight"][0, 0] += 1  # in place: same object, new version
    assert weights_sha256(sd) == fresh(sd) != first
    sd["b.bias"] = sd["b.bias"].clone()  # same values, new object: hashed again, same digest
    assert weights_sha256(sd) == fresh(sd)
    renamed = {"c.weight" if k == "a.weight" else k: v for k, v in sd.items()}
    assert weights_sha256(renamed) == fresh(renamed) != weights_sha256(sd)
