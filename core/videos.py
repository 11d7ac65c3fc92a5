"""Video files in and out (PyAV), as RGB uint8 frames -- shared by SOC adaptation and video prediction.

Decoding problems (missing file, not a video, no video stream, corrupt data) become one
:class:`InputImageError` naming the file, never a PyAV traceback.  NumPy only, no torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from modnet_edge.core.errors import BackendUnavailableError, InputImageError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _av():
    try:
        import av
    except ImportError:
        raise BackendUnavailableError('video files need PyAV: pip install -c constraints.txt '
                                      '"modnet-edge[video]"') from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int  # as declared by the container (0 when unknown)


def probe(path: str | Path) -> VideoInfo:
    av = _av()
    path = _existing(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputImageError("file has no video stream", path)
            s = container.streams.video[0]
            fps = Fraction(s.average_rate) if s.average_rate else Fraction(25)
            return VideoInfo(s.codec_context.width, s.codec_context.height, fps, int(s.frames or 0))
    except InputImageError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise InputImageError(f"not a readable video ({exc})", path) from None


def read_frames(path: str | Path, every: int = 1, limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield every ``every``-th frame as RGB uint8 (H, W, 3), at most ``limit`` frames."""
    av = _av()
    path = _existing(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        raise InputImageError(f"not a readable video ({exc})", path) from None
    yielded = 0
    with container:
        if not container.streams.video:
            raise InputImageError("file has no video stream", path)
        try:
            for i, frame in enumerate(container.decode(video=0)):
                if i % max(every, 1):
                    continue
                yield frame.to_ndarray(format="rgb24")
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
        except (av.error.FFmpegError, ValueError) as exc:  # type: ignore[attr-defined]
            raise InputImageError(f"video data is corrupt after {yielded} frame(s) ({exc})", path) from None
    if yielded == 0:
        raise InputImageError("video contains no decodable frames", path)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputImageError("video file does not exist", path)
    if path.stat().st_size == 0:
        raise InputImageError("video file is empty (0 bytes)", path)
    return path


class VideoWriter:
    """Encode RGB uint8 frames to H.264 (yuv420p) -- even width/height are padded by one pixel if needed.

    ``audio_from``: a video whose first audio stream is copied into this file unchanged (no re-encode),
    up to ``audio_seconds`` when given (a clip cut by a frame limit keeps just its own sound).
    """

    def __init__(self, path: str | Path, fps: Fraction, width: int, height: int, codec: str = "libx264",
                 audio_from: str | Path | None = None) -> None:
        av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width + width % 2, height + height % 2
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(codec, rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        self._av = av
        self._audio_in = self._audio_out = None
        if audio_from is not None:
            source = av.open(str(audio_from))
            if source.streams.audio:
                self._audio_in = source
                self._audio_out = self._container.add_stream_from_template(source.streams.audio[0])
            else:
                source.close()

    @property
    def has_audio(self) -> bool:
        return self._audio_out is not None

    def write(self, rgb: np.ndarray) -> None:
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            rgb = np.pad(rgb, ((0, self.height - rgb.shape[0]), (0, self.width - rgb.shape[1]), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self, audio_seconds: float | None = None) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        if self._audio_in is not None:
            try:
                self._copy_audio(audio_seconds)
            finally:
                self._audio_in.close()
                self._audio_in = None
        self._container.close()

    def _copy_audio(self, seconds: float | None) -> None:
        source_stream = self._audio_in.streams.audio[0]
        for packet in self._audio_in.demux(source_stream):
            if packet.dts is None:  # the demuxer's end-of-stream flush packet
                continue
            if seconds is not None and packet.pts is not None and packet.time_base is not None \
                    and float(packet.pts * packet.time_base) >= seconds:
                break
            packet.stream = self._audio_out
            self._container.mux(packet)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
