"""calibration: representative data for INT8, shared by every format that quantises.

One source, many tools.  Build a :class:`CalibrationSource` once; every quantiser binds it to its
artifact's preprocessing and feeds it to its tool through an adapter::

    from modnet_edge.calibration import CalibrationSource, as_source

    src = CalibrationSource.from_folder("photos/", size=100, seed=0)   # or from_video / from_dataset /
    src = as_source("photos/", size=100, seed=0)                        #    from_synthetic / from_images
    bound = src.bind(spec)        # spec: the artifact's PreprocessSpec (fixed_size = export input shape)
    for x in bound.inputs(): ...  # float32 (1, 3, H, W) (or NHWC), exactly preprocess(image, spec)
    bound.fingerprint()           # sha256 of those arrays: the data part of a cache key

Selection is deterministic: ``size`` samples out of what the folder/video/dataset holds, chosen by
``seed`` and read in order; asking for more than exist is a :class:`~modnet_edge.core.errors.DataError`.

Adapters (each checks every sample against the model input's static shape and stacks static batches)::

    OrtCalibrationReader(bound, input_name, shape)          # onnxruntime.quantization reader
    LiteRTCalibrationData(bound, input_name, shape).as_mapping()   # ai-edge-quantizer calibrate()

Activation ranges are cached by :class:`CalibrationCache` under a :class:`CacheKey` made of the tool
(and its version), the float model's hash, ``fingerprint()`` and the method; entries are written
atomically and reused.  Exporters take ``calibration_cache=`` (folder, False, or None for the user
cache folder, :func:`default_cache_dir`).
"""

from __future__ import annotations

import importlib
from typing import Any

from modnet_edge.calibration.cache import CacheKey, CalibrationCache, default_cache_dir, resolve_cache
from modnet_edge.calibration.source import DEFAULT_SIZE, CalibrationSource, as_source, select_indices

_LAZY = {  # the adapters import their tool on first use
    "OrtCalibrationReader": ".ort_reader",
    "LiteRTCalibrationData": ".adapters",
    "batched_inputs": ".adapters",
    "check_input": ".adapters",
}

__all__ = ["CalibrationSource", "as_source", "select_indices", "DEFAULT_SIZE", "CacheKey", "CalibrationCache",
           "default_cache_dir", "resolve_cache", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
