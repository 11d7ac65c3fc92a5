"""Video matting through any predictor, with the paper's One-Frame-Delay (OFD) de-flicker.

OFD (MODNet paper, "OFD"): a pixel of frame t flickers when frames t-1 and t+1 agree with each other
(|a[t-1] - a[t+1]| <= xi) while both differ from frame t (|a[t] - a[t-1]| > xi and
|a[t] - a[t+1]| > xi); it is replaced by the mean of its neighbours.  The decision for frame t needs
frame t+1, so the output runs one frame behind the input; the first and last frames pass unchanged.

Flicker metric: the mean absolute second temporal difference |a[t] - (a[t-1] + a[t+1]) / 2| over all
pixels of the interior frames.  Steady motion (a linear change over time) scores ~0, a one-frame spike
scores its height / 2 -- so it measures what OFD targets; ``flicker_pixels`` is the share of pixels
meeting the OFD condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import atomic_output
from modnet_edge.videos import VideoWriter, probe, read_frames

from .outputs import alpha_to_uint8, composite

DEFAULT_XI = 0.1


def ofd_frame(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray, xi: float = DEFAULT_XI) -> np.ndarray:
    """Frame ``cur`` with its flickering pixels replaced by the mean of ``prev`` and ``nxt``."""
    flicker = (np.abs(prev - nxt) <= xi) & (np.abs(cur - prev) > xi) & (np.abs(cur - nxt) > xi)
    return np.where(flicker, 0.5 * (prev + nxt), cur).astype(np.float32)


def ofd_stream(alphas: Iterable[np.ndarray], xi: float = DEFAULT_XI) -> Iterator[np.ndarray]:
    """De-flicker a stream of mattes with one frame of latency (decisions use the raw neighbours)."""
    window: list[np.ndarray] = []
    for a in alphas:
        window.append(a)
        if len(window) == 1:
            yield a
        elif len(window) == 3:
            yield ofd_frame(window[0], window[1], window[2], xi)
            window.pop(0)
    if len(window) == 2:
        yield window[1]


@dataclass
class FlickerMeter:
    """Running flicker statistics of a matte sequence (see the module docstring)."""

    xi: float = DEFAULT_XI
    _sum: float = 0.0
    _pix: float = 0.0
    _frames: int = 0
    _window: tuple = ()

    def add(self, alpha: np.ndarray) -> None:
        window = (*self._window, alpha)[-3:]
        if len(window) == 3:
            p, c, n = window
            self._sum += float(np.abs(c - 0.5 * (p + n)).mean())
            self._pix += float(((np.abs(p - n) <= self.xi) & (np.abs(c - p) > self.xi) & (np.abs(c - n) > self.xi)).mean())
            self._frames += 1
        self._window = window

    def result(self) -> dict[str, float]:
        n = max(self._frames, 1)
        return {"flicker": self._sum / n, "flicker_pixels": self._pix / n, "frames_measured": self._frames}


def flicker(alphas: Iterable[np.ndarray], xi: float = DEFAULT_XI) -> dict[str, float]:
    meter = FlickerMeter(xi)
    for a in alphas:
        meter.add(np.asarray(a, np.float32))
    return meter.result()


@dataclass
class VideoResult:
    frames: int
    alpha_video: str | None
    composite_video: str | None
    ofd: bool
    flicker_raw: dict[str, float]
    flicker_out: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict_video(predictor: Any, video: str | Path, output: str | Path, ofd: bool = False,
                  xi: float = DEFAULT_XI, color: tuple[int, int, int] = (0, 177, 64), write_composite: bool = True,
                  limit: int | None = None, progress: bool = True) -> VideoResult:
    """Matte every frame of ``video``; writes ``<stem>.alpha.mp4`` (and ``<stem>.composite.mp4``) into
    ``output``, atomically.  Flicker is measured on the raw mattes and on what was written."""
    from tqdm import tqdm

    video, out = Path(video), Path(output)
    info = probe(video)
    total = min(info.frames, limit) if info.frames and limit else (info.frames or limit or None)
    raw_meter, out_meter = FlickerMeter(xi), FlickerMeter(xi)
    alpha_path, comp_path = out / f"{video.stem}.alpha.mp4", out / f"{video.stem}.composite.mp4"
    count = 0
    with ExitStack() as stack:
        alpha_w = VideoWriter(stack.enter_context(atomic_output(alpha_path, suffix=".mp4")), info.fps, info.width,
                              info.height)
        comp_w = None
        if write_composite:
            comp_w = VideoWriter(stack.enter_context(atomic_output(comp_path, suffix=".mp4")), info.fps, info.width,
                                 info.height)
        pending: list[np.ndarray] = []  # frames waiting for their (one-frame delayed) matte

        def mattes() -> Iterator[np.ndarray]:
            nonlocal count
            bar = tqdm(total=total, desc=f"video {video.name}", unit="frame", disable=not progress)
            try:
                for rgb in read_frames(video, limit=limit):
                    alpha = predictor.predict(rgb)
                    raw_meter.add(alpha)
                    pending.append(rgb)
                    count += 1
                    bar.update(1)
                    yield alpha
            finally:
                bar.close()

        try:
            for alpha in (ofd_stream(mattes(), xi) if ofd else mattes()):
                rgb = pending.pop(0)
                out_meter.add(alpha)
                alpha_w.write(alpha_to_uint8(alpha))
                if comp_w is not None:
                    comp_w.write(composite(rgb, alpha, color))
        finally:  # close the containers before atomic_output renames (or discards) them
            alpha_w.close()
            if comp_w is not None:
                comp_w.close()
    return VideoResult(count, str(alpha_path), str(comp_path) if write_composite else None, ofd,
                       raw_meter.result(), out_meter.result())
