"""TensorRT engine builder (TensorRT >= 10 Python API), from a TensorRT-ready ONNX.

Runs only where TensorRT and an NVIDIA GPU are present; everything it consumes (the TensorRT-ready
ONNX with its recorded profile) is produced and parity-checked on any machine by
:mod:`modnet_edge.exporters.tensorrt_onnx`, so a CPU box can export and a GPU box only builds.

Build path: ``trt.Builder`` -> network (strongly typed unless the weakly typed ``fp16-flag`` mode is
asked for) -> ``trt.OnnxParser`` with the native InstanceNormalization layer -> builder config (TF32
off for FP32 parity, FP16 flag only for ``fp16-flag``, INT8 only through the graph's Q/DQ nodes --
never the deprecated implicit calibrator) -> optimisation profile (min/opt/max from the ONNX
metadata) -> timing cache (loaded, extended, saved atomically) -> ``build_serialized_network`` ->
engine file with our metadata header (:mod:`~modnet_edge.core.containers.engine_file`) + manifest.
The equivalent ``trtexec`` command is printed and recorded.

GPU memory for I/O at run time: see :mod:`modnet_edge.runtimes.tensorrt_backend` (torch CUDA tensors).
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from modnet_edge.core import ArtifactMetadata, atomic_output, get_format, sha256_path
from modnet_edge.core.containers import read_embedded
from modnet_edge.core.errors import ArtifactError, ConfigError
from modnet_edge.model.checkpoint import Checkpoint

from modnet_edge.core.tools import gpu_environment, import_tensorrt, make_logger
from modnet_edge.exporters.skeleton import Converted, write_artifact
from modnet_edge.exporters.tensorrt_onnx import BUILD_MODES, DEFAULT_BUILD_MODE, FORMAT_NAME, trtexec_command
from modnet_edge.exporters.tensorrt_profile import ShapeProfile

ENGINE_FORMAT = "tensorrt"


def _progress_monitor(trt: Any) -> Any | None:
    """Progress bars for the builder's phases (TensorRT >= 10 ``IProgressMonitor``); None when absent."""
    if not hasattr(trt, "IProgressMonitor"):
        return None
    from modnet_edge.core.console import progress

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, Any] = {}
            self._lock = threading.Lock()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._bars[phase_name] = progress(total=num_steps, desc=f"TensorRT {phase_name}", leave=False)

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.n = step + 1
                    bar.refresh()
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

    return _Monitor()


def cuda_index(device: int | str) -> int:
    """The GPU index of ``device``: an index, "cuda" (0) or "cuda:N"."""
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return device
    text = str(device)
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        return int(text[5:] or 0)
    raise ConfigError(f"a TensorRT build runs on a GPU: device cuda or cuda:N, not {device!r}")


def read_onnx_metadata(onnx_path: Path) -> ArtifactMetadata:
    """The metadata of a TensorRT-ready ONNX (refuses plain ONNX: it has no recorded profile)."""
    meta = read_embedded("tensorrt-onnx", onnx_path)
    if meta is None:
        raise ArtifactError("ONNX carries no modnet-edge metadata; export it with format 'tensorrt-onnx'", onnx_path)
    if meta.format != FORMAT_NAME or "tensorrt" not in meta.extra:
        raise ArtifactError(f"this is a {meta.format!r} ONNX, not a TensorRT-ready one (no recorded profile); "
                            "export it with format 'tensorrt-onnx'", onnx_path)
    return meta


def build_engine(onnx_path: str | Path, output: str | Path, **options: Any) -> Path:
    """Build a TensorRT engine from a TensorRT-ready ONNX; writes ``output`` + manifest, returns ``output``
    (options: :func:`build_plan`)."""
    plan, meta = build_plan(onnx_path, output, **options)
    write_artifact(output, meta, plan)
    print("equivalent trtexec command (writes a raw plan without modnet-edge metadata):\n  "
          + meta.extra["tensorrt"]["trtexec"])
    return Path(output)


