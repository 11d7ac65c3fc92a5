"""Adapters from the one :class:`~.source.CalibrationSource` to each tool that calibrates.

Every adapter takes a source already bound to the artifact's preprocessing and the model input it
will feed (name, shape, layout), checks each sample against that input before the tool sees it (a
wrong-shaped set fails here with a message naming the sample, not deep inside a calibrator), and
stacks samples into the model's static batch when it has one.  ONNX Runtime's reader subclasses that
tool's class, so it lives in :mod:`.ort_reader`: importing this module (the LiteRT adapter) needs
no ONNX Runtime, and using one format never requires another's package.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from modnet_edge.core.errors import DataError

from modnet_edge.calibration.source import CalibrationSource


def check_input(x: np.ndarray, shape: Sequence[int | str | None], name: str, input_name: str,
                dtype: Any = np.float32) -> None:
    """Refuse a calibration array that cannot be fed to a model input of ``shape`` (static dims must match)."""
    if x.ndim != len(shape):
        raise DataError(f"calibration sample {name} has shape {x.shape} but model input '{input_name}' has rank "
                        f"{len(shape)} {list(shape)}")
    for axis, (want, got) in enumerate(zip(shape, x.shape)):
        if isinstance(want, (int, np.integer)) and want > 0 and want != got:
            raise DataError(f"calibration sample {name} has shape {tuple(x.shape)} but model input "
                            f"'{input_name}' is {list(shape)} (dimension {axis} must be {want}); export and "
                            "calibrate with the same input shape and layout")
    if np.dtype(x.dtype) != np.dtype(dtype):
        raise DataError(f"calibration sample {name} is {x.dtype}; model input '{input_name}' takes {np.dtype(dtype)}")


def batched_inputs(source: CalibrationSource, shape: Sequence[int | str | None], input_name: str,
                   dtype: Any = np.float32) -> Iterator[np.ndarray]:
    """The source's inputs, stacked to the model's static batch size (1 or dynamic: one per sample).

    ``dtype``: what the model input takes.  8-bit pixels (a source bound to an 8-bit-input spec) are
    given to a float input as their float values: the float model an 8-bit artifact is quantised from
    reads the pixels as floats 0..255."""
    batch = shape[0] if shape and isinstance(shape[0], (int, np.integer)) and shape[0] > 0 else 1
    if len(source) % batch:
        raise DataError(f"model input '{input_name}' has a static batch of {batch}; the calibration set's "
                        f"{len(source)} samples are not a multiple of it")
    pending: list[np.ndarray] = []
    for name, x in zip(source.names, source.inputs()):
        if x.dtype == np.uint8 and np.issubdtype(np.dtype(dtype), np.floating):
            x = x.astype(dtype)
        check_input(x, [1, *shape[1:]], name, input_name, dtype)
        pending.append(x)
        if len(pending) == batch:
            yield pending[0] if batch == 1 else np.concatenate(pending, axis=0)
            pending = []


def chunk_size(total: int, limit: int = 8) -> int:
    """The largest divisor of ``total`` not above ``limit``: chunks that split the set evenly, as
    ONNX Runtime's strided calibration requires."""
    return max(d for d in range(1, min(limit, total) + 1) if total % d == 0)


class LiteRTCalibrationData:
    """ai-edge-quantizer calibration data for one signature: re-iterable dicts {input_name: array}.

    ai-edge-quantizer walks the dataset twice (once to count, once to calibrate), so this is an
    iterable object, not a generator.  ``as_mapping()`` gives the {signature: dataset} it expects.
    """

    def __init__(self, source: CalibrationSource, input_name: str, shape: Sequence[int | str | None],
                 signature: str = "serving_default") -> None:
        self.source, self.input_name, self.shape, self.signature = source, input_name, list(shape), signature

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for x in batched_inputs(self.source, self.shape, self.input_name):
            yield {self.input_name: x}

    def __len__(self) -> int:
        return len(self.source)

    def as_mapping(self) -> dict[str, LiteRTCalibrationData]:
        return {self.signature: self}
