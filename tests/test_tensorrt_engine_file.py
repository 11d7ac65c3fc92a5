"""The TensorRT engine file format and the engine/machine compatibility verdict (plain Python, no TensorRT).

These run everywhere: they test our header and our refusal rules, not TensorRT.  The plan bytes here
are arbitrary bytes, never presented to TensorRT; engine building and running are tested in
``test_tensorrt_gpu.py`` where TensorRT and a GPU exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modnet_edge.core import ArtifactMetadata, PreprocessSpec
from modnet_edge.core.errors import ArtifactError, MetadataError
from modnet_edge.core.containers.engine_file import (MAGIC, EngineMismatchError, check_compatible, environment_record,
                                                     export_raw_plan, plan_bytes, read_engine_file, write_engine_file)

PLAN = bytes(range(256)) * 40


def _meta() -> ArtifactMetadata:
    env = environment_record("10.8.0.43", "NVIDIA H100 80GB HBM3", (9, 0))
    return ArtifactMetadata(format="tensorrt", precision="fp16", preprocessing=PreprocessSpec(fixed_size=(512, 512)),
                            model={"arch": "modnet"}, extra={"tensorrt": {**env, "build_mode": "fp16"}})


def test_roundtrip_header_and_plan(tmp_path: Path) -> None:
    path = write_engine_file(tmp_path / "m.engine", PLAN, _meta())
    assert path.read_bytes().startswith(MAGIC)
    meta, plan = read_engine_file(path)
    assert plan == PLAN and meta is not None and meta.precision == "fp16"
    info = meta.extra["tensorrt"]
    assert info["plan_bytes"] == len(PLAN) and len(info["plan_sha256"]) == 64
    assert meta.preprocessing.fixed_size == (512, 512)
    assert export_raw_plan(path, tmp_path / "raw.plan").read_bytes() == PLAN
    assert plan_bytes(tmp_path / "raw.plan") == PLAN  # a raw plan reads back as itself, without metadata
    assert read_engine_file(tmp_path / "raw.plan")[0] is None
    assert not [p for p in tmp_path.iterdir() if ".modnet-edge-tmp" in p.name], "temp files left behind"


def test_corrupt_files_are_refused(tmp_path: Path) -> None:
    good = write_engine_file(tmp_path / "m.engine", PLAN, _meta()).read_bytes()
    cases = {
        "missing": None,
        "empty": b"",
        "cut in header": good[: len(MAGIC) + 20],
        "cut in plan": good[:-100],
        "plan modified": good[:-1] + bytes([good[-1] ^ 0xFF]),
        "length field huge": MAGIC + (2**40).to_bytes(8, "little") + good[len(MAGIC) + 8:],
        "header only": good[: len(good) - len(PLAN)],
    }
    for name, data in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.engine"
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ArtifactError) as info:
            read_engine_file(path)
        assert path.name in str(info.value), name
    bad_json = tmp_path / "json.engine"
    bad_json.write_bytes(MAGIC + (5).to_bytes(8, "little") + b"{oops" + PLAN)
    with pytest.raises(MetadataError, match="not valid"):
        read_engine_file(bad_json)
    with pytest.raises(ArtifactError, match="empty"):
        write_engine_file(tmp_path / "x.engine", b"", _meta())


def _here(version: str = "10.8.0.43", gpu: str = "NVIDIA H100 80GB HBM3", cc: tuple[int, int] = (9, 0)) -> dict:
    return environment_record(version, gpu, cc)


def test_same_machine_is_compatible() -> None:
    assert check_compatible(_meta().extra["tensorrt"], _here()) == []


def test_other_tensorrt_version_is_refused_unless_version_compatible() -> None:
    built = _meta().extra["tensorrt"]
    with pytest.raises(EngineMismatchError, match=r"TensorRT 10\.8\.0\.43 but this machine has TensorRT 10\.9\.0"):
        check_compatible(built, _here("10.9.0"))
    vc = {**built, "version_compatible": True}
    assert "version-compatible" in check_compatible(vc, _here("10.9.0"))[0]
    with pytest.raises(EngineMismatchError):
        check_compatible(vc, _here("10.7.0"))  # older runtime
    with pytest.raises(EngineMismatchError):
        check_compatible(vc, _here("11.0.0"))  # next major


def test_other_gpu_is_refused_with_a_clear_reason() -> None:
    built = _meta().extra["tensorrt"]
    with pytest.raises(EngineMismatchError, match=r"compute capability 9\.0.*RTX 3090.*8\.6"):
        check_compatible(built, _here(gpu="NVIDIA GeForce RTX 3090", cc=(8, 6)))
    hw = {**built, "hardware_compatibility": "ampere+"}
    assert "hardware-compatible" in check_compatible(hw, _here(gpu="NVIDIA A10", cc=(8, 6)))[0]
    with pytest.raises(EngineMismatchError):
        check_compatible(hw, _here(gpu="Tesla T4", cc=(7, 5)))
    with pytest.raises(EngineMismatchError, match="allow_other_gpu"):
        check_compatible(built, _here(gpu="NVIDIA H100 PCIe"))
    warnings = check_compatible(built, _here(gpu="NVIDIA H100 PCIe"), allow_other_gpu=True)
    assert "H100 PCIe" in warnings[0]


def test_engine_without_build_record_is_refused() -> None:
    with pytest.raises(MetadataError, match="build environment"):
        check_compatible({"gpu_name": "x"}, _here(), "m.engine")
