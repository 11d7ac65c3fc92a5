"""Process-wide console settings: quiet, progress bars, a log file, plain progress lines, and third-party
native chatter.

Commands run in terminals, CI logs and scripts.  A progress bar redraws itself with ``\\r`` and cursor
codes (``\\x1b[A``), which is useful on a terminal and garbage in a log file, so bars are drawn only when
stderr is a terminal and the user did not turn them off.  Where no bar is drawn, progress is told in
plain lines instead (:func:`status`): each step and search candidate says what it did, and a heartbeat
names the work under way at least every :data:`HEARTBEAT_S` seconds (30; the environment variable
``MODNET_EDGE_HEARTBEAT_S`` changes it), so a log or a pipe never goes silent for minutes during a Core ML
conversion or a calibration.  No escape code reaches a log or a pipe: status lines and tee'd output are
stripped of them, and ONNX Runtime's coloured warnings are kept to errors (:func:`quiet_onnxruntime`).
The settings live here (not in the CLI) so every stage asks one place, and the Python API gets the same
behaviour as the command line.

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
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    """A ``tqdm`` bar on a terminal (:func:`progress_enabled`); iterate it or use it as a context manager
    exactly like ``tqdm``.  Where no bar may be drawn (a log, a pipe) the loop is told in plain lines
    instead: nothing for a loop shorter than the heartbeat, then a line at least every
    :data:`HEARTBEAT_S` seconds naming it and how far it got, never a ``\\r`` redraw or an escape code.
    ``disable`` (the caller's "no progress") and ``--quiet`` silence both."""
    from tqdm import tqdm

    enabled = not disable and progress_enabled()
    if enabled:
        kw.setdefault("file", bar_stream())
        return tqdm(iterable, total=total, desc=desc, leave=leave, **kw)
    if disable or SETTINGS.quiet or not SETTINGS.progress:
        return tqdm(iterable, total=total, desc=desc, leave=leave, disable=True, **kw)
    return _PlainProgress(iterable, total, desc, int(kw.get("initial") or 0))


class _PlainProgress:
    """What :func:`progress` returns where no bar is drawn: counts like ``tqdm`` (``update``, ``n``,
    ``set_postfix_str`` ...), draws nothing, and keeps the heartbeat told which loop runs and how far."""

    def __init__(self, iterable: Iterable[Any] | None, total: float | None, desc: str | None,
                 initial: int = 0) -> None:
        # initial: where a resumed loop starts counting (tqdm's ``initial``), so a line says 310/900, not 10/900
        self.iterable, self.desc, self.n, self.postfix = iterable, desc or "working", initial, ""
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self._token: object | None = None

    def describe(self) -> str:
        count = f" {self.n}/{self.total:g}" if self.total else (f" {self.n}" if self.n else "")
        return f"{self.desc}{count}" + (f" ({self.postfix})" if self.postfix else "")

    def _start(self) -> None:
        if self._token is None:
            self._token = HEARTBEAT.push(self.describe)

    def close(self) -> None:
        if self._token is not None:
            HEARTBEAT.pop(self._token)
            self._token = None

    def __iter__(self) -> Iterator[Any]:
        self._start()
        try:
            for item in self.iterable or ():
                yield item
                self.n += 1
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> _PlainProgress:
        self._start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self._start()
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**dict(ordered_dict or {}), **kwargs}.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or self.desc

    def refresh(self) -> None:
        pass

    @staticmethod
    def write(s: str, file: Any = None, end: str = "\n") -> None:
        from tqdm import tqdm

        tqdm.write(s, file=file, end=end)


# ---- plain progress lines: steps, search candidates and a heartbeat ---------------------------------------

#: an escape sequence (CSI, OSC, or a two-character escape): colours, cursor moves, titles
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(text: str) -> str:
    """``text`` without escape sequences (what a log file or a pipe must never receive)."""
    return ANSI.sub("", text)


#: at most this many seconds of work pass without a line in a log or a pipe (``MODNET_EDGE_HEARTBEAT_S``
#: in the environment changes it, e.g. for a test that cannot wait 30 s)
HEARTBEAT_S = 30.0


