"""Tests for benchmark.run: the whole benchmark on tiny smoke models (seconds), its JSON and its arithmetic.

No timing thresholds: speeds depend on the machine. The assertions are on structure, on ratios being the quotients
of their measured parts, and on properties that hold on any machine (ours pads less than padding to max_length).
"""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from benchmark import common, inference, run, training
from helpers import hardware, pipeline, plan

HEADLINE_KEYS = ("kd_step_over_baseline_step", "train_speedup_over_naive", "student_speedup_over_teacher_batch32",
                 "student_speedup_over_teacher_batch1", "kd_online_step_over_baseline_step",
                 "teacher_logits_first_over_cached", "int8_student_speedup_over_teacher_batch32")


@pytest.fixture(scope="module")
def trained_student(smoke_workspace):
    run = pipeline.load_or_train_student(smoke_workspace)
    return pipeline.student_checkpoint(smoke_workspace.config, run)


@pytest.fixture(scope="module")
def document(smoke_workspace, trained_student, tmp_path_factory):
    # The workspace's config, with the teacher's length chosen (24, as notebook 02's rule would record it): the
    # profile's own config leaves it to results/smoke/teacher.json, which may be missing or name another teacher,
    # and the deployment rows would then be skipped. The GPU section runs too, on CPU and tiny, so its code path is
    # exercised where no GPU is.
    config = smoke_workspace.config
    return run.run_benchmark(config, common.sizes_for(config), tmp_path_factory.mktemp("out"),
                             student_checkpoint=trained_student, with_gpu_section=True, threads=1,
                             log=lambda _: None)


def finite_positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_json_is_written_with_provenance_and_headline_keys(document):
    stored = json.loads(open(document["path"]).read())
    assert document["path"].endswith(f"{hardware.slug()}.json")
    assert stored["provenance"]["profile"] == "smoke"
    assert {"hardware", "versions", "config", "code_hash", "commit"} <= set(stored["provenance"])
    for key in HEADLINE_KEYS:
        assert finite_positive(stored[key]), (key, stored[key])
    # Negative = the int8 student loses accuracy; a tiny model may gain or lose, but it is a measured number.
    assert math.isfinite(stored["int8_accuracy_delta_points"])
    assert set(stored["targets"]) == set(run.TARGETS)
    for name, target in stored["targets"].items():  # each target judged on this run's own measurement
        assert target["value"] == pytest.approx(stored[name]) and isinstance(target["met"], bool), name


def test_the_written_file_names_no_folder_of_this_machine(tmp_path):
    """The file stores checkpoint folders relative to the project; the returned document keeps them loadable."""
    from helpers.config import PROJECT_ROOT

    checkpoint = str(PROJECT_ROOT / "cache" / "smoke" / "runs" / "baseline" / "final")
    document = {"deployment": {"rows": [{"variant": "student fp32", "checkpoint": checkpoint}]},
                "threads": np.int64(2)}
    written = run.write(document, tmp_path / "machine.json")
    stored = json.loads((tmp_path / "machine.json").read_text())
    assert stored["deployment"]["rows"][0]["checkpoint"] == "cache/smoke/runs/baseline/final"
    assert stored["threads"] == 2
    assert written["deployment"]["rows"][0]["checkpoint"] == checkpoint


def test_ratios_read_the_right_measurement_the_right_way_up():
    """Hand-made measurements, each ratio's expected value worked out by hand (> 1: ours / the student / the cache
    is faster, except the step-cost ratios, where > 1 means the distillation step costs more)."""
    training_ = {"median_seconds": {"baseline": 2.0, "kd_cached": 3.0, "kd_online": 5.0},
                 "samples_per_second": {"kd_cached": 100.0, "naive_kd": 25.0},
                 "tokens_per_second": {"kd_cached": 2000.0, "naive_kd": 1000.0}}
    speed = {"batch1": {"median_ms": {"teacher": 10.0, "student": 4.0}},
             "batch32": {"rows_per_second": {"teacher": 50.0, "student": 150.0, "student_int8": 300.0}}}
    logits = {"first_median_seconds": 8.0, "cached_median_seconds": 0.5}
    assert run.ratios(training_, speed, logits, 32) == pytest.approx({
        "train_speedup_over_naive": 4.0, "train_tokens_speedup_over_naive": 2.0, "kd_step_over_baseline_step": 1.5,
        "kd_online_step_over_baseline_step": 2.5, "student_speedup_over_teacher_batch1": 2.5,
        "student_speedup_over_teacher_batch32": 3.0, "teacher_logits_first_over_cached": 16.0,
        "full_size_int8_speedup_over_teacher_batch32": 6.0})
    del speed["batch32"]["rows_per_second"]["student_int8"]  # a GPU run: no int8 row, no int8 ratio
    assert "full_size_int8_speedup_over_teacher_batch32" not in run.ratios(training_, speed, logits, 32)


