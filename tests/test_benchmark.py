"""Tests for helpers.benchmark: the whole benchmark on tiny smoke models (seconds), its JSON and its arithmetic.

No timing thresholds: speeds depend on the machine. The assertions are on structure, on ratios being the quotients
of their measured parts, and on properties that hold on any machine (ours pads less than padding to max_length).
"""

import json
import math
import statistics

import numpy as np
import pytest
import torch

from helpers import benchmark
from helpers.config import get_config

HEADLINE_KEYS = ("kd_step_over_baseline_step", "train_speedup_over_naive", "student_speedup_over_teacher_batch32",
                 "student_speedup_over_teacher_batch1", "kd_online_step_over_baseline_step",
                 "teacher_logits_first_over_cached")


@pytest.fixture(scope="module")
def config(smoke_config):
    return smoke_config


@pytest.fixture(scope="module")
def document(config, tmp_path_factory):
    # The GPU section runs too, on CPU and tiny, so its code path is exercised where no GPU is.
    return benchmark.run_benchmark(config, benchmark.sizes_for(config), tmp_path_factory.mktemp("out"),
                                   student_runs=3, with_gpu_section=True, threads=1, log=lambda _: None)


def finite_positive(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_json_is_written_with_provenance_and_headline_keys(document):
    stored = json.loads(open(document["path"]).read())
    assert document["path"].endswith(f"{benchmark.hardware_slug()}.json")
    assert stored["provenance"]["profile"] == "smoke"
    assert {"hardware", "versions", "config"} <= set(stored["provenance"])
    for key in HEADLINE_KEYS:
        assert finite_positive(stored[key]), (key, stored[key])
    assert set(stored["targets"]) == set(benchmark.TARGETS)


def test_ratios_are_quotients_of_their_parts(document):
    training, inference, logits = document["training"], document["inference"], document["teacher_logits"]
    seconds = {variant: statistics.median(values) for variant, values in training["seconds"].items()}
    assert document["kd_step_over_baseline_step"] == pytest.approx(seconds["kd_cached"] / seconds["baseline"])
    assert document["kd_online_step_over_baseline_step"] == pytest.approx(seconds["kd_online"] / seconds["baseline"])
    ours_per_second = training["rows"] / seconds["kd_cached"]
    naive_per_second = training["naive_rows"] / seconds["naive_kd"]
    assert document["train_speedup_over_naive"] == pytest.approx(ours_per_second / naive_per_second)
    assert training["samples_per_second"]["kd_cached"] == pytest.approx(ours_per_second)
    mean_length = training["real_tokens"] / training["rows"]
    assert training["tokens_per_second"]["naive_kd"] == pytest.approx(naive_per_second * mean_length)
    per_repeat = inference["batch32"]["rows_per_second_per_repeat"]
    medians = {name: statistics.median(values) for name, values in per_repeat.items()}
    assert document["student_speedup_over_teacher_batch32"] == pytest.approx(medians["student"] / medians["teacher"])
    latency = inference["batch1"]["median_ms"]
    assert document["student_speedup_over_teacher_batch1"] == pytest.approx(latency["teacher"] / latency["student"])
    assert document["teacher_logits_first_over_cached"] == pytest.approx(
        logits["first_median_seconds"] / logits["cached_median_seconds"])


def test_targets_follow_the_values(document):
    for name, (comparison, threshold) in benchmark.TARGETS.items():
        target = document["targets"][name]
        assert target["value"] == document[name]
        assert target["met"] == (document[name] <= threshold if comparison == "<=" else document[name] >= threshold)


def test_every_measurement_is_recorded(document, config):
    training = document["training"]
    assert set(training["seconds"]) == set(benchmark.TRAINING_VARIANTS)
    sizes = benchmark.sizes_for(config)
    for values in training["seconds"].values():
        assert len(values) == sizes.repeats and all(finite_positive(v) for v in values)
    for name in ("teacher", "student"):
        assert len(document["inference"]["batch1"]["seconds"][name]) == sizes.repeats * sizes.latency_rows
    assert set(document["peak_memory_mb"]) == (
        {f"train_{v}" for v in benchmark.TRAINING_VARIANTS}
        | {f"inference_{m}_batch{b}" for m in ("teacher", "student") for b in (1, 32)}
        | {"teacher_logits_first", "teacher_logits_cached"})
    assert all(math.isfinite(mb) and mb >= 0 for mb in document["peak_memory_mb"].values())
    # Phases that build a model hold at least its weights.
    assert document["peak_memory_mb"]["train_naive_kd"] > 0
    assert document["gpu"]["projection"]["student_runs"] == 3
    assert finite_positive(document["gpu"]["share_of_matmul_peak"])


def test_ours_computes_on_fewer_tokens_than_padding_to_max_length(document):
    training = document["training"]
    assert training["padded_tokens"]["naive_kd"] == training["rows"] * training["max_length"]
    assert training["real_tokens"] <= training["padded_tokens"]["ours"] < training["padded_tokens"]["naive_kd"]
    epoch = training["real_epoch"]
    assert 0 <= epoch["padding_share"] < epoch["naive_padding_share"] < 1
    assert epoch["padded_tokens"] >= epoch["real_tokens"] > 0


def test_summary_table_has_one_row_per_ratio(document):
    table = benchmark.summary_table(document)
    assert len(table) == len(HEADLINE_KEYS) + 1  # and tokens/s beside samples/s
    assert set(table.loc[table["target"] != "", "met"]) <= {"yes", "NO"}


def test_strided_batches_spread_over_the_epoch_longest_first():
    # 10 full batches of 2 rows (batch b holds rows 2b and 2b+1) and a short last one; the longest row is in batch 6.
    batches = [[2 * b, 2 * b + 1] for b in range(10)] + [[20]]
    lengths = np.full(21, 5)
    lengths[13] = 30
    picked = benchmark.strided_batches(batches, count=4, batch_size=2, lengths=lengths)
    # Mid-points of 4 equal strides over the 10 full batches: 1, 3, 6, 8; batch 6 moved first.
    assert picked.tolist() == [12, 13, 2, 3, 6, 7, 16, 17]


def test_naive_collator_pads_every_row_to_max_length():
    collator = benchmark.naive_collator(type("Tokenizer", (), {"pad_token_id": 0})(), max_length=16)
    batch = collator([{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [5] * 9, "labels": 2}])
    assert batch["input_ids"].shape == (2, 16)
    assert batch["attention_mask"].sum().item() == 12


def test_peak_memory_sees_an_allocation():
    def allocate():
        tensor = torch.ones(16 * 2**20)  # 64 MB, every page touched
        return float(tensor[-1])

    assert 48 < benchmark.peak_memory_mb(allocate) < 256


def test_projection_adds_up():
    full = get_config("full")
    projection = benchmark.project_report_seconds(full, samples_per_second=100.0,
                                                  inference_rows_per_second={"teacher": 1000.0, "student": 2000.0},
                                                  student_runs=4)
    training = (120_000 - full.validation_rows) * full.epochs / 100.0
    evaluation = (full.validation_rows * (full.epochs + 1) + 7_600) / 2000.0
    assert projection["per_student_run_seconds"] == pytest.approx(training + evaluation)
    assert projection["total_seconds"] == pytest.approx(4 * (training + evaluation) + 127_600 / 1000.0)
