"""``modnet-edge tensorrt-build``: TensorRT-ready ONNX -> TensorRT engine (mirrors :func:`build_engine`).

``--print-trtexec`` only prints the equivalent ``trtexec`` command, which works on any machine (the
ONNX carries its profile), e.g. to build on a GPU box that has trtexec but not this toolkit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# the names of export.tensorrt_onnx.BUILD_MODES, spelled out so --help need not import torch (a test keeps
# the two equal)
BUILD_MODE_NAMES = ("fp32", "fp16-flag", "fp16", "int8", "int8-fp16-flag")

HELP = "build a TensorRT engine from a TensorRT-ready ONNX (export format 'tensorrt-onnx'); needs TensorRT + GPU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", type=Path, help="TensorRT-ready ONNX (modnet-edge export --format tensorrt-onnx)")
    parser.add_argument("-o", "--output", type=Path, help="engine path (default: <onnx stem>.engine)")
    parser.add_argument("--mode", choices=BUILD_MODE_NAMES, help="build mode (default: from the ONNX precision: "
                        "fp32 -> fp32, fp16 -> fp16 strongly typed, int8 -> int8 Q/DQ); fp16-flag = fp32 ONNX "
                        "with TensorRT 10's FP16 builder flag")
    parser.add_argument("--profile", metavar="MIN:OPT:MAX", help="override the recorded shape profile, e.g. "
                        "1x3x256x256:1x3x512x512:1x3x1024x1024")
    parser.add_argument("--timing-cache", type=Path, help="timing cache file (read if present, then updated)")
    parser.add_argument("--workspace-mib", type=int, help="builder workspace limit in MiB")
    parser.add_argument("--optimization-level", type=int, help="builder optimisation level 0..5 (TensorRT default 3)")
    parser.add_argument("--allow-tf32", action="store_true", help="let fp32 layers use TF32 (faster, drifts more)")
    parser.add_argument("--version-compatible", action="store_true", help="engine also loads in later TensorRT "
                        "versions of the same major")
    parser.add_argument("--hardware-compatibility", choices=["ampere+"], help="engine runs on any GPU >= sm_80")
    parser.add_argument("--device", default="cuda", metavar="DEVICE", help="GPU to build on: cuda or cuda:N "
                        "(a bare index N still works)")
    parser.add_argument("--print-trtexec", action="store_true", help="only print the equivalent trtexec command "
                        "(no TensorRT needed)")
    parser.add_argument("--verbose", action="store_true", help="print TensorRT's full log")


def cuda_index(device: str) -> int:
    """``cuda`` -> 0, ``cuda:N`` -> N (a bare ``N`` too): TensorRT builds on one CUDA device."""
    from modnet_edge.core.errors import ConfigError

    text = str(device).strip().lower()
    if text == "cuda":
        return 0
    index = text.removeprefix("cuda:")
    if not index.isdigit():
        raise ConfigError(f"--device must be cuda or cuda:N for a TensorRT build, not {device!r}")
    return int(index)


def run(args: argparse.Namespace) -> int:
    from modnet_edge.exporters.tensorrt_build import build_engine, read_onnx_metadata
    from modnet_edge.core.errors import ConfigError

    from modnet_edge.exporters.tensorrt_onnx import BUILD_MODES, DEFAULT_BUILD_MODE, trtexec_command
    from modnet_edge.exporters.tensorrt_profile import ShapeProfile

    index = cuda_index(args.device)
    meta = read_onnx_metadata(args.onnx)
    output = args.output or args.onnx.with_name(args.onnx.name.removesuffix(".onnx").removesuffix(".trt") + ".engine")
    if args.print_trtexec:
        mode = args.mode or DEFAULT_BUILD_MODE[meta.precision]
        if BUILD_MODES[mode][0] != meta.precision:
            raise ConfigError(f"build mode {mode!r} needs the {BUILD_MODES[mode][0]} ONNX; {args.onnx.name} is "
                              f"{meta.precision}")
        prof = ShapeProfile.parse(args.profile or meta.extra["tensorrt"]["profile"])
        print(trtexec_command(args.onnx, output, mode, prof, args.timing_cache, args.workspace_mib))
        return 0
    path = build_engine(args.onnx, output, build_mode=args.mode, profile=args.profile, timing_cache=args.timing_cache,
                        workspace_mib=args.workspace_mib, optimization_level=args.optimization_level,
                        allow_tf32=args.allow_tf32, version_compatible=args.version_compatible,
                        hardware_compatibility=args.hardware_compatibility, device=index, verbose=args.verbose)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.name}.manifest.json")
    return 0
