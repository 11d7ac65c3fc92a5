"""modnet-edge: MODNet portrait matting from PyTorch training to phones, edge boxes and GPUs.

Public API (the contract the CLI mirrors one to one)::

    load_network(checkpoint)                     -> torch.nn.Module (matte-only, inference mode)
    export(checkpoint, format, precision, output, budget=None, **options) -> Path
                                                   (budget: the fastest variant within a drift budget)
    load(path, **options)                        -> MattingPredictor  (predictor.predict(image) -> alpha)
    open_backend(model_file, **options)          -> Backend (.inputs, .outputs, .run(feed))
    parity(artifacts, images, ...)               -> ParityReport
    diagnose(artifact, images)                   -> Diagnosis (per-layer drift: where it starts)
    benchmark(artifacts, sizes=..., modes=...)   -> list[BenchResult]  (one interleaved run)
    pipeline(checkpoint=None, output=DIR)        -> manifest dict (manifest["pass"] is the verdict)

Stage packages are imported lazily so ``import modnet_edge`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from modnet_edge.core import FORMATS, VERSION, ArtifactMetadata, PreprocessSpec
from modnet_edge.core.errors import (ArtifactError, BackendUnavailableError, BudgetError, CheckpointError, ConfigError, DataError,
                     FeedError, InputImageError, MetadataError, ModnetEdgeError)

__version__ = VERSION

_LAZY = {
    "load_network": ("modnet_edge.model.checkpoint", "load_network"),
    "load": ("modnet_edge.runtimes.loader", "load"),
    "open_backend": ("modnet_edge.runtimes.loader", "open_backend"),
    "parity": ("modnet_edge.parity_tests.parity", "run_parity"),
    "benchmark": ("modnet_edge.benchmarks.runner", "benchmark"),
    "pipeline": ("modnet_edge.pipeline", "pipeline"),
    "evaluate": ("modnet_edge.benchmarks.evaluate", "evaluate"),
    "diagnose": ("modnet_edge.parity_tests.doctor", "diagnose"),
    "search_precision": ("modnet_edge.precision_search", "search_precision"),
    "CalibrationSource": ("modnet_edge.calibration.source", "CalibrationSource"),
}
_SUBPACKAGES = ("train", "export", "runtimes", "calibration", "parity_tests", "benchmarks")

__all__ = ["FORMATS", "ArtifactMetadata", "PreprocessSpec", "ModnetEdgeError", "InputImageError",
           "CheckpointError", "ArtifactError", "MetadataError", "BackendUnavailableError", "ConfigError",
           "DataError", "FeedError", "BudgetError", "export", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"modnet_edge.{name}")
    raise AttributeError(f"module 'modnet_edge' has no attribute {name!r}")
