"""Device targets, benchmark_model log and Core ML timing ingestion, and `modnet-edge bench --check` on them.

Fast: no model runs here.  The benchmark_model logs in tests/data/benchmark_model are written in the
tool's real output format (TF 1.x ``Average inference timings``, TF 2.2 ``Applied ... w/ the delegate``,
TFLite 2.4 wording without prefixes, current ``INFO:`` wording, Android logcat lines, percentile
statistics, "(all same)" runs, the 2025 LiteRT tool's ``BENCHMARK RESULTS`` block, a head-cut log) with
numbers of the size MODNet has on phones, around the exact lines users reported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modnet_edge.benchmarks.coreml_timing import coreml_timing_result, read_coreml_timing
from modnet_edge.benchmarks.results import BenchResult, LatencyStats, read_jsonl, write_jsonl
from modnet_edge.benchmarks.targets import load_targets, meets_all, parse_targets
from modnet_edge.benchmarks.tflite_log import (benchmark_model_result, parse_benchmark_model_log,
                                               read_benchmark_model_log)
from modnet_edge.cli import main
from modnet_edge.core.errors import ConfigError

LOGS = Path(__file__).parent / "data" / "benchmark_model"


def _result(fmt: str, precision: str, p50: float, run_id: str = "run-a", size=(512, 512), mode="model",
            device=None) -> BenchResult:
    return BenchResult(source="local", run_id=run_id, artifact={"name": f"m.{precision}.{fmt}", "format": fmt,
                                                                "precision": precision},
                       mode=mode, runtime={"name": "x"}, device=device or {"cpu": "Test CPU", "gpu": []},
                       versions={}, config={"batch": 1, "input_size": list(size)},
                       latency_ms=LatencyStats(mean=p50, p50=p50))


# -- targets ---------------------------------------------------------------------------------------
def test_shipped_targets_carry_the_published_anchors():
    table = load_targets()
    paper = [t for t in table.get("gtx-1080ti").targets if t.input_size == (512, 512)]
    assert paper and paper[0].min_fps == 67 and "MODNet" in paper[0].source
    assert any(t.min_fps == 30 and t.precision == "int8" for t in table.get("snapdragon-888-npu").targets)
    assert any(t.min_fps == 60 for t in table.get("gtx-1080ti").targets)
    ratio = table.get("any-machine").ratios[0]
    assert (ratio.baseline_format, ratio.baseline_precision, ratio.min_speedup) == ("pytorch", "fp32", 3.0)
    assert table.detect({"cpu": "x", "gpu": ["NVIDIA GeForce GTX 1080 Ti"]}).name == "gtx-1080ti"
    assert table.detect({"cpu": "AMD EPYC", "gpu": []}).name == table.default_class


def test_fixed_target_most_specific_wins_and_is_checked_on_the_median():
    table = load_targets()
    fast = _result("onnx", "fp32", 1000 / 70)  # 70 fps: meets the paper's 67 at 512x512
    slow = _result("onnx", "fp32", 1000 / 64)  # 64 fps: meets IamAlpha's 60 but not the specific 67
    other = _result("onnx", "fp16", 1000 / 64, size=(256, 256))  # only the any-size 60 fps target applies
    v = {id(x.result): x for x in table.check([fast, slow, other], "gtx-1080ti")}
    assert v[id(fast)].meets is True and v[id(fast)].required == ">= 67 fps"
    assert v[id(slow)].meets is False and v[id(slow)].required_fps == 67
    assert v[id(other)].meets is True and v[id(other)].required == ">= 60 fps"


def test_ratio_target_compares_within_one_run_only():
    table = load_targets()
    base = _result("pytorch", "fp32", 300.0)
    int8_fast = _result("onnx", "int8", 90.0)  # 3.33x
    int8_slow = _result("onnx", "int8", 150.0)  # 2x
    other_run = _result("onnx", "int8", 50.0, run_id="run-b")  # fast, but its baseline is in another run
    verdicts = table.check([base, int8_fast, int8_slow, other_run], "any-machine")
    by = {id(v.result): v for v in verdicts}
    assert by[id(int8_fast)].meets is True and by[id(int8_fast)].measured == "3.33x"
    assert by[id(int8_slow)].meets is False
    assert by[id(other_run)].meets is False and "not measured in run run-b" in by[id(other_run)].reason
    assert by[id(base)].meets is None  # the baseline itself has no target
    assert meets_all([by[id(base)]]) is None and meets_all(verdicts) is False


def test_a_format_timed_by_its_numerics_stand_in_is_not_judged():
    """A TensorRT-ready ONNX timed by ONNX Runtime (how it is verified on a CPU) gets no speed verdict, pass
    or fail, from a CPU ratio or a GPU target: its speed is the TensorRT engine's, measured on the GPU.
    The same INT8 graph as a plain ONNX run by ONNX Runtime is judged."""
    from modnet_edge.benchmarks.runner import verdict_table

    table = load_targets()
    base = _result("pytorch", "fp32", 300.0)
    proxy, plain = _result("tensorrt-onnx", "int8", 150.0), _result("onnx", "int8", 150.0)  # 2x: a miss
    for r in (base, proxy, plain):
        r.runtime = {"name": "onnxruntime" if r is not base else "torch"}
    engine = _result("tensorrt", "int8", 150.0)
    engine.runtime = {"name": "tensorrt"}
    by = {id(v.result): v for v in table.check([base, proxy, plain, engine], "any-machine")}
    assert by[id(proxy)].kind == "proxy" and by[id(proxy)].meets is None
    assert "verify their numerics" in by[id(proxy)].reason
    assert by[id(plain)].meets is False and by[id(engine)].meets is False  # engines are judged
    gpu = {id(v.result): v for v in table.check([proxy], "gtx-1080ti")}
    assert gpu[id(proxy)].kind == "proxy"
    printed = verdict_table(list(by.values()))
    assert "PROXY" in printed and "verify their numerics" in printed


def test_unknown_device_class_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown device class 'pixel-99'.*known classes: .*gtx-1080ti"):
        load_targets().get("pixel-99")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema="v0"), "'schema' must be"),
    (lambda d: d.update(default_class="nope"), "'default_class' 'nope' is not one of"),
    (lambda d: d["device_classes"]["gtx-1080ti"]["targets"][0].update(min_fps=-3), "min_fps must be a positive"),
    (lambda d: d["device_classes"]["gtx-1080ti"]["targets"][0].update(input_size=[512]), "input_size must be"),
    (lambda d: d["device_classes"]["gtx-1080ti"]["targets"][0].update(fps=1), "unknown keys \\['fps'\\]"),
    (lambda d: d["device_classes"]["gtx-1080ti"]["targets"][0].pop("source"), "needs a 'source'"),
    (lambda d: d["device_classes"]["any-machine"]["ratios"][0].pop("baseline"), "baseline must be an object"),
    (lambda d: d["device_classes"]["any-machine"].pop("ratios"), "neither 'targets' nor 'ratios'"),
])
def test_malformed_targets_are_refused_with_the_reason(tmp_path, mutate, message):
    data = json.loads(Path(load_targets().path).read_text())
    mutate(data)
    path = tmp_path / "targets.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as err:
        load_targets(path)
    assert str(path) in str(err.value) and "malformed targets file" in str(err.value)


def test_targets_file_that_is_not_json_names_the_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{\"schema\": ")
    with pytest.raises(ConfigError, match="not valid JSON") as err:
        load_targets(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match="top level must be"):
        parse_targets([1, 2])


# -- benchmark_model logs --------------------------------------------------------------------------
def test_android_gpu_log_current_format():
    r = read_benchmark_model_log(LOGS / "android_gpu_fp16.log", device={"name": "Pixel 7"}, precision="fp16")
    assert r.source == "tflite-benchmark-model" and r.runtime["delegate"] == "GPU"
    assert r.latency_ms.mean == pytest.approx(19.0456) and r.latency_ms.min == pytest.approx(18.311)
    assert r.latency_ms.count == 100 and r.config["warmup"] == 25 and r.config["threads"] == 4
    assert r.input_size == (512, 512) and r.fps == pytest.approx(1000 / 19.0456) and r.fps_basis == "mean"
    assert r.memory["peak_rss_mb"] == pytest.approx(214.871) and r.memory["rss_delta_mb"] == pytest.approx(201.062)
    assert r.artifact["name"] == "modnet.fp16.tflite" and r.extra["init_ms"] == pytest.approx(1843.52)
    assert "complete (238 of 238 nodes)" in r.notes[0]
    assert "no median (this build prints no percentile statistics)" in r.notes[1]


def test_tflite_24_log_without_prefixes_and_old_stat_order():
    log = parse_benchmark_model_log((LOGS / "linux_xnnpack_tf24.log").read_text())
    assert log.delegate == "XNNPACK" and log.delegation == "default CPU path"
    assert log.regular["count"] == 50 and log.regular["avg"] == 393377 and log.warmup["count"] == 2
    assert log.memory == {"init_mb": pytest.approx(58.2109), "overall_mb": pytest.approx(141.609)}


def test_logcat_qnn_external_delegate_with_percentiles_and_partial_delegation():
    r = read_benchmark_model_log(LOGS / "logcat_qnn_int8.log", precision="int8")
    assert r.runtime["delegate"] == "QNN"
    assert "partial (241 of 244 nodes, 2 delegate kernels, rest on CPU)" in r.notes[0]
    assert r.latency_ms.p50 == pytest.approx(7.941)  # the median printed by percentile builds, kept beside
    assert r.fps == pytest.approx(1000 / 8.01035)  # ... the mean, which speed comes from (throughput)
    assert "median 7.94 ms" in r.notes[1]
    v = load_targets().check([r], "snapdragon-888-npu")
    assert v[0].meets is True and v[0].required == ">= 30 fps"


def test_all_same_runs_and_nnapi():
    log = parse_benchmark_model_log((LOGS / "nnapi_all_same.log").read_text())
    assert log.delegate == "NNAPI" and log.regular["avg"] == 41000 and log.regular["std"] == 0
    assert log.warmup == {"count": 1, "curr": 52011, "avg": 52011, "min": 52011, "max": 52011, "std": 0.0}


@pytest.mark.parametrize("name, message", [
    ("truncated_during_run.log", "truncated: it ends before the measured run"),
    ("truncated_before_summary.log", "truncated: the final summary .*'Inference timings in us'.* is missing"),
    ("failed_delegate.log", "benchmark failed on the device: 'Failed to apply GPU delegate'"),
])
def test_bad_logs_are_refused_clearly(name, message):
    with pytest.raises(ConfigError, match=message) as err:
        read_benchmark_model_log(LOGS / name)
    assert name in str(err.value)


def test_logs_pasted_with_markdown_emphasis_read_like_the_plain_ones():
    """Copied from an issue: bold numbers and code ticks change nothing."""
    for name in ("android_gpu_fp16.log", "old_tf1.log", "litert_2025_cpu.log"):
        plain = (LOGS / name).read_text()
        marked = re.sub(r"(\d+(?:\.\d+)?)", r"**\1**", plain).replace("Inference timings", "`Inference timings`")
        assert parse_benchmark_model_log(marked).regular == parse_benchmark_model_log(plain).regular, name


def test_device_log_speed_is_the_mean_with_the_median_beside_it():
    """A phone's speed is its throughput: 25 runs in 1.88 s is 13.3 fps, though the median run took 58.96 ms
    (16.96 fps): six slow runs are part of what the phone sustains.  The record says which basis it used."""
    r = read_benchmark_model_log(LOGS / "nnapi_partial_25_runs.log", precision="int8")
    assert r.latency_ms.count == 25 and r.latency_ms.count * r.latency_ms.mean == pytest.approx(1880.0)
    assert r.fps == pytest.approx(13.3, abs=0.01) and r.latency_ms.p50 == pytest.approx(58.96)
    assert r.to_dict()["fps_from"] == "mean" and "median 58.96 ms" in r.notes[1]
    back = BenchResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.fps == pytest.approx(r.fps) and back.fps_basis == "mean"
    local = _result("onnx", "fp32", 10.0)  # a local run keeps the median (robust to a load spike)
    local.latency_ms.mean = 20.0
    assert local.fps_basis == "median" and local.fps == pytest.approx(100.0)


def test_printed_table_labels_say_median_and_mean():
    """The table's columns say what they hold: a log without percentiles shows no median, not its mean."""
    from modnet_edge.benchmarks.runner import verdict_table

    r = read_benchmark_model_log(LOGS / "tf1_android_cpu.log", precision="int8")
    printed = verdict_table(load_targets().check([r], "any-machine"))
    head, rule, row = printed.splitlines()[:3]
    assert "median ms" in head and "mean ms" in head and "fps from" in head and "p50" not in head
    cells = row.split()
    assert "133.69" in cells and "mean" in cells and cells[cells.index("133.69") - 1] == "-"


