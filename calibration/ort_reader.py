"""The ONNX Runtime calibration reader over a :class:`~.source.CalibrationSource` (its own module because
it subclasses ``onnxruntime.quantization.CalibrationDataReader`` when imported: the other adapters, in
:mod:`.adapters`, must not need ONNX Runtime)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from modnet_edge.calibration.adapters import batched_inputs
from modnet_edge.calibration.source import CalibrationSource


class OrtCalibrationReader(CalibrationDataReader):  # type: ignore[misc]
    """ONNX Runtime ``CalibrationDataReader`` over a source: ``get_next()`` -> {input_name: batch}.

    ``rewind()`` starts a new pass (the source is re-iterable); ``len()`` is the number of batches.
    """

    def __init__(self, source: CalibrationSource, input_name: str, shape: Sequence[int | str | None],
                 dtype: Any = np.float32) -> None:
        self.source, self.input_name, self.shape, self.dtype = source, input_name, list(shape), dtype
        self._iter: Iterator[np.ndarray] | None = None
        self._range: tuple[int, int] | None = None
        self.samples_read = 0

    def set_range(self, start_index: int, end_index: int) -> None:
        """Read only batches ``start_index`` .. ``end_index - 1`` from now on (chunked calibration:
        ONNX Runtime's ``CalibStridedMinMax`` collects and merges ranges chunk by chunk)."""
        batch = self._batch()
        stop = min(end_index, len(self)) * batch
        self._range = (start_index * batch, stop)
        self._iter = None

    def _batch(self) -> int:
        return self.shape[0] if isinstance(self.shape[0], int) and self.shape[0] > 0 else 1

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            source = self.source if self._range is None else self.source.subset(*self._range)
            self._iter = batched_inputs(source, self.shape, self.input_name, self.dtype)
        x = next(self._iter, None)
        if x is None:
            return None
        self.samples_read += x.shape[0]
        return {self.input_name: x}

    def rewind(self) -> None:
        self._iter = None

    def __len__(self) -> int:
        return len(self.source) // self._batch()
