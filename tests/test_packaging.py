"""Packaging contract: one namespace, a wheel that imports and runs, README and CI in agreement."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    blocks = [b.strip() for b in _readme_commands()[:2]]
    assert len(blocks) == 2, "README must open with exactly two set-up command blocks"
    main_job, tests = blocks
    assert "modnet-edge pipeline" in main_job and "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text()
    test_cmd = tests.splitlines()[-1].strip()
    assert test_cmd in ci, f".ci/run must run the README's test command: {test_cmd}"


def test_constraints_pin_torch() -> None:
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()


@pytest.mark.slow
def test_built_wheel_has_one_namespace_and_runs(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="the 'build' package (dev extra) is needed to build a wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                    str(REPO)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("modnet_edge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"modnet_edge", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for stage in ("training", "exporters", "runtimes", "calibration", "parity_tests", "benchmarks"):
        assert f"modnet_edge/{stage}/__init__.py" in names
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    # Run from an unrelated folder with the wheel's copy first on the path: it must import and work.
    code = ("import modnet_edge, numpy as np; assert modnet_edge.__file__.startswith(%r), modnet_edge.__file__;"
            "p = modnet_edge.export(None, 'onnx', 'fp32', 'm.onnx', static_shape=(64, 64));"
            "print(modnet_edge.load(p).predict(np.zeros((64, 64, 3), np.uint8)).shape)") % str(target)
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("(64, 64)")
