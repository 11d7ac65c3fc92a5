"""Install by role: an artifact runs with only its runtime installed (README "Install by role").

CI installs everything, so a run-only machine is simulated: each check runs in a child Python whose
import system refuses torch, the converters and the other formats' runtimes, exactly as a venv without
them would.  Artifacts are made beforehand in this (fully installed) test process; the child only loads
and predicts.  The extras in pyproject.toml are checked against the format table, so an install hint
never names an extra that would not install what the format needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import modnet_edge
from modnet_edge.core import FORMATS

REPO = Path(__file__).resolve().parents[1]

# What no artifact's run path may import: the training framework and every converter (and what they pull).
CONVERTERS = ("torch", "torchvision", "onnxslim", "litert_torch", "ai_edge_quantizer", "coremltools",
              "jax", "transformers", "kagglehub", "tensorflow", "sklearn")
# Each format's runtime; a role installs only its own.
RUNTIMES = {"onnx": ("onnxruntime", "onnx"), "tflite": ("ai_edge_litert", "tflite_runtime")}

# Runs first in the child: a meta-path finder that makes the named top-level packages unimportable
# (ModuleNotFoundError, as in a venv without them) and remembers who was refused.
_PRELUDE = """
import json, sys
BLOCKED = set(json.loads(sys.argv[1]))
REFUSED = []

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            REFUSED.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in this role)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""
_REPORT = """
print(json.dumps({"result": result, "refused": sorted(set(REFUSED)),
                  "loaded": sorted({m.partition(".")[0] for m in sys.modules} & BLOCKED)}))
"""


