"""Reference execution of a Core ML ML Program in NumPy, so Core ML parity is gated on any system.

Core ML itself only runs on Apple systems.  This backend executes the *stored* program instead: the
operations and weights read back from the .mlpackage (:mod:`coreml_program`), each op computed by the
NumPy kernel of :mod:`coreml_ops` following the MIL op definition, and each result rounded to the dtype
the program declares.  In an FP16 program every intermediate tensor is therefore a float16 value, as on
the device; arithmetic inside one op is float32 (the accumulation precision of Core ML's CPU and GPU
paths — the Neural Engine may differ in the last bits, which is why the real runtime is compared too
where it exists).  An operation without a kernel stops the run before it starts, naming that operation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modnet_edge.core.errors import ArtifactError

from modnet_edge.runtimes.coreml_backend import CoreMLBackendBase
from modnet_edge.runtimes.coreml_ops import CONSTANT_OPS, KERNELS, OpInputs
from modnet_edge.runtimes.coreml_program import MIL_DTYPES, MLProgram, Operation


# Operations whose result, given float16 inputs, is one of those inputs' values (or a float16 bound):
# rounding it to float16 again changes nothing, so the reference execution skips it (bit for bit the
# same output; a test compares both ways).
EXACT_OPS = frozenset({"relu", "clip", "concat", "slice_by_index", "reshape", "expand_dims", "squeeze", "tile"})


class UnsupportedOperation(ArtifactError):
    """The program uses an operation the reference execution does not implement."""


class ProgramExecutor:
    """Executes the main function of an :class:`MLProgram`.  Constants (plain, quantised and
    palettised weights) are materialised once, at construction."""

    def __init__(self, program: MLProgram) -> None:
        self.program = program
        unknown = sorted({op.type for op in program.operations if op.type not in KERNELS})
        if unknown:
            where = {t: next(op.name for op in program.operations if op.type == t) for t in unknown}
            raise UnsupportedOperation(
                "the ML Program uses operation(s) the reference execution does not implement: "
                + ", ".join(f"{t} (first at '{where[t]}')" for t in unknown)
                + f"; implemented: {sorted(KERNELS)}", program.path)
        self.constants: dict[str, np.ndarray] = {}
        self.steps: list[Operation] = []
        for op in program.operations:
            if op.type in CONSTANT_OPS:
                self.constants[op.outputs[0].name] = self._execute(op, {})[0]
            else:
                self.steps.append(op)
        self._last_use = self._last_uses()
        self._declared = {var.name: var.dtype for var in program.function_inputs}
        for op in program.operations:
            self._declared.update((var.name, var.dtype) for var in op.outputs)
        self._exact = [self._is_exact(op) for op in self.steps]
        # Largest |x - mean| seen entering an FP16 instance_norm: above 256 its square (the variance
        # term) overflows float16, so hardware computing the statistics in FP16 would break while
        # this float32-statistics emulation would not.  Parity reports can quote it.
        self.fp16_instance_norm_peak = 0.0

    def _is_exact(self, op: Operation) -> bool:
        """True when ``op``'s FLOAT16 result needs no rounding: it only selects, moves or clamps values of
        FLOAT16 inputs (already on the float16 grid) -- :data:`EXACT_OPS` with every float input FLOAT16."""
        if op.type not in EXACT_OPS or any(var.dtype != "FLOAT16" for var in op.outputs):
            return False
        for args in op.inputs.values():
            for arg in args:
                if arg.name is not None:
                    dtype = self._declared.get(arg.name)
                    if dtype is None or (dtype.startswith("FLOAT") and dtype != "FLOAT16"):
                        return False
                elif isinstance(arg.value, np.ndarray) and arg.value.dtype.kind == "f" \
                        and arg.value.dtype != np.float16:
                    return False
        return True

    def _last_uses(self) -> dict[str, int]:
        """Index of the last step reading each variable, so intermediates are freed early."""
        last: dict[str, int] = {}
        for i, op in enumerate(self.steps):
            for args in op.inputs.values():
                for arg in args:
                    if arg.name is not None:
                        last[arg.name] = i
        for name in self.program.function_outputs:
            last[name] = len(self.steps)
        return last

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds``: function-input name -> array; returns block-output name -> array."""
        env: dict[str, Any] = dict(self.constants)
        for var in self.program.function_inputs:
            if var.name not in feeds:
                raise ArtifactError(f"no value for program input '{var.name}'", self.program.path)
            env[var.name] = _as_declared(np.asarray(feeds[var.name]), var.dtype)
        for i, op in enumerate(self.steps):
            for out, value in zip(op.outputs, self._execute(op, env, self._exact[i])):
                env[out.name] = value
            for args in op.inputs.values():
                for arg in args:
                    if arg.name is not None and self._last_use.get(arg.name) == i and arg.name not in self.constants:
                        env.pop(arg.name, None)
        missing = [n for n in self.program.function_outputs if n not in env]
        if missing:
            raise ArtifactError(f"program outputs {missing} are never computed", self.program.path)
        return {n: env[n] for n in self.program.function_outputs}

    def _execute(self, op: Operation, env: dict[str, Any], exact: bool = False) -> list[np.ndarray]:
        values: dict[str, list[Any]] = {}
        for key, args in op.inputs.items():
            resolved = []
            for arg in args:
                if arg.name is None:
                    resolved.append(arg.value)
                elif arg.name in env:
                    resolved.append(env[arg.name])
                else:
                    raise ArtifactError(f"operation {op.type} '{op.name}' reads '{arg.name}', which is not "
                                        "defined before it", self.program.path)
            values[key] = resolved
        if op.type == "instance_norm" and op.outputs[0].dtype == "FLOAT16":
            x = np.asarray(values["x"][0], np.float32)
            peak = float(np.abs(x - x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)).max())
            self.fp16_instance_norm_peak = max(self.fp16_instance_norm_peak, peak)
        try:
            result = KERNELS[op.type](OpInputs(op.type, values), op.attributes)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ArtifactError(f"operation {op.type} '{op.name}' cannot be executed: {exc}",
                                self.program.path) from None
        results = result if isinstance(result, (list, tuple)) else [result]
        out = []
        for var, value in zip(op.outputs, results):
            value = np.asarray(value)
            if not (exact and value.dtype == np.float32):
                value = _as_declared(value, var.dtype)
            if var.shape is not None and (len(var.shape) != value.ndim or any(
                    d is not None and d != s for d, s in zip(var.shape, value.shape))):
                raise ArtifactError(f"operation {op.type} '{op.name}' produced shape {value.shape}, the program "
                                    f"declares {var.shape}", self.program.path)
            out.append(value)
        return out