def test_litert_2025_block_is_read():
    """The current LiteRT tool (benchmark_litert_model) ends with its own block in milliseconds instead of
    'Inference timings in us'; its statistics lines above it stay the precise source."""
    log = parse_benchmark_model_log((LOGS / "litert_2025_cpu.log").read_text())
    assert log.tool == "benchmark_litert_model" and log.missing == []
    assert log.regular["count"] == 2112 and log.regular["avg"] == pytest.approx(459.87)
    assert log.timings["Inference (avg)"] == pytest.approx(460.0) and log.timings["Init"] == pytest.approx(117890)
    assert log.warmup["count"] == 60 and log.memory == {"init_mb": 4.38, "overall_mb": 6.02}
    assert log.delegate == "XNNPACK" and log.nodes == (131, 131)
    r = read_benchmark_model_log(LOGS / "litert_2025_cpu.log")
    assert r.latency_ms.p50 == pytest.approx(0.455) and r.fps == pytest.approx(1000 / 0.45987)


def test_the_litert_block_alone_and_the_quoted_line_alone_are_read():
    """A log cut down to the block (or to the one line quoted in an issue) still gives the mean, and the
    notes say what is missing."""
    text = (LOGS / "litert_2025_cpu.log").read_text()
    block = text[text.index("INFO: [./litert/tools/benchmark_litert_model.h:75]"):]
    log = parse_benchmark_model_log(block)
    assert log.regular == {"avg": 460.0, "min": 420.0, "max": 2440.0, "std": 50.0, "count": 2112.0}
    assert log.warmup == {"count": 60.0, "avg": 850.0} and log.delegate == "unknown"
    line = "INFO: [./litert/tools/benchmark_litert_model.h:88] Inference (avg):      0.46 ms (2112 runs)\n"
    r = benchmark_model_result(parse_benchmark_model_log(line))
    assert r.latency_ms.mean == pytest.approx(0.46) and r.latency_ms.count == 2112
    assert r.latency_ms.p50 is None and r.fps == pytest.approx(1000 / 0.46)
    missing = " ".join(r.notes)
    assert "head was cut" in missing and "warm-up run's statistics" in missing and "no median" in missing
    assert "the measured run's statistics line is missing" in missing