def test_the_deployment_ran_on_the_reports_teacher_and_its_int8_numbers_reach_the_headline(document,
                                                                                         smoke_workspace):
    rows = {row["variant"]: row for row in document["deployment"]["rows"]}  # not skipped
    assert set(rows) == {"teacher fp32", "student fp32", "student int8"}
    logits, _ = pipeline.load_or_compute_teacher_logits(smoke_workspace, "test")  # what the report reads
    assert rows["teacher fp32"]["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == smoke_workspace.test_labels))
    # The headline's int8 numbers are the trained checkpoints' (deployment), not the random-weight models'.
    for key in ("int8_student_speedup_over_teacher_batch32", "int8_accuracy_delta_points"):
        assert document[key] == document["deployment"][key], key
    int8 = rows["student int8"]
    for metric in ("accuracy", "macro_f1"):  # the interval in points, around its own estimate
        assert int8[f"{metric}_delta_ci_low"] <= int8[f"{metric}_delta_points"] <= int8[f"{metric}_delta_ci_high"]
        assert -100 <= int8[f"{metric}_delta_ci_low"] and int8[f"{metric}_delta_ci_high"] <= 100


@pytest.mark.parametrize("name, value, met", [
    ("train_speedup_over_naive", 2.5, True), ("train_speedup_over_naive", 2.0, True),  # the bound itself is met
    ("train_speedup_over_naive", 1.9, False),
    ("kd_step_over_baseline_step", 0.98, True), ("kd_step_over_baseline_step", 1.05, True),
    ("kd_step_over_baseline_step", 1.2, False),  # a step ratio is met from below
    ("int8_accuracy_delta_points", 0.4, True), ("int8_accuracy_delta_points", -0.3, True),
    ("int8_accuracy_delta_points", -1.0, False),  # negative: the int8 student lost accuracy
    ("int8_student_speedup_over_teacher_batch32", 2.0, False),
    ("int8_student_speedup_over_teacher_batch32", None, None),  # not measured: neither met nor missed
])
def test_a_target_is_met_on_its_own_side_of_its_bound(name, value, met):
    document = {target: None for target in run.TARGETS} | {name: value}
    check = run.check_targets(document)[name]
    assert check["met"] is met and check["value"] == value
    assert check["target"].split()[0] == (">=" if name != "kd_step_over_baseline_step" else "<=")


def test_the_script_runs_as_a_file_as_the_makefile_calls_it():
    """``python scripts/benchmark.py`` puts scripts/ first on the path, where the script's own name would hide the
    benchmark package (an ImportError before any argument is read)."""
    import subprocess
    import sys

    from helpers.config import PROJECT_ROOT

    done = subprocess.run([sys.executable, "scripts/benchmark.py", "--help"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "--profile" in done.stdout, done.stderr[-2000:]


def test_onnx_runtime_stays_outside_the_package():
    """The benchmark records that ONNX Runtime is not part of the package: no helper imports it, and installing the
    package does not pull it in (scripts/benchmark.py --onnx imports it on its own)."""
    import ast

    from helpers.config import PROJECT_ROOT

    imported = set()
    for path in (PROJECT_ROOT / "helpers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {(alias.name.split(".")[0], path.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add((node.module.split(".")[0], path.name))
    assert [(module, file) for module, file in imported if module.startswith("onnx")] == []
    lines = (PROJECT_ROOT / "pyproject.toml").read_text().splitlines()
    assert not [line for line in lines if "onnx" in line.lower() and not line.strip().startswith("#")]


def test_every_measurement_is_recorded(document, smoke_config):
    training_ = document["training"]
    assert set(training_["seconds"]) == set(training.TRAINING_VARIANTS)
    sizes = common.sizes_for(smoke_config)
    for values in training_["seconds"].values():
        assert len(values) == sizes.repeats and all(finite_positive(v) for v in values)
    for name in ("teacher", "student", "student_int8"):
        assert len(document["inference"]["batch1"]["seconds"][name]) == sizes.repeats * sizes.latency_rows
    assert set(document["peak_memory_mb"]) == (
        {f"train_{v}" for v in training.TRAINING_VARIANTS}
        | {f"inference_{m}_batch{b}" for m in ("teacher", "student") for b in (1, 32)}
        | {"teacher_logits_first", "teacher_logits_cached"})
    assert all(math.isfinite(mb) and mb >= 0 for mb in document["peak_memory_mb"].values())
    assert document["peak_memory_mb"]["train_naive_kd"] > 0  # a phase that builds a model holds its weights
    gpu = document["gpu"]
    assert finite_positive(gpu["share_of_matmul_peak"])
    assert all(finite_positive(value) for value in gpu["throughput"].values())
    # Dynamic padding: a row occupies at least its own tokens, at most max_length; the planner's figure beside it.
    assert gpu["tokens_per_second"] * gpu["train_seconds"] / gpu["rows"] <= gpu["padded_tokens_per_row"]
    assert gpu["padded_tokens_per_row"] <= smoke_config.max_length
    assert gpu["planner_padded_tokens_per_row"] == plan.tokens("gpu")["train"]
    assert "projection" not in gpu  # hours and dollars are the planner's alone


def test_ours_computes_on_fewer_tokens_than_padding_to_max_length(document):
    training_ = document["training"]
    assert training_["padded_tokens"]["naive_kd"] == training_["rows"] * training_["max_length"]
    assert training_["real_tokens"] <= training_["padded_tokens"]["ours"] < training_["padded_tokens"]["naive_kd"]
    epoch = training_["real_epoch"]
    assert 0 <= epoch["padding_share"] < epoch["naive_padding_share"] < 1
    assert epoch["padded_tokens"] >= epoch["real_tokens"] > 0


def test_tables_read_the_document(document):
    summary = run.summary_table(document)
    # Every target measured in this run has its row, judged as check_targets judges it; rows without a target
    # say nothing about one.
    checks = run.check_targets(document)
    for name, check in checks.items():
        (row,) = summary[(summary["target"] == check["target"]) & (summary["ratio"] == document[name])].index
        assert summary.loc[row, "met"] == ("yes" if check["met"] else "NO"), name
    assert (summary.loc[summary["target"] == "", "met"] == "").all()
    for key in HEADLINE_KEYS:  # every headline ratio is shown
        assert (summary["ratio"] == document[key]).any(), key
    deployment = inference.deployment_table(document)
    assert list(deployment.index) == ["teacher fp32", "student fp32", "student int8"]
    gpu = run.gpu_table(document)
    assert gpu["value"].iloc[0] == document["gpu"]["throughput"]["student_train_rows_per_second"]
    assert not gpu["unit"].isin(["h", "USD"]).any()  # rates only: no second estimate of hours or cost


def test_no_notebook_04_results_means_no_chosen_student(smoke_config, tmp_path):
    empty = dataclasses.replace(smoke_config, results_dir=str(tmp_path / "results"))
    assert run.chosen_student_checkpoint(empty) is None


def test_strided_batches_spread_over_the_epoch_longest_first():
    # 10 full batches of 2 rows (batch b holds rows 2b and 2b+1) and a short last one; the longest row is in batch 6.
    batches = [[2 * b, 2 * b + 1] for b in range(10)] + [[20]]
    lengths = np.full(21, 5)
    lengths[13] = 30
    picked = training.strided_batches(batches, count=4, batch_size=2, lengths=lengths)
    # Mid-points of 4 equal strides over the 10 full batches: 1, 3, 6, 8; batch 6 moved first.
    assert picked.tolist() == [12, 13, 2, 3, 6, 7, 16, 17]


def test_peak_memory_sees_an_allocation():
    def allocate():
        tensor = torch.ones(16 * 2**20)  # 64 MB, every page touched
        return float(tensor[-1])

    assert 48 < common.peak_memory_mb(allocate) < 256
