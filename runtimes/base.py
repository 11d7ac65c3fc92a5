"""The backend contract: one model file in, named arrays in and out.

Each runtime is one small subclass that implements ``_run_impl`` (and opens its model in ``__init__``).
The base class does once, for every runtime, what they would otherwise each get slightly wrong: checking
the feed against the model's declared inputs (names, rank, static dimensions, dtype), timing each call,
and closing as a context manager.  Backends know nothing about matting: they run any model file of
their format, reading input names, shapes and dtypes from the model itself.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import ArtifactMetadata
from modnet_edge.core.errors import FeedError


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output; a dimension is an int when static, a name or None when dynamic."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: np.dtype

    @property
    def layout(self) -> str | None:
        """NCHW or NHWC for a 4-D image tensor with 1 or 3 channels, guessed from the static dims."""
        if len(self.shape) != 4:
            return None
        c_first, c_last = self.shape[1], self.shape[3]
        if c_first in (1, 3) and c_last not in (1, 3):
            return "NCHW"
        if c_last in (1, 3) and c_first not in (1, 3):
            return "NHWC"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": str(np.dtype(self.dtype))}


class Backend(abc.ABC):
    """Runs one model file.  Use as a context manager; ``run`` takes and returns name -> array dicts."""

    format: str = ""
    runtime: str = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.embedded_metadata: ArtifactMetadata | None = None
        self.last_inference_s: float | None = None
        self.timings_s: list[float] = []
        self.device: str = "cpu"

    # -- the public, checked API ------------------------------------------------------------------
    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_feed(feed)
        start = time.perf_counter()
        out = self._run_impl(feed)
        self.last_inference_s = time.perf_counter() - start
        self.timings_s.append(self.last_inference_s)
        return out

    def prepare_input(self, name: str, array: np.ndarray) -> np.ndarray:
        """Convert a float32 array for input ``name`` to what the model takes (float16 for fp16 models);
        an array already of the model's type (8-bit pixels for a uint8 input) passes as it is.

        Backends with quantised inputs override this to quantise from the model's own parameters.
        """
        info = self._input(name)
        if array.dtype == info.dtype or np.issubdtype(info.dtype, np.floating):
            return array.astype(info.dtype, copy=False)
        raise FeedError(f"input '{name}' is {info.dtype}; this backend cannot convert float data to it", self.path)

    def close(self) -> None:
        """Release the runtime session; the backend cannot be used afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {"format": self.format, "runtime": self.runtime, "device": self.device, "path": str(self.path),
                "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    # -- for subclasses ---------------------------------------------------------------------------
    @abc.abstractmethod
    def _run_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on an already-checked feed."""

    def _input(self, name: str) -> TensorInfo:
        for info in self.inputs:
            if info.name == name:
                return info
        raise FeedError(f"model has no input '{name}' (inputs: {[i.name for i in self.inputs]})", self.path)

    def _check_feed(self, feed: dict[str, np.ndarray]) -> None:
        names = {i.name for i in self.inputs}
        missing, unknown = names - set(feed), set(feed) - names
        if missing or unknown:
            raise FeedError(f"feed does not match the model inputs: missing {sorted(missing)}, "
                            f"unknown {sorted(unknown)}", self.path)
        for info in self.inputs:
            arr = feed[info.name]
            if not isinstance(arr, np.ndarray):
                raise FeedError(f"input '{info.name}' must be a numpy array, got {type(arr).__name__}", self.path)
            if arr.dtype != info.dtype:
                raise FeedError(f"input '{info.name}' must be {info.dtype}, got {arr.dtype}"
                                + (" (quantised model: use prepare_input or the predictor)"
                                   if np.issubdtype(info.dtype, np.integer) else ""), self.path)
            if arr.ndim != len(info.shape):
                raise FeedError(f"input '{info.name}' must have rank {len(info.shape)} {list(info.shape)}, "
                                f"got shape {arr.shape}", self.path)
            for axis, (want, got) in enumerate(zip(info.shape, arr.shape)):
                if isinstance(want, int) and want > 0 and want != got:
                    raise FeedError(f"input '{info.name}' dimension {axis} must be {want}, got shape "
                                    f"{arr.shape} (model shape {list(info.shape)})", self.path)
