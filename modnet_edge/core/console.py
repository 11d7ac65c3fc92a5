"""Process-wide console settings: quiet, progress bars, a log file, and third-party native chatter.

Commands run in terminals, CI logs and scripts.  A progress bar redraws itself with ``\\r`` and cursor
codes (``\\x1b[A``), which is useful on a terminal and garbage in a log file, so bars are drawn only when
stderr is a terminal and the user did not turn them off.  The settings live here (not in the CLI) so
every stage asks one place, and the Python API gets the same behaviour as the command line.

Nothing here imports torch or any runtime: the CLI configures it before ``--help`` is even parsed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


@dataclass
class ConsoleSettings:
    """What this process may print: ``quiet`` silences everything but errors, ``progress`` draws bars
    (on a terminal only), ``log_file`` also receives every line a command prints."""

    quiet: bool = False
    progress: bool = True
    log_file: Path | None = None


SETTINGS = ConsoleSettings()


def configure(*, quiet: bool | None = None, progress: bool | None = None,
              log_file: str | Path | None = None) -> ConsoleSettings:
    """Change the process-wide settings (None keeps a setting as it is); returns them."""
    if quiet is not None:
        SETTINGS.quiet = quiet
    if progress is not None:
        SETTINGS.progress = progress
    if log_file is not None:
        SETTINGS.log_file = Path(log_file)
    return SETTINGS


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed, replaced by a test harness, ...
        return False


def bar_stream() -> TextIO | None:
    """Where bars are drawn: ``sys.stderr`` as it is now, minus the log-file tee of
    :func:`captured_output` (bar redraws must never reach the log); None under --quiet."""
    stream = sys.stderr
    while isinstance(stream, _Tee):
        stream = stream.stream  # type: ignore[assignment]
    return stream


def progress_enabled() -> bool:
    """Bars only when asked for, not quiet, and stderr is a terminal (a pipe or file gets none)."""
    stream = bar_stream()
    return SETTINGS.progress and not SETTINGS.quiet and stream is not None and _is_terminal(stream)


def progress(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str | None = None,
             leave: bool = False, disable: bool = False, **kw: Any) -> Any:
    """A ``tqdm`` bar that draws nothing unless :func:`progress_enabled` (and the caller's ``disable`` is
    false); iterate it or use it as a context manager exactly like ``tqdm``.  A disabled bar writes
    nothing at all, so logs get no ``\\r`` redraws and no escape codes."""
    from tqdm import tqdm

    enabled = not disable and progress_enabled()
    if enabled:
        kw.setdefault("file", bar_stream())
    return tqdm(iterable, total=total, desc=desc, leave=leave, disable=not enabled, **kw)


DEVICE_HELP = "PyTorch-style device: cpu, cuda, cuda:N"


def add_device_argument(parser: Any, auto: bool = False, default: str | None = None, what: str = "") -> None:
    """``--device`` means one thing in every command: a PyTorch-style device string."""
    parser.add_argument("--device", default=default, metavar="DEVICE",
                        help=DEVICE_HELP + (", or auto (CUDA when available)" if auto else "") + what)


def all_precisions() -> list[str]:
    """Every precision some format supports, in table order: the choices of a ``--precision`` option
    whose format is not known when arguments are parsed (the export checks the pair)."""
    from modnet_edge.core.formats import FORMATS

    return list(dict.fromkeys(p for f in FORMATS.values() for p in f.precisions))


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for an input size, the same in every command: ``HxW`` (``512x288``) or one integer
    ``N`` meaning ``NxN``; returns ``(H, W)``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(v) for v in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW such as 512x288, or N for NxN, got {text!r}")
    from modnet_edge.core.errors import ConfigError
    from modnet_edge.core.limits import check_input_size

    try:
        return check_input_size(values[0], values[1], what="size")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def square_size_arg(text: str) -> int:
    """argparse type for sizes that must be square (a training crop): ``N`` or ``NxN``; returns N."""
    h, w = size_arg(text)
    if h != w:
        raise argparse.ArgumentTypeError(f"this size must be square (N or NxN), got {text!r}")
    return h


class _Tee(io.TextIOBase):
    """A text stream that writes to ``stream`` (None: nowhere, for --quiet) and appends to ``log``."""

    def __init__(self, stream: TextIO | None, log: TextIO | None) -> None:
        super().__init__()
        self.stream, self.log = stream, log

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.stream is not None:
            self.stream.write(text)
        if self.log is not None:
            self.log.write(text)
        return len(text)

    def flush(self) -> None:
        for s in (self.stream, self.log):
            if s is not None:
                s.flush()

    def isatty(self) -> bool:
        return self.stream is not None and _is_terminal(self.stream)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"


@contextlib.contextmanager
def captured_output(quiet: bool = False, log_file: Any = None) -> Iterator[None]:
    """For the duration: drop everything printed (``quiet``) and/or append it to ``log_file``.

    Works on ``sys.stdout``/``sys.stderr`` (Python-level prints, warnings, ``tqdm.write``), not on bars
    (drawn on the real stderr, and only on a terminal).  The streams are restored on exit, so an error
    raised inside is still reported by the caller on the real stderr.
    """
    if not quiet and log_file is None:
        yield
        return
    log: Any = None
    if log_file is not None:  # a path, or a log already opened by the caller (the CLI's LogFile)
        from modnet_edge.core.files import LogFile

        log = log_file if hasattr(log_file, "write") else LogFile(log_file)
    saved = sys.stdout, sys.stderr
    sys.stdout = _Tee(None if quiet else saved[0], log)  # type: ignore[assignment]
    sys.stderr = _Tee(None if quiet else saved[1], log)  # type: ignore[assignment]
    try:
        yield
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            sys.stdout, sys.stderr = saved
            if log is not None and log is not log_file:
                log.close()


# ---- native (C/C++) log lines on file descriptor 2 ----------------------------------------------------

#: lines that are a native library's informational chatter: TFLite/LiteRT's ``INFO: ...`` and
#: glog/absl-style ``I0000 00:00:...`` lines.  Warnings and errors (``WARNING:``, ``E0000 ...``) pass.
NATIVE_INFO = re.compile(r"^(INFO: |I\d{4} \d\d:\d\d:\d\d)")

_native_lock = threading.Lock()
_native_depth = 0
_native_saved_fd: int | None = None
_native_capture: Any = None


#: terminal escape sequences (colours, cursor moves): ONNX Runtime colours its warnings even into pipes
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _keep_native_line(line: str) -> bool:
    # progress-bar redraws that happened to land on fd 2 meanwhile are dropped too: the live bar redraws
    return bool(line.strip()) and not NATIVE_INFO.match(line) and "\r" not in line


def _begin_native_capture() -> bool:
    global _native_depth, _native_saved_fd, _native_capture
    with _native_lock:
        _native_depth += 1
        if _native_depth > 1:
            return True
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        try:
            capture = tempfile.TemporaryFile(mode="w+b")
            saved = os.dup(2)
        except OSError:  # no fd 2 to speak of: nothing to silence
            _native_depth -= 1
            return False
        os.dup2(capture.fileno(), 2)
        _native_saved_fd, _native_capture = saved, capture
        return True


def _end_native_capture() -> None:
    global _native_depth, _native_saved_fd, _native_capture
    with _native_lock:
        _native_depth -= 1
        if _native_depth > 0:
            return
        saved, capture = _native_saved_fd, _native_capture
        _native_saved_fd = _native_capture = None
    try:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        os.dup2(saved, 2)
    finally:
        os.close(saved)
    capture.seek(0)
    text = capture.read().decode("utf-8", errors="replace")
    capture.close()
    kept = [clean for line in text.splitlines() if "\r" not in line and _keep_native_line(clean := ESCAPES.sub("", line))]
    if kept:
        try:
            sys.stderr.write("\n".join(kept) + "\n")
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Silence native libraries' informational lines (LiteRT's ``INFO: Created TensorFlow Lite XNNPACK
    delegate for CPU.``) that C/C++ code writes straight to file descriptor 2, where no Python setting
    reaches them.

    For the duration, fd 2 points at a temporary file; on exit fd 2 is restored (also when the body
    raises) and every captured line that is not INFO chatter (see :data:`NATIVE_INFO`) is written
    again to ``sys.stderr``, so warnings and errors still show, just after the block instead of during
    it.  Nested and concurrent uses share one capture (the outermost restores fd 2).  Python writes to
    ``sys.stderr`` inside the block are captured and re-emitted the same way.
    """
    active = _begin_native_capture()
    try:
        yield
    finally:
        if active:
            _end_native_capture()


# ---- tables --------------------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[int] = (),
          rule: bool = True) -> str:
    """A plain-text table whose columns are as wide as their widest cell, so nothing is cut or shifted
    whatever the names and numbers; columns whose index is in ``right`` are right-aligned (numbers)."""
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(cells[0]))]
    right = set(right)

    def line(row: list[str]) -> str:
        parts = [(c.rjust(w) if i in right else c.ljust(w)) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(parts).rstrip()

    out = [line(cells[0])]
    if rule:
        out.append("-" * len(out[0]))
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)