def test_tf1_count_lines_above_average_inference_timings_are_read():
    """TF 1.x printed per-run statistics too, above 'Average inference timings in us: ... no stats: ...'."""
    log = parse_benchmark_model_log((LOGS / "tf1_android_cpu.log").read_text())
    assert log.regular["count"] == 10 and log.regular["avg"] == 133690 and log.warmup["count"] == 4
    assert log.timings == {"Warmup (avg)": 142279, "Init": 12207, "Inference (avg)": 133690}
    assert log.delegate == "CPU" and log.missing == []
    old = read_benchmark_model_log(LOGS / "old_tf1.log")
    assert old.latency_ms.mean == pytest.approx(79.7582) and old.config["warmup"] == 6
    app = "... tflite  : Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1\n"
    assert parse_benchmark_model_log(app).timings["Inference (avg)"] == pytest.approx(80660.1)  # the Android app
    tf = "Average inference timings in us: Warmup: 169371, no stats: 154047, with stats: 165939\n"
    with pytest.raises(ConfigError, match="TensorFlow's benchmark_model .*not TensorFlow Lite's"):
        parse_benchmark_model_log(tf)


def test_head_cut_log_is_read_from_what_remains():
    r = read_benchmark_model_log(LOGS / "head_cut.log", precision="int8-a16")
    assert r.latency_ms.count == 25 and r.latency_ms.mean == pytest.approx(2449.49)
    assert r.latency_ms.p50 == pytest.approx(2450.167) and r.config["warmup"] is None
    assert r.runtime["delegate"] == "unknown"
    note = next(n for n in r.notes if n.startswith("read from what remains"))
    assert "head was cut" in note and "parameters" in note and "warm-up run" in note and "delegate" in note
    assert r.memory["rss_delta_mb"] == pytest.approx(52.1016)