def _heartbeat_seconds() -> float:
    try:
        value = float(os.environ.get("MODNET_EDGE_HEARTBEAT_S", HEARTBEAT_S))
    except ValueError:
        value = HEARTBEAT_S
    return value if value > 0 else HEARTBEAT_S


def duration(seconds: float) -> str:
    """``45 s``, ``2m 05s``, ``1h 02m``: how long something took, for a person."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class _Heartbeat:
    """The work under way (a stack of activities, innermost last) and a daemon thread that, in a log or
    a pipe, prints a line naming it when no status line came for :data:`HEARTBEAT_S` seconds."""

    def __init__(self) -> None:
        self._stack: list[tuple[Callable[[], str], float]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last = time.monotonic()

    def push(self, describe: Callable[[], str]) -> object:
        token = (describe, time.monotonic())
        with self._lock:
            if not self._stack:
                self.last = time.monotonic()  # work starts: the first line is due one interval from now
            self._stack.append(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modnet-edge-heartbeat", daemon=True)
                self._thread.start()
        return token

    def pop(self, token: object) -> None:
        with self._lock:
            if token in self._stack:
                self._stack.remove(token)  # type: ignore[arg-type]

    def touch(self) -> None:
        self.last = time.monotonic()

    def current(self) -> str | None:
        """What the heartbeat would say now: the activities outermost first, and for how long."""
        with self._lock:
            if not self._stack:
                return None
            parts = [d() for d, _ in self._stack]
            started, inner = self._stack[0][1], self._stack[-1][1]
        now = time.monotonic()
        spent = duration(now - started) + (f", this step {duration(now - inner)}" if len(parts) > 1 else "")
        return f"still working: {' > '.join(p for p in parts if p)} ({spent})"

    def _run(self) -> None:
        while True:
            interval = _heartbeat_seconds()
            poll = min(1.0, interval / 4)
            time.sleep(poll)
            with self._lock:
                if not self._stack:
                    self._thread = None
                    return
                # one poll early: waking once a second, a line due at exactly the interval came up to a second
                # late (30.4 s between lines in a pipeline log)
                due = time.monotonic() - self.last >= interval - poll
            if not due:
                continue
            line = self.current()
            if line and plain_lines():
                try:
                    status(line)
                except Exception:  # noqa: BLE001: a heartbeat must never take the work down with it
                    pass
            self.touch()


HEARTBEAT = _Heartbeat()


@contextlib.contextmanager
def activity(name: str) -> Iterator[None]:
    """Name the work done inside the block for the heartbeat (``export coreml fp16``); prints nothing
    itself.  Nested activities are shown outermost first."""
    token = HEARTBEAT.push(lambda: name)
    try:
        yield
    finally:
        HEARTBEAT.pop(token)


# streams and fds that quieting blocks redirected: the console as it was before each (see status())
_redirected: list[tuple[Any, int | None]] = []


@contextlib.contextmanager
def console_before_redirect(fd_copy: int | None = None) -> Iterator[None]:
    """Entered by a block that is about to redirect ``sys.stderr`` (and, with ``fd_copy``, a dup of the
    real fd 2, file descriptor 2 too), so status lines still reach the user meanwhile."""
    entry = (sys.stderr, fd_copy)
    _redirected.append(entry)
    try:
        yield
    finally:
        with _status_lock:  # after this no status line writes to fd_copy, which the caller then closes
            _redirected.remove(entry)


def plain_lines() -> bool:
    """Whether progress is told in lines: not quiet, progress not turned off, and no bar can be drawn."""
    stream = _redirected[0][0] if _redirected else sys.stderr
    while isinstance(stream, _Tee):
        stream = stream.stream
    return SETTINGS.progress and not SETTINGS.quiet and not (stream is not None and _is_terminal(stream))


_status_lock = threading.Lock()


def status(message: str) -> None:
    """One plain progress line (a step done, a search candidate judged, a heartbeat) on stderr and in the
    log file, without escape codes; nothing under ``--quiet``.  It reaches the console even while a tool
    is being kept quiet (``sys.stderr`` or fd 2 redirected), and resets the heartbeat's clock."""
    HEARTBEAT.touch()
    if SETTINGS.quiet:
        return
    text = strip_ansi(message).replace("\r", "").rstrip("\n") + "\n"
    with _status_lock:
        stream, fd = (_redirected[0][0], next((f for _, f in _redirected if f is not None), None)) \
            if _redirected else (sys.stderr, None)
        log = None
        while isinstance(stream, _Tee):
            log = log or stream.log
            stream = stream.stream
        try:
            if stream is not None and fd is not None and _fileno(stream) == 2:
                stream.flush()
                os.write(fd, text.encode("utf-8", errors="replace"))
            elif stream is not None:
                stream.write(text)
                stream.flush()
            if log is not None:
                log.write(text)
                log.flush()
        except (ValueError, OSError):  # a closed stream at interpreter exit: nothing to tell
            pass


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return None


