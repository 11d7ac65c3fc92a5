"""Supervised MODNet training (and segmentation pretraining), on one CPU, one GPU or many under torchrun.

The loop is written for *exact resume*: the data order of an epoch is a pure function of (seed, epoch)
(``DistributedSampler``), every sample's augmentation of (seed, epoch, index), and the resumable
``last.pt`` holds model, optimizer, scheduler, AMP scaler, RNG states, epoch and the position inside
the epoch.  A run killed at any moment and resumed therefore computes the same steps on the same
batches and, on CPU, ends with bit-identical weights.

Outputs in the run folder: ``best.pt`` (lowest validation MSE, or validation loss when pretraining),
``last.pt`` (resumable), ``log.jsonl``, ``epochs.csv``, ``config.json``; only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from modnet_edge.core import (PreprocessSpec, atomic_output, atomic_write_text, check_output_folder, check_output_path,
                              remove_if_ours)
from modnet_edge.core.errors import CheckpointError, ConfigError, DataError

from modnet_edge.model.checkpoint import check_state_dict, read_checkpoint, save_checkpoint
from modnet_edge.training.config import STAGED_PRESETS, TrainConfig, build_config
from modnet_edge.training.composites import CompositeAugment
from modnet_edge.training.datasets import build_datasets
from modnet_edge.training.logs import RunLog
from modnet_edge.training.losses import modnet_loss, segmentation_loss, transition_band
from modnet_edge.training.metrics import grad, mad, mse, sad
from modnet_edge.model.network import InvertedResidual, MattingHeads, MODNet, ModelConfig, build_modnet
from modnet_edge.model.device import pick_device
from modnet_edge.model.weights import resolve_checkpoint
from modnet_edge.training.runstate import Dist, capture_rng, optimizer_to, restore_rng, seed_everything, setup_distributed


class SemanticPath(nn.Module):
    """Backbone + low-resolution branch only: what segmentation pretraining trains (and all DDP sees)."""

    def __init__(self, model: MODNet) -> None:
        super().__init__()
        self.backbone, self.lr_branch = model.backbone, model.lr_branch

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        semantic, _ = self.lr_branch(self.backbone(img)[4], with_head=True)
        return semantic


class HeadsPath(nn.Module):
    """The whole network's three outputs (:meth:`MODNet.heads`) as a module's ``forward``: what matting
    training runs and DDP wraps (DDP syncs gradients only of what runs through ``forward``).  The
    network stays a plain attribute of the trainer, so checkpoints keep MODNet's own keys."""

    def __init__(self, model: MODNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor) -> MattingHeads:
        return self.model.heads(img)


def zero_init_residual(model: MODNet) -> int:
    """Zero the last BatchNorm scale of every residual inverted-bottleneck so each starts as identity.

    With the kaiming init, a from-scratch MobileNetV2 is chaotic: perturbations (fp16 rounding among
    them) grow ~80x through the 19 stages, and short training does not change that; identity-initialised
    residual blocks (Goyal et al. 2017, "Accurate, Large Minibatch SGD") start the network tame."""
    count = 0
    for block in model.backbone.modules():
        if isinstance(block, InvertedResidual) and block.use_res_connect:
            nn.init.zeros_(block.conv[-1].weight)
            count += 1
    return count


