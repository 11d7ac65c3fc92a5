"""Training throughput: images per second of full MODNet training steps (forward, the paper's loss,
backward, SGD update) at a given size and batch, on CPU or GPU.

Timing excludes data loading (inputs are generated once up front) so the figure describes the
network and the loss, and a warm-up step is run first (allocator, kernel selection).  Report it
with the conditions it returns: device, threads, size, batch and torch version.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from modnet_edge.train.losses import modnet_loss, transition_band
from modnet_edge.model.network import build_modnet
from modnet_edge.model.device import pick_device
from modnet_edge.train.synthetic import render_portrait


def training_throughput(size: int = 512, batch: int = 8, steps: int = 3, warmup: int = 1, device: str = "auto",
                        threads: int | None = None, amp: bool = True) -> dict[str, Any]:
    """Median seconds per step and images/s over ``steps`` timed steps on synthetic inputs."""
    dev = pick_device(device)
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = build_modnet().to(dev).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        samples = [render_portrait(0, i, size, size) for i in range(batch)]
        rgb = torch.stack([torch.from_numpy(s.rgb).permute(2, 0, 1).float() / 255.0 for s in samples]).to(dev)
        alpha = torch.stack([torch.from_numpy(s.alpha)[None] for s in samples]).to(dev)
        image = rgb * 2.0 - 1.0
        band = transition_band(alpha)
        use_amp = amp and dev.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        times = []
        for i in range(warmup + steps):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.float16, enabled=use_amp):
                s, d, m = model.heads(image)
                loss = modnet_loss(s, d, m, alpha, rgb, band)["loss"]
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        times.sort()
        median = times[len(times) // 2]
        return {"images_per_s": batch / median, "s_per_step": median, "steps_timed": steps, "size": size,
                "batch": batch, "device": str(dev), "threads": torch.get_num_threads(), "amp": use_amp,
                "torch": torch.__version__, "step_times_s": [round(t, 3) for t in times]}
    finally:
        torch.set_num_threads(saved)