def _as_declared(value: np.ndarray, dtype: str) -> np.ndarray:
    """Round/convert a result to the declared MIL dtype (float16 here is where FP16 is emulated).

    A FLOAT16 value is held as float32 rounded to float16 (:func:`round_to_half`): the same numbers, and
    every kernel computes in float32 anyway, so converting each tensor to float16 and back on the next
    op's way in (about 1 s of a 2.4 s run at 512x512) bought nothing."""
    target = MIL_DTYPES.get(dtype)
    if target == np.float16:
        return round_to_half(value) if value.dtype == np.float32 else value.astype(np.float16).astype(np.float32)
    return value if target is None or value.dtype == target else value.astype(target)


_HALF_TINY = np.uint32(0x38800000 - 1)  # bits of 2**-14 (smallest normal float16), less one: see below
_HALF_HUGE = np.uint32(0x477FF000)  # bits of 65520: from here on float16 rounds to infinity


def round_to_half(x: np.ndarray) -> np.ndarray:
    """float32 ``x`` rounded to the nearest float16 (ties to even), as float32: bit for bit what
    ``x.astype(np.float16).astype(np.float32)`` gives, for every float32 value (checked exhaustively
    over all 2**32 of them when this was written; a test checks the edges), in about a quarter of its time.

    Normal range: add half an ulp of float16 (plus one when the kept bits are odd, for ties to even)
    to the 13 mantissa bits float16 lacks, and clear them.  Below 2**-14 float16 is subnormal with a
    fixed step of 2**-24, which ``(x + 0.75) - 0.75`` rounds to (0.75's float32 ulp is 2**-24).  From
    65520 up the result is infinite, and NaN stays NaN."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    bits = u >> np.uint32(13)
    bits &= np.uint32(1)
    bits += np.uint32(0x0FFF)
    bits += u
    bits &= np.uint32(0xFFFFE000)
    out = bits.view(np.float32)
    magnitude = u & np.uint32(0x7FFFFFFF)
    if (magnitude >= _HALF_HUGE).any():
        huge = np.flatnonzero(magnitude >= _HALF_HUGE)
        with np.errstate(invalid="ignore"):
            out.reshape(-1)[huge] = x.reshape(-1)[huge] * np.float32(np.inf)  # inf, or NaN for NaN
    magnitude -= np.uint32(1)  # zero wraps to the top, so the test below finds 0 < |x| < 2**-14 only
    if (magnitude < _HALF_TINY).any():
        tiny = np.flatnonzero(magnitude < _HALF_TINY)
        v = x.reshape(-1)[tiny]
        out.reshape(-1)[tiny] = np.copysign((v + np.float32(0.75)) - np.float32(0.75), v)
    return out


class CoreMLReferenceBackend(CoreMLBackendBase):
    """Runs an .mlpackage by executing its ML Program in NumPy (any system, CPU).

    Image inputs take uint8 pictures (1, 3, H, W) like Core ML, and also float32 pixel values 0..255
    (what Core ML hands the program after converting the picture).  ``round_pixels``: whether the
    predictor's input is rounded to uint8 as on a device (default False: parity then measures the
    converted model alone, not the 8-bit quantisation of the input picture).
    """

    runtime = "reference"

    def __init__(self, path: str | Path, round_pixels: bool = False) -> None:
        super().__init__(path)
        self.round_pixels = bool(round_pixels)
        self.program = MLProgram.read(self.path)
        self._describe(self.program)
        if len(self.program.outputs) != len(self.program.function_outputs):
            raise ArtifactError(f"model describes {len(self.program.outputs)} outputs but its program returns "
                                f"{len(self.program.function_outputs)}", self.path)
        func_inputs = {v.name for v in self.program.function_inputs}
        if func_inputs != set(self.program_inputs):
            raise ArtifactError(f"model inputs {sorted(self.program_inputs)} do not match the program's "
                                f"{sorted(func_inputs)}", self.path)
        self.executor = ProgramExecutor(self.program)
        self.device = "cpu (NumPy reference execution of the ML Program)"

    @property
    def op_types(self) -> list[str]:
        return self.program.op_types

    def _check_feed(self, feed: dict[str, np.ndarray]) -> None:
        """As the base class, except that image inputs may also be float32 pixel values."""
        relaxed = dict(feed)
        for name, arr in feed.items():
            feature = self.program_inputs.get(name)
            if feature is not None and feature.kind == "image" and isinstance(arr, np.ndarray) \
                    and arr.dtype == np.float32:
                relaxed[name] = np.broadcast_to(np.uint8(0), arr.shape)  # shape-only stand-in
        super()._check_feed(relaxed)

    def _run_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_shapes(feed)
        feeds = {}
        for name, arr in feed.items():
            feature = self.program_inputs[name]
            if feature.kind == "image":  # Core ML hands the program the pixel values 0..255 as float
                arr = arr.astype(np.float32)
                if feature.color_space == "BGR":
                    arr = arr[:, ::-1]
            feeds[name] = arr
        result = self.executor.run(feeds)
        names = [o.name for o in self.outputs]
        if set(names) <= set(result):
            return {n: result[n] for n in names}
        return {n: result[fo] for n, fo in zip(names, self.program.function_outputs)}  # matched by position

    def close(self) -> None:
        self.executor = None  # type: ignore[assignment]
