"""The GPU speed script: its result records everywhere (CPU smoke run), its clear refusal without CUDA,
and a short real run of the PyTorch CUDA variants where a GPU exists.  No speed is asserted here:
speed figures come from benchmark runs, never from unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modnet_edge.benchmarks.gpu_speed import main, measure_gpu_speed, summary
from modnet_edge.benchmarks.results import read_jsonl, write_jsonl
from modnet_edge.core.errors import BackendUnavailableError, ConfigError

HAS_CUDA = torch.cuda.is_available()


def test_cpu_smoke_run_writes_records_in_the_runner_schema(tmp_path: Path) -> None:
    results = measure_gpu_speed(variants=("torch-fp32",), batches=(1, 2), sizes=((64, 64),), iterations=2, warmup=1,
                                rounds=2, device="cpu", progress=False)
    assert [(r.artifact["name"], r.config["batch"]) for r in results] == [("torch-fp32", 1), ("torch-fp32", 2)]
    assert all(r.latency_ms.count == 2 and r.fps > 0 and r.mode == "model" for r in results)
    back = read_jsonl(write_jsonl(results, tmp_path / "gpu.jsonl"))
    assert back[1].config["input_size"] == [64, 64] and back[1].runtime["name"] == "torch"
    assert "torch-fp32" in summary(results)


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown GPU benchmark variant"):
        measure_gpu_speed(variants=("torch-int3",), device="cpu")
    with pytest.raises(ConfigError, match="only CUDA measures GPU speed"):
        measure_gpu_speed(variants=("torch-fp16",), device="cpu")


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU is present: the no-GPU refusal cannot be observed")
def test_without_cuda_it_refuses_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        measure_gpu_speed()
    assert main(["--iterations", "1"]) == 2
    assert "GPU speed cannot be measured" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU available to PyTorch")
def test_cuda_variants_run() -> None:
    results = measure_gpu_speed(variants=("torch-fp32", "torch-fp16-cl", "torch-fp16-cl-graph"), batches=(1, 2),
                                sizes=((128, 128),), iterations=3, warmup=1, progress=False)
    assert len(results) == 6 and all(r.fps > 0 for r in results)
    assert results[0].device.get("cuda_device") and results[0].device.get("compute_capability")
