"""Video matting: One-Frame-Delay de-flicker, the flicker metric, and video files in and out."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from modnet_edge.core.errors import InputImageError
from modnet_edge.runtimes.video import flicker, ofd_frame, ofd_stream, predict_video
from modnet_edge.core.videos import VideoWriter, probe, read_frames


def test_ofd_replaces_only_one_frame_spikes():
    prev, nxt = np.full((4, 4), 0.2, np.float32), np.full((4, 4), 0.25, np.float32)
    cur = prev.copy()
    cur[0, 0] = 0.9  # flicker: neighbours agree, this frame differs from both
    cur[1, 1] = 0.22  # small change: left alone
    out = ofd_frame(prev, cur, nxt)
    assert out[0, 0] == pytest.approx(0.225) and out[1, 1] == pytest.approx(0.22)
    ramp = [np.full((2, 2), v, np.float32) for v in (0.0, 0.3, 0.6, 0.9)]  # fast steady motion is kept
    assert [float(a[0, 0]) for a in ofd_stream(ramp)] == pytest.approx([0.0, 0.3, 0.6, 0.9])


def test_ofd_lowers_flicker_and_keeps_frame_count():
    rng = np.random.default_rng(0)
    frames = [np.full((8, 8), 0.5, np.float32) for _ in range(10)]
    for t in (2, 5, 7):
        frames[t] = frames[t].copy()
        frames[t][rng.random((8, 8)) < 0.3] = 1.0
    out = list(ofd_stream(frames))
    assert len(out) == len(frames)
    raw, smooth = flicker(frames), flicker(out)
    assert raw["flicker"] > 0.05 and smooth["flicker"] < raw["flicker"] / 5
    assert raw["flicker_pixels"] > 0.05 and smooth["flicker_pixels"] < raw["flicker_pixels"] / 5


class _BlinkingPredictor:
    """A stand-in model (pure NumPy) whose matte is the frame's brightness with a spike every 3rd frame,
    to exercise video I/O and OFD end to end without a network."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        self.calls += 1
        alpha = rgb[..., 1].astype(np.float32) / 255.0
        if self.calls % 3 == 0:
            alpha = np.clip(alpha + 0.5, 0, 1)
        return alpha


def _write_video(path, frames=9, h=48, w=64):
    with VideoWriter(path, Fraction(12), w, h) as writer:
        for t in range(frames):
            rgb = np.zeros((h, w, 3), np.uint8)
            rgb[..., 1] = 60 + 4 * t
            writer.write(rgb)


@pytest.mark.video
def test_predict_video_writes_alpha_and_composite(tmp_path):
    src = tmp_path / "clip.mp4"
    _write_video(src)
    info = probe(src)
    assert (info.width, info.height) == (64, 48)
    assert len(list(read_frames(src))) == 9
    raw = predict_video(_BlinkingPredictor(), src, tmp_path / "out", ofd=False, progress=False)
    smooth = predict_video(_BlinkingPredictor(), src, tmp_path / "out_ofd", ofd=True, progress=False)
    assert raw.frames == smooth.frames == 9
    assert smooth.flicker_out["flicker"] < raw.flicker_out["flicker"] / 3
    assert raw.flicker_raw == pytest.approx(smooth.flicker_raw)
    alpha_frames = list(read_frames(smooth.alpha_video))
    assert len(alpha_frames) == 9 and alpha_frames[0].shape == (48, 64, 3)
    assert len(list(read_frames(smooth.composite_video))) == 9
    assert not list((tmp_path / "out").glob("*.modnet-edge-tmp*"))  # no temporary files left behind


@pytest.mark.video
def test_unreadable_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mov"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(InputImageError, match="bad.mov: not a readable video"):
        predict_video(_BlinkingPredictor(), bad, tmp_path / "o", progress=False)
    with pytest.raises(InputImageError, match="does not exist"):
        probe(tmp_path / "missing.mp4")


def _write_video_with_audio(path, frames=24, h=48, w=64, fps=12):
    """A clip with a 440 Hz AAC sound track as long as its pictures."""
    import av

    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("aac", rate=22050)
        for t in range(frames):
            rgb = np.zeros((h, w, 3), np.uint8)
            rgb[..., 0] = 40 + 5 * t
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        n = int(22050 * frames / fps)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 22050)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 22050
        for p in aus.encode(frame):
            out.mux(p)
        for s in (vs, aus):
            for p in s.encode():
                out.mux(p)


@pytest.mark.video
def test_composite_keeps_the_source_audio_and_reports_fps(tmp_path):
    import av

    src = tmp_path / "talk.mp4"
    _write_video_with_audio(src)
    res = predict_video(_BlinkingPredictor(), src, tmp_path / "out", progress=False)
    assert res.frames == 24 and res.audio and res.fps > 0 and res.model_fps >= res.fps
    with av.open(str(src)) as a, av.open(res.composite_video) as b:
        assert b.streams.audio and b.streams.audio[0].codec_context.name == a.streams.audio[0].codec_context.name
        src_samples = sum(f.samples for f in a.decode(audio=0))
    with av.open(res.composite_video) as b:
        out_samples = sum(f.samples for f in b.decode(audio=0))
    assert abs(out_samples - src_samples) <= 2048  # the whole track, give or take one AAC frame
    cut = predict_video(_BlinkingPredictor(), src, tmp_path / "cut", limit=12, progress=False)
    with av.open(cut.composite_video) as b:
        cut_samples = sum(f.samples for f in b.decode(audio=0))
    assert cut_samples < 0.75 * src_samples  # half the pictures, about half the sound
    with av.open(res.alpha_video) as b:
        assert not b.streams.audio  # the matte video stays silent


class _FailingPredictor(_BlinkingPredictor):
    def predict(self, rgb):
        if getattr(self, "_n", 0) == 5:
            raise RuntimeError("model crashed on frame 5")
        self._n = getattr(self, "_n", 0) + 1
        return super().predict(rgb)


@pytest.mark.video
def test_a_failing_stage_stops_the_job_and_leaves_no_video(tmp_path):
    src = tmp_path / "clip.mp4"
    _write_video(src, frames=12)
    with pytest.raises(RuntimeError, match="frame 5"):
        predict_video(_FailingPredictor(), src, tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
