"""Progress where there is no terminal (issue 27): plain lines in logs and pipes, a heartbeat during long
steps, line-buffered output, and no escape code from any tool.

The commands run in child processes with their output piped, exactly as CI or ``| tee`` sees them; the
heartbeat interval is shortened through ``MODNET_EDGE_HEARTBEAT_S`` so a test need not wait 30 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from modnet_edge.core import console


def _piped(*args: str, cwd: Path, heartbeat: float | None = None, merged: bool = False
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if heartbeat is not None:
        env["MODNET_EDGE_HEARTBEAT_S"] = str(heartbeat)
    return subprocess.run([sys.executable, "-m", "modnet_edge.cli", *args], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merged else subprocess.PIPE,
                          timeout=600)


def test_a_long_step_in_a_pipe_and_a_log_says_what_it_is_doing(tmp_path: Path) -> None:
    """An export takes seconds here (minutes for Core ML or INT8 calibration): with the heartbeat at 1 s
    the pipe and the log hear from it every second, naming the step, and nothing is an escape code."""
    log = tmp_path / "run.log"
    proc = _piped("export", "--format", "onnx", "--static-shape", "64", "-o", str(tmp_path / "m.onnx"),
                  "--log-file", str(log), cwd=tmp_path, heartbeat=1, merged=True)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    beats = [line for line in lines if line.startswith("still working: modnet-edge export")]
    assert beats, proc.stdout
    assert any("> export onnx fp32 (" in line and "this step" in line for line in beats), beats
    # stdout is line-buffered in a pipe: the note printed first arrives before the heartbeats on stderr
    note = next(i for i, line in enumerate(lines) if line.startswith("note: no checkpoint given"))
    assert note < lines.index(beats[0]) and lines[-1].startswith("wrote ")
    written = log.read_text()
    assert "still working: modnet-edge export" in written and "wrote " in written
    for text in (proc.stdout, written):
        assert "\x1b" not in text and "\r" not in text


def test_onnx_runtime_colour_warnings_do_not_reach_a_pipe(tmp_path: Path) -> None:
    """ONNX Runtime writes 'Removing initializer ...' to fd 2 in yellow (escape codes) for a graph with an
    unused weight, as precision-search candidates have; it must not reach piped output."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    unused = numpy_helper.from_array(np.ones(3, np.float32), "unused")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y], [unused])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "unused.onnx")
    proc = _piped("info", str(tmp_path / "unused.onnx"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "foreign model" in proc.stdout
    assert "\x1b" not in proc.stdout + proc.stderr and "Removing initializer" not in proc.stderr


def test_status_lines_reach_the_console_while_a_tool_is_kept_quiet() -> None:
    """A status line written while fd 2 is captured (LiteRT's chatter) or sys.stderr is redirected (a
    converter's bars) goes out at once, not after the block or never."""
    code = ("import os, sys\n"
            "from modnet_edge.core.console import quiet_native_logs, status\n"
            "from modnet_edge.core.tools import quiet_tool\n"
            "with quiet_native_logs():\n"
            "    status('\\x1b[1mduring native capture\\x1b[0m')\n"
            "    os.write(2, b'ERROR: native, re-emitted after the block\\n')\n"
            "with quiet_tool(native=True):\n"
            "    print('converter chatter', file=sys.stderr)\n"
            "    status('during quiet_tool')\n"
            "status('after')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["during native capture", "ERROR: native, re-emitted after the block",
                                        "during quiet_tool", "after"]


def test_a_loop_without_a_bar_is_told_in_lines(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Where no bar is drawn (pytest's captured stderr is no terminal), a loop slower than the heartbeat
    is named with its count; a quick loop prints nothing; --quiet and disable= print nothing."""
    monkeypatch.setenv("MODNET_EDGE_HEARTBEAT_S", "0.2")
    bar = console.progress(range(4), desc="calibrate")
    assert not console.progress_enabled() and isinstance(bar, console._PlainProgress)
    for _ in bar:
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(re.fullmatch(r"still working: calibrate [0-4]/4 \(\d+ s\)", line) for line in lines), lines
    with console.progress(total=2, desc="quantise") as manual:
        manual.set_postfix_str("export float graph")
        manual.update()
        assert manual.describe() == "quantise 1/2 (export float graph)"
    with console.progress(total=900, initial=300, desc="qat") as resumed:  # a resumed loop counts on
        resumed.update()
        assert resumed.describe() == "qat 301/900"
    assert list(console.progress(range(3), desc="quick")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(console.SETTINGS, "quiet", True)
    for _ in console.progress(range(2), desc="silent"):
        time.sleep(0.3)
    monkeypatch.setattr(console.SETTINGS, "quiet", False)
    for _ in console.progress(range(2), desc="off", disable=True):
        time.sleep(0.3)
    assert capsys.readouterr().err == ""


def test_escape_codes_never_reach_a_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    with console.captured_output(log_file=log, plain=True):
        print("\x1b[31mred\x1b[0m text")
        console.status("\x1b]0;title\x07status \x1b[1mbold\x1b[0m")
    assert log.read_text() == "red text\nstatus bold\n"
    assert console.strip_ansi("\x1b[0;93mwarn\x1b[m \x1b[2Kline") == "warn line"
    assert [console.duration(s) for s in (4.4, 125, 3725)] == ["4 s", "2m 05s", "1h 02m"]
