"""Tests for benchmark.projection: planned runs add up, prices come from the cited file, the warm-up runs."""

import json
import time

import pytest
from transformers import LlamaConfig

from benchmark import common, projection
from helpers import results

RATES = projection.Throughput(device="test GPU", student_train_rows_per_second=100.0, online_teacher_step_ratio=1.6,
                             student_eval_rows_per_second=1000.0, teacher_eval_rows_per_second=500.0,
                             lm_train_rows_per_second=20.0)


def test_projection_sums_every_planned_run():
    planned = [
        projection.PlannedRun("teacher-logits", train_rows=10_000),
        projection.PlannedRun("cached-logits", train_rows=1_000, epochs=3, eval_rows=2_000),
        projection.PlannedRun("cached-logits", train_rows=1_000, epochs=1),
        projection.PlannedRun("online-teacher", train_rows=1_000, epochs=2),
        {"kind": "lm", "train_rows": 400, "epochs": 1, "eval_rows": 600},  # plain dicts are accepted too
    ]
    projected = projection.project_runtime(planned, RATES, price_per_hour=3.0)
    expected = [10_000 / 500, 3_000 / 100 + 2_000 / 1000, 1_000 / 100, 2_000 * 1.6 / 100, 400 / 20 + 600 / 60]
    assert [run["seconds"] for run in projected["per_run"]] == pytest.approx(expected)
    assert projected["total_seconds"] == pytest.approx(sum(expected))
    assert projected["cost"] == pytest.approx(sum(expected) / 3600 * 3.0)
    assert projected["runs"] == 5
    assert projected["by_kind"]["cached-logits"] == {"runs": 2, "seconds": pytest.approx(42.0)}


def test_projection_without_a_price_gives_time_only_and_rejects_unknown_kinds():
    assert projection.project_runtime([], RATES, None)["cost"] is None
    with pytest.raises(ValueError, match="kind 'feature'"):
        projection.PlannedRun("feature", train_rows=1)


def test_price_for_device_reads_the_cited_prices():
    prices = results.external_facts()["gpu_hourly_usd"]
    name, usd = projection.price_for_device(prices, "Tesla T4")
    assert "T4" in name and usd == prices[name]["usd_per_hour"]
    assert "H100" in projection.price_for_device(prices, "NVIDIA H100 80GB HBM3")[0]
    assert projection.price_for_device(prices, "cpu") is None


def test_load_throughput_reads_a_benchmark_file(tmp_path):
    (tmp_path / "test-gpu.json").write_text(json.dumps({"gpu": {"throughput": vars(RATES)}}))
    assert projection.load_throughput(tmp_path, slug="test-gpu") == RATES
    assert projection.load_throughput(tmp_path, slug="other") is None


def test_warmup_throughput_measures_every_rate(smoke_config):
    tiny_lm = LlamaConfig(vocab_size=256, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1)
    rates = projection.warmup_throughput(smoke_config, seconds=0.05, tokens_per_row=16, lm_architecture=tiny_lm,
                                         architectures=common.profile_architectures(smoke_config))
    assert all(value > 0 for key, value in vars(rates).items() if key not in ("device", "source"))
    assert projection.run_seconds(projection.PlannedRun("lm", train_rows=10), rates) > 0


def test_flops_estimate_follows_the_brief_models_sizes_and_the_assumed_share():
    low = projection.flops_throughput("T4", 65, 0.1, tokens_per_row=50, lm_tokens_per_row=160)
    high = projection.flops_throughput("T4", 65, 0.3, tokens_per_row=50, lm_tokens_per_row=160)
    assert high.student_train_rows_per_second == pytest.approx(3 * low.student_train_rows_per_second)
    # A forward pass is a third of a training step; bert-base has about twice distilbert's non-embedding weights.
    assert low.student_eval_rows_per_second == pytest.approx(3 * low.student_train_rows_per_second)
    assert 1.9 < low.student_eval_rows_per_second / low.teacher_eval_rows_per_second < 2.1
    assert 1.6 < low.online_teacher_step_ratio < 1.7
    assert "estimate" in low.source and "not measured" in low.source
    # distilbert-base: 6 layers × (4 + 8) × 768² weights, plus biases and layer norms.
    student = projection.non_embedding_parameters(projection.meta_model(common.full_size_architectures()[1]))
    assert 6 * 12 * 768**2 < student < 6 * 12 * 768**2 * 1.02


def test_per_call_seconds_divides_each_block_by_its_calls():
    # 2 ms calls: blocks of 10 calls (20 ms) are timed, and each reports its seconds per call.
    assert 0.0015 < projection.per_call_seconds(lambda: time.sleep(0.002), min_run_time=0.1) < 0.01
