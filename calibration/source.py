"""The one calibration source: a re-iterable, deterministic set of representative network inputs.

Every format that quantises (ONNX Runtime, ai-edge-quantizer, TensorRT, CoreML) calibrates from a
:class:`CalibrationSource`, so there is one notion of "the calibration set" and no per-format copy.
A source is a list of *items* (files, frame numbers, dataset indices, synthetic indices) chosen once,
deterministically from ``size`` and ``seed``, plus a loader turning an item into an RGB uint8 image.
It is iterated as many times as a tool wants (ai-edge-quantizer walks it twice, a cache fingerprints
it first) and always yields the same arrays in the same order.

Images become network inputs through exactly :func:`modnet_edge.core.preprocess.preprocess` with the
artifact's :class:`~modnet_edge.core.PreprocessSpec`; a source is *bound* to that spec by the exporter
(:meth:`CalibrationSource.bind`), so calibration sees precisely what the predictor will feed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import PreprocessSpec
from modnet_edge.core.errors import DataError, InputImageError
from modnet_edge.core.files import file_identity
from modnet_edge.core.images import IMAGE_SUFFIXES, to_rgb_uint8
from modnet_edge.core.preprocess import preprocess
from modnet_edge.core.videos import is_video

DEFAULT_SIZE = 64  # images used when the caller does not say (generated and video sources)
MEMORY_LIMIT_BYTES = 512 << 20  # preprocessed sets up to this size are kept in memory after one pass


@dataclasses.dataclass(frozen=True)
class _Item:
    """One selected calibration sample: a display name and the key its loader understands."""

    name: str
    key: Any


def _check_size(size: int | None, seed: int) -> None:
    if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1):
        raise DataError(f"calibration size must be a positive integer, got {size!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise DataError(f"calibration seed must be an integer, got {seed!r}")


def select_indices(available: int, size: int | None, seed: int, what: str = "the data") -> list[int]:
    """``size`` of ``range(available)`` chosen by ``seed``, in ascending order (all when size is None).

    Sorted so that a source reads its files or frames front to back; the same (available, size,
    seed) always gives the same indices.
    """
    _check_size(size, seed)
    if available == 0:
        raise DataError(f"{what} holds no usable calibration samples")
    if size is None or size == available:
        return list(range(available))
    if size > available:
        raise DataError(f"asked for {size} calibration samples but {what} has only {available}; "
                        f"lower the size or add data")
    rng = np.random.default_rng(int(seed))
    return sorted(int(i) for i in rng.choice(available, size=size, replace=False))


class CalibrationSource:
    """A re-iterable set of calibration images, preprocessed with the spec it is bound to.

    Build one with the ``from_*`` constructors (or :func:`as_source`), then iterate
    :meth:`inputs` (network inputs, float32 (1, 3, H, W) or (1, H, W, 3)) or :meth:`images` (RGB).
    ``len(source)`` is the number of samples.  Sources are immutable: :meth:`bind` returns a copy.
    """

    def __init__(self, items: Sequence[_Item], loader: Callable[[Any], Any], description: str,
                 identity: dict[str, Any], spec: PreprocessSpec | None = None, prepared: bool = False,
                 content: Callable[[], Any] | None = None) -> None:
        if not items:
            raise DataError(f"calibration source {description} is empty")
        self._items = tuple(items)
        self._loader = loader
        self.description = description
        self.identity = dict(identity)  # what was asked for (kind, path, size, seed); for reports
        self.spec = spec
        self.prepared = prepared  # items load to network inputs already (from_arrays), not to images
        self._memo: dict[str, list[np.ndarray]] = {}
        self._fingerprints: dict[str, str] = {}
        # what the samples' bytes depend on, read when asked (files' identities for a folder or video,
        # nothing for the seeded generator); None where only the data itself tells (datasets, arrays)
        self._content = content

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, folder: str | Path, size: int | None = None, seed: int = 0,
                    recursive: bool = False) -> CalibrationSource:
        """Image files in ``folder`` (sorted by path); ``size`` of them chosen by ``seed`` (all when None)."""
        folder = Path(folder)
        if not folder.exists():
            raise DataError("calibration folder does not exist", folder)
        if not folder.is_dir():
            raise DataError("calibration path is not a folder (give a folder of images, a video or "
                            "'synthetic')", folder)
        try:
            pattern = folder.rglob("*") if recursive else folder.iterdir()
            files = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        except PermissionError as exc:
            raise DataError(f"calibration folder is not readable ({exc.strerror})", folder) from None
        if not files:
            raise DataError(f"calibration folder holds no images (looked for {', '.join(IMAGE_SUFFIXES)}"
                            f"{' recursively' if recursive else ''})", folder)
        chosen = select_indices(len(files), size, seed, f"calibration folder {folder}")
        items = [_Item(str(files[i].relative_to(folder)), files[i]) for i in chosen]
        return cls(items, _read_file, f"folder {folder}",
                   {"kind": "folder", "path": str(folder.resolve()), "size": len(items), "seed": seed,
                    "available": len(files)},
                   content=lambda: tuple(file_identity(it.key) for it in items))

    @classmethod
    def from_video(cls, video: str | Path, size: int = DEFAULT_SIZE, seed: int = 0) -> CalibrationSource:
        """``size`` frames of ``video`` chosen by ``seed`` (decoded with PyAV)."""
        from modnet_edge.calibration.video import VideoFrameReader, count_frames

        video = Path(video)
        total = count_frames(video)
        chosen = select_indices(total, size, seed, f"video {video} ({total} frames)")
        items = [_Item(f"{video.name}#frame{i}", i) for i in chosen]
        return cls(items, VideoFrameReader(video), f"video {video}",
                   {"kind": "video", "path": str(video.resolve()), "size": len(items), "seed": seed,
                    "available": total}, content=lambda: file_identity(video))

    @classmethod
    def from_dataset(cls, dataset: Sequence[Any], size: int | None = None, seed: int = 0,
                     name: str = "dataset") -> CalibrationSource:
        """Samples of an indexable dataset (``len`` and ``[i]``), ``size`` of them chosen by ``seed``.

        An item may be an image (path, PIL image, array), an object with an ``rgb`` or ``image``
        attribute (e.g. a synthetic ``PortraitSample``), a dict with an ``"image"``/``"rgb"`` key, or a
        tuple whose first element is the image.
        """
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise DataError(f"{name} must support len() and indexing to be sampled reproducibly; "
                            f"got {type(dataset).__name__} (use from_images for iterables)")
        chosen = select_indices(len(dataset), size, seed, name)
        items = [_Item(f"{name}[{i}]", i) for i in chosen]
        return cls(items, lambda i: _image_of(dataset[i], f"{name}[{i}]"), name,
                   {"kind": "dataset", "name": name, "size": len(items), "seed": seed, "available": len(dataset)})

    @classmethod
    def from_images(cls, images: Iterable[Any] | Callable[[], Iterable[Any]], size: int | None = None,
                    seed: int = 0, name: str = "images") -> CalibrationSource:
        """Images from a sequence (sampled by ``seed``) or a zero-argument factory of an iterable.

        A factory (e.g. ``lambda: my_generator(seed=3)``) is called on each pass and its first ``size``
        images are used; it must yield the same images every time (a seeded generator).
        """
        if callable(images) and not isinstance(images, (list, tuple)):
            factory = images
            count = size
            if count is None:
                count = sum(1 for _ in factory())
            _check_size(count, seed)
            return cls([_Item(f"{name}[{i}]", i) for i in range(count)], _FactoryLoader(factory, count, name),
                       name, {"kind": "factory", "name": name, "size": count})
        if isinstance(images, (str, Path, np.ndarray)) or not isinstance(images, Sequence):
            if isinstance(images, (str, Path, np.ndarray)):
                raise DataError(f"from_images takes a sequence of images, not a single {type(images).__name__}")
            images = list(images)
        return cls.from_dataset(images, size, seed, name)

    @classmethod
    def from_synthetic(cls, size: int = DEFAULT_SIZE, seed: int = 0,
                       image_size: tuple[int, int] = (512, 512)) -> CalibrationSource:
        """The built-in synthetic portraits (:mod:`modnet_edge.training.synthetic`): samples 0..size-1."""
        _check_size(size, seed)
        h, w = int(image_size[0]), int(image_size[1])
        items = [_Item(f"synthetic[{i}]", i) for i in range(size)]
        return cls(items, lambda i: _synthetic_rgb(seed, i, h, w), f"synthetic portraits (seed {seed})",
                   {"kind": "synthetic", "size": size, "seed": seed, "image_size": [h, w]},
                   content=lambda: ("generated", seed, h, w))

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], name: str = "arrays") -> CalibrationSource:
        """Already preprocessed network inputs (float32, rank 4, batch 1), used exactly as given."""
        arrays = list(arrays)
        for i, a in enumerate(arrays):
            if not isinstance(a, np.ndarray) or a.ndim != 4 or a.shape[0] != 1:
                raise DataError(f"{name}[{i}] must be a (1, C, H, W) or (1, H, W, C) array, got "
                                f"{getattr(a, 'shape', type(a).__name__)}")
        items = [_Item(f"{name}[{i}]", i) for i in range(len(arrays))]
        return cls(items, lambda i: np.ascontiguousarray(arrays[i], dtype=np.float32), name,
                   {"kind": "arrays", "size": len(arrays)}, prepared=True)

    # -- use ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        bound = f", bound to {self._spec_text(self.spec)}" if self.spec else ""
        return f"CalibrationSource({self.description}, {len(self)} samples{bound})"

    @property
    def names(self) -> list[str]:
        return [it.name for it in self._items]

    def bind(self, spec: PreprocessSpec) -> CalibrationSource:
        """This source preprocessed with ``spec`` (the artifact's); refuses a source bound to another spec."""
        if self.spec is not None and self.spec != spec:
            raise DataError(f"calibration source {self.description} is bound to preprocessing "
                            f"{self._spec_text(self.spec)} but the model takes {self._spec_text(spec)}")
        if self.spec == spec:
            return self
        return CalibrationSource(self._items, self._loader, self.description, self.identity, spec, self.prepared,
                                 self._content)

    def subset(self, start: int, stop: int) -> CalibrationSource:
        """Samples ``start`` to ``stop - 1`` as a source of their own (same loader and spec), for tools
        that calibrate in chunks to bound memory."""
        if not 0 <= start < stop <= len(self):
            raise DataError(f"subset [{start}, {stop}) is outside the {len(self)} samples of {self.description}")
        return CalibrationSource(self._items[start:stop], self._loader, f"{self.description} [{start}:{stop}]",
                                 self.identity, self.spec, self.prepared, self._content)

    def images(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, RGB uint8 (H, W, 3)) for every sample, in order."""
        if self.prepared:
            raise DataError(f"calibration source {self.description} holds preprocessed arrays, not images")
        for item in self._items:
            yield item.name, self._load_rgb(item)

    def inputs(self) -> Iterator[np.ndarray]:
        """Network inputs for every sample, in order: ``preprocess(image, spec)`` of the bound spec."""
        if not self.prepared and self.spec is None:
            raise DataError(f"calibration source {self.description} is not bound to a preprocessing spec; "
                            "call bind(spec) (exporters do this with the artifact's spec)")
        key = self._spec_key()
        if key in self._memo:
            yield from self._memo[key]
            return
        kept: list[np.ndarray] | None = []
        total, digest = 0, hashlib.sha256()
        for item in self._items:
            x = self._load_input(item)
            _update_digest(digest, x)
            total += x.nbytes
            if kept is not None:
                kept = kept if total <= MEMORY_LIMIT_BYTES else None
                if kept is not None:
                    kept.append(x)
            yield x
        self._fingerprints[key] = digest.hexdigest()
        known = self._known_key(key)
        if known is not None:
            _remember_fingerprint(known, self._fingerprints[key])
        if kept is not None:
            self._memo[key] = kept

    def fingerprint(self) -> str:
        """sha256 of every network input (shape, dtype, bytes) in order: the data half of a cache key."""
        key = self._spec_key()
        if key not in self._fingerprints:
            known = self._known_key(key)
            if known is not None and known in _FINGERPRINTS:
                self._fingerprints[key] = _FINGERPRINTS[known]
            else:
                for _ in self.inputs():
                    pass
        return self._fingerprints[key]

    def _known_key(self, spec_key: str) -> tuple[Any, ...] | None:
        """What the fingerprint is remembered under across sources of this process: the samples (by name),
        what their bytes depend on, and the spec; None for data only its bytes identify."""
        if self._content is None:
            return None
        try:
            content = self._content()
        except OSError:  # a file gone: read (and fail) as without the memo
            return None
        return (tuple(it.name for it in self._items), content, spec_key)

    def input_shape(self) -> tuple[int, ...]:
        """Shape of the first network input (all of them share it when the spec has a fixed size)."""
        return next(iter(self.inputs())).shape

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the calibration data."""
        out = dict(self.identity, samples=len(self), description=self.description)
        if self.spec is not None or self.prepared:
            out["data_sha256"] = self.fingerprint()
        return out

    # -- internals -------------------------------------------------------------------------------
    def _load_rgb(self, item: _Item) -> np.ndarray:
        try:
            raw = self._loader(item.key)
            return to_rgb_uint8(raw, item.name)
        except InputImageError as exc:
            raise DataError(f"calibration sample {item.name} is unusable: {exc}") from None

    def _load_input(self, item: _Item) -> np.ndarray:
        if self.prepared:
            x = self._loader(item.key)
            if self.spec is not None:
                _check_prepared(x, self.spec, item.name)
            return x
        return preprocess(self._load_rgb(item), self.spec)  # type: ignore[arg-type]

    def _spec_key(self) -> str:
        return "prepared" if self.spec is None else repr(sorted(self.spec.to_dict().items()))

    @staticmethod
    def _spec_text(spec: PreprocessSpec | None) -> str:
        if spec is None:
            return "none"
        size = "x".join(map(str, spec.fixed_size)) if spec.fixed_size else f"ref {spec.ref_size}"
        return f"{spec.layout} {size}"


# fingerprints of this process by :meth:`CalibrationSource._known_key`: every INT8 candidate of a precision
# search opens a new source over the same samples, and preprocessing and hashing all of them again for
# its cache key took 0.2 s a candidate (23 in one search)
_FINGERPRINTS: dict[tuple[Any, ...], str] = {}


def _remember_fingerprint(key: tuple[Any, ...], digest: str) -> None:
    if len(_FINGERPRINTS) >= 64:
        _FINGERPRINTS.pop(next(iter(_FINGERPRINTS)))
    _FINGERPRINTS[key] = digest


@functools.lru_cache(maxsize=64)
def _synthetic_rgb(seed: int, index: int, height: int, width: int) -> np.ndarray:
    """One generated portrait, drawn once per process (read-only): every INT8 candidate of a precision
    search opens a new source over the same samples, and drawing them again for each one's cache key was
    56 s of a pipeline run (16 samples, 22 exports)."""
    from modnet_edge.training.synthetic import render_portrait

    rgb = render_portrait(seed, index, height, width).rgb
    rgb.setflags(write=False)
    return rgb


def _check_prepared(x: np.ndarray, spec: PreprocessSpec, name: str) -> None:
    chan_axis = 1 if spec.layout == "NCHW" else 3
    hw = x.shape[2:4] if spec.layout == "NCHW" else x.shape[1:3]
    if x.shape[chan_axis] != 3 or (spec.fixed_size and tuple(hw) != tuple(spec.fixed_size)):
        want = (1, 3, *spec.fixed_size) if spec.layout == "NCHW" and spec.fixed_size else spec.layout
        raise DataError(f"calibration array {name} has shape {x.shape}; the model takes {want}")


def _update_digest(digest: Any, x: np.ndarray) -> None:
    digest.update(f"{x.shape}{x.dtype}".encode())
    digest.update(np.ascontiguousarray(x).tobytes())


def _read_file(path: Path) -> np.ndarray:
    return to_rgb_uint8(path, str(path))


def _image_of(sample: Any, name: str) -> Any:
    """The image inside a dataset item (see :meth:`CalibrationSource.from_dataset`)."""
    if isinstance(sample, dict):
        for key in ("image", "rgb", "img"):
            if key in sample:
                return sample[key]
        raise DataError(f"{name} is a dict without an 'image' or 'rgb' entry (keys: {sorted(sample)})")
    if isinstance(sample, tuple) and sample:
        return sample[0]
    for attr in ("rgb", "image"):
        if hasattr(sample, attr) and not isinstance(sample, np.ndarray):
            return getattr(sample, attr)
    return sample


@dataclasses.dataclass
class _FactoryLoader:
    """Loads image ``i`` of a factory's iterable; walks one fresh iterator per pass, front to back."""

    factory: Callable[[], Iterable[Any]]
    count: int
    name: str
    _iter: Iterator[Any] | None = None
    _next: int = 0

    def __call__(self, index: int) -> Any:
        if self._iter is None or index < self._next:
            self._iter, self._next = iter(self.factory()), 0
        while self._next <= index:
            try:
                value = next(self._iter)
            except StopIteration:
                raise DataError(f"{self.name} yielded only {self._next} images; {self.count} were asked for") from None
            self._next += 1
        return _image_of(value, f"{self.name}[{index}]")


def as_source(data: Any, size: int | None = None, seed: int = 0) -> CalibrationSource:
    """Whatever a user passes as ``calibration=``, as a :class:`CalibrationSource`.

    A source (``size``/``seed`` must then be left unset); a folder of images; a video file; the word
    ``"synthetic"``; a sequence of images; or a zero-argument factory of an image iterable.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"calibration size must be a positive number of samples (or unset: {DEFAULT_SIZE}), "
                        f"got {size!r}")
    if isinstance(data, CalibrationSource):
        if size is not None and size != len(data):
            raise DataError(f"calibration source already has {len(data)} samples; size={size} cannot change it")
        return data
    if data is None:
        raise DataError("INT8 export needs calibration data: pass calibration= a folder of representative "
                        "images, a video, 'synthetic', or a CalibrationSource")
    if isinstance(data, str) and data == "synthetic":
        return CalibrationSource.from_synthetic(size or DEFAULT_SIZE, seed)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if is_video(path) and not path.is_dir():
            if not path.is_file():
                raise DataError("calibration video does not exist", path)
            return CalibrationSource.from_video(path, size or DEFAULT_SIZE, seed)
        return CalibrationSource.from_folder(path, size, seed)
    if callable(data) or isinstance(data, Iterable):
        return CalibrationSource.from_images(data, size, seed)
    raise DataError(f"cannot calibrate from a {type(data).__name__}; pass a folder, a video, 'synthetic', "
                    "a sequence of images or a CalibrationSource")