def _run_blocked(job: str, blocked: tuple[str, ...], cwd: Path) -> dict:
    """Run ``job`` (Python that sets ``result``) in a child where ``blocked`` packages are not importable;
    its report: the result, the blocked imports it attempted, and any blocked package that got loaded."""
    code = _PRELUDE + textwrap.dedent(job) + _REPORT
    out = subprocess.run([sys.executable, "-c", code, json.dumps(blocked)], cwd=cwd, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"child failed:\n{out.stderr[-4000:]}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [], f"blocked packages got imported: {report}"
    return report


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder away from the checkout (the child must import the installed package) with one input image."""
    root = tmp_path_factory.mktemp("roles")
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 64, 3), dtype=np.uint8)).save(root / "in.png")
    return root


@pytest.fixture(scope="module")
def onnx_artifact(workdir: Path) -> Path:
    return modnet_edge.export(None, "onnx", "fp32", workdir / "m.onnx", static_shape=(64, 64))


@pytest.fixture(scope="module")
def tflite_model(workdir: Path) -> Path:
    """A tiny .tflite (one convolution, sigmoid) from litert-torch: seconds, where exporting MODNet takes
    most of a minute; the run path it exercises (interpreter, predictor) is the same."""
    pytest.importorskip("ai_edge_litert", reason="the litert extra (ai-edge-litert) is not installed")
    litert_torch = pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    import os

    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.Sigmoid()).eval()
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    path = workdir / "tiny.tflite"
    path.write_bytes(litert_torch.convert(net, (torch.zeros(1, 3, 64, 64),)).model_content())
    return path


@pytest.mark.slow
def test_onnx_artifact_runs_with_only_onnxruntime(onnx_artifact: Path, workdir: Path) -> None:
    job = f"""
    import numpy as np, modnet_edge
    with modnet_edge.load({str(onnx_artifact)!r}) as predictor:
        alpha = predictor.predict(np.zeros((80, 64, 3), np.uint8))
    result = [list(alpha.shape), str(alpha.dtype), predictor.metadata.precision]
    """
    report = _run_blocked(job, CONVERTERS + RUNTIMES["tflite"], workdir)
    assert report["result"] == [[80, 64], "float32", "fp32"]


@pytest.mark.slow
def test_tflite_model_runs_with_only_litert(tflite_model: Path, workdir: Path) -> None:
    job = f"""
    import numpy as np, modnet_edge
    with modnet_edge.load({str(tflite_model)!r}, preprocessing="modnet-reference") as predictor:
        alpha = predictor.predict(np.zeros((80, 64, 3), np.uint8))
    result = [list(alpha.shape), predictor.backend.describe()["interpreter"]]
    """
    report = _run_blocked(job, CONVERTERS + RUNTIMES["onnx"], workdir)
    assert report["result"] == [[80, 64], "ai-edge-litert"]


@pytest.mark.slow
def test_cli_predict_and_info_with_only_onnxruntime(onnx_artifact: Path, workdir: Path) -> None:
    job = f"""
    from modnet_edge.cli import main
    result = [main(["--quiet", "predict", {str(onnx_artifact)!r}, "in.png", "-o", "out", "--no-composite"]),
              main(["--quiet", "info", {str(onnx_artifact)!r}])]
    """
    report = _run_blocked(job, CONVERTERS + RUNTIMES["tflite"], workdir)
    assert report["result"] == [0, 0]
    assert (workdir / "out" / "in.alpha.png").is_file()


def test_base_install_lists_formats_and_names_the_extra_to_run(onnx_artifact: Path, workdir: Path) -> None:
    """Without any extra: the package imports, ``formats`` and ``--help`` work, and loading an artifact
    fails with the one extra that runs it (not the converter's)."""
    job = f"""
    import contextlib, io
    import modnet_edge
    from modnet_edge.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        codes = [main(["formats"])]
        try:
            main(["--help"])
        except SystemExit as exc:
            codes.append(exc.code)
    try:
        modnet_edge.load({str(onnx_artifact)!r})
        message = None
    except modnet_edge.BackendUnavailableError as exc:
        message = str(exc)
    result = [codes, message]
    """
    blocked = CONVERTERS + RUNTIMES["onnx"] + RUNTIMES["tflite"] + ("tensorrt", "av")
    codes, message = _run_blocked(job, blocked, workdir)["result"]
    assert codes == [0, 0]
    assert message is not None and '"modnet-edge[onnxruntime]"' in message, message


# --------------------------------------------------------------------------------------------------
# pyproject.toml extras against the format table
# --------------------------------------------------------------------------------------------------
# importable module -> the distribution that provides it
DISTRIBUTIONS = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxslim": "onnxslim",
                 "ai_edge_litert": "ai-edge-litert", "litert_torch": "litert-torch",
                 "ai_edge_quantizer": "ai-edge-quantizer", "coremltools": "coremltools", "tensorrt": "tensorrt",
                 "av": "av", "sklearn": "scikit-learn"}


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib (Python >= 3.11) reads pyproject.toml")
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _extra_distributions(extras: dict[str, list[str]], name: str) -> set[str]:
    """The distributions ``pip install modnet-edge[name]`` installs beyond the base, following the
    extras' references to the package itself."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    for line in extras[name]:
        req = Requirement(line)
        if canonicalize_name(req.name) == "modnet-edge":
            for sub in req.extras:
                found |= _extra_distributions(extras, sub)
        else:
            found.add(canonicalize_name(req.name))
    return found


def test_base_install_is_small() -> None:
    from packaging.requirements import Requirement

    base = {Requirement(r).name for r in _project()["dependencies"]}
    assert base == {"numpy", "pillow", "tqdm"}


def test_extras_install_what_each_format_needs() -> None:
    """Every format's ``run_extra`` installs its runtime_requires and ``export_extra`` its export_requires;
    ``all`` holds every extra but ``tensorrt`` (NVIDIA only) and ``dev``."""
    extras = _project()["optional-dependencies"]
    for fmt in FORMATS.values():
        for role, extra, modules in (("run", fmt.run_extra, fmt.runtime_requires),
                                     ("export", fmt.export_extra, fmt.export_requires if fmt.converter else ())):
            if extra is None:
                assert not modules, f"{fmt.name}: {role}ning needs {modules} but the table names no extra"
                continue
            assert extra in extras, f"{fmt.name}: {role}_extra {extra!r} is not an extra in pyproject.toml"
            unknown = [m for m in modules if m not in DISTRIBUTIONS]
            assert not unknown, f"add {unknown} to DISTRIBUTIONS (module -> distribution)"
            missing = {DISTRIBUTIONS[m] for m in modules} - _extra_distributions(extras, extra)
            assert not missing, f"{fmt.name}: [{extra}] does not install {sorted(missing)} needed to {role} it"
    roles = [e for e in extras if e not in ("all", "dev", "tensorrt")]
    assert _extra_distributions(extras, "all") == set().union(*(_extra_distributions(extras, e) for e in roles))
