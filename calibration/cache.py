"""A calibration cache: activation ranges keyed by model hash + data hash + method.

Calibrating runs the float model over every calibration image with all intermediate tensors kept,
which for MODNet at 512x512 costs far more than quantising.  The ranges depend only on the float
model, the preprocessed data, the method (and its parameters) and the tool that computed them, so
they are stored under a key made of exactly those, and reused whenever the same export is repeated
(another precision variant, a re-run of the pipeline, a different keep-in-float choice).

The payload is opaque to the cache: each tool stores what it can read back (ONNX Runtime's own JSON
of ``TensorsData``, ai-edge-quantizer's QSV dictionary, TensorRT's calibration table bytes).  Entries
are written atomically (never a half-written file) with a small JSON sidecar naming the key's parts and
the payload's sha256.  An entry is trusted only when it proves sound (:meth:`CalibrationCache.lookup`):
its sidecar names this key and the payload's current sha256, and the tool's checks accept the payload
(:func:`check_ranges`: schema, finite, ordered, plausible).  A bad entry -- corrupted, cut short, edited
-- is set aside, never deleted, with a one-line note, and the ranges are calculated again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core import atomic_output, atomic_write_text, sha256_path
from modnet_edge.core.errors import ConfigError

ENV_VAR = "MODNET_EDGE_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$MODNET_EDGE_CACHE_DIR/calibration``, else ``$XDG_CACHE_HOME`` or ``~/.cache``/modnet-edge/calibration."""
    root = os.environ.get(ENV_VAR)
    if root:
        return Path(root) / "calibration"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "modnet-edge" / "calibration"


@dataclass(frozen=True)
class CacheKey:
    """The parts a set of activation ranges depends on; ``digest`` names the entry."""

    tool: str  # e.g. "onnxruntime-1.31.1"
    model_sha256: str  # the float model that was calibrated (its graph, not its metadata)
    data_sha256: str  # CalibrationSource.fingerprint()
    method: str  # minmax | entropy | percentile ...
    params: tuple[tuple[str, str], ...] = ()  # method parameters that change the ranges

    @classmethod
    def make(cls, tool: str, model_sha256: str, data_sha256: str, method: str, **params: Any) -> CacheKey:
        return cls(tool, model_sha256, data_sha256, method,
                   tuple(sorted((k, json.dumps(v, sort_keys=True, default=str)) for k, v in params.items())))

    @property
    def digest(self) -> str:
        text = json.dumps([self.tool, self.model_sha256, self.data_sha256, self.method, list(self.params)])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "model_sha256": self.model_sha256, "data_sha256": self.data_sha256,
                "method": self.method, "params": dict(self.params), "digest": self.digest}


