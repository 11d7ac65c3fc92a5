"""The heavy tools, imported on demand with one clear error each (TensorRT, coremltools), and the one
way every tool is kept quiet while it works (:func:`quiet_tool`).

Both the exporters (which convert with them) and the backends (which run with them) need these, so
they live under every stage rather than in one of them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from modnet_edge.core.console import console_before_redirect
from modnet_edge.core.containers.engine_file import environment_record
from modnet_edge.core.errors import BackendUnavailableError, ConfigError


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or a clear error: not installed, or older than 10."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailableError(
            "TensorRT is not installed. It needs an NVIDIA GPU and driver; install NVIDIA's wheels with "
            "'pip install -c constraints.txt \"modnet-edge[tensorrt]\"' (TensorRT >= 10). Without it, export the "
            "TensorRT-ready ONNX (format 'tensorrt-onnx') and build on the GPU machine") from None
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise BackendUnavailableError(f"TensorRT {trt.__version__} is installed; modnet-edge needs TensorRT >= 10 "
                                      "(strongly typed networks, explicit quantization, execute_async_v3)")
    return trt


def gpu_environment(device: int = 0) -> dict[str, Any]:
    """TensorRT version, GPU name and compute capability of ``device`` (what an engine is tied to)."""
    trt = import_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError("no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is False); "
                                      "TensorRT engines are built and run on an NVIDIA GPU")
    if device >= torch.cuda.device_count():
        raise ConfigError(f"GPU index {device} does not exist ({torch.cuda.device_count()} visible)")
    return environment_record(trt.__version__, torch.cuda.get_device_name(device),
                              torch.cuda.get_device_capability(device), cuda_runtime=torch.version.cuda)


def make_logger(trt: Any, verbose: bool = False) -> Any:
    """A ``trt.ILogger`` that prints warnings (all messages when ``verbose``) and keeps errors for our
    exception messages, so a failed parse or build says *why* instead of returning None."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self._lock = threading.Lock()

        def log(self, severity: Any, msg: str) -> None:
            with self._lock:
                if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                    self.errors.append(msg)
                if verbose or severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR, trt.ILogger.WARNING):
                    print(f"[TensorRT] {msg}", file=sys.stderr)

    return _Logger()


@contextlib.contextmanager
def quiet_tool(loggers: Sequence[str] = (), env: Mapping[str, str] | None = None,
               native: bool = False) -> Iterator[None]:
    """Keep a converter's or quantiser's chatter (progress bars, advice, stage logs) off the user's
    terminal; the toolkit shows its own progress.  What the tool wrote to stderr is given back if the
    body fails, so no clue is lost.

    ``loggers``: Python loggers raised to ERROR for the duration ("" is the root logger); ``env``:
    environment variables set for the duration (e.g. a tool's own progress switch); ``native``: also
    capture file descriptor 2, where C++ libraries (absl logging) write past Python.  Python warnings
    are ignored and ``sys.stdout`` is dropped; everything is restored on exit.
    """
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    handles = [logging.getLogger(name or None) for name in loggers]
    levels = [h.level for h in handles]
    for h in handles:
        h.setLevel(logging.ERROR)
    said = io.StringIO()
    fd_copy, fd_file = None, None
    if native:
        sys.stderr.flush()
        fd_copy, fd_file = os.dup(2), tempfile.TemporaryFile()
    console = console_before_redirect(fd_copy)  # progress lines still reach the user meanwhile
    console.__enter__()
    if native:
        os.dup2(fd_file.fileno(), 2)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said):
            warnings.simplefilter("ignore")
            yield
    except BaseException:
        if fd_file is not None:
            fd_file.seek(0)
            said.write(fd_file.read().decode(errors="replace"))
        sys.stderr.write(said.getvalue())
        raise
    finally:
        if fd_copy is not None:
            os.dup2(fd_copy, 2)
        console.__exit__(None, None, None)
        if fd_copy is not None:
            os.close(fd_copy)
            fd_file.close()
        for h, level in zip(handles, levels):
            h.setLevel(level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def import_coremltools() -> Any:
    """``coremltools``, imported quietly; a clear error when it is not installed."""
    try:
        with quiet_tool(loggers=("coremltools",)):  # a dozen 'Failed to load ...' lines outside macOS
            import coremltools
    except ImportError:
        raise BackendUnavailableError('coremltools is not installed; install it with: '
                                      'pip install -c constraints.txt "modnet-edge[coreml]"') from None
    return coremltools