def test_the_delegate_that_ran_is_reported_not_the_one_asked_for(tmp_path, capsys):
    """NNAPI applied but given no node ran on the CPU: it is labelled CPU and not judged against the NPU
    target; TF 2.2's wording is recognised; partial coverage names its nodes."""
    cpu = read_benchmark_model_log(LOGS / "nnapi_not_executed.log", precision="int8")
    assert cpu.runtime["delegate"] == "CPU"
    assert "NNAPI requested but not executed" in cpu.notes[0] and "XNNPACK" in cpu.notes[0]
    verdict = load_targets().check([cpu], "snapdragon-888-npu")[0]
    assert verdict.meets is None and "ran on CPU" in verdict.reason
    assert main(["bench", "--tflite-log", str(LOGS / "nnapi_not_executed.log"), "--precision", "int8", "--check",
                 "--device-class", "snapdragon-888-npu"]) == 1
    assert "nothing was checked" in capsys.readouterr().out
    gpu = parse_benchmark_model_log((LOGS / "tf22_gpu_applied.log").read_text())
    assert (gpu.delegate, gpu.delegation) == ("GPU", "complete")
    assert gpu.params["Use gpu"] == "1" and gpu.memory == {"init_mb": 164.73, "overall_mb": 181.219}
    partial = read_benchmark_model_log(LOGS / "nnapi_partial_25_runs.log", precision="int8")
    assert partial.runtime["delegate"] == "NNAPI" and partial.extra["delegated_nodes"] == [233, 263]
    assert "partial (233 of 263 nodes, 4 delegate kernels, rest on CPU)" in partial.notes[0]
    both = ("INFO: Explicitly applied GPU delegate, and the model graph will be completely executed by the "
            "delegate.\nINFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed "
            "by the delegate.\n")
    text = (LOGS / "android_gpu_fp16.log").read_text().replace(
        "INFO: Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.\n",
        both)
    log = parse_benchmark_model_log(text)
    assert log.delegate == "GPU" and "NNAPI requested but not executed" in log.delegation
    split = text.replace("INFO: Created 1 GPU delegate kernels.", "INFO: 210 operations will run on the GPU, and "
                         "the remaining 28 operations will run on the CPU.")
    assert parse_benchmark_model_log(split).nodes == (210, 238)


