#!/usr/bin/env python3
"""Standalone benchmark for Linux edge boards (Jetson, Raspberry Pi, ...): numpy + one runtime, nothing else.

Copy this one file and the model (with its ``.manifest.json``, if you have it) to the board and run::

    python3 edge_runner.py modnet.int8.tflite --threads 4 --iterations 100 --json pi5.jsonl
    python3 edge_runner.py modnet.fp16.onnx --providers TensorrtExecutionProvider,CUDAExecutionProvider
    python3 edge_runner.py modnet.tflite --delegate /usr/lib/libvx_delegate.so   # an external delegate

It needs only numpy and the model's runtime (``ai-edge-litert``/``tflite-runtime``/TensorFlow for
.tflite, ``onnxruntime`` for .onnx); it never imports PyTorch or modnet-edge, which a Pi or a Jetson
may not have.  It writes results in the toolkit's benchmark schema (``modnet-edge/bench/1``, one JSON
object per line), so ``modnet-edge bench --results pi5.jsonl --device-class ... --check`` checks them
against a device target exactly like a local run.

It measures the model only (``invoke``/``run`` on a fixed feed of the right dtype and shape): the
image preprocessing is the toolkit's and is not duplicated here, so end-to-end figures come from
``modnet-edge bench --mode end-to-end`` where the toolkit is installed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import numpy as np

SCHEMA = "modnet-edge/bench/1"


class RunnerError(Exception):
    """A problem with the model, the runtime or the options (printed as one line, exit status 2)."""


# -- runtimes ------------------------------------------------------------------------------------
def _tflite_interpreter_module():
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        try:
            module = __import__(name, fromlist=["Interpreter"])
            return module, name.split(".")[0]
        except ImportError:
            continue
    raise RunnerError("no TensorFlow Lite runtime found: pip install ai-edge-litert (or tflite-runtime)")


class TFLiteRunner:
    def __init__(self, path: Path, threads: int | None, delegate: str | None, size: tuple[int, int] | None,
                 batch: int) -> None:
        module, self.runtime = _tflite_interpreter_module()
        delegates = []
        if delegate:
            try:
                delegates.append(module.load_delegate(delegate))
            except (ValueError, OSError) as exc:
                raise RunnerError(f"cannot load the delegate {delegate}: {exc}") from None
        try:
            self.interp = module.Interpreter(model_path=str(path), num_threads=threads,
                                             experimental_delegates=delegates or None)
        except (ValueError, RuntimeError) as exc:
            raise RunnerError(f"{path}: not a loadable .tflite model: {exc}") from None
        self.delegate = Path(delegate).name if delegate else "XNNPACK/CPU (default)"
        detail = self.interp.get_input_details()[0]
        sig = list(detail.get("shape_signature", detail["shape"]))
        if any(d < 0 for d in sig):
            shape = _concrete(sig, size, batch, detail["shape"])
            self.interp.resize_tensor_input(detail["index"], shape)
        self.interp.allocate_tensors()
        detail = self.interp.get_input_details()[0]
        self.index, self.shape, self.dtype = detail["index"], [int(d) for d in detail["shape"]], detail["dtype"]
        self.feed = _feed(self.shape, self.dtype)

    def step(self) -> None:
        self.interp.set_tensor(self.index, self.feed)
        self.interp.invoke()


class OnnxRunner:
    def __init__(self, path: Path, threads: int | None, providers: list[str], size: tuple[int, int] | None,
                 batch: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RunnerError("onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu "
                              "/ the Jetson wheel)") from None
        self.runtime = "onnxruntime"
        opts = ort.SessionOptions()
        opts.log_severity_level = 4  # failures reach the user once, as our one-line error, not as ORT's log too
        if threads:
            opts.intra_op_num_threads = threads
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise RunnerError(f"execution provider(s) {missing} not available (available: {available})")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers or None)
        except Exception as exc:  # onnxruntime raises several types for a bad file
            raise RunnerError(f"{path}: onnxruntime cannot load it: {str(exc).splitlines()[0]}") from None
        self.delegate = ",".join(self.session.get_providers())
        inp = self.session.get_inputs()[0]
        types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
                 "tensor(int8)": np.int8}
        self.dtype = np.dtype(types.get(inp.type, np.float32))
        self.shape = _concrete([d if isinstance(d, int) else -1 for d in inp.shape], size, batch, None)
        self.name, self.feed = inp.name, _feed(self.shape, self.dtype)

    def step(self) -> None:
        self.session.run(None, {self.name: self.feed})


def _concrete(sig: list[int], size: tuple[int, int] | None, batch: int, fallback) -> list[int]:
    """Fill dynamic dimensions: batch first, then H and W from --size (NCHW if dim 1 is 3, else NHWC)."""
    shape = list(sig)
    if len(shape) == 4:
        if shape[0] < 0:
            shape[0] = batch
        hw = (2, 3) if shape[1] in (1, 3) else (1, 2)
        for axis, value in zip(hw, size or (None, None)):
            if shape[axis] < 0:
                if value is None:
                    raise RunnerError("the model has a dynamic height/width: pass --size HxW")
                shape[axis] = value
    if any(d < 0 for d in shape):
        raise RunnerError(f"cannot choose a concrete input shape for {sig}; pass --size HxW")
    return shape


def input_kind(manifest: dict, dtype) -> str:
    """What the model reads, from its manifest: the 8-bit image itself (fed as uint8, or int8 ``p - 128``;
    the normalisation is folded into the model) or the normalised float image; without a manifest, what
    the input dtype suggests."""
    declared = ((manifest.get("preprocessing") or {}).get("input_dtype")) if manifest else None
    if declared == "uint8" or (declared is None and np.dtype(dtype) == np.uint8):
        how = "uint8" if np.dtype(dtype) == np.uint8 else f"{np.dtype(dtype)} p-128"
        return f"8-bit image ({how}), normalisation inside the model"
    if np.issubdtype(np.dtype(dtype), np.integer):
        return f"normalised image quantised to {np.dtype(dtype)}"
    return "normalised float image" + ("" if declared else " (no manifest: assumed)")


def _feed(shape: list[int], dtype) -> np.ndarray:
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


# -- machine -------------------------------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip("\x00\n ")
    except OSError:
        return None


def describe_device() -> dict:
    cpu = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.lower().startswith(("model name", "hardware")):
            cpu = line.split(":", 1)[1].strip()
            break
    board = _read("/proc/device-tree/model")
    gpu = []
    if Path("/etc/nv_tegra_release").exists() or (board and "jetson" in board.lower()):
        gpu.append(f"NVIDIA Tegra ({board})" if board else "NVIDIA Tegra")
    return {"kind": "edge-board", "name": board or platform.node(), "board": board,
            "cpu": cpu or platform.processor() or platform.machine(), "cores": os.cpu_count(), "gpu": gpu,
            "os": platform.platform(), "machine": platform.machine(), "python": platform.python_version()}


def _versions(runtime: str) -> dict:
    from importlib import metadata

    out = {"numpy": np.__version__}
    for dist in {"ai_edge_litert": ("ai-edge-litert",), "tflite_runtime": ("tflite-runtime",),
                 "tensorflow": ("tensorflow",), "onnxruntime": ("onnxruntime", "onnxruntime-gpu")}.get(runtime, ()):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _manifest(path: Path) -> dict:
    text = _read(str(path.with_name(path.name + ".manifest.json")))
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunnerError(f"{path.name}.manifest.json is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# -- the run -------------------------------------------------------------------------------------
def _stats(samples: list[float]) -> dict:
    a = np.asarray(samples, dtype=np.float64)
    p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max()),
            "p50": p50, "p90": p90, "p99": p99, "count": int(a.size)}


def benchmark(args: argparse.Namespace) -> dict:
    path = Path(args.model)
    if not path.exists():
        raise RunnerError(f"{path}: model file does not exist")
    suffix = path.suffix.lower()
    runtime = args.runtime if args.runtime != "auto" else {".tflite": "tflite", ".onnx": "onnxruntime"}.get(suffix)
    if runtime is None:
        raise RunnerError(f"{path}: cannot tell the runtime from the suffix {suffix!r}; pass --runtime")
    t0 = time.perf_counter()
    if runtime == "tflite":
        runner = TFLiteRunner(path, args.threads, args.delegate, args.size, args.batch)
    else:
        providers = [p for p in (args.providers or "").split(",") if p]
        runner = OnnxRunner(path, args.threads, providers, args.size, args.batch)
    load_ms = (time.perf_counter() - t0) * 1000
    try:  # the first run is where a shape the model cannot take fails (in the runtime's own words)
        for _ in range(max(1, args.warmup)):
            runner.step()
    except Exception as exc:  # onnxruntime and the TFLite interpreter raise several types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = "; MODNet artifacts take heights and widths that are multiples of 32" if any(
            d % 32 for d in runner.shape[-3:] if d not in (1, 3)) else ""
        raise RunnerError(f"{path}: the model cannot run an input of shape {list(runner.shape)} ({first[:200]})"
                          f"{hint}") from None
    samples, start = [], time.perf_counter()
    while len(samples) < args.iterations:
        t = time.perf_counter()
        runner.step()
        samples.append((time.perf_counter() - t) * 1000.0)
        if args.max_seconds and len(samples) >= 3 and time.perf_counter() - start > args.max_seconds:
            break
    shape = runner.shape
    hw = shape[2:4] if len(shape) == 4 and shape[1] in (1, 3) else shape[1:3]
    manifest = _manifest(path)
    kind = input_kind(manifest, runner.dtype)
    stats = _stats(samples)
    batch = shape[0] if shape else 1
    return {
        "schema": SCHEMA, "source": "edge-runner",
        "run_id": _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8],
        "artifact": {"name": path.name, "path": str(path.resolve()), "format": manifest.get("format") or (
            "tflite" if runtime == "tflite" else "onnx"), "precision": manifest.get("precision") or args.precision,
            "bytes": path.stat().st_size if path.is_file() else None, "sha256": _sha256(path)},
        "mode": "model", "runtime": {"name": runner.runtime, "delegate": runner.delegate, "device": None},
        "device": describe_device(), "versions": _versions(runner.runtime),
        "config": {"warmup": args.warmup, "iterations": len(samples), "threads": args.threads or "runtime default",
                   "batch": batch, "input_size": [int(hw[0]), int(hw[1])] if len(hw) == 2 else None,
                   "input_dtype": str(np.dtype(runner.dtype)), "input_kind": kind},
        "latency_ms": stats, "fps": batch * 1000.0 / stats["p50"],
        "memory": {"peak_rss_mb": _peak_rss_mb(), "rss_delta_mb": None, "gpu_mb": None},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "notes": ["model only: fixed random feed of the input's dtype; preprocessing not included"],
        "extra": {"load_ms": load_ms},
    }


def _append_line(path: Path, line: str) -> None:
    """Append one line atomically (write a temporary copy, then rename), so no half line is left."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(old + line + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 512x512, got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"height and width must be positive, got {text!r}")
    return h, w


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="benchmark a .tflite or .onnx model on this board (numpy + runtime only)")
    p.add_argument("model")
    p.add_argument("--runtime", choices=("auto", "tflite", "onnxruntime"), default="auto")
    p.add_argument("--size", type=_size, help="HxW for models with a dynamic input size")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--max-seconds", type=float, help="stop timing after this long (at least 3 iterations)")
    p.add_argument("--delegate", help="TFLite external delegate library (.so)")
    p.add_argument("--providers", help="ONNX Runtime execution providers, comma-separated, in order")
    p.add_argument("--precision", help="precision to record when the model has no manifest beside it")
    p.add_argument("--json", help="append the result as one JSON line to this file")
    args = p.parse_args(argv)
    try:
        if args.iterations < 1 or args.warmup < 0 or args.batch < 1:
            raise RunnerError("--iterations and --batch must be >= 1, --warmup >= 0")
        result = benchmark(args)
    except RunnerError as exc:
        print(f"edge_runner: error: {exc}", file=sys.stderr)
        return 2
    lat = result["latency_ms"]
    print(f"{result['artifact']['name']}: {result['runtime']['name']} [{result['runtime']['delegate']}] "
          f"input {result['config']['input_size']} x{result['config']['batch']} "
          f"({result['config']['input_kind']}): p50 {lat['p50']:.2f} ms, "
          f"p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms, {result['fps']:.1f} fps "
          f"({lat['count']} runs) on {result['device']['name']}")
    if args.json:
        _append_line(Path(args.json), json.dumps(result, sort_keys=True))
        print(f"appended to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
