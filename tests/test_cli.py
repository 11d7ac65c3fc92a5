"""The command line: every subcommand has --help, mirrors the API, and fails with one clear line."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modnet_edge.cli import COMMANDS, main
from modnet_edge.parity_tests.drift import BUDGETS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: modnet-edge " + command in capsys.readouterr().out


def test_export_predict_parity_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--precision", "fp32", "-o", str(onnx_path)]) == 0
    assert "built-in 'starter' weights" in capsys.readouterr().out
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(images / name)
    out = tmp_path / "out"
    assert main(["predict", str(onnx_path), str(images), "-o", str(out)]) == 0
    assert "built-in weights 'starter-v1'" in capsys.readouterr().err  # predict names the network behind it
    assert sorted(p.name for p in out.iterdir()) == [".modnet-edge-record.jsonl", "a.alpha.png", "a.composite.png",
                                                    "b.alpha.png", "b.composite.png"]  # the record: what is ours
    assert Image.open(out / "a.alpha.png").size == (90, 70)
    report = tmp_path / "parity.json"
    assert main(["parity", str(onnx_path), "--images", str(images), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["pass"] is True and data["artifacts"][0]["drift"]["mse"] <= BUDGETS["fp32"].mse
    assert "PASS" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "missing.onnx"), "x.png", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modnet-edge predict: error:") and "missing.onnx" in err and "Traceback" not in err
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"garbage")
    assert main(["export", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "bad.ckpt" in capsys.readouterr().err


def test_formats_lists_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    assert "onnx" in out and "pytorch" in out


# ---- the CLI mirrors the API, and its output behaves in logs (issue 16) ----------------------------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import modnet_edge  # noqa: E402
from modnet_edge.cli import ALIASES  # noqa: E402
from modnet_edge.core import console  # noqa: E402

# commands that print tables which are data in the API (modnet_edge.FORMATS, model.weights.WEIGHTS)
CLI_ONLY = {"formats", "weights"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_only_meaningful_defaults(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    for empty in ("(default: None)", "(default: False)", "(default: ==SUPPRESS==)", "(default: )", "(default: [])"):
        assert empty not in out
    assert "--quiet" in out and "--no-progress" in out and "--log-file" in out


@pytest.mark.parametrize("command", ["export", "parity", "benchmark"])
def test_precision_options_list_their_choices(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "fp32,fp16,int8" in out.replace("\n", "")


def test_every_mirrored_api_function_has_a_command_and_back() -> None:
    api = {name.replace("_", "-") for name in modnet_edge.MIRRORED}
    assert all(callable(getattr(modnet_edge, name)) for name in modnet_edge.MIRRORED)
    assert api == set(COMMANDS) - CLI_ONLY
    for name in ("load_network", "load", "open_backend", "search_precision"):  # documented API-only names
        assert name in modnet_edge.__doc__


def test_api_functions_stay_callable_after_their_modules_are_imported() -> None:
    """``import modnet_edge.X`` binds X on the package; no mirrored function may be shadowed that way."""
    import importlib

    for name in modnet_edge.MIRRORED:
        target = modnet_edge._LAZY.get(name)
        if target:
            importlib.import_module(target[0])
        assert callable(getattr(modnet_edge, name)), name
    # the stage packages behind export() and train() are named apart from them: plain functions, no
    # module made callable, whatever was imported before
    importlib.import_module("modnet_edge.exporters.onnx_export")
    importlib.import_module("modnet_edge.training.trainer")
    assert isinstance(modnet_edge.export, types.FunctionType)
    assert isinstance(modnet_edge.train, types.FunctionType)


def test_old_command_names_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert ALIASES == {"benchmark": ["bench"], "diagnose": ["doctor"]}
    for old in ("bench", "doctor"):
        with pytest.raises(SystemExit) as exit_info:
            main([old, "--help"])
        assert exit_info.value.code == 0
    capsys.readouterr()


def test_help_does_not_import_torch() -> None:
    code = "import sys; from modnet_edge.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_tensorrt_build_mode_names_match_the_builder() -> None:
    from modnet_edge.exporters.tensorrt_command import BUILD_MODE_NAMES, cuda_index
    from modnet_edge.exporters.tensorrt_onnx import BUILD_MODES

    assert set(BUILD_MODE_NAMES) == set(BUILD_MODES)
    assert (cuda_index("cuda"), cuda_index("cuda:2"), cuda_index("1")) == (0, 2, 1)
    with pytest.raises(modnet_edge.ConfigError, match="cuda:N"):
        cuda_index("cpu")


def test_size_means_the_same_everywhere() -> None:
    import argparse

    assert console.size_arg("512x288") == (512, 288) and console.size_arg("256") == (256, 256)
    assert console.square_size_arg("320") == 320 and console.square_size_arg("320x320") == 320
    for bad in ("0x5", "axb", "1x2x3", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            console.size_arg(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        console.square_size_arg("320x256")


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "modnet_edge.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_piped_output_has_no_escape_codes_and_quiet_prints_nothing(tmp_path: Path) -> None:
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--quiet", "--format", "onnx", "-o", str(onnx_path), "--static-shape", "64"]) == 0
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(images / "a.png")
    piped = _run_cli("predict", str(onnx_path), str(images), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "wrote 1 matte(s)" in piped.stdout
    for stream in (piped.stdout, piped.stderr):
        assert "\x1b[" not in stream and "\r" not in stream
    quiet = _run_cli("predict", str(onnx_path), str(images), "-o", str(tmp_path / "out2"), "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == "", quiet.stderr
    before = _run_cli("--quiet", "formats", cwd=tmp_path)  # before the command name too
    assert before.returncode == 0 and before.stdout == ""


def test_log_file_gets_the_printed_lines_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "logs" / "run.log"
    assert main(["formats", "--log-file", str(log)]) == 0
    shown = capsys.readouterr().out
    assert "onnx" in shown and log.read_text() == shown
    assert main(["--log-file", str(log), "--quiet", "info", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr()
    assert err.out == "" and err.err.startswith("modnet-edge info: error:")  # quiet still reports errors
    assert log.read_text().splitlines()[-1] == err.err.strip()
    assert not console.SETTINGS.quiet and console.SETTINGS.log_file is None  # restored after the command


def test_formats_columns_fit_their_content(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], lines[2:]
    start = header.index("export")
    for row in rows:  # every cell of the export column starts where its header does
        assert row[start - 2:start] == "  " and row[start] != " ", row


def test_progress_bars_are_off_unless_stderr_is_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert not console.progress_enabled()  # pytest captures stderr: not a terminal
    assert list(console.progress(range(3), desc="x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_quiet_native_logs_drops_info_lines_from_fd_2() -> None:
    """Lines written by C code straight to fd 2 (as LiteRT's XNNPACK note is), seen from a child process
    whose stderr is a pipe, so what reaches fd 2 after the block is exactly what the parent reads."""
    code = ("import os, sys\n"
            "from modnet_edge.core.console import quiet_native_logs\n"
            "with quiet_native_logs():\n"
            "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
            "    os.write(2, b'I0000 00:00:1700000000.000000   123 delegate.cc:1] chatter\\n')\n"
            "    os.write(2, b'ERROR: something real\\n')\n"
            "os.write(2, b'after\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == ["ERROR: something real", "after"]


def test_quiet_native_logs_restores_fd_2_when_the_body_raises(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), console.quiet_native_logs():
        os.write(2, b"INFO: dropped\n")
        raise RuntimeError("boom")
    os.write(2, b"WARNING: kept after\n")
    assert capfd.readouterr().err == "WARNING: kept after\n"


# ---- CLI manners: a typo gets the command's own usage and the closest real name (issue 27); a bad value one line (26)

@pytest.mark.parametrize("argv, command, wrong, right", [
    (["predict", "m.onnx", "photo.jpg", "--outptu", "out"], "predict", "--outptu", "--output"),
    (["predict", "m.onnx", "photo.jpg", "-o", "out", "--colour", "0,0,0"], "predict", "--colour", "--color"),
    (["export", "--format", "onnx", "--precison", "fp16", "-o", "x.onnx"], "export", "--precison", "--precision"),
    (["benchmark", "m.onnx", "--iteratons=5"], "benchmark", "--iteratons", "--iterations"),
])
def test_unknown_option_gets_the_commands_usage_and_a_suggestion(argv, command, wrong, right,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: modnet-edge {command} ")  # the command's usage, not the top-level one
    last = err.strip().splitlines()[-1]
    assert last == f"modnet-edge {command}: error: unrecognized option {wrong} (did you mean {right}?)"
    assert "required" not in err  # the typo is named, not the -o it hid


def test_unknown_names_elsewhere_are_named_too(capsys: pytest.CaptureFixture[str]) -> None:
    cases = [(["pipline", "-o", "x"], "usage: modnet-edge [-h]", "did you mean pipeline?"),
             (["--quite", "formats"], "usage: modnet-edge [-h]", "unrecognized option --quite (did you mean --quiet?)"),
             (["formats", "extra"], "usage: modnet-edge formats", "unrecognized arguments: extra"),
             (["predict", "m.onnx", "a.jpg", "-o", "o", "--zzz"], "usage: modnet-edge predict",
              "unrecognized option --zzz")]
    for argv, usage, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith(usage) and message in err, (argv, err)
    assert "did you mean" not in err  # nothing close to --zzz: no guess


def test_a_bad_value_is_one_line_naming_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--format", "onx", "-o", "x.onnx"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and line.startswith("modnet-edge export: error: argument --format: invalid choice")


def test_real_options_in_every_spelling_still_parse() -> None:
    """Values that start with '-', option=value, joined short options and unique prefixes are not typos."""
    from modnet_edge.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["--log-file", "x.log", "predict", "m.onnx", "a.jpg", "-oout", "--ofd-threshold",
                              "-0.5", "--col=1,2,3", "-q"])
    assert (args.output, args.ofd_threshold, args.color, args.quiet) == (Path("out"), -0.5, (1, 2, 3), True)
    assert args.log_file == Path("x.log")