def build_plan(onnx_path: str | Path, output: str | Path, *, build_mode: str | None = None,
               profile: Any = None, timing_cache: str | Path | None = None, workspace_mib: int | None = None,
               optimization_level: int | None = None, allow_tf32: bool = False, version_compatible: bool = False,
               hardware_compatibility: str | None = None, device: int | str = 0,
               verbose: bool = False) -> tuple[bytes, ArtifactMetadata]:
    """Build the serialized TensorRT plan of a TensorRT-ready ONNX; returns (plan, the engine's metadata).

    ``build_mode``: ``fp32`` | ``fp16-flag`` (fp32 ONNX) | ``fp16`` (fp16 ONNX) | ``int8`` |
    ``int8-fp16-flag`` (Q/DQ ONNX); default from the ONNX's precision.  ``*-flag`` modes are TensorRT
    10's weakly typed builds (TensorRT picks FP16 where it is faster); the others are strongly typed.
    ``profile`` overrides the recorded one (same graph, other range).
    ``timing_cache``: file read when present and written back (atomically) after the build.
    ``hardware_compatibility``: None or ``"ampere+"``; ``version_compatible``: the engine also loads in
    later TensorRT versions of the same major (both trade some speed for portability).
    """
    onnx_path, output = Path(onnx_path), Path(output)
    device = cuda_index(device)
    meta = read_onnx_metadata(onnx_path)
    mode = build_mode or DEFAULT_BUILD_MODE[meta.precision]
    if mode not in BUILD_MODES:
        raise ConfigError(f"unknown build mode {mode!r}; choose from {list(BUILD_MODES)}")
    onnx_precision, engine_precision, strongly_typed, _flags = BUILD_MODES[mode]
    if onnx_precision != meta.precision:
        raise ConfigError(f"build mode {mode!r} needs the {onnx_precision} TensorRT-ready ONNX; {onnx_path.name} "
                          f"is {meta.precision}")
    prof = ShapeProfile.parse(profile if profile is not None else meta.extra["tensorrt"]["profile"])
    trt = import_tensorrt()
    env = gpu_environment(device)
    if mode.endswith("-flag") and not hasattr(trt.BuilderFlag, "FP16"):
        raise ConfigError(f"TensorRT {trt.__version__} has no weak typing (BuilderFlag.FP16/INT8 were removed in "
                          f"TensorRT 11); use build mode {mode.split('-')[0]!r} (strongly typed)")
    import torch

    torch.cuda.set_device(device)
    logger = make_logger(trt, verbose)
    builder = trt.Builder(logger)
    typed_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # always on in 11.x
    network = builder.create_network(1 << int(typed_flag) if strongly_typed and typed_flag is not None else 0)
    parser = trt.OnnxParser(network, logger)
    native = getattr(getattr(trt, "OnnxParserFlag", None), "NATIVE_INSTANCENORM", None)
    if native is not None:
        parser.set_flag(native)  # the default in 10.x; explicit, see the tensorrt_onnx module doc
    if not parser.parse_from_file(str(onnx_path)):
        errors = [_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ArtifactError("TensorRT's ONNX parser rejected the model: " + "; ".join(errors or logger.errors),
                            onnx_path)
    config = builder.create_builder_config()
    config_flags = _configure(trt, config, mode, allow_tf32, version_compatible, hardware_compatibility,
                              workspace_mib, optimization_level)
    _add_profile(builder, config, network, prof)
    cache, cache_path = _load_timing_cache(config, timing_cache)
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if plan is None:
        raise ArtifactError("TensorRT failed to build the engine: " + ("; ".join(logger.errors) or "see log above"),
                            onnx_path)
    if cache_path is not None:
        with atomic_output(cache_path) as tmp:
            Path(tmp).write_bytes(bytes(cache.serialize()))
    engine_meta = _engine_metadata(meta, onnx_path, output, engine_precision, mode, strongly_typed, prof, env,
                                   config_flags, version_compatible, hardware_compatibility, seconds, timing_cache)
    return bytes(plan), engine_meta


def _parser_error(error: Any) -> str:
    """One line from a ``trt.ParserError`` (its accessors vary a little across 10.x releases)."""
    parts = [str(error.desc()) if hasattr(error, "desc") else str(error)]
    node = getattr(error, "node_name", None) or getattr(error, "node", None)
    if callable(node):
        parts.append(f"node {node()}")
    return " ".join(parts)


def _configure(trt: Any, config: Any, mode: str, allow_tf32: bool, version_compatible: bool,
               hardware_compatibility: str | None, workspace_mib: int | None,
               optimization_level: int | None) -> list[str]:
    set_flags: list[str] = []
    if not allow_tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 must mean FP32 for the parity budget
    if mode == "int8-fp16-flag":
        config.set_flag(trt.BuilderFlag.INT8)  # weakly typed Q/DQ networks need it to use INT8 kernels
        set_flags.append("INT8")
    if mode in ("fp16-flag", "int8-fp16-flag"):
        config.set_flag(trt.BuilderFlag.FP16)
        set_flags.append("FP16")
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        set_flags.append("VERSION_COMPATIBLE")
    if hardware_compatibility:
        if hardware_compatibility.lower() not in ("ampere+", "ampere_plus"):
            raise ConfigError(f"hardware_compatibility must be None or 'ampere+', not {hardware_compatibility!r}")
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    if optimization_level is not None:
        if not 0 <= optimization_level <= 5:
            raise ConfigError(f"optimization_level must be 0..5, got {optimization_level}")
        config.builder_optimization_level = int(optimization_level)
    return set_flags


def _add_profile(builder: Any, config: Any, network: Any, prof: ShapeProfile) -> None:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    names = [t.name for t in inputs]
    if prof.input_name not in names:
        raise ArtifactError(f"profile names input {prof.input_name!r} but the network's inputs are {names}")
    declared = tuple(inputs[names.index(prof.input_name)].shape)
    for axis, dim in enumerate(declared):
        if dim != -1 and not prof.min[axis] == prof.max[axis] == dim:
            raise ConfigError(f"profile {prof.to_dict()} contradicts the ONNX input shape {list(declared)} "
                              f"(axis {axis} is fixed to {dim})")
    if any(d == -1 for d in declared) or not prof.is_static:
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(prof.input_name, prof.min, prof.opt, prof.max)
        config.add_optimization_profile(opt_profile)


def _load_timing_cache(config: Any, timing_cache: str | Path | None) -> tuple[Any, Path | None]:
    path = Path(timing_cache) if timing_cache else None
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        raise ConfigError("timing cache was made on another GPU or TensorRT version; delete it or pass another "
                          "path", path)
    return cache, path


def _engine_metadata(meta: ArtifactMetadata, onnx_path: Path, output: Path, precision: str, mode: str,
                     strongly_typed: bool, prof: ShapeProfile, env: dict[str, Any], config_flags: list[str],
                     version_compatible: bool, hardware_compatibility: str | None, seconds: float,
                     timing_cache: str | Path | None) -> ArtifactMetadata:
    """The engine's metadata: the ONNX's (preprocessing, model, provenance) plus the build record."""
    onnx_info = dict(meta.extra.get("tensorrt") or {})
    spec = meta.preprocessing.with_fixed_size(prof.static_size)
    info = {**env, "build_mode": mode, "strongly_typed": strongly_typed, "builder_flags": config_flags,
            "profile": prof.to_dict(), "version_compatible": version_compatible,
            "hardware_compatibility": hardware_compatibility, "build_seconds": round(seconds, 2),
            "instance_norm": onnx_info.get("instance_norm"),
            "onnx": {"file": onnx_path.name, "sha256": sha256_path(onnx_path), "precision": meta.precision},
            "trtexec": trtexec_command(onnx_path, output, mode, prof, timing_cache)}
    return ArtifactMetadata(
        format=ENGINE_FORMAT, precision=precision, preprocessing=spec, model=meta.model,
        input_name=meta.input_name, output_name=meta.output_name,
        input_shape=[prof.static_batch or "batch", 3, *(prof.static_size or ("height", "width"))],
        source=meta.source, tools={**meta.tools, "tensorrt": env["tensorrt_version"]},
        extra={"tensorrt": info, "onnx_extra": {k: v for k, v in meta.extra.items() if k != "tensorrt"}})


def convert_tensorrt_engine(checkpoint: Checkpoint, precision: str, output: Path, *,
                            build_mode: str | None = None, keep_onnx: bool = True, **options: Any) -> Converted:
    """The TensorRT engine converter of the format table: checkpoint -> TensorRT-ready ONNX -> plan.

    The ONNX is kept beside the engine (``<engine>.trt.onnx``, an artifact with its own manifest) unless
    ``keep_onnx`` is False, so the engine can be rebuilt on another GPU or TensorRT version without the
    checkpoint.  ``build_mode`` ``fp16-flag`` uses the fp32 ONNX with TensorRT's FP16 builder flag
    (TensorRT 10 only).  Options of the TensorRT-ready ONNX go to its converter, the rest to
    :func:`build_plan`.
    """
    from modnet_edge.exporters.skeleton import export_artifact

    onnx_names = {o.name for o in get_format("tensorrt-onnx").options}
    onnx_options = {k: v for k, v in options.items() if k in onnx_names}
    build_options = {k: v for k, v in options.items() if k not in onnx_names}
    mode = build_mode or DEFAULT_BUILD_MODE.get(precision, "")
    if mode not in BUILD_MODES or BUILD_MODES[mode][1] != precision:
        raise ConfigError(f"build mode {build_mode!r} does not give a {precision} engine; modes: "
                          f"{ {m: v[1] for m, v in BUILD_MODES.items()} }")
    import_tensorrt()  # fail before the (slow) export when the builder cannot run here
    onnx_path = output.with_name(output.name.rsplit(".", 1)[0] + ".trt.onnx")
    digest = hashlib.sha256(str(output.resolve()).encode()).hexdigest()[:8]
    target = onnx_path if keep_onnx else output.with_name(f".{output.name}.{digest}.trt.onnx")
    try:
        export_artifact(checkpoint, "tensorrt-onnx", BUILD_MODES[mode][0], target, **onnx_options)
        plan, meta = build_plan(target, output, build_mode=mode, **build_options)
    finally:
        if not keep_onnx:
            for p in (target, target.with_name(target.name + ".manifest.json")):
                p.unlink(missing_ok=True)
    return Converted(plan, meta.preprocessing, meta.input_shape, meta.extra,
                     {"tensorrt": meta.tools.get("tensorrt", "")})
