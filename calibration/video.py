"""Video frames as calibration samples (PyAV), read front to back.

Frames are addressed by their decode order (0, 1, 2 ...), which is what a user sees when stepping
through a clip, and is stable across runs (timestamps can be irregular).  The reader keeps one open
decoder and walks forward, so reading the chosen frames of a pass costs one decode of the clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.errors import BackendUnavailableError, DataError


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise BackendUnavailableError("reading calibration frames from a video needs PyAV (pip install av)") from None
    return av


def _open(video: Path) -> Any:
    av = _av()
    if not video.is_file():
        raise DataError("calibration video does not exist", video)
    try:
        container = av.open(str(video))
    except Exception as exc:  # av.error.* (InvalidDataError, ...) all mean "not a readable video"
        raise DataError(f"not a readable video ({exc})", video) from None
    if not container.streams.video:
        container.close()
        raise DataError("file has no video stream", video)
    return container


def count_frames(video: str | Path) -> int:
    """Number of frames in the first video stream (counted from packets when the header does not say)."""
    video = Path(video)
    container = _open(video)
    try:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)
    except Exception as exc:
        raise DataError(f"video is corrupt ({exc})", video) from None
    finally:
        container.close()


class VideoFrameReader:
    """``reader(index) -> RGB uint8 frame``; sequential indices are decoded in one forward pass."""

    def __init__(self, video: str | Path) -> None:
        self.video = Path(video)
        self._container: Any = None
        self._frames: Any = None
        self._next = 0

    def __call__(self, index: int) -> np.ndarray:
        if self._frames is None or index < self._next:
            self.close()
            self._container = _open(self.video)
            self._frames = self._container.decode(video=0)
            self._next = 0
        try:
            while True:
                frame = next(self._frames)
                self._next += 1
                if self._next - 1 == index:
                    return frame.to_ndarray(format="rgb24")
        except StopIteration:
            self.close()
            raise DataError(f"video ended after {self._next} frames; frame {index} was asked for", self.video) from None
        except DataError:
            raise
        except Exception as exc:
            self.close()
            raise DataError(f"cannot decode frame {index} ({exc})", self.video) from None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames, self._next = None, None, 0
