"""A calibration cache: activation ranges keyed by model hash + data hash + method.

Calibrating runs the float model over every calibration image with all intermediate tensors kept,
which for MODNet at 512x512 costs far more than quantising.  The ranges depend only on the float
model, the preprocessed data, the method (and its parameters) and the tool that computed them, so
they are stored under a key made of exactly those, and reused whenever the same export is repeated
(another precision variant, a re-run of the pipeline, a different keep-in-float choice).

The payload is opaque to the cache: each tool stores what it can read back (ONNX Runtime's own JSON
of ``TensorsData``, ai-edge-quantizer's QSV dictionary, TensorRT's calibration table bytes).  Entries
are written atomically (never a half-written file) with a small JSON sidecar naming the key's parts,
so a human can see what an entry is for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modnet_edge.core import atomic_output, atomic_write_text
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

    def has(self, key: CacheKey, suffix: str = ".json") -> bool:
        found = self.path(key, suffix).is_file() and self.path(key, suffix).stat().st_size > 0
        if found:
            self.hits += 1
        else:
            self.misses += 1
        return found

    @contextlib.contextmanager
    def store(self, key: CacheKey, suffix: str = ".json") -> Iterator[Path]:
        """Yield a temporary path to write the payload to; it becomes the entry only if the block succeeds."""
        target = self.path(key, suffix)
        with atomic_output(target, suffix=suffix) as tmp:
            yield tmp
        atomic_write_text(target.with_name(target.name + ".key.json"), json.dumps(key.to_dict(), indent=2) + "\n")

    def read_bytes(self, key: CacheKey, suffix: str = ".bin") -> bytes | None:
        """The payload of an entry, or None (counts as a hit or a miss)."""
        return self.path(key, suffix).read_bytes() if self.has(key, suffix) else None

    def write_bytes(self, key: CacheKey, data: bytes, suffix: str = ".bin") -> Path:
        with self.store(key, suffix) as tmp:
            tmp.write_bytes(data)
        return self.path(key, suffix)


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