def test_empty_and_foreign_logs():
    with pytest.raises(ConfigError, match="empty"):
        parse_benchmark_model_log("\n\n")
    with pytest.raises(ConfigError, match="not a benchmark_model log"):
        parse_benchmark_model_log("hello\nworld\n")
    text = (LOGS / "android_gpu_fp16.log").read_text().replace("Inference (avg): 19045.6", "Inference (avg): 9000")
    with pytest.raises(ConfigError, match="inconsistent"):
        parse_benchmark_model_log(text)


# -- Core ML timing --------------------------------------------------------------------------------
def _timing(**over):
    data = {"schema": "modnet-edge/coreml-timing/1",
            "device": {"name": "iPhone 14 Pro", "model": "iPhone15,2", "chip": "A16 Bionic", "os": "iOS 17.4"},
            "model": {"name": "modnet.fp16.mlpackage", "precision": "fp16", "input_size": [512, 512]},
            "compute_units": "all", "load_ms": 143.2, "warmup": 5,
            "prediction_ms": [12.1, 11.9, 12.4, 11.8, 30.2, 12.0, 11.7, 12.2, 12.0, 11.9]}
    data.update(over)
    return data


def test_coreml_timing_samples_give_percentiles(tmp_path):
    path = tmp_path / "iphone.json"
    path.write_text(json.dumps(_timing()))
    r = read_coreml_timing(path)
    assert r.source == "coreml-timing" and r.runtime["delegate"] == "all" and r.device["name"] == "iPhone 14 Pro"
    assert r.latency_ms.count == 10 and r.latency_ms.p50 == pytest.approx(12.0) and r.latency_ms.max == 30.2
    assert r.latency_ms.p99 > r.latency_ms.p90 >= r.latency_ms.p50 and r.input_size == (512, 512)
    summary = coreml_timing_result(_timing(prediction_ms=None, summary_ms={"median": 11.8, "min": 11.2, "count": 100}))
    assert summary.latency_ms.p50 == 11.8 and summary.latency_ms.p90 is None and summary.latency_ms.count == 100


