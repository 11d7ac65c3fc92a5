"""SOC: self-supervised sub-objectives consistency adaptation on unlabeled images or video frames.

Following the paper ("SOC for real-world data"): the trained network M is copied to a frozen M';
BatchNorm is frozen (running statistics and affine parameters kept) and the convolutions of M are
fine-tuned with Adam (lr 1e-4) on unlabeled frames to minimise L_cons + L_dd (see
:func:`~modnet_edge.training.losses.soc_losses`): the semantic, detail and matte outputs must agree with
each other while the details stay close to M'.  Frames are resized by the inference rule of the
checkpoint (so SOC adapts at the resolution the model will run at).

A held-out share of the frames measures L_cons before and after adaptation; both numbers are logged,
returned in the checkpoint's provenance, and are the evidence that adaptation did something.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import torch
from torch import nn

from modnet_edge.core import atomic_write_text, check_output_folder, check_output_path
from modnet_edge.core.limits import MAX_INPUT_SIDE, check_number, check_threads
from modnet_edge.core.errors import ConfigError, DataError
from modnet_edge.core.images import list_images, read_image
from modnet_edge.core.preprocess import preprocess
from modnet_edge.core.videos import is_video, read_frames

from modnet_edge.model.checkpoint import build_from_checkpoint, read_checkpoint, save_checkpoint
from modnet_edge.model.network import MODNet
from modnet_edge.training.config import _coerce, check_keys, read_config_file
from modnet_edge.training.logs import RunLog
from modnet_edge.training.losses import soc_losses
from modnet_edge.model.device import pick_device
from modnet_edge.training.runstate import seed_everything


@dataclass
class SocConfig:
    size: int = 512  # frames are resized by the inference rule with this ref_size
    steps: int = 200  # optimizer steps (one frame per step, cycling through shuffled frames)
    lr: float = 1e-4
    dd_weight: float = 1.0
    band_ratio: float = 1 / 32
    frame_every: int = 1  # use every k-th video frame
    max_frames: int | None = None  # per video
    holdout: float = 0.2  # share of frames kept aside to measure L_cons before/after
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    log_every: int = 10
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def soc_config(config: str | Path | dict | SocConfig | None = None, **overrides: Any) -> SocConfig:
    if isinstance(config, SocConfig):
        data = dataclasses.asdict(config)
    elif config is None:
        data = {}
    elif isinstance(config, dict):
        data = dict(config)
    else:
        data = read_config_file(config)
    data.update(overrides)
    types = get_type_hints(SocConfig)
    check_keys(data, set(types), str(config) if isinstance(config, (str, Path)) else "SOC config")
    cfg = SocConfig(**{k: _coerce(k, v, types[k], "SocConfig") for k, v in data.items()})
    for name in ("lr", "dd_weight", "band_ratio", "holdout"):
        check_number(getattr(cfg, name), f"SOC config {name}")
    check_threads(cfg.threads)
    if cfg.size < 64 or cfg.size % 32 or cfg.size > MAX_INPUT_SIDE or cfg.steps < 1 or cfg.lr <= 0 or \
            not 0 <= cfg.holdout < 1 or not 0 < cfg.band_ratio <= 0.5 or cfg.dd_weight < 0:
        raise ConfigError(f"invalid SOC config: size {cfg.size} (multiple of 32, 64 to {MAX_INPUT_SIDE}), steps "
                          f"{cfg.steps} (>= 1), lr {cfg.lr} (> 0), holdout {cfg.holdout} (in [0, 1)), band_ratio "
                          f"{cfg.band_ratio} (in (0, 0.5]), dd_weight {cfg.dd_weight} (>= 0)")
    return cfg


def load_unlabeled(sources: list[str | Path] | str | Path, every: int = 1, max_frames: int | None = None
                   ) -> list[np.ndarray]:
    """RGB frames from image folders, image files and video files (unreadable videos are a clear error)."""
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    frames: list[np.ndarray] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = list_images(p)
            videos = sorted(f for f in p.iterdir() if f.is_file() and is_video(f))
            if not files and not videos:
                raise DataError("folder contains no images or videos", p)
            frames += [read_image(f) for f in files]
            for v in videos:
                frames += list(read_frames(v, every, max_frames))
        elif is_video(p):
            frames += list(read_frames(p, every, max_frames))
        else:
            frames.append(read_image(p))
    if not frames:
        raise DataError(f"no unlabeled frames found in {items}")
    return frames


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers to eval mode (running stats fixed) with their affine parameters frozen."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


@torch.no_grad()
def consistency(model: MODNet, frozen: MODNet, tensors: list[torch.Tensor], cfg: SocConfig) -> dict[str, float]:
    """Mean L_cons and L_dd over ``tensors`` (model in its current mode)."""
    rows = []
    for x in tensors:
        s, d, a = model.heads(x)
        d_ref = frozen.heads(x).detail
        out = soc_losses(s, d, a, d_ref, cfg.band_ratio, cfg.dd_weight)
        rows.append((float(out["consistency"]), float(out["detail_drop"])))
    arr = np.asarray(rows) if rows else np.zeros((1, 2))
    return {"consistency": float(arr[:, 0].mean()), "detail_drop": float(arr[:, 1].mean())}


def adapt(checkpoint: str | Path, data: list[str | Path] | str | Path, output: str | Path = "runs/soc",
          config: str | Path | dict | SocConfig | None = None, **overrides: Any) -> Path:
    """SOC-adapt ``checkpoint`` on unlabeled ``data``; writes ``output/adapted.pt`` and returns its path."""
    cfg = soc_config(config, **overrides)
    saved_threads = torch.get_num_threads()  # process-wide: given back whatever happens
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return _adapt(checkpoint, data, Path(output), cfg)
    finally:
        torch.set_num_threads(saved_threads)


def _adapt(checkpoint: str | Path, data: list[str | Path] | str | Path, out: Path, cfg: SocConfig) -> Path:
    from modnet_edge.core.console import progress as progress_bar

    check_output_folder(out)  # before any work: what this writes is free or ours
    for name in ("adapted.pt", "soc_summary.json", "log.jsonl"):
        check_output_path(out / name)
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    ckpt = read_checkpoint(checkpoint)
    spec = dataclasses.replace(ckpt.preprocessing, ref_size=cfg.size, fixed_size=None, layout="NCHW")
    frames = load_unlabeled(data, cfg.frame_every, cfg.max_frames)
    tensors = [torch.from_numpy(preprocess(f, spec)).to(device) for f in frames]
    order = np.random.default_rng(cfg.seed).permutation(len(tensors))
    n_hold = 0 if cfg.holdout <= 0 or len(tensors) < 2 else max(1, int(round(len(tensors) * cfg.holdout)))
    held = [tensors[i] for i in sorted(order[:n_hold])]
    train_frames = [tensors[i] for i in order[n_hold:]]

    model = build_from_checkpoint(ckpt).to(device)
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    model.train()
    freeze_batchnorm(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)

    out.mkdir(parents=True, exist_ok=True)
    log = RunLog(out, tensorboard=False)
    before = consistency(model, frozen, held or train_frames[:4], cfg)
    log.record("start", frames=len(tensors), held_out=len(held), source=str(data), before=before)
    rng = np.random.default_rng([cfg.seed, 1])
    t0 = time.perf_counter()
    for step in progress_bar(range(1, cfg.steps + 1), desc="SOC adapt", unit="step", disable=not cfg.progress):
        x = train_frames[int(rng.integers(len(train_frames)))]
        s, d, a = model.heads(x)
        with torch.no_grad():
            d_ref = frozen.heads(x).detail
        losses = soc_losses(s, d, a, d_ref, cfg.band_ratio, cfg.dd_weight)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        if step % max(cfg.log_every, 1) == 0 or step == 1:
            log.record("train", step=step, **{k: float(v.detach()) for k, v in losses.items()})
    after = consistency(model, frozen, held or train_frames[:4], cfg)
    summary = {"before": before, "after": after, "steps": cfg.steps, "frames": len(tensors), "held_out": len(held),
               "seconds": round(time.perf_counter() - t0, 1)}
    log.record("end", **summary)
    model.eval()
    prov = {k: v for k, v in ckpt.provenance.items() if k in ("trained_on", "synthetic", "seed", "config")}
    prov.update({"soc": {"source": str(data), "config": dataclasses.asdict(cfg), **summary},
                 "adapted_from": str(Path(checkpoint).resolve()),
                 "note": f"SOC-adapted on {len(tensors)} unlabeled frame(s) of {data}"})
    path = save_checkpoint(out / "adapted.pt", model, preprocessing=ckpt.preprocessing, provenance=prov)
    atomic_write_text(out / "soc_summary.json", json.dumps(summary, indent=2) + "\n")
    return path
