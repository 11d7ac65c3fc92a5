"""Training stage, fast units: the synthetic set, losses, metrics and configuration."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pytest
import torch

from modnet_edge.core.errors import ConfigError
from modnet_edge.training import metrics
from modnet_edge.training.config import PRESETS, TrainConfig, build_config, parse_overrides
from modnet_edge.training.losses import (LOSS_PRESETS, band_kernel, modnet_loss, semantic_target, soc_losses,
                                      transition_band)
from modnet_edge.training.synthetic import render_portrait


# ---------------------------------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_and_portrait_like():
    a, b = render_portrait(3, 5, 96, 128), render_portrait(3, 5, 96, 128)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.alpha, b.alpha)
    assert not np.array_equal(a.rgb, render_portrait(3, 6, 96, 128).rgb)
    assert not np.array_equal(a.rgb, render_portrait(4, 5, 96, 128).rgb)
    assert a.rgb.shape == (96, 128, 3) and a.rgb.dtype == np.uint8 and a.alpha.shape == (96, 128)
    soft = ((a.alpha > 0.02) & (a.alpha < 0.98)).mean()
    assert 0.2 < (a.alpha > 0.5).mean() < 0.9  # a person, not empty or full frame
    assert soft > 0.005  # semi-transparent rim / strands exist
    comp = a.alpha[..., None] * a.fg + (1 - a.alpha[..., None]) * a.bg
    assert np.abs(comp * 255 - a.rgb.astype(np.float32)).mean() < 8  # the image is fg over bg (+ noise)


# ------------------------------------------------------------------------------------------- losses
def test_semantic_target_is_sixteenth_resolution_and_blurred():
    alpha = torch.zeros(1, 1, 64, 64)
    alpha[..., :, 32:] = 1.0
    g = semantic_target(alpha)
    assert g.shape == (1, 1, 4, 4)
    assert torch.allclose(g[..., 0], torch.zeros(1, 1, 4), atol=1e-6)
    assert 0.0 < float(g[0, 0, 0, 1]) < 1.0 < 1.0 + float(g[0, 0, 0, 2])  # blurred across the edge


def test_transition_band_grows_with_image_size():
    assert band_kernel(512, 512, 1 / 32) == 17 and band_kernel(128, 128, 1 / 32) == 5
    for size in (128, 256):
        alpha = torch.zeros(1, 1, size, size)
        alpha[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
        band = transition_band(alpha)
        k = band_kernel(size, size, 1 / 32)
        row = band[0, 0, size // 2]
        assert int(row.sum()) == 2 * (2 * (k // 2))  # k//2 px each side of both edges
        assert float(band[0, 0, 0, 0]) == 0.0 and float(band[0, 0, size // 2, size // 2]) == 0.0


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(2, 1, 64, 64, generator=g).round()
    rgb = torch.rand(2, 3, 64, 64, generator=g)
    return alpha, rgb


def test_modnet_loss_zero_for_perfect_prediction_and_weights_apply():
    alpha, rgb = _batch()
    band = transition_band(alpha)
    sem = semantic_target(alpha)
    perfect = modnet_loss(sem, alpha, alpha, alpha, rgb, band)
    assert float(perfect["loss"]) < 1e-6
    pred = (alpha * 0.5 + 0.25)
    paper = modnet_loss(sem * 0.5, pred, pred, alpha, rgb, band, LOSS_PRESETS["paper"])
    total = 1.0 * paper["semantic"] + 10.0 * paper["detail"] + 1.0 * paper["matte"]
    assert torch.allclose(paper["loss"], total)
    official = modnet_loss(sem * 0.5, pred, pred, alpha, rgb, band, LOSS_PRESETS["official"])
    assert torch.allclose(official["semantic"], 2 * paper["semantic"])  # no 1/2, weight 10 below
    assert float(official["loss"]) > float(paper["loss"])


def test_compositional_loss_uses_true_layers_when_known():
    alpha, rgb = _batch(1)
    fg, bg = torch.rand_like(rgb), torch.rand_like(rgb)
    image = alpha * fg + (1 - alpha) * bg
    band = transition_band(alpha)
    sem = semantic_target(alpha)
    known = modnet_loss(sem, alpha, alpha, alpha, image, band, fg=fg, bg=bg, has_fgbg=torch.tensor([True, True]))
    assert float(known["matte"]) < 1e-6
    wrong = 1 - alpha
    a = modnet_loss(sem, alpha, wrong, alpha, image, band, fg=fg, bg=bg, has_fgbg=torch.tensor([True, True]))
    b = modnet_loss(sem, alpha, wrong, alpha, image, band, fg=fg, bg=bg, has_fgbg=torch.tensor([False, False]))
    assert not torch.allclose(a["matte"], b["matte"])  # the two compositions differ


def test_soc_losses_vanish_when_branches_agree():
    alpha, _ = _batch(2)
    out = soc_losses(semantic_target(alpha), alpha, alpha, alpha)
    assert float(out["consistency"]) < 1e-6 and float(out["detail_drop"]) == 0.0
    out2 = soc_losses(semantic_target(alpha) * 0.3, 1 - alpha, alpha, alpha)
    assert float(out2["consistency"]) > 0.05 and float(out2["detail_drop"]) > 0.5


# ------------------------------------------------------------------------------------------ metrics
def _bfs_largest(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    best: list = []
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                comp, q = [], deque([(y, x)])
                seen[y, x] = True
                while q:
                    cy, cx = q.popleft()
                    comp.append((cy, cx))
                    for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            q.append((ny, nx))
                if len(comp) > len(best):
                    best = comp
    out = np.zeros_like(mask, dtype=bool)
    for y, x in best:
        out[y, x] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_connected_components_match_breadth_first_search(seed):
    mask = np.random.default_rng(seed).random((37, 41)) < 0.55
    assert np.array_equal(metrics.largest_component(mask), _bfs_largest(mask))


def test_metrics_definitions_and_scaling():
    g = np.zeros((50, 40))
    g[10:40, 10:30] = 1.0
    assert all(v == 0.0 for v in metrics.matting_metrics(g, g).values())
    p = g.copy()
    p[0:10, :] = 0.5  # 400 pixels off by 0.5
    m = metrics.matting_metrics(p, g)
    assert m["sad"] == pytest.approx(400 * 0.5 / 1000)
    assert m["mse"] == pytest.approx(400 * 0.25 / 2000)
    assert m["mad"] == pytest.approx(400 * 0.5 / 2000)
    assert m["grad"] > 0 and m["conn"] > 0
    # connectivity: for binary mattes every wrong pixel costs 1; a soft value left connected to the
    # subject costs nothing, one cut off (here by the 0 of the ground truth) costs its excess over the cut level
    assert metrics.conn(p.round(), g) == pytest.approx(metrics.sad(p.round(), g))
    gt_row, pred_row = np.array([[1.0, 1.0, 0.5, 0.0]]), np.array([[1.0, 1.0, 0.5, 0.3]])
    assert metrics.conn(pred_row, gt_row) == pytest.approx(0.3 / 1000)
    with pytest.raises(ValueError):
        metrics.mse(np.zeros((4, 4)), np.zeros((4, 5)))


# ------------------------------------------------------------------------------------------- config
def test_config_defaults_are_the_paper_recipe():
    c = build_config()
    assert (c.optimizer, c.lr, c.momentum, c.lr_step_epochs, c.lr_gamma, c.epochs, c.batch_size, c.size) == \
        ("sgd", 0.01, 0.9, 10, 0.1, 40, 16, 512)
    w = c.loss_weights()
    assert (w.semantic, w.detail, w.matte) == (1.0, 10.0, 1.0)
    assert build_config("official").loss_weights().semantic == 10.0
    assert set(PRESETS) >= {"paper", "official", "quick"}


def test_config_files_overrides_and_unknown_keys(tmp_path):
    f = tmp_path / "run.json"
    f.write_text(json.dumps({"preset": "quick", "lr": 0.05, "scale_range": [1.0, 1.5]}))
    c = build_config(f, parse_overrides(["epochs=3", "device=cpu"]))
    assert (c.lr, c.epochs, c.size, c.scale_range, c.device) == (0.05, 3, 128, (1.0, 1.5), "cpu")
    (tmp_path / "typo.json").write_text(json.dumps({"learning_rate": 0.1}))
    with pytest.raises(ConfigError, match="learning_rate"):
        build_config(tmp_path / "typo.json")
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        build_config({"epoch": 3})
    with pytest.raises(ConfigError, match="size"):
        build_config({"size": 100})
    with pytest.raises(ConfigError, match="batch_size"):
        build_config({"batch_size": "many"})
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("quik")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        build_config(tmp_path / "bad.json")
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed: YAML configs are optional")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"epochs": 2, "loss": "official"}))
    assert build_config(tmp_path / "run.yaml").epochs == 2
    assert isinstance(build_config(TrainConfig(epochs=5)), TrainConfig)


@pytest.mark.parametrize("key,value", [("lr", "NaN"), ("lr", "Infinity"), ("lr_gamma", -5), ("band_ratio", -1),
                                       ("color_jitter", -3), ("lr_step_epochs", 0), ("momentum", -1),
                                       ("weight_decay", -1), ("workers", -1), ("threads", -1),
                                       ("scale_range", [0.5, "NaN"])])
def test_nonsense_training_settings_are_refused_up_front(key, value, tmp_path) -> None:
    from modnet_edge.cli import main
    from modnet_edge.training.config import build_config, parse_overrides

    with pytest.raises(ConfigError, match=key):
        build_config("quick", parse_overrides([f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]))
    assert main(["train", "quick", "--set", f"{key}={value if isinstance(value, (str, int)) else json.dumps(value)}",
                 "--max-steps", "1", "-o", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r" / "best.pt").exists()


def test_non_finite_weights_never_reach_a_checkpoint(tmp_path) -> None:
    from modnet_edge.core.errors import CheckpointError
    from modnet_edge.model.checkpoint import build_from_checkpoint, random_checkpoint, save_checkpoint

    net = build_from_checkpoint(random_checkpoint())
    with torch.no_grad():
        net.f_branch.conv_f[0].layers[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite"):
        save_checkpoint(tmp_path / "nan.pt", net)
    assert not (tmp_path / "nan.pt").exists()
