"""The preprocessing spec: how an RGB image becomes the network input and the output becomes a matte.

Every artifact carries one (in its metadata), so a predictor feeds an artifact exactly what it was
exported for, whoever runs it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from modnet_edge.core.errors import ConfigError, MetadataError
from modnet_edge.core.limits import MAX_INPUT_SIDE, check_input_size

# Sane normalisation on the [0, 1] pixel scale: a mean is a pixel value; a std below one 8-bit step or
# above the whole range would stretch or crush the input (mean 1e30 / std 1e-30 is garbage in, yet
# "passes" parity, whose reference is fed the same preprocessing).
MEAN_RANGE = (0.0, 1.0)
STD_RANGE = (1.0 / 255.0, 1.0)

# what a model reads: the normalised image, or the 8-bit image with the normalisation inside the model
INPUT_DTYPES = ("float32", "uint8")


@dataclass(frozen=True)
class PreprocessSpec:
    """How an RGB image becomes the network input and how the output becomes an alpha matte.

    The default is the rule of the official MODNet inference code: with ``ref_size`` 512, rescale so
    the short side is 512 when the long side is < 512 or the short side is > 512, then floor each side
    to a multiple of 32; 'area' resampling in and out; normalise [0, 255] -> [-1, 1].  An artifact with
    a static input shape sets ``fixed_size`` and is fed exactly that (H, W).

    ``input_dtype`` is what the model reads: "float32", the normalised image; or "uint8", the 8-bit
    image itself, the normalisation done inside the model (``mean``/``std`` still say which one;
    :mod:`modnet_edge.model.pixel_input`).  An 8-bit input is resized with the same 'area' rule and
    rounded half up to integers, exactly (:func:`modnet_edge.core.preprocess.resize_pixels`); it is fed
    as uint8, or as int8 ``p - 128`` to a model whose int8 input has scale 1 and zero point -128.
    """

    ref_size: int = 512
    multiple: int = 32
    fixed_size: tuple[int, int] | None = None
    resample: str = "area"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # on the [0, 1] scale
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    layout: str = "NCHW"
    input_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.ref_size < self.multiple or self.multiple < 1:
            raise ConfigError(f"invalid preprocessing: ref_size={self.ref_size}, multiple={self.multiple}")
        if self.resample != "area":
            raise ConfigError(f"invalid preprocessing: unknown resample {self.resample!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"invalid preprocessing: layout must be NCHW or NHWC, not {self.layout!r}")
        if self.input_dtype not in INPUT_DTYPES:
            raise ConfigError(f"invalid preprocessing: input_dtype must be one of {list(INPUT_DTYPES)}, "
                              f"not {self.input_dtype!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ConfigError(f"invalid preprocessing: {name} must be three finite numbers, got {values}")
        if not all(v > 0 for v in self.std):
            raise ConfigError(f"invalid preprocessing: std must be positive, got {self.std}")
        if not all(MEAN_RANGE[0] <= v <= MEAN_RANGE[1] for v in self.mean):
            raise ConfigError(f"invalid preprocessing: mean must be pixel values in {list(MEAN_RANGE)} (the [0, 1] "
                              f"scale), got {self.mean}")
        if not all(STD_RANGE[0] <= v <= STD_RANGE[1] for v in self.std):
            raise ConfigError(f"invalid preprocessing: std must be in [1/255, 1] (the [0, 1] scale), got {self.std}")
        if self.ref_size > MAX_INPUT_SIDE:
            raise ConfigError(f"invalid preprocessing: ref_size {self.ref_size} is above {MAX_INPUT_SIDE}")
        if self.fixed_size is not None:
            check_input_size(*self.fixed_size, what="static shape")
            h, w = self.fixed_size
            if h % self.multiple or w % self.multiple or h <= 0 or w <= 0:
                raise ConfigError(f"invalid preprocessing: fixed_size {self.fixed_size} is not a positive "
                                  f"multiple of {self.multiple}")

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (H, W) for an image of ``height`` x ``width``."""
        if self.fixed_size is not None:
            return tuple(self.fixed_size)  # type: ignore[return-value]
        ref = self.ref_size
        if max(height, width) < ref or min(height, width) > ref:
            if width >= height:
                rh, rw = ref, int(width / height * ref)
            else:
                rh, rw = int(height / width * ref), ref
        else:
            rh, rw = height, width
        rh, rw = rh - rh % self.multiple, rw - rw % self.multiple
        return max(rh, self.multiple), max(rw, self.multiple)

    def with_fixed_size(self, size: tuple[int, int] | None) -> PreprocessSpec:
        if size is None:
            return dataclasses.replace(self, fixed_size=None)
        try:
            h, w = size
            if any(isinstance(v, bool) or int(v) != v for v in (h, w)):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"a static shape is (height, width) in pixels, e.g. (512, 512); got {size!r}") from None
        return dataclasses.replace(self, fixed_size=(int(h), int(w)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["fixed_size"] = list(self.fixed_size) if self.fixed_size else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        if not isinstance(data, dict):
            raise MetadataError(f"preprocessing must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MetadataError(f"preprocessing has unknown keys {sorted(unknown)}")
        d = dict(data)
        try:
            for key in ("ref_size", "multiple"):
                if key in d and (isinstance(d[key], bool) or not isinstance(d[key], int)):
                    raise TypeError(f"{key} must be an integer")
            for key in ("resample", "layout", "input_dtype"):
                if key in d and not isinstance(d[key], str):
                    raise TypeError(f"{key} must be a string")
            if d.get("fixed_size") is not None:
                d["fixed_size"] = tuple(int(v) for v in d["fixed_size"])
            for key in ("mean", "std"):
                if key in d:
                    d[key] = tuple(float(v) for v in d[key])
            return cls(**d)
        except (TypeError, ValueError, OverflowError, ConfigError) as exc:
            raise MetadataError(f"invalid preprocessing {data}: {exc}") from None