class CalibrationCache:
    """Activation-range entries in one folder.  ``CalibrationCache(None)`` uses :func:`default_cache_dir`.

    Typical use by a quantiser::

        entry = cache.path(key, ".json")
        if not cache.has(key, ".json"):
            with cache.store(key, ".json") as tmp:
                compute_ranges_into(tmp)
        use_ranges_from(entry)

    ``hits`` / ``misses`` count lookups through :meth:`has`, for reports and tests.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError("calibration cache path exists and is not a folder", self.root)
        self.hits = 0
        self.misses = 0

    def path(self, key: CacheKey, suffix: str = ".json") -> Path:
        return self.root / f"{key.method}-{key.digest}{suffix}"

    def lookup(self, key: CacheKey, suffix: str = ".json",
               check: Callable[[bytes], None] | None = None) -> Path | None:
        """The entry of ``key`` when it is there and sound, else None (a miss: the caller recalculates).

        Sound: a regular file whose sidecar names this key and the payload's sha256, and which ``check``
        (the tool's schema and range checks, raising ``ValueError`` with the reason) accepts.  A bad entry
        is set aside (renamed ``<entry>.invalid-<time>``, never deleted) with a one-line note on stderr."""
        path = self.path(key, suffix)
        if not (path.exists() or path.is_symlink()):
            self.misses += 1
            return None
        problem = self._problem(key, path, check)
        if problem is None:
            self.hits += 1
            return path
        self.misses += 1
        kept = self._set_aside(path)
        print(f"note: calibration cache entry {path} is unusable ({problem}); recalculating it"
              + (f" (the bad entry is kept as {kept.name})" if kept else ""), file=sys.stderr)
        return None

    def has(self, key: CacheKey, suffix: str = ".json", check: Callable[[bytes], None] | None = None) -> bool:
        return self.lookup(key, suffix, check) is not None

    def _problem(self, key: CacheKey, path: Path, check: Callable[[bytes], None] | None) -> str | None:
        if path.is_symlink() or not path.is_file():
            return "not a regular file"
        sidecar = self._sidecar(path)
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return "its key record is missing or unreadable"
        if not isinstance(record, dict) or {k: v for k, v in record.items() if k != "payload_sha256"} != key.to_dict():
            return "its key record names another key"
        if record.get("payload_sha256") != sha256_path(path):
            return "its content does not match the sha256 recorded when it was written (changed or corrupted)"
        if check is not None:
            try:
                check(path.read_bytes())
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".key.json")

    def _set_aside(self, path: Path) -> Path | None:
        """Rename a bad entry (and its key record) out of the way; nothing is deleted."""
        stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        kept = None
        for old in (path, self._sidecar(path)):
            if old.exists() or old.is_symlink():
                new = old.with_name(f"{old.name}.invalid-{stamp}")
                try:
                    os.replace(old, new)
                except OSError:
                    continue
                kept = kept or new
        return kept

    @contextlib.contextmanager
    def store(self, key: CacheKey, suffix: str = ".json") -> Iterator[Path]:
        """Yield a temporary path to write the payload to; it becomes the entry only if the block succeeds."""
        target = self.path(key, suffix)
        with atomic_output(target, suffix=suffix) as tmp:
            yield tmp
        record = {**key.to_dict(), "payload_sha256": sha256_path(target)}
        atomic_write_text(self._sidecar(target), json.dumps(record, indent=2) + "\n")

    def read_bytes(self, key: CacheKey, suffix: str = ".bin",
                   check: Callable[[bytes], None] | None = None) -> bytes | None:
        """The payload of a sound entry, or None (counts as a hit or a miss)."""
        path = self.lookup(key, suffix, check)
        return path.read_bytes() if path is not None else None

    def write_bytes(self, key: CacheKey, data: bytes, suffix: str = ".bin") -> Path:
        with self.store(key, suffix) as tmp:
            tmp.write_bytes(data)
        return self.path(key, suffix)


# Plausibility of activation ranges: nothing MODNet computes comes near float16's largest finite value
# (every fp16 artifact would overflow), so a range beyond it is corruption, not a measurement.
FLOAT16_MAX = 65504.0


def check_ranges(ranges: Mapping[str, tuple[Any, Any]], exact: Mapping[str, tuple[float, float]] | None = None) -> None:
    """Raise ``ValueError`` naming the first implausible activation range: empty, mismatched, NaN or
    infinite, min above max, beyond :data:`FLOAT16_MAX`; and a tensor of ``exact`` (name -> the bounds
    it cannot leave, e.g. the normalised model input) reaching outside them."""
    if not ranges:
        raise ValueError("it holds no tensor ranges")
    for name, (low, high) in ranges.items():
        lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        if lo.size == 0 or lo.shape != hi.shape:
            raise ValueError(f"tensor {name!r}: empty or mismatched min/max")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(f"tensor {name!r}: its range holds NaN or infinity")
        if (lo > hi).any():
            raise ValueError(f"tensor {name!r}: min above max")
        if max(float(np.abs(lo).max()), float(np.abs(hi).max())) > FLOAT16_MAX:
            raise ValueError(f"tensor {name!r}: range beyond +-{FLOAT16_MAX:g}, implausible for any activation")
        if exact and name in exact:
            a, b = exact[name]
            slack = 1e-3 * (b - a)
            if float(lo.min()) < a - slack or float(hi.max()) > b + slack:
                raise ValueError(f"tensor {name!r} spans [{float(lo.min()):g}, {float(hi.max()):g}] but can only "
                                 f"take values in [{a:g}, {b:g}]")


def input_bounds(spec: Any) -> tuple[float, float]:
    """The values a normalised image can take under ``spec`` (pixels 0..1 through its mean and std)."""
    lows = [(0.0 - m) / s for m, s in zip(spec.mean, spec.std)]
    highs = [(1.0 - m) / s for m, s in zip(spec.mean, spec.std)]
    return min(lows), max(highs)


def resolve_cache(option: CalibrationCache | str | Path | bool | None) -> CalibrationCache | None:
    """An exporter's ``calibration_cache=`` option: None/True -> default folder, False -> no cache,
    a path -> that folder, a :class:`CalibrationCache` -> itself."""
    if option is False:
        return None
    if option is None or option is True:
        return CalibrationCache()
    if isinstance(option, CalibrationCache):
        return option
    if isinstance(option, (str, Path)):
        return CalibrationCache(option)
    raise ConfigError(f"calibration_cache must be a folder, True/False or a CalibrationCache, not {option!r}")
