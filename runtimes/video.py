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

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import atomic_output
from modnet_edge.core.videos import VideoWriter, probe, read_frames

from modnet_edge.runtimes.outputs import alpha_to_uint8, composite

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
    seconds: float = 0.0  # wall time of the whole job (decode to the last encoded frame)
    infer_seconds: float = 0.0  # time spent inside the model
    audio: bool = False  # the composite carries the source's sound

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def model_fps(self) -> float:
        return self.frames / self.infer_seconds if self.infer_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": self.fps, "model_fps": self.model_fps}


_END = object()  # end of a queue's stream


class _Stage(threading.Thread):
    """A pipeline thread that keeps its exception for the caller (a dead stage must not hang the others)."""

    def __init__(self, target: Any, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn, self.error = target, None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            self.error = exc


def _put(q: queue.Queue, item: Any, consumer: threading.Thread, stop: threading.Event) -> bool:
    """Put into a bounded queue; False when the job is stopping or its consumer has died (nothing waits
    forever on a stage that is gone)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            if not consumer.is_alive():
                return False
    return False


def _get(q: queue.Queue, producer: threading.Thread, stop: threading.Event) -> Any:
    """The next item, or the end marker once the producer is gone and the queue is drained."""
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            if stop.is_set() or not producer.is_alive():
                return _END


def predict_video(predictor: Any, video: str | Path, output: str | Path, ofd: bool = False,
                  xi: float = DEFAULT_XI, color: tuple[int, int, int] = (0, 177, 64), write_composite: bool = True,
                  limit: int | None = None, progress: bool = True) -> VideoResult:
    """Matte every frame of ``video``; writes ``<stem>.alpha.mp4`` (and ``<stem>.composite.mp4``, with the
    source's audio copied in) into ``output``, atomically.  Flicker is measured on the raw mattes and on
    what was written.

    Three stages overlap: a reader thread decodes and prepares frame t+1 while the model runs frame t
    here, and a writer thread turns outputs into mattes, applies OFD, composites and encodes.  The
    runtimes, PyAV and NumPy release the GIL in their heavy parts, so the job runs near the model's
    own speed instead of the sum of every step (the progress bar shows both).
    """
    from modnet_edge.core.console import progress as progress_bar

    video, out = Path(video), Path(output)
    info = probe(video)
    total = min(info.frames, limit) if info.frames and limit else (info.frames or limit or None)
    raw_meter, out_meter = FlickerMeter(xi), FlickerMeter(xi)
    alpha_path, comp_path = out / f"{video.stem}.alpha.mp4", out / f"{video.stem}.composite.mp4"
    if hasattr(predictor, "prepare"):  # a MattingPredictor: its three stages run on three threads
        prepare, infer, finish = predictor.prepare, predictor.infer, predictor.finish
    else:  # any object with predict(rgb) -> alpha: the model stage does all of it
        prepare, infer, finish = (lambda rgb: rgb), predictor.predict, (lambda alpha, h, w: alpha)
    frames_q: queue.Queue = queue.Queue(maxsize=3)
    outputs_q: queue.Queue = queue.Queue(maxsize=3)
    count, infer_s, t_start = 0, 0.0, time.perf_counter()
    with ExitStack() as stack:
        alpha_w = VideoWriter(stack.enter_context(atomic_output(alpha_path, suffix=".mp4")), info.fps, info.width,
                              info.height)
        comp_w = None
        if write_composite:
            comp_w = VideoWriter(stack.enter_context(atomic_output(comp_path, suffix=".mp4")), info.fps, info.width,
                                 info.height, audio_from=video)

        stop = threading.Event()
        here = threading.current_thread()  # runs the model: the reader's consumer, the writer's producer

        def read() -> None:
            for rgb in read_frames(video, limit=limit):
                if not _put(frames_q, (rgb, prepare(rgb)), here, stop):
                    return
            _put(frames_q, _END, here, stop)

        def write() -> None:
            pending: list[np.ndarray] = []  # frames waiting for their (one-frame delayed) matte

            def mattes() -> Iterator[np.ndarray]:
                while (item := _get(outputs_q, here, stop)) is not _END:
                    rgb, raw = item
                    alpha = finish(raw, rgb.shape[0], rgb.shape[1])
                    raw_meter.add(alpha)
                    pending.append(rgb)
                    yield alpha

            for alpha in (ofd_stream(mattes(), xi) if ofd else mattes()):
                rgb = pending.pop(0)
                out_meter.add(alpha)
                alpha_w.write(alpha_to_uint8(alpha))
                if comp_w is not None:
                    comp_w.write(composite(rgb, alpha, color))

        reader, writer = _Stage(read, "video reader"), _Stage(write, "video writer")
        bar = stack.enter_context(progress_bar(total=total, desc=f"video {video.name}", unit="frame",
                                               disable=not progress))
        reader.start()
        writer.start()
        finished = False
        try:
            while (item := _get(frames_q, reader, stop)) is not _END:
                rgb, x = item
                t = time.perf_counter()
                raw = infer(x)
                infer_s += time.perf_counter() - t
                if not _put(outputs_q, (rgb, raw), writer, stop):
                    break  # the writer died: its error is raised below
                count += 1
                bar.update(1)
                elapsed = time.perf_counter() - t_start
                bar.set_postfix_str(f"{count / elapsed:.2f} fps, model {count / infer_s:.2f} fps")
            finished = True
        finally:
            if finished:
                _put(outputs_q, _END, writer, stop)
            else:
                stop.set()
            writer.join()
            stop.set()  # a reader still decoding past a failure stops at its next frame
            reader.join()
            # close the containers before atomic_output renames (or discards) them
            alpha_w.close()
            if comp_w is not None:
                comp_w.close(audio_seconds=count / float(info.fps) if limit else None)
        for stage in (reader, writer):
            if stage.error is not None:
                raise stage.error
    return VideoResult(count, str(alpha_path), str(comp_path) if write_composite else None, ofd,
                       raw_meter.result(), out_meter.result(), time.perf_counter() - t_start, infer_s,
                       bool(comp_w is not None and comp_w.has_audio))
