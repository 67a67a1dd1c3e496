"""Tests for helpers.benchmark.deployment: int8 quantization of a trained smoke student, and the paired statistics."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from helpers import benchmark, models, pipeline
from helpers.benchmark import deployment


@pytest.fixture(scope="module")
def student(smoke_workspace):
    run = pipeline.load_or_train_student(smoke_workspace)
    return models.load_classifier(pipeline.student_checkpoint(smoke_workspace.config, run))


def test_int8_keeps_predictions_and_shrinks_linear_weights(student, smoke_workspace):
    test = smoke_workspace.tokenized["test"]
    quantized = benchmark.quantize_int8(student)
    fp32_predictions = deployment.predict_on_cpu(student, test, smoke_workspace.tokenizer)
    int8_predictions = deployment.predict_on_cpu(quantized, test, smoke_workspace.tokenizer)
    assert np.mean(fp32_predictions == int8_predictions) >= 0.9
    assert np.mean(fp32_predictions == np.asarray(test["labels"])) > 0.5  # trained: well above chance (0.25)
    # int8 weights take a quarter of fp32's; embeddings stay fp32, so the whole file shrinks less.
    assert deployment.linear_weight_mb(quantized) < 0.3 * deployment.linear_weight_mb(student)
    assert benchmark.size_on_disk_mb(quantized) < benchmark.size_on_disk_mb(student)
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.modules())
    assert all(p.dtype == torch.float32 for p in student.parameters())  # the original is left as it was


def test_paired_difference_of_identical_predictions_is_zero():
    labels = np.array([0, 1, 2, 3] * 25)
    difference = benchmark.paired_difference_points(labels, labels.copy(), labels.copy())
    assert difference == {"points": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_paired_difference_in_points_with_an_interval_around_it():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 1000)
    reference = labels.copy()
    reference[:100] = (labels[:100] + 1) % 4  # the reference is wrong on 10% of rows, the other model on none
    difference = benchmark.paired_difference_points(labels, labels, reference, resamples=500)
    assert difference["points"] == pytest.approx(10.0)
    assert 7 < difference["ci_low"] < 10 < difference["ci_high"] < 13
    f1 = benchmark.paired_difference_points(labels, labels, reference, metric="macro_f1", resamples=500)
    expected = 100 * (1 - f1_score(labels, reference, average="macro"))
    assert f1["points"] == pytest.approx(expected) and f1["ci_low"] < expected < f1["ci_high"]


def test_speed_table_adds_the_chosen_students_int8_row(smoke_workspace, student):
    config = smoke_workspace.config
    checkpoint = pipeline.student_checkpoint(config, pipeline.load_or_train_student(smoke_workspace))
    entries = [SimpleNamespace(name="teacher", checkpoint=models.teacher_path(config)),
               SimpleNamespace(name="distilled", checkpoint=checkpoint),
               SimpleNamespace(name="baseline", checkpoint=checkpoint)]
    texts = list(smoke_workspace.splits["test"]["text"][:40])
    table = benchmark.speed_table(config, entries, texts, smoke_workspace.tokenizer, repeats=1)
    assert list(table.index) == ["teacher", "distilled", "baseline", "distilled int8"]
    assert table.loc["distilled int8", "runtime"].startswith("torch int8")
    assert table.loc["distilled int8", "size_on_disk_mb"] < table.loc["distilled", "size_on_disk_mb"]
    assert table.loc["teacher", "speedup_vs_teacher_batch32"] == 1.0
    assert (table["throughput_batch32_rows_per_s"] > 0).all()
