"""The matting predictor: RGB image(s) in, alpha matte(s) out, over any backend.

Pre- and post-processing come from the artifact's own metadata (never from the caller), and are the
shared NumPy functions in :mod:`modnet_edge.core.preprocess`, so every format is fed identically.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from modnet_edge.core import ArtifactMetadata, PreprocessSpec
from modnet_edge.core.errors import ArtifactError, MetadataError
from modnet_edge.core.images import ImageLike, to_rgb_uint8
from modnet_edge.core.preprocess import normalise, postprocess, preprocess

from modnet_edge.runtimes.base import Backend, TensorInfo


class MattingPredictor:
    """``predict(image) -> alpha`` (H, W) float32 in [0, 1] at the input's size.

    ``image``: a path, a PIL image or an (H, W[, C]) array (grey, RGB, RGBA, uint8/uint16/float).
    Static-shape artifacts are fed their fixed size; dynamic ones the reference resize rule.
    """

    #: a model that outputs NaN or infinity is an error for a user (clipped, it would be a black matte);
    #: parity turns this off, because there such an output is drift to report (an FP16 overflow), not a crash
    refuse_non_finite: bool = True

    def __init__(self, backend: Backend, metadata: ArtifactMetadata) -> None:
        self.backend = backend
        self.metadata = metadata
        self.input_name, self.output_name = self._resolve_io(backend, metadata)
        in_info = next(i for i in backend.inputs if i.name == self.input_name)
        spec = metadata.preprocessing
        if in_info.layout and in_info.layout != spec.layout:
            raise MetadataError(f"metadata says layout {spec.layout} but the model input is "
                                f"{in_info.layout} {list(in_info.shape)}", backend.path)
        static = in_info.shape[1:3] if spec.layout == "NHWC" else in_info.shape[2:4]
        if all(isinstance(d, int) and d > 0 for d in static) and spec.fixed_size != tuple(static):
            spec = spec.with_fixed_size(tuple(static))  # the model's own static shape wins
        self.spec: PreprocessSpec = spec
        # an 8-bit-input spec fed to a float-input network (the PyTorch reference of such an artifact in
        # parity): the network reads the same rounded pixels, normalised, so parity measures the model only
        self._normalise_pixels = spec.input_dtype == "uint8" and np.issubdtype(in_info.dtype, np.floating)
        if spec.input_dtype == "uint8" and not self._normalise_pixels:
            self._check_pixel_input(backend, in_info)
        self.last_timings_s: dict[str, float] = {}

    def _check_pixel_input(self, backend: Backend, info: TensorInfo) -> None:
        """An 8-bit-input artifact's model must take the pixels without rounding: uint8, or int8 ``p - 128``
        (scale 1, zero point -128 where the runtime reports quantisation parameters)."""
        quantization = getattr(backend, "quantization", None)
        q = quantization(info.name) if quantization is not None else None
        exact = (info.dtype == np.uint8 and q in (None, (1.0, 0))) or (info.dtype == np.int8 and q == (1.0, -128))
        if not exact:
            raise MetadataError(f"metadata says the model reads 8-bit pixels, but its input is {info.dtype}"
                                + (f" with scale {q[0]:g} and zero point {q[1]}" if q else ""), backend.path)

    @staticmethod
    def _resolve_io(backend: Backend, meta: ArtifactMetadata) -> tuple[str, str]:
        ins, outs = [i.name for i in backend.inputs], [o.name for o in backend.outputs]
        if meta.input_name not in ins:
            if len(ins) != 1:
                raise MetadataError(f"metadata names input '{meta.input_name}' but the model has {ins}", backend.path)
            meta_in = ins[0]
        else:
            meta_in = meta.input_name
        if meta.output_name in outs:
            return meta_in, meta.output_name
        if len(outs) == 1:
            return meta_in, outs[0]
        raise MetadataError(f"metadata names output '{meta.output_name}' but the model has {outs}", backend.path)

    def predict(self, image: ImageLike) -> np.ndarray:
        t0 = time.perf_counter()
        rgb = to_rgb_uint8(image, getattr(image, "filename", None) or (image if isinstance(image, str) else "image"))
        x = self.prepare(rgb)
        t1 = time.perf_counter()
        out = self.infer(x)
        t2 = time.perf_counter()
        alpha = self.finish(out, rgb.shape[0], rgb.shape[1])
        t3 = time.perf_counter()
        self.last_timings_s = {"preprocess": t1 - t0, "infer": t2 - t1, "postprocess": t3 - t2, "total": t3 - t0}
        return alpha

    # predict() in three stages, so a video pipeline can run them on different threads at once
    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 -> the model's input (resized, normalised or kept 8-bit, laid out and typed for this
        backend)."""
        return self.backend.prepare_input(self.input_name, self._network_input(rgb))

    def _network_input(self, rgb: np.ndarray) -> np.ndarray:
        x = preprocess(rgb, self.spec)
        return normalise(x, self.spec) if self._normalise_pixels else x

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The model's raw output for a prepared input."""
        return self.backend.run({self.input_name: x})[self.output_name]

    def finish(self, out: np.ndarray, height: int, width: int) -> np.ndarray:
        """Raw output -> alpha (height, width) float32 in [0, 1]."""
        return postprocess(self._dequantize(out), height, width, self.spec.layout)

    __call__ = predict

    def predict_batch(self, images: Iterable[ImageLike], batch_size: int = 8) -> list[np.ndarray]:
        """Predict several images; returns one alpha per image, in order.

        Images whose network input size is the same are stacked into one call of up to ``batch_size``
        when the model's batch dimension is dynamic (the win on GPUs); otherwise one call per image.
        """
        rgbs = [to_rgb_uint8(im, im if isinstance(im, str) else f"image {i}") for i, im in enumerate(images)]
        batch_dim = next(i for i in self.backend.inputs if i.name == self.input_name).shape[0]
        if isinstance(batch_dim, int) and batch_dim > 0:
            batch_size = batch_dim if batch_dim > 1 else 1
        alphas: list[np.ndarray | None] = [None] * len(rgbs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, rgb in enumerate(rgbs):
            groups.setdefault(self.spec.target_size(*rgb.shape[:2]), []).append(i)
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start:start + batch_size]
                if isinstance(batch_dim, int) and batch_dim > 1 and len(chunk) != batch_dim:
                    chunk_alphas = [self.predict(rgbs[i]) for i in chunk]  # static batch: no padding tricks
                else:
                    chunk_alphas = self._predict_stacked([rgbs[i] for i in chunk])
                for i, alpha in zip(chunk, chunk_alphas):
                    alphas[i] = alpha
        return alphas  # type: ignore[return-value]

    def _predict_stacked(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        x = np.concatenate([self._network_input(rgb) for rgb in rgbs], axis=0)
        out = self._dequantize(self.backend.run({self.input_name: self.backend.prepare_input(self.input_name, x)})
                               [self.output_name])
        return [postprocess(out[i:i + 1], rgb.shape[0], rgb.shape[1], self.spec.layout) for i, rgb in enumerate(rgbs)]

    def _dequantize(self, out: np.ndarray) -> np.ndarray:
        dequant = getattr(self.backend, "dequantize_output", None)
        out = dequant(self.output_name, out) if dequant is not None else out.astype(np.float32, copy=False)
        if self.refuse_non_finite and not np.isfinite(out).all():  # clipped, NaN would be a black matte
            raise ArtifactError("the model produced NaN or infinity instead of a matte: its weights are broken "
                                "(a diverged or corrupted network)", self.backend.path)
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend.describe(), "metadata": self.metadata.to_dict()}

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> MattingPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
