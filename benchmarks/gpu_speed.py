"""GPU speed of the network without TensorRT (and with it, where installed), side by side in one run.

Variants (``--variants``), each at every batch size (default 1 and 8) and input size (default 512x512):

- ``torch-fp32``, ``torch-fp16``: eager PyTorch on CUDA (cuDNN autotuning on; fp32 convolutions may use
  TF32, PyTorch's default, recorded in the notes);
- ``torch-fp16-cl``: fp16 with channels-last memory format (NHWC tensor-core kernels);
- ``torch-fp16-cl-graph``: the same, captured once into a CUDA graph and replayed (no per-layer launch
  cost, which dominates at batch 1);
- ``torch-fp16-cl-compile``: ``torch.compile(mode="max-autotune")`` (slow to prepare: opt-in);
- ``ort-cuda-fp32``, ``ort-cuda-fp16``: ONNX Runtime's CUDA execution provider (needs onnxruntime-gpu)
  with inputs and outputs bound on the GPU (I/O binding);
- ``tensorrt-fp16``: a TensorRT engine through :class:`TensorRTBackend` with a CUDA graph (needs
  TensorRT; includes the host<->device copies of input and output, noted in the record).

Model-only timing: the input already lives on the GPU (except ``tensorrt-fp16``), each call is timed
wall-clock up to ``torch.cuda.synchronize()``, warm-up first, then all variants interleaved in rounds so
that clock or load changes hit every variant alike (the benchmark runner's own timing loop,
:func:`modnet_edge.benchmarks.measure.time_interleaved`; the variants are built here because they are not
artifacts: CUDA graphs, channels-last, I/O binding on the GPU).  Results use the runner's schema
(:mod:`modnet_edge.benchmarks.results`).  Target: >= 1000 fps at batch 1, fp16, 512x512 on an
H100-class GPU (the paper's GTX 1080 Ti figure is 67 fps).  Without CUDA this exits with a clear error:
nothing GPU-side can be measured on a CPU machine (``device="cpu"`` exists only to smoke-test this code).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modnet_edge.core.errors import BackendUnavailableError, ConfigError

from modnet_edge.benchmarks.device_info import describe_device, gpu_memory_mb, runtime_versions
from modnet_edge.benchmarks.results import BenchResult, LatencyStats, new_run_id, write_jsonl
from modnet_edge.benchmarks.measure import BenchConfig, time_interleaved, timed_turn
from modnet_edge.core.console import size_arg

HELP = "GPU fps of PyTorch CUDA (fp32/fp16/channels-last/CUDA graph/compile), ONNX Runtime CUDA and TensorRT"
VARIANTS = ("torch-fp32", "torch-fp16", "torch-fp16-cl", "torch-fp16-cl-graph", "torch-fp16-cl-compile",
            "ort-cuda-fp32", "ort-cuda-fp16", "tensorrt-fp16")
DEFAULT_VARIANTS = ("torch-fp32", "torch-fp16", "torch-fp16-cl", "torch-fp16-cl-graph", "ort-cuda-fp32",
                    "ort-cuda-fp16", "tensorrt-fp16")
TARGET_FPS = 1000.0  # batch 1, TARGET_PRECISION, 512x512, H100-class
TARGET_PRECISION = "fp16"
CPU_VARIANTS = ("torch-fp32",)


@dataclass
class _Case:
    variant: str
    batch: int
    size: tuple[int, int]
    step: Callable[[], Any]
    runtime: dict[str, Any]
    precision: str
    fmt: str
    notes: list[str] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)
    keep: Any = None  # objects the step needs alive (sessions, graphs, backends)
    timed_s: float = 0.0

    def done(self, cfg: BenchConfig) -> bool:
        return cfg.finished(len(self.samples_ms), self.timed_s)

    def turn(self, n: int) -> list[float]:
        return timed_turn(self.step, n)


def _synced(case: _Case, device: str) -> _Case:
    """The case with a step that ends in a device synchronisation: the runner's wall clock then covers
    the GPU work, not just its launch (every step, warm-up included, leaves the device idle)."""
    if device.startswith("cuda"):
        step = case.step

        def synced_step() -> None:
            step()
            _sync(device)

        case.step = synced_step
    return case


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _torch_case(net: Any, variant: str, batch: int, size: tuple[int, int], device: str) -> _Case:
    import torch

    half, cl = "fp16" in variant, "-cl" in variant
    dtype = torch.float16 if half else torch.float32
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = copy.deepcopy(net).to(device=device, dtype=dtype, memory_format=fmt).eval()
    x = torch.rand(batch, 3, *size, device=device, dtype=dtype).mul_(2).sub_(1).contiguous(memory_format=fmt)
    notes = ["cudnn.benchmark on"] if device.startswith("cuda") else []
    if not half and device.startswith("cuda"):
        notes.append("fp32 convolutions may use TF32 "
                     f"(torch.backends.cudnn.allow_tf32={torch.backends.cudnn.allow_tf32})")

    def forward(inp: Any) -> Any:
        return model(inp)

    fn: Callable[[Any], Any] = forward
    if variant.endswith("-compile"):
        fn = torch.compile(forward, mode="max-autotune")
        notes.append("torch.compile mode=max-autotune")
    with torch.inference_mode():
        for _ in range(3):
            fn(x)
        _sync(device)
        if variant.endswith("-graph"):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    fn(x)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn(x)
            notes.append("CUDA graph replay")

            def step() -> None:
                graph.replay()

            keep: Any = (graph, model, x)
        else:
            def step() -> None:
                with torch.inference_mode():
                    fn(x)

            keep = (model, x)
    delegate = device + (" channels-last" if cl else "") + (" cuda-graph" if variant.endswith("-graph") else "")
    return _Case(variant, batch, size, step, {"name": "torch", "delegate": delegate.strip(), "device": device},
                 "fp16" if half else "fp32", "pytorch", notes, keep=keep)


def _ort_case(checkpoint: Any, variant: str, batch: int, size: tuple[int, int], device: str, workdir: Path) -> _Case:
    import numpy as np
    import onnxruntime as ort

    from modnet_edge.exporters.skeleton import export_artifact as export

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise BackendUnavailableError("ONNX Runtime here has no CUDAExecutionProvider (install onnxruntime-gpu "
                                      f"instead of onnxruntime); available: {ort.get_available_providers()}")
    precision = variant.rsplit("-", 1)[1]  # ort-cuda-fp32 / ort-cuda-fp16
    path = export(checkpoint, "onnx", precision, workdir / f"{variant}-b{batch}-{size[0]}x{size[1]}.onnx",
                  static_shape=size, batch=batch)
    index = int(device.split(":")[1]) if ":" in device else 0
    session = ort.InferenceSession(str(path), providers=[("CUDAExecutionProvider", {"device_id": index})])
    dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    x = (np.random.default_rng(0).random((batch, 3, *size)) * 2 - 1).astype(dtype)
    binding = session.io_binding()
    binding.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(x, "cuda", index))
    binding.bind_output("matte", "cuda", index)

    def step() -> None:
        session.run_with_iobinding(binding)

    return _Case(variant, batch, size, step, {"name": "onnxruntime", "delegate": "CUDAExecutionProvider",
                                              "device": device}, precision, "onnx",
                 ["I/O bound on the GPU (io_binding)"], keep=(session, binding))


def _tensorrt_case(checkpoint: Any, batch: int, size: tuple[int, int], device: str, workdir: Path) -> _Case:
    import numpy as np

    from modnet_edge.exporters.skeleton import export_artifact as export
    from modnet_edge.runtimes.tensorrt_backend import TensorRTBackend

    index = int(device.split(":")[1]) if ":" in device else 0
    engine = export(checkpoint, "tensorrt", "fp16", workdir / f"trt-b{batch}-{size[0]}x{size[1]}.engine",
                    static_shape=size, batch=batch, device=f"cuda:{index}")
    backend = TensorRTBackend(engine, device=index, cuda_graph=True)
    feed = {backend.inputs[0].name: (np.random.default_rng(0).random((batch, 3, *size)) * 2 - 1).astype(
        backend.inputs[0].dtype)}

    def step() -> None:
        backend.run(feed)

    return _Case("tensorrt-fp16", batch, size, step, {"name": "tensorrt", "delegate": "strongly typed fp16, CUDA graph",
                                                      "device": device}, "fp16", "tensorrt",
                 ["includes host->device input and device->host output copies"], keep=backend)


def measure_gpu_speed(checkpoint: Any = None, variants: Sequence[str] = DEFAULT_VARIANTS,
                      batches: Sequence[int] = (1, 8), sizes: Sequence[tuple[int, int]] = ((512, 512),),
                      iterations: int = 100, warmup: int = 10, rounds: int = 5, device: str = "cuda",
                      progress: bool = True) -> list[BenchResult]:
    """Measure ``variants`` x ``batches`` x ``sizes``; returns results in the runner's schema.

    ``checkpoint``: path or :class:`Checkpoint` (None: the seeded default network; speed does not
    depend on the weights).  Variants that cannot run here (no CUDA EP, no TensorRT) are skipped with
    their reason printed; an empty result list means nothing could be measured.
    """
    import torch

    from modnet_edge.model.checkpoint import Checkpoint, build_from_checkpoint, random_checkpoint, read_checkpoint

    cfg = BenchConfig(sizes=tuple((int(h), int(w)) for h, w in sizes), warmup=warmup, iterations=iterations,
                      rounds=rounds)  # validates them, and drives the runner's timing
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown GPU benchmark variant(s) {unknown}; choose from {list(VARIANTS)}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailableError("no CUDA GPU is available to PyTorch here; GPU speed cannot be measured "
                                          "on this machine (run this on an NVIDIA GPU machine)")
        torch.backends.cudnn.benchmark = True
    elif device != "cpu" or any(v not in CPU_VARIANTS for v in variants):
        raise ConfigError(f"device {device!r}: only CUDA measures GPU speed ('cpu' smoke-tests {CPU_VARIANTS})")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else (
        random_checkpoint() if checkpoint is None else read_checkpoint(checkpoint))
    net = build_from_checkpoint(ckpt).eval()
    cases, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="modnet-gpu-speed-") as td:
        for variant in variants:
            for batch in batches:
                for size in sizes:
                    try:
                        if variant.startswith("torch"):
                            case = _torch_case(net, variant, batch, tuple(size), device)
                        elif variant.startswith("ort"):
                            case = _ort_case(ckpt, variant, batch, tuple(size), device, Path(td))
                        else:
                            case = _tensorrt_case(ckpt, batch, tuple(size), device, Path(td))
                    except BackendUnavailableError as exc:
                        skipped.append(f"{variant}: {exc}")
                        break
                    case = _synced(case, device)
                    _sync(device)
                    for _ in range(warmup):
                        case.step()
                    cases.append(case)
        for line in dict.fromkeys(skipped):
            print(f"skipped {line}")
        time_interleaved(cases, cfg, "GPU benchmark (interleaved)", progress)
    run_id = new_run_id()
    gpu_mb = gpu_memory_mb()
    dev = describe_device()
    if device.startswith("cuda"):
        dev = {**dev, "cuda_device": torch.cuda.get_device_name(torch.device(device)),
               "compute_capability": "{}.{}".format(*torch.cuda.get_device_capability(torch.device(device)))}
    results = []
    for case in cases:
        artifact = {"name": case.variant, "path": None, "format": case.fmt, "precision": case.precision,
                    "bytes": None, "sha256": None, "weights_sha256": ckpt.source_info()["weights_sha256"]}
        config = {"warmup": warmup, "iterations": iterations, "threads": None, "batch": case.batch,
                  "input_size": list(case.size)}
        results.append(BenchResult(source="local", run_id=run_id, artifact=artifact, mode="model",
                                   runtime=case.runtime, device=dev, versions=runtime_versions(), config=config,
                                   latency_ms=LatencyStats.from_samples(case.samples_ms),
                                   memory={"gpu_mb": gpu_mb}, notes=case.notes,
                                   extra={"benchmark": "gpu_speed", "target_fps_batch1_fp16": TARGET_FPS}))
    return results


def summary(results: Sequence[BenchResult]) -> str:
    """A table, plus the batch-1 fp16 verdict against the H100-class target."""
    from modnet_edge.core.console import table

    rows = [(r.artifact["name"], r.config["batch"], "x".join(map(str, r.input_size or ())), f"{r.latency_ms.p50:.3f}",
             f"{r.latency_ms.p90:.3f}", f"{r.fps:.1f}") for r in results]
    lines = [table(("variant", "batch", "size", "p50 ms", "p90 ms", "fps"), rows, right=(1, 2, 3, 4, 5))]
    fp16_b1 = [r for r in results
               if r.precision == TARGET_PRECISION and r.config["batch"] == 1 and r.input_size == (512, 512)]
    if fp16_b1:
        best = max(fp16_b1, key=lambda r: r.fps)
        verdict = "meets" if best.fps >= TARGET_FPS else "misses"
        lines.append(f"best batch-1 fp16 512x512: {best.artifact['name']} {best.fps:.0f} fps, {verdict} the "
                     f"H100-class target of {TARGET_FPS:.0f} fps (GPU: {best.device.get('cuda_device')})")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", nargs="?", help="checkpoint (default: the seeded built-in network; speed "
                        "does not depend on the weights)")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--size", dest="sizes", type=size_arg, action="append", metavar="HxW",
                        help="input size HxW or N (NxN), repeatable (default: 512x512)")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cuda", metavar="DEVICE", help="PyTorch-style device: cuda or cuda:N "
                        "(cpu only smoke-tests torch-fp32)")
    parser.add_argument("--json", type=Path, help="append results as JSON lines (the runner's schema)")
    parser.add_argument("--check", action="store_true", help="exit 1 when batch-1 fp16 misses the target")


def run(args: argparse.Namespace) -> int:
    results = measure_gpu_speed(args.checkpoint, args.variants, args.batches, tuple(args.sizes or [(512, 512)]),
                                args.iterations, args.warmup, device=args.device)
    if not results:
        print("nothing could be measured (every variant was skipped)")
        return 1
    print(summary(results))
    if args.json:
        write_jsonl(results, args.json, append=True)
        print(f"appended {len(results)} results to {args.json}")
    if args.check:
        best = max((r.fps for r in results if r.precision == TARGET_PRECISION and r.config["batch"] == 1),
                   default=0.0)
        return 0 if best >= TARGET_FPS else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    from modnet_edge.core.errors import ModnetEdgeError

    parser = argparse.ArgumentParser(prog="python -m modnet_edge.benchmarks.gpu_speed", description=HELP)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ModnetEdgeError as exc:
        print(f"gpu_speed: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