@pytest.mark.parametrize("over, message", [
    ({"schema": "other"}, "'schema' must be"),
    ({"device": {}}, "'device' must be an object with at least a 'name'"),
    ({"compute_units": "npu"}, "'compute_units' must be one of"),
    ({"prediction_ms": [12.0, -1]}, "non-positive"),
    ({"prediction_ms": None}, "needs 'prediction_ms'"),
    ({"prediction_ms": None, "summary_ms": {"min": 3}}, "needs a positive 'median' or 'mean'"),
])
def test_bad_coreml_timing_is_refused(over, message):
    with pytest.raises(ConfigError, match=message):
        coreml_timing_result(_timing(**over))


def test_truncated_coreml_timing_file(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(_timing())[:60])
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_coreml_timing(path)


# -- results files and the bench command on ingested results ----------------------------------------
def test_results_round_trip_and_schema_check(tmp_path):
    r = _result("onnx", "fp32", 10.0)
    path = write_jsonl([r, r], tmp_path / "r.jsonl")
    back = read_jsonl(path)
    assert len(back) == 2 and back[0].latency_ms.p50 == 10.0 and back[0].fps == pytest.approx(100.0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**r.to_dict(), "schema": "other/1"}) + "\n")
    with pytest.raises(ConfigError, match="schema 'other/1'"):
        read_jsonl(bad)


def test_bench_check_exit_codes_on_a_phone_log(tmp_path, capsys):
    out = tmp_path / "phone.jsonl"
    args = ["bench", "--tflite-log", str(LOGS / "logcat_qnn_int8.log"), "--precision", "int8",
            "--device-name", "Galaxy S21", "--json", str(out), "--check"]
    assert main([*args, "--device-class", "snapdragon-888-npu"]) == 0  # 126 fps >= 30
    assert "MEETS" in capsys.readouterr().out
    assert read_jsonl(out)[0].extra["device_class"] == "snapdragon-888-npu"
    slow = tmp_path / "slow.log"  # the same phone 5x slower: 25 fps misses the 30 fps anchor
    slow.write_text((LOGS / "logcat_qnn_int8.log").read_text().replace("8010.35", "40051.75"))
    assert main(["bench", "--tflite-log", str(slow), "--precision", "int8", "--check",
                 "--device-class", "snapdragon-888-npu"]) == 1
    assert "MISSES" in capsys.readouterr().out
    # no class given: a phone log matches no local device class -> nothing checked -> fail, not a silent pass
    assert main(["bench", "--tflite-log", str(LOGS / "android_gpu_fp16.log"), "--check"]) == 1
    assert "nothing was checked" in capsys.readouterr().out
    assert main(["bench", "--results", str(out), "--device-class", "pixel-99"]) == 2
    assert "unknown device class 'pixel-99'" in capsys.readouterr().err


def test_bench_prints_the_shipped_edge_runner(capsys):
    assert main(["bench", "--edge-runner"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "edge_runner.py" and path.is_file()
    source = path.read_text()
    assert "import torch" not in source and "modnet_edge" not in source.split('"""', 2)[2]


def test_a_standalone_benchmark_says_whether_its_timings_can_be_trusted():
    """Every local run ends with its verdict on its own timings; a result timed on a busy machine is
    UNTRUSTED on its row with the reason under it, even where no target applies to it."""
    from modnet_edge.benchmarks.runner import verdict_table

    quiet = _result("onnx", "fp32", 100.0)
    quiet.extra = {"stability": {"stable": True, "why": "", "foreign_cpu_share": 0.03}}
    printed = verdict_table(load_targets().check([quiet], "any-machine"))
    assert "timings trusted: the machine was quiet (other processes used at most 3% of the CPU" in printed
    busy = _result("onnx", "fp16", 100.0)
    busy.extra = {"stability": {"stable": False, "why": "other processes used 60% of the CPU while it ran",
                                "foreign_cpu_share": 0.6}}
    lines = verdict_table(load_targets().check([quiet, busy], "any-machine")).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("m.fp16.onnx"))
    assert lines[row].split()[-1] == "UNTRUSTED"
    assert lines[row + 1].strip() == "timing untrusted: other processes used 60% of the CPU while it ran"
    assert "timings UNTRUSTED for 1 of 2 result(s); speed verdicts on them are not given:" in lines
    phone = read_benchmark_model_log(LOGS / "android_gpu_fp16.log")  # a device log has no such verdict
    assert "timings" not in verdict_table(load_targets().check([phone], "any-machine"))