def quiet_onnxruntime() -> None:
    """Keep ONNX Runtime's log to errors.  Its warnings (``Removing initializer 'x'. It is not used by any
    node``, written for graphs the precision search builds) go straight to fd 2 wrapped in colour escape
    codes, past every Python setting, into logs and pipes; they tell a user nothing actionable.  Errors
    still print, and every ONNX Runtime failure also raises."""
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.set_default_logger_severity(3)


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
    """A text stream that writes to ``stream`` (None: nowhere, for --quiet) and appends to ``log``; the
    log never receives escape codes, nor does ``stream`` when ``plain`` (a pipe or a file)."""

    def __init__(self, stream: TextIO | None, log: TextIO | None, plain: bool = False) -> None:
        super().__init__()
        self.stream, self.log, self.plain = stream, log, plain

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        clean = strip_ansi(text) if "\x1b" in text else text
        if self.stream is not None:
            self.stream.write(clean if self.plain else text)
        if self.log is not None:
            self.log.write(clean)
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
def captured_output(quiet: bool = False, log_file: Any = None, plain: bool = False) -> Iterator[None]:
    """For the duration: drop everything printed (``quiet``) and/or append it to ``log_file`` (a path, or
    a log the caller opened); with ``plain``, strip escape codes from what goes to a stream that is not a
    terminal.

    Works on ``sys.stdout``/``sys.stderr`` (Python-level prints, warnings, ``tqdm.write``), not on bars
    (drawn on the real stderr, and only on a terminal).  The streams are restored on exit, so an error
    raised inside is still reported by the caller on the real stderr.
    """
    piped = plain and not (_is_terminal(sys.stdout) and _is_terminal(sys.stderr))
    if not quiet and log_file is None and not piped:
        yield
        return
    log: Any = None
    if log_file is not None:  # a path, or a log already opened by the caller (the CLI's LogFile)
        from modnet_edge.core.files import LogFile

        log = log_file if hasattr(log_file, "write") else LogFile(log_file)
    saved = sys.stdout, sys.stderr
    sys.stdout = _Tee(None if quiet else saved[0], log, plain and not _is_terminal(saved[0]))  # type: ignore[assignment]
    sys.stderr = _Tee(None if quiet else saved[1], log, plain and not _is_terminal(saved[1]))  # type: ignore[assignment]
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
_native_console: tuple[Any, int | None] | None = None  # our entry in _redirected while fd 2 is captured


def _keep_native_line(line: str) -> bool:
    # progress-bar redraws that happened to land on fd 2 meanwhile are dropped too: the live bar redraws
    return bool(line.strip()) and not NATIVE_INFO.match(line) and "\r" not in line


def _begin_native_capture() -> bool:
    global _native_depth, _native_saved_fd, _native_capture, _native_console
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
        _native_console = (sys.stderr, saved)  # status lines keep reaching the real fd 2 meanwhile
        _redirected.append(_native_console)
        os.dup2(capture.fileno(), 2)
        _native_saved_fd, _native_capture = saved, capture
        return True


def _end_native_capture() -> None:
    global _native_depth, _native_saved_fd, _native_capture, _native_console
    with _native_lock:
        _native_depth -= 1
        if _native_depth > 0:
            return
        saved, capture = _native_saved_fd, _native_capture
        _native_saved_fd = _native_capture = None
        with _status_lock:  # no status line may be writing to the saved fd while it is closed
            if _native_console in _redirected:
                _redirected.remove(_native_console)
            _native_console = None
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
    kept = [clean for line in text.splitlines() if "\r" not in line and _keep_native_line(clean := ANSI.sub("", line))]
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