class Trainer:
    """One training run; ``fit()`` returns the path of the best checkpoint."""

    def __init__(self, config: TrainConfig, output: str | Path, resume: bool | str | Path = False) -> None:
        self.cfg = config
        self.out = Path(output)
        if config.threads:
            torch.set_num_threads(int(config.threads))
        self.device = pick_device(config.device)
        self.dist: Dist = setup_distributed(self.device)
        if self.dist.world > 1 and self.device.type == "cuda":
            self.device = pick_device(config.device, self.dist.local_rank)
            torch.cuda.set_device(self.device)
        if config.batch_size % self.dist.world:
            raise ConfigError(f"batch_size {config.batch_size} must divide evenly over {self.dist.world} processes")
        self.local_batch = config.batch_size // self.dist.world
        self.amp = bool(config.amp and self.device.type == "cuda")
        seed_everything(config.seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)

        self.task, self.train_set, self.val_set = build_datasets(
            config.data, config.size, task=config.task, val_data=config.val_data, val_fraction=config.val_fraction,
            seed=config.seed, synthetic_count=config.synthetic_count, synthetic_val_count=config.synthetic_val_count,
            scale_range=config.scale_range, flip=config.flip, color_jitter=config.color_jitter,
            compose=config.compose, samples_per_epoch=config.samples_per_epoch, synthetic_mix=config.synthetic_mix,
            composite=CompositeAugment(scale_range=config.person_scale, real_background=config.real_background,
                                       color_jitter=config.color_jitter, negatives=config.negatives,
                                       groups=config.groups, squash=config.squash),
            backgrounds=config.backgrounds)
        self.synthetic = config.data is None
        self.sampler = DistributedSampler(self.train_set, num_replicas=self.dist.world, rank=self.dist.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        if self.steps_per_epoch < 1:
            raise DataError(f"{len(self.train_set)} training samples cannot fill one batch of {config.batch_size} "
                            f"over {self.dist.world} process(es)")

        self.model = self._build_model().to(self.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        trainable = SemanticPath(self.model) if self.task == "segmentation" else HeadsPath(self.model)
        self.net: nn.Module = trainable
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(trainable, device_ids=ids)
        params = [p for p in trainable.parameters() if p.requires_grad]
        if config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                                                    weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        if config.lr_schedule == "cosine":
            self.scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
        else:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=config.lr_step_epochs,
                                                             gamma=config.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.weights = config.loss_weights()
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_value, self.best_epoch = math.inf, -1
        if resume:
            self._resume(self.out / "last.pt" if resume is True else Path(resume))
        self.log = RunLog(self.out, enabled=self.dist.main)

    # ------------------------------------------------------------------------------------------ setup

    def _build_model(self) -> MODNet:
        model = build_modnet(ModelConfig(lr_block=self.cfg.lr_block))
        if self.cfg.init:
            ckpt = resolve_checkpoint(self.cfg.init)  # a checkpoint file, or built-in weights by name
            if ckpt.model_config != model.config:
                raise CheckpointError(f"init checkpoint is {ckpt.model_config}, the run wants {model.config}",
                                      self.cfg.init)
            check_state_dict(model, ckpt.state_dict, self.cfg.init)
            model.load_state_dict(ckpt.state_dict, strict=True)
        elif self.cfg.zero_init_residual:
            zero_init_residual(model)
        return model

    def _resume(self, path: Path) -> None:
        ckpt = read_checkpoint(path)
        st = ckpt.training_state
        if not st:
            raise CheckpointError("checkpoint has no training state to resume from (use it as init= instead)", path)
        saved_cfg = dict(st.get("config") or {})
        for key in ("size", "batch_size", "seed", "task", "synthetic_count", "data", "optimizer"):
            if key in saved_cfg and saved_cfg[key] != getattr(self.cfg, key):
                raise ConfigError(f"cannot resume: {key} was {saved_cfg[key]!r}, now {getattr(self.cfg, key)!r}", path)
        if st.get("world", 1) != self.dist.world:
            raise ConfigError(f"cannot resume exactly: the run used {st.get('world')} process(es), now "
                              f"{self.dist.world}", path)
        self.model.load_state_dict(ckpt.state_dict, strict=True)
        self.optimizer.load_state_dict(st["optimizer"])
        optimizer_to(self.optimizer, self.device)
        self.scheduler.load_state_dict(st["scheduler"])
        if st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.epoch, self.batch_in_epoch, self.step = int(st["epoch"]), int(st["batch_in_epoch"]), int(st["step"])
        self.best_value, self.best_epoch = float(st["best_value"]), int(st["best_epoch"])
        rng = st["rng"]
        restore_rng(rng[self.dist.rank] if isinstance(rng, list) else rng)

    def _gather_rng(self) -> Any:
        own = capture_rng()
        if self.dist.world == 1:
            return own
        gathered: list[Any] = [None] * self.dist.world
        torch.distributed.all_gather_object(gathered, own)
        return gathered

    # ------------------------------------------------------------------------------------ checkpoints

    def _provenance(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        prov = {"trained_on": self.train_set.description, "synthetic": self.synthetic, "seed": self.cfg.seed,
                "task": self.task, "epoch": self.epoch, "step": self.step, "config": self.cfg.to_dict(),
                "note": ("trained on the built-in SYNTHETIC set only: a well-behaved default network, not a "
                         "real portrait matter") if self.synthetic else f"{self.task} training"}
        prov.update(extra or {})
        return prov

    def save_last(self) -> None:
        rng = self._gather_rng()  # collective: every rank must call it
        if not self.dist.main:
            return
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict() if self.amp else None, "rng": rng, "epoch": self.epoch,
                 "batch_in_epoch": self.batch_in_epoch, "step": self.step, "best_value": self.best_value,
                 "best_epoch": self.best_epoch, "world": self.dist.world, "config": self.cfg.to_dict()}
        save_checkpoint(self.out / "last.pt", self.model, preprocessing=PreprocessSpec(),
                        provenance=self._provenance(), training_state=state)
        self.log.record("checkpoint", file="last.pt", epoch=self.epoch, batch_in_epoch=self.batch_in_epoch,
                        step=self.step)

    def save_best(self, metrics: dict[str, float]) -> None:
        if self.dist.main:
            save_checkpoint(self.out / "best.pt", self.model, preprocessing=PreprocessSpec(),
                            provenance=self._provenance({"validation": metrics}))
            self.log.record("checkpoint", file="best.pt", epoch=self.epoch, step=self.step, **metrics)

    # ------------------------------------------------------------------------------------------- loop

    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        order = list(self.sampler)
        batches = [order[i:i + self.local_batch] for i in range(0, self.steps_per_epoch * self.local_batch,
                                                                 self.local_batch)][skip_batches:]
        return DataLoader(self.train_set, batch_sampler=batches, num_workers=self.cfg.workers,
                          pin_memory=self.device.type == "cuda")

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        b = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        b["image"] = b["image"].contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            if self.task == "segmentation":
                losses = segmentation_loss(self.net(b["image"]), b["alpha"], self.weights)
            else:
                semantic, detail, matte = self.net(b["image"])
                band = transition_band(b["alpha"], self.cfg.band_ratio)
                losses = modnet_loss(semantic, detail, matte, b["alpha"], b["rgb"], band, self.weights,
                                     b["fg"], b["bg"], b["has_fgbg"])
        if not torch.isfinite(losses["loss"]):
            raise DataError(f"training diverged: loss is {losses['loss'].item()} at step {self.step} "
                            "(lower lr, or check the data)")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}

    def fit(self) -> Path:
        from modnet_edge.core.console import progress as progress_bar

        cfg = self.cfg
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
            self.log.record("start", task=self.task, data=self.train_set.description, device=str(self.device),
                            world=self.dist.world, amp=self.amp, steps_per_epoch=self.steps_per_epoch,
                            resumed_at_step=self.step, tensorboard=self.log.tensorboard_note)
        total = self.steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(
            cfg.max_steps, self.steps_per_epoch * cfg.epochs)
        bar = progress_bar(total=total, initial=min(self.step, total), desc=f"train {self.task}", unit="step",
                           disable=not (cfg.progress and self.dist.main), dynamic_ncols=True)
        stopped = self.step >= total
        try:
            while self.epoch < cfg.epochs and not stopped:
                self.net.train()
                sums: dict[str, float] = {}
                count = 0
                t0 = time.perf_counter()
                for batch in self._loader(self.epoch, self.batch_in_epoch):
                    losses = self._train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    count += 1
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    bar.update(1)
                    bar.set_postfix(epoch=self.epoch, loss=f"{losses['loss']:.4f}")
                    if self.step % max(cfg.log_every, 1) == 0 or self.step == 1:
                        self.log.record("train", epoch=self.epoch, step=self.step,
                                        lr=self.optimizer.param_groups[0]["lr"], **losses)
                    if cfg.save_every and self.step % cfg.save_every == 0:
                        self.save_last()
                    if self.step >= total:
                        stopped = True
                        break
                finished_epoch = self.batch_in_epoch >= self.steps_per_epoch
                elapsed = time.perf_counter() - t0
                if finished_epoch:
                    self.scheduler.step()
                    self.epoch += 1
                    self.batch_in_epoch = 0
                do_val = self.val_set is not None and (stopped or self.epoch >= cfg.epochs or (
                    cfg.val_every and finished_epoch and self.epoch % cfg.val_every == 0))
                metrics = self.validate() if do_val else {}
                row = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                       "train_loss": sums.get("loss", 0.0) / max(count, 1),
                       "images_per_s": count * cfg.batch_size / max(elapsed, 1e-9),
                       **{f"val_{k}": metrics.get(k) for k in ("loss", "mse", "mad", "sad", "grad")}}
                if self.dist.main:
                    self.log.epoch_row(row)
                    self.log.record("epoch", **row)
                key = "loss" if self.task == "segmentation" else "mse"
                if metrics and metrics[key] < self.best_value:
                    self.best_value, self.best_epoch = metrics[key], self.epoch
                    self.save_best(metrics)
                if stopped or self.epoch >= cfg.epochs or (finished_epoch and self.epoch % cfg.save_every_epochs == 0):
                    self.save_last()
        finally:
            bar.close()
        if self.dist.main and (self.val_set is None or not (self.out / "best.pt").exists()):
            save_checkpoint(self.out / "best.pt", self.model, preprocessing=PreprocessSpec(),
                            provenance=self._provenance({"validation": "none (no validation set): best = last"}))
        self.dist.barrier()
        if self.dist.main:
            self.log.record("end", step=self.step, epoch=self.epoch, best_value=self.best_value,
                            best_epoch=self.best_epoch)
        self.log.close()
        return self.out / "best.pt"

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss and matting metrics (MSE, MAD, SAD, Grad) averaged over the validation images
        (segmentation pretraining: the semantic loss only)."""
        assert self.val_set is not None
        self.model.eval()
        rows: list[dict[str, float]] = []
        indices = list(range(self.dist.rank, len(self.val_set), self.dist.world))
        loader = DataLoader(torch.utils.data.Subset(self.val_set, indices), batch_size=self.local_batch,
                            num_workers=self.cfg.workers)
        for batch in loader:
            b = {k: v.to(self.device) for k, v in batch.items()}
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                if self.task == "segmentation":
                    loss = segmentation_loss(SemanticPath(self.model)(b["image"]), b["alpha"], self.weights)["loss"]
                    rows += [{"loss": float(loss)}] * b["image"].shape[0]
                    continue
                semantic, detail, matte = self.model.heads(b["image"])
            band = transition_band(b["alpha"], self.cfg.band_ratio)
            loss = modnet_loss(semantic, detail, matte, b["alpha"], b["rgb"], band, self.weights, b["fg"],
                               b["bg"], b["has_fgbg"])["loss"]
            pred = matte.float().clamp(0, 1).cpu().numpy()[:, 0]
            gt = b["alpha"].cpu().numpy()[:, 0]
            for p, g in zip(pred, gt):
                rows.append({"loss": float(loss), "mse": mse(p, g), "mad": mad(p, g), "sad": sad(p, g),
                             "grad": grad(p, g)})
        self.net.train()
        keys = ("loss",) if self.task == "segmentation" else ("loss", "mse", "mad", "sad", "grad")
        local = {k: float(np.mean([r[k] for r in rows])) if rows else 0.0 for k in keys}
        metrics = {k: self.dist.all_mean(v, self.device) for k, v in local.items()}
        self.log.record("validation", epoch=self.epoch, step=self.step, **metrics)
        return metrics

    def close(self) -> None:
        self.dist.close()


RUN_FILES = ("config.json", "log.jsonl", "epochs.csv", "last.pt", "best.pt")  # what a run writes


def check_run_folder(out: Path, resume: bool | str | Path) -> None:
    """Before any work: every file a run writes that is already in ``out`` must be ours (a user's own
    ``config.json`` or ``epochs.csv`` is refused, never replaced), and a folder holding a run of ours is
    continued only with ``resume`` -- never restarted over it (its ``best.pt`` and ``last.pt`` would be
    replaced)."""
    check_output_folder(out)
    existing = [out / name for name in RUN_FILES if (out / name).exists() or (out / name).is_symlink()]
    for path in existing:
        check_output_path(path)
    if existing and not resume:
        raise ConfigError(f"the folder holds a training run of modnet-edge ({', '.join(p.name for p in existing)}); "
                          "pass --resume (resume=True) to continue it, or choose a new output folder", out)


def train_stages(name: str, stages: list[dict[str, Any]], data: str | Path | None, output: str | Path,
                 resume: bool, overrides: dict[str, Any]) -> Path:
    """Run a staged preset: stage k trains into ``output/stage-k`` starting from stage k-1's best weights.

    With ``resume``, finished stages (their ``best.pt`` and ``done`` marker exist) are skipped and an
    interrupted stage continues exactly from its ``last.pt``.  The last stage's best checkpoint is
    also copied to ``output/best.pt``."""
    import shutil

    out = Path(output)
    previous: Path | None = None
    for k, stage in enumerate(stages, 1):
        folder = out / f"stage-{k}"
        done = folder / "done"
        cfg = {**stage, **({"data": str(data)} if data is not None else {}), **overrides}
        if previous is not None:
            cfg["init"] = str(previous)
        cfg.setdefault("extra", {})
        cfg["extra"] = {**cfg["extra"], "preset": name, "stage": f"{k}/{len(stages)}"}
        if resume and done.is_file() and (folder / "best.pt").is_file():
            previous = folder / "best.pt"
            continue
        if resume and not (folder / "last.pt").is_file():  # killed before its first checkpoint: start it
            for name in RUN_FILES:  # again (only files this toolkit wrote go; anything else is refused)
                if (folder / name).exists() and not remove_if_ours(folder / name):
                    check_output_path(folder / name)
        previous = train(cfg, output=folder, resume=bool(resume and (folder / "last.pt").is_file()))
        atomic_write_text(done, "finished\n")
    assert previous is not None
    with atomic_output(out / "best.pt") as tmp:
        shutil.copyfile(previous, tmp)
    return out / "best.pt"


def train(config_or_path: Any = None, data: str | Path | None = None, output: str | Path = "runs/modnet",
          resume: bool | str | Path = False, **overrides: Any) -> Path:
    """Train MODNet; returns the best checkpoint's path.

    ``config_or_path``: a preset name ("paper", "official", "quick", "synthetic"), a JSON/YAML file, a
    dict or a :class:`TrainConfig`; None means "paper" with data and "quick" without.  ``data``: a data folder (see :mod:`.datasets`); None
    trains on the built-in SYNTHETIC set.  ``resume``: True continues ``output/last.pt`` exactly."""
    if data is not None:
        overrides = {**overrides, "data": str(data)}
    if config_or_path is None and overrides.get("data") is None:
        config_or_path = "quick"  # no config and no data: the small, fast synthetic run
    if isinstance(config_or_path, str) and config_or_path in STAGED_PRESETS:
        return train_stages(config_or_path, STAGED_PRESETS[config_or_path], overrides.pop("data", None), output,
                            bool(resume), overrides)
    cfg = build_config(config_or_path, overrides)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ConfigError("training output must be a folder, and this path is an existing file", out)
    check_run_folder(out, resume)
    # process-wide torch settings a run changes (threads, deterministic mode) are restored afterwards
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    trainer = None
    try:
        trainer = Trainer(cfg, output, resume=resume)
        return trainer.fit()
    finally:
        if trainer is not None:
            trainer.close()
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
