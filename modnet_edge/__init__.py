"""modnet-edge: MODNet portrait matting from PyTorch training to phones, edge boxes and GPUs.

Public API (the contract the CLI mirrors: ``modnet-edge NAME`` for each function NAME, hyphen for
underscore, with options named like the keywords)::

    load_network(checkpoint)                     -> torch.nn.Module (matte-only, inference mode)
    export(checkpoint, format, precision, output, budget=None, **options) -> Path
                                                   (budget: the fastest variant within a drift budget)
    load(path=None, **options)                   -> MattingPredictor  (predictor.predict(image) -> alpha;
                                                   path: an artifact, a checkpoint, a built-in weights
                                                   name such as "starter", or None: the default weights)
    open_backend(model_file, **options)          -> Backend (.inputs, .outputs, .run(feed))
    predict(artifact, images, output=None, **options) -> Predictions (files written, or mattes in memory;
                                                   artifact None: the default weights)
    parity(artifacts, images, ...)               -> ParityReport
    diagnose(artifact, images)                   -> Diagnosis (per-layer drift: where it starts)
    benchmark(artifacts, sizes=..., modes=..., device_class=None, results=())
                                                 -> BenchmarkReport (list of BenchResult + .verdicts, .passed)
    report(artifacts, output, bench=...)         -> {"pass", "entries", "parity", "output"} (report.html ...)
    pipeline(checkpoint=None, output=DIR)        -> manifest dict (manifest["pass"] is the verdict)
    evaluate(artifact, data_dir)                 -> {"mse", "mad", "sad", "grad", "conn"}
    quality(subjects, portraits=, segmentation=) -> QualityReport (our models and peers side by side)
    info(artifact)                               -> dict (format, runtime, inputs/outputs, metadata)
    train(config, data=None, output=DIR)         -> Path of the best checkpoint
    adapt(checkpoint, data, output)              -> Path of the SOC-adapted checkpoint
    qat(init, output, calibration=, format=)     -> Path of the INT8-robust fine-tuned checkpoint
    tensorrt_build(onnx, output)                 -> Path of the TensorRT engine
    gpu_speed(checkpoint=None, variants=...)     -> list[BenchResult] (PyTorch CUDA / ORT CUDA / TensorRT)
    search_precision(checkpoint, format, precision, output, budget) -> SearchResult

Functions without a command of their own: ``load_network``, ``load`` and ``open_backend`` return live
Python objects (``modnet-edge info`` describes what they open; ``predict`` runs them), and
``search_precision`` is ``modnet-edge export --budget``.  Commands without a function: ``formats``
and ``weights`` print tables that are data here (:data:`FORMATS`, ``modnet_edge.model.weights.WEIGHTS``).
Earlier command names still work: ``bench`` (now ``benchmark``) and ``doctor`` (now ``diagnose``).

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
    "load_network": ("modnet_edge.model.weights", "load_network"),
    "load": ("modnet_edge.runtimes.loader", "load"),
    "open_backend": ("modnet_edge.runtimes.loader", "open_backend"),
    "predict": ("modnet_edge.runtimes.predict", "predict"),
    "parity": ("modnet_edge.parity_tests.parity", "run_parity"),
    "benchmark": ("modnet_edge.benchmarks.runner", "benchmark"),
    "pipeline": ("modnet_edge.main_job", "pipeline"),
    "evaluate": ("modnet_edge.benchmarks.evaluate", "evaluate"),
    "diagnose": ("modnet_edge.parity_tests.doctor", "diagnose"),
    "search_precision": ("modnet_edge.precision_search", "search_precision"),
    "report": ("modnet_edge.report_command", "report"),
    "quality": ("modnet_edge.benchmarks.quality", "compare_quality"),
    "info": ("modnet_edge.runtimes.info_command", "describe"),
    "adapt": ("modnet_edge.training.soc", "adapt"),
    "tensorrt_build": ("modnet_edge.exporters.tensorrt_build", "build_engine"),
    "qat": ("modnet_edge.quant_aware", "qat"),
    "gpu_speed": ("modnet_edge.benchmarks.gpu_speed", "measure_gpu_speed"),
    "CalibrationSource": ("modnet_edge.calibration.source", "CalibrationSource"),
    "train": ("modnet_edge.training", "train"),
}
_SUBPACKAGES = ("training", "exporters", "runtimes", "calibration", "parity_tests", "benchmarks")

__all__ = ["FORMATS", "ArtifactMetadata", "PreprocessSpec", "ModnetEdgeError", "InputImageError",
           "CheckpointError", "ArtifactError", "MetadataError", "BackendUnavailableError", "ConfigError",
           "DataError", "FeedError", "BudgetError", "export", *_LAZY]

# the API functions the command line mirrors (name -> ``modnet-edge`` subcommand, hyphen for underscore);
# tests/test_cli.py keeps this and the CLI's COMMANDS equal, up to the exceptions named in the docstring
MIRRORED = ("export", "predict", "parity", "diagnose", "benchmark", "report", "pipeline", "evaluate", "quality",
            "info", "train", "adapt", "qat", "tensorrt_build", "gpu_speed")


def export(checkpoint: Any = None, format: str = "onnx", precision: str = "fp32", output: Any = None,
           budget: Any = None, **options: Any) -> Any:
    """Export a checkpoint to ``format`` at ``precision`` (the export stage's skeleton,
    :func:`modnet_edge.exporters.skeleton.export_artifact`); returns the artifact path.

    ``budget`` ("auto" or an MSE): search for the fastest variant whose matte drift meets it
    (:func:`search_precision`, which also takes ``images=``, ``ranking_images=``, ``limit=``,
    ``prefer=``); its record is written beside the artifact.  Raises :class:`BudgetError` when no variant
    meets the budget.  The search lives on this floor (it drives the runtimes and the parity check), so
    the export stage never imports upward.
    """
    if budget is None:
        from modnet_edge.exporters.skeleton import export_artifact

        return export_artifact(checkpoint, format, precision, output, **options)
    from pathlib import Path

    from modnet_edge.precision_search import search_precision

    if output is None:
        raise ConfigError("export with a budget needs an output path (the search writes its record beside it)")
    result = search_precision(checkpoint, format, precision, output, budget=budget, **options)
    if result.chosen is None:
        raise BudgetError(result.summary())
    return Path(output)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"modnet_edge.{name}")
    raise AttributeError(f"module 'modnet_edge' has no attribute {name!r}")
