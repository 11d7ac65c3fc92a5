"""Input-shape profiles for TensorRT: one static shape, or a min/opt/max range for dynamic inputs.

TensorRT compiles kernels for the shapes it is told about: a dynamic ONNX input needs an optimisation
profile (min, opt, max) at build time, and the engine refuses shapes outside it at run time.  The
profile is therefore part of the artifact: it is recorded in the TensorRT-ready ONNX metadata (so an
engine built later, on another machine, uses the same range) and in the engine, and the equivalent
``trtexec --minShapes/--optShapes/--maxShapes`` arguments are derived from the same object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modnet_edge.core.limits import check_batch, check_input_size
from modnet_edge.core.errors import ConfigError

Shape = tuple[int, int, int, int]
DEFAULT_STATIC_SIZE = (512, 512)  # the paper's and the benchmarks' input size


def _shape(value: Any, what: str) -> Shape:
    """A 4-D NCHW shape from '1x3x512x512', [1, 3, 512, 512] or (1, 3, 512, 512)."""
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise ConfigError(f"profile {what} shape must be 'NxCxHxW' or a list of 4 ints, got {value!r}")
    try:
        dims = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"profile {what} shape {value!r} is not four integers") from None
    if len(dims) != 4:
        raise ConfigError(f"profile {what} shape {value!r} must have 4 dimensions (N, 3, H, W)")
    return dims  # type: ignore[return-value]


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max NCHW shapes of the image input; ``min == opt == max`` is a static shape."""

    min: Shape
    opt: Shape
    max: Shape
    input_name: str = "input"
    multiple: int = 32

    def __post_init__(self) -> None:
        for what, shape in (("min", self.min), ("opt", self.opt), ("max", self.max)):
            n, c, h, w = shape
            if n < 1 or h < 1 or w < 1:
                raise ConfigError(f"profile {what} shape {list(shape)} has a non-positive dimension")
            if c != 3:
                raise ConfigError(f"profile {what} shape {list(shape)}: the network takes 3 (RGB) channels, not {c}")
            check_input_size(h, w, f"profile {what} shape")
            check_batch(n, h, w, f"profile {what} batch")
            if h % self.multiple or w % self.multiple:
                raise ConfigError(f"profile {what} shape {list(shape)}: height and width must be multiples of "
                                  f"{self.multiple} (the network downsamples 32x)")
        for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
            if not self.min[axis] <= self.opt[axis] <= self.max[axis]:
                raise ConfigError(f"profile {name} must satisfy min <= opt <= max, got "
                                  f"{self.min[axis]} / {self.opt[axis]} / {self.max[axis]}")

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def static(cls, height: int, width: int, batch: int = 1) -> ShapeProfile:
        shape = (int(batch), 3, int(height), int(width))
        return cls(shape, shape, shape)

    @classmethod
    def parse(cls, value: Any) -> ShapeProfile:
        """From a :class:`ShapeProfile`, a dict ``{"min":…, "opt":…, "max":…}`` (as recorded in
        metadata), a list of three shapes, or the string ``"1x3x256x256:1x3x512x512:4x3x1024x1024"``."""
        if isinstance(value, ShapeProfile):
            return value
        if isinstance(value, dict):
            missing = [k for k in ("min", "opt", "max") if k not in value]
            if missing:
                raise ConfigError(f"profile {value!r} lacks {missing}")
            return cls(_shape(value["min"], "min"), _shape(value["opt"], "opt"), _shape(value["max"], "max"),
                       input_name=str(value.get("input", "input")))
        if isinstance(value, str):
            parts = value.split(":")
        elif isinstance(value, Sequence) and len(value) == 3:
            parts = list(value)
        else:
            raise ConfigError(f"cannot read a shape profile from {value!r}; use 'MIN:OPT:MAX' such as "
                              "1x3x256x256:1x3x512x512:1x3x1024x1024")
        if len(parts) != 3:
            raise ConfigError(f"a shape profile needs three shapes MIN:OPT:MAX, got {value!r}")
        return cls(_shape(parts[0], "min"), _shape(parts[1], "opt"), _shape(parts[2], "max"))

    @classmethod
    def resolve(cls, static_shape: tuple[int, int] | None = None, batch: int | None = None,
                profile: Any = None) -> ShapeProfile:
        """The profile an export asks for: an explicit ``profile``, else ``static_shape`` (and ``batch``),
        else the static default 1x3x512x512 (TensorRT is fastest on a fixed shape)."""
        if profile is not None:
            if static_shape is not None:
                raise ConfigError("give either static_shape or profile, not both")
            prof = cls.parse(profile)
            if batch is not None and not (prof.min[0] == prof.max[0] == batch):
                raise ConfigError(f"batch={batch} contradicts the profile's batch range "
                                  f"{prof.min[0]}..{prof.max[0]}")
            return prof
        h, w = static_shape or DEFAULT_STATIC_SIZE
        return cls.static(h, w, batch or 1)

    # -- queries ----------------------------------------------------------------------------------
    @property
    def is_static(self) -> bool:
        return self.min == self.opt == self.max

    @property
    def static_batch(self) -> int | None:
        return self.min[0] if self.min[0] == self.max[0] else None

    @property
    def static_size(self) -> tuple[int, int] | None:
        """(H, W) when height and width are fixed, else None."""
        if self.min[2:] == self.max[2:]:
            return self.min[2], self.min[3]
        return None

    def onnx_export_args(self) -> dict[str, Any]:
        """``static_shape`` / ``batch`` for the traced graph (:func:`.onnx_graph.float_graph`) so the ONNX
        has exactly the dynamic axes the profile needs (a fixed batch with a dynamic size keeps the batch
        static; a fixed size with a dynamic batch must leave all three axes dynamic, the profile then pins
        H and W)."""
        if self.is_static:
            return {"static_shape": (self.min[2], self.min[3]), "batch": self.min[0]}
        if self.static_size is None and self.static_batch is not None:
            return {"static_shape": None, "batch": self.static_batch}
        return {"static_shape": None, "batch": None}

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == 4 and all(lo <= int(s) <= hi for s, lo, hi in zip(shape, self.min, self.max))

    def describe_violation(self, shape: Sequence[int]) -> str:
        return (f"shape {list(shape)} is outside the engine's profile min {list(self.min)} / "
                f"max {list(self.max)} (rebuild with a wider --profile)")

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input_name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max),
                "static": self.is_static}

    def trtexec_args(self) -> list[str]:
        """``--minShapes/--optShapes/--maxShapes`` (none for a static ONNX: trtexec reads its shape)."""
        if self.is_static:
            return []
        fmt = "x".join
        return [f"--minShapes={self.input_name}:{fmt(map(str, self.min))}",
                f"--optShapes={self.input_name}:{fmt(map(str, self.opt))}",
                f"--maxShapes={self.input_name}:{fmt(map(str, self.max))}"]
