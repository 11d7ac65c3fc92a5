"""Measuring one subject: open it, build its timed steps (model-only and end-to-end), warm up, time
them interleaved, and turn the samples into a :class:`BenchResult`.

This is what a benchmark worker process runs (:mod:`.isolation`) and what the in-process path of
:mod:`.runner` runs; the runner only decides where each subject is measured and judges the results.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.limits import check_batch, check_count, check_input_size, check_number, check_threads
from modnet_edge.core import PreprocessSpec, path_size, resolve, sha256_path
from modnet_edge.core.errors import ConfigError, MetadataError
from modnet_edge.core.preprocess import area_resize, preprocess

from modnet_edge.benchmarks.device_info import current_rss_mb, describe_device, peak_rss_mb, runtime_versions
from modnet_edge.benchmarks.results import BenchResult, LatencyStats


@dataclass
class BenchConfig:
    """How to measure.  ``max_seconds`` caps the timed phase of one subject/mode/size (after at least
    ``min_iterations``), like ``benchmark_model``'s ``--max_secs``, so a slow fp16-on-CPU artifact cannot
    stall a pipeline."""

    sizes: tuple[tuple[int, int], ...] = ((512, 512),)
    modes: tuple[str, ...] = ("model",)
    warmup: int = 3
    iterations: int = 20
    min_iterations: int = 3
    max_seconds: float | None = None
    threads: int | None = None
    isolate: bool = True  # each subject in its own worker process (see .isolation); False: one process
    batch: int = 1
    rounds: int = 4
    image: np.ndarray | None = None  # RGB uint8 used for feeds and the end-to-end JPEG (default: synthetic)
    image_source: str = "generated synthetic portrait"

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.warmup < 0 or self.batch < 1 or self.min_iterations < 1:
            raise ConfigError(f"invalid benchmark settings: iterations={self.iterations}, warmup={self.warmup}, "
                              f"batch={self.batch}, min_iterations={self.min_iterations}")
        bad = [m for m in self.modes if m not in ("model", "end-to-end")]
        if bad or not self.modes:
            raise ConfigError(f"benchmark modes must be 'model' and/or 'end-to-end', got {list(self.modes)}")
        for h, w in self.sizes:
            if h < 32 or w < 32:
                raise ConfigError(f"benchmark input size {h}x{w} is too small (>= 32x32)")
            check_input_size(h, w, "benchmark input size")
            check_batch(self.batch, h, w, "benchmark batch")
        check_threads(self.threads)
        if self.max_seconds is not None:
            check_number(self.max_seconds, "max_seconds (cap on each timed phase)", 0.0, low_open=True)
        check_count(self.rounds, "rounds")

    def finished(self, samples: int, timed_s: float) -> bool:
        """The one stop rule of every timing loop (in-process, isolated, GPU): ``iterations`` samples, or
        at least ``min_iterations`` once ``max_seconds`` of timed work are spent."""
        if samples >= self.iterations:
            return True
        return self.max_seconds is not None and samples >= self.min_iterations and timed_s >= self.max_seconds


@dataclass
class Subject:
    """One thing to benchmark: how to open it and what it is."""

    label: str
    opener: Callable[[int | None], Any]  # threads -> MattingPredictor (or Backend for foreign models)
    artifact: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    spec: tuple | None = None  # how a worker process rebuilds this subject (picklable); None: in-process only


def subject_from_spec(spec: tuple) -> Subject:
    """Rebuild a subject from its :attr:`Subject.spec` (inside a benchmark worker process)."""
    if spec[0] == "path":
        _, path, runtime, options = spec
        return subject_for_path(path, runtime=runtime, **options)
    _, checkpoint, label, options = spec
    return subject_for_checkpoint(checkpoint, label=label, **options)


def _accepts(cls: Any, name: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def subject_for_path(path: str | Path, runtime: str | None = None, **options: Any) -> Subject:
    """A subject for any artifact or checkpoint file, opened through the format table."""
    from modnet_edge.runtimes.loader import detect_format, load, open_backend

    path = Path(path)
    fmt = detect_format(path)
    backend_cls_name = fmt.backend(runtime)
    notes: list[str] = []

    def opener(threads: int | None) -> Any:
        opts = dict(options)
        if threads:
            try:
                takes_threads = _accepts(resolve(backend_cls_name), "threads")
            except ImportError:
                takes_threads = True  # let load() raise its clear "runtime not installed" error
            if takes_threads:
                opts["threads"] = threads
            elif f"{fmt.name}: runtime does not take a thread count" not in notes:
                notes.append(f"{fmt.name}: runtime does not take a thread count (its default was used)")
        try:
            return load(path, runtime=runtime, **opts)
        except MetadataError as exc:
            if "carries no modnet-edge metadata" not in str(exc):
                raise
            notes.append("model has no modnet-edge metadata: model-only benchmark with a generic feed")
            return open_backend(path, runtime=runtime, **opts)

    return Subject(path.name, opener, artifact_info(path, fmt.name), notes,
                   spec=("path", str(path), runtime, dict(options)))


def subject_for_checkpoint(checkpoint: Any, label: str = "pytorch reference", **options: Any) -> Subject:
    """The PyTorch reference of an in-memory :class:`Checkpoint` (e.g. a seeded random-init network)."""
    from modnet_edge.runtimes.predictor import MattingPredictor
    from modnet_edge.runtimes.torch_backend import TorchBackend

    if getattr(checkpoint, "path", None) is not None:
        return subject_for_path(checkpoint.path, **options)

    def opener(threads: int | None) -> Any:
        backend = TorchBackend.from_checkpoint(checkpoint, threads=threads, **options)
        return MattingPredictor(backend, backend.embedded_metadata)

    info = {"name": label, "path": None, "format": "pytorch", "precision": options.get("precision", "fp32"),
            "bytes": None, "sha256": None, "weights_sha256": checkpoint.source_info()["weights_sha256"]}
    return Subject(label, opener, info, spec=("checkpoint", checkpoint, label, dict(options)))


def artifact_info(path: str | Path, fmt: str | None = None) -> dict[str, Any]:
    """Name, format, precision (from the manifest when present), size and sha256 of an artifact."""
    from modnet_edge.core import read_manifest

    path = Path(path)
    precision = None
    try:
        meta = read_manifest(path)
        if meta is not None:
            fmt, precision = meta.format, meta.precision
    except MetadataError:
        pass
    return {"name": path.name, "path": str(path.resolve()), "format": fmt, "precision": precision,
            "bytes": path_size(path), "sha256": sha256_path(path)}


class Turns:
    """What the timing loop (:func:`time_interleaved`) needs of a job: its samples so far, the stop rule,
    and ``turn(n)``: one turn of ``n`` timed calls."""

    def __init__(self) -> None:
        self.samples_ms: list[float] = []
        self.timed_s = 0.0

    def done(self, cfg: BenchConfig) -> bool:
        return cfg.finished(len(self.samples_ms), self.timed_s)

    def turn(self, n: int) -> list[float]:
        raise NotImplementedError


class _Job(Turns):
    """One subject x mode x size in this process: a callable timed step and its samples."""

    def __init__(self, subject: Subject, handle: Any, mode: str, size: tuple[int, int], step: Callable[[], None],
                 batch: int, model_size: tuple[int, int] | None, notes: list[str]) -> None:
        super().__init__()
        self.subject, self.handle, self.mode, self.size, self.step = subject, handle, mode, size, step
        self.batch, self.model_size, self.notes = batch, model_size, notes

    def turn(self, n: int) -> list[float]:
        return timed_turn(self.step, n)


def timed_turn(step: Callable[[], Any], n: int) -> list[float]:
    """One subject's turn: an untimed call, then ``n`` timed ones (milliseconds).  After another
    subject's turn the first call pays for waking this subject's thread pool and refilling caches, which
    is the switch, not the model; every timing loop (in-process, isolated worker, GPU) takes turns so."""
    step()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t) * 1000.0)
    return samples


def time_interleaved(jobs: Sequence[Any], cfg: BenchConfig, desc: str = "benchmark (interleaved)",
                     progress: bool = True) -> None:
    """The one timing loop: jobs take turns of a few calls each (``job.turn(n)``, see :func:`timed_turn`)
    until each is ``done(cfg)`` (:meth:`BenchConfig.finished`), their milliseconds appended to
    ``samples_ms`` and seconds to ``timed_s``.  Interleaving, so that a load spike or a clock change hits
    every job alike.  A job is anything with those members: an in-process subject, a worker process's
    subject (:mod:`.isolation`), a GPU case (its step ends with a device synchronisation)."""
    from modnet_edge.core.console import progress as progress_bar

    chunk = max(1, -(-cfg.iterations // max(1, cfg.rounds)))
    with progress_bar(total=cfg.iterations * len(jobs), desc=desc, disable=not progress, leave=False) as bar:
        while not all(j.done(cfg) for j in jobs):
            for job in jobs:
                if job.done(cfg):
                    continue
                samples = job.turn(min(chunk, cfg.iterations - len(job.samples_ms)))
                job.samples_ms += samples
                job.timed_s += sum(samples) / 1000.0
                bar.update(len(samples))


def open_and_warm(subject: Subject, cfg: BenchConfig, image: np.ndarray, tmp: Path) -> tuple[Any, list[_Job],
                                                                                          dict[str, Any]]:
    """Open ``subject``, build its jobs and run their warm-up; returns (handle, jobs, {load_ms,
    rss_delta_mb}).  The handle is closed here if the warm-up fails (the caller never saw it)."""
    rss0, t0 = current_rss_mb(), time.perf_counter()
    handle = subject.opener(cfg.threads)
    try:
        load_ms = (time.perf_counter() - t0) * 1000
        jobs = _jobs_for(subject, handle, cfg, image, tmp)
        for job in jobs:
            for _ in range(cfg.warmup):
                job.step()
    except BaseException:
        handle.close()
        raise
    rss1 = current_rss_mb()
    return handle, jobs, {"load_ms": load_ms, "rss_delta_mb": None if rss0 is None or rss1 is None else rss1 - rss0}


def _jobs_for(subject: Subject, handle: Any, cfg: BenchConfig, image: np.ndarray, tmp: Path) -> list[_Job]:
    backend = getattr(handle, "backend", handle)
    spec: PreprocessSpec | None = getattr(handle, "spec", None)
    inputs = backend.inputs
    in_info = inputs[0] if spec is None else next(i for i in inputs if i.name == handle.input_name)
    jobs: list[_Job] = []
    static = spec.fixed_size if spec is not None else _static_hw(in_info)
    sizes = [static] if static else list(cfg.sizes)
    notes = list(subject.notes)
    if static and any(tuple(s) != tuple(static) for s in cfg.sizes):
        notes.append(f"static-shape model: measured at its own input size {static[0]}x{static[1]}")
    for mode in cfg.modes:
        if mode == "end-to-end" and spec is None:
            continue  # a foreign model has no known preprocessing: only model-only is honest
        for size in (sizes if mode == "model" else cfg.sizes):  # end-to-end: the photo's size, any model
            size = (int(size[0]), int(size[1]))
            if mode == "model":
                batch, feed = _model_feed(backend, in_info, spec, image, size, cfg.batch, notes)
                jobs.append(_Job(subject, handle, mode, size, lambda f=feed, b=backend: b.run(f), batch, size, notes))
            else:
                photo = tmp / f"{len(list(tmp.iterdir()))}_{size[0]}x{size[1]}.jpg"
                _write_jpeg(area_resize(image, *size) if image.shape[:2] != size else image, photo)
                model_size = spec.target_size(*size)
                jobs.append(_Job(subject, handle, mode, size, lambda p=str(photo), h=handle: h.predict(p), 1,
                                 model_size, notes))
    return jobs


def _static_hw(info: Any) -> tuple[int, int] | None:
    dims = info.shape[1:3] if info.layout == "NHWC" else info.shape[2:4]
    if len(dims) == 2 and all(isinstance(d, int) and d > 0 for d in dims):
        return int(dims[0]), int(dims[1])
    return None


def _model_feed(backend: Any, info: Any, spec: PreprocessSpec | None, image: np.ndarray, size: tuple[int, int],
                batch: int, notes: list[str]) -> tuple[int, dict[str, np.ndarray]]:
    static_batch = info.shape[0] if info.shape and isinstance(info.shape[0], int) and info.shape[0] > 0 else None
    if static_batch is not None and static_batch != batch:
        notes.append(f"model has a static batch of {static_batch}: measured at batch {static_batch}")
        batch = static_batch
    if spec is None:  # foreign model: a generic feed of the declared shape
        feeds = {}
        for inp in backend.inputs:
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            if len(shape) == 4:
                shape[0] = batch
            rng = np.random.default_rng(0)
            feeds[inp.name] = rng.standard_normal(shape).astype(inp.dtype) if np.issubdtype(inp.dtype, np.floating) \
                else rng.integers(0, 2, shape).astype(inp.dtype)
        return batch, feeds
    x = preprocess(image, spec.with_fixed_size(size))
    x = np.repeat(x, batch, axis=0) if batch > 1 else x
    return batch, {info.name: backend.prepare_input(info.name, x)}


def _write_jpeg(rgb: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=92)


def _default_image() -> np.ndarray:
    from modnet_edge.training.synthetic import synthetic_portraits

    return next(iter(synthetic_portraits(1).values()))


def _result(job: _Job, cfg: BenchConfig, run_id: str, extra: dict[str, Any], gpu_mb: float | None) -> BenchResult:
    backend = getattr(job.handle, "backend", job.handle)
    meta = getattr(job.handle, "metadata", None)
    artifact = dict(job.subject.artifact)
    if meta is not None:
        artifact["format"] = artifact.get("format") or meta.format
        artifact["precision"] = artifact.get("precision") or meta.precision
    runtime = {"name": backend.runtime, "device": backend.device,
               "delegate": ",".join(getattr(backend, "providers", []) or []) or None}
    notes = list(dict.fromkeys(job.notes))
    if len(job.samples_ms) < cfg.iterations:
        notes.append(f"time cap {cfg.max_seconds:g}s reached after {len(job.samples_ms)} of {cfg.iterations} "
                     "iterations")
    config = {"warmup": cfg.warmup, "iterations": len(job.samples_ms), "threads": cfg.threads or "runtime default",
              "batch": job.batch, "input_size": list(job.size), "model_input_size": list(job.model_size or job.size),
              "rounds": cfg.rounds, "interleaved_subjects": True, "image": cfg.image_source}
    memory = {"peak_rss_mb": peak_rss_mb(), "rss_delta_mb": extra.get("rss_delta_mb"),
              "gpu_mb": gpu_mb if str(backend.device).startswith("cuda") else None}
    latency = LatencyStats.from_samples(job.samples_ms)
    extras: dict[str, Any] = {"load_ms": extra.get("load_ms")}
    if len(job.samples_ms) >= 4:  # the quartiles judge stability: one slow call among ten moves p90, not them
        q1, q3 = (float(v) for v in np.percentile(job.samples_ms, [25, 75]))
        extras["quartiles_ms"] = [q1, q3]
    return BenchResult(source="local", run_id=run_id, artifact=artifact, mode=job.mode, runtime=runtime,
                       device=describe_device(), versions=runtime_versions(), config=config,
                       latency_ms=latency, memory=memory, notes=notes, extra=extras)


def attach_roofline(results: list[BenchResult], cfg: BenchConfig) -> None:
    """Each CPU model-only result's GFLOP/s and share of the CPU's peak (``extra["roofline"]``), computed
    here in the caller's process: counting MODNet's work runs the network once per input size, which in
    every worker process cost an import of PyTorch and a forward pass (2 s a subject, one after another)."""
    from modnet_edge.benchmarks.roofline import share_of_peak

    threads = cfg.threads if isinstance(cfg.threads, int) else None
    for r in results:
        size = r.config.get("model_input_size") or r.config.get("input_size")
        if r.mode != "model" or not r.latency_ms.p50 or not str(r.runtime.get("device")).startswith("cpu") or not size:
            continue
        try:
            r.extra["roofline"] = share_of_peak(str(r.artifact.get("precision") or "fp32"), r.latency_ms.p50,
                                                tuple(size), int(r.config.get("batch") or 1), threads)
        except ImportError:  # counting the work needs PyTorch; a runtime-only install reports no share of peak
            r.notes.append("share of peak not computed: counting MODNet's work needs PyTorch (pip install torch)")
