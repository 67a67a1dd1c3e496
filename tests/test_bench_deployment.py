"""Tests for benchmark.inference's deployment side: int8 quantization of a trained smoke student, the deployment
table's accuracy (each model on its own inputs) and the analysis speed table read from that one measurement."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark import common, inference, run
from helpers import evaluate, models, pipeline
from helpers.train import collator_for


@pytest.fixture(scope="module")
def student_checkpoint(smoke_workspace):
    return pipeline.student_checkpoint(smoke_workspace.config, pipeline.load_or_train_student(smoke_workspace))


@pytest.fixture(scope="module")
def student(student_checkpoint):
    return models.load_classifier(student_checkpoint)


@pytest.fixture(scope="module")
def short_window(smoke_workspace):
    """The smoke workspace with a teacher that reads only 8 tokens: smoke's rows (9-20 tokens) all fit the 24-token
    teacher's window, so only a window shorter than the rows tells the teacher's inputs from the students'."""
    config = dataclasses.replace(smoke_workspace.config, teacher_max_length=8)
    return dataclasses.replace(smoke_workspace, config=config)


def teacher_accuracy(workspace, teacher_checkpoint) -> float:
    """The report's teacher accuracy: predict_logits of the teacher on the test rows as the teacher reads them."""
    test = pipeline.teacher_tokenized(workspace, "test")
    logits = evaluate.predict_logits(models.load_classifier(teacher_checkpoint), test,
                                     collator_for(workspace.tokenizer), 64, "fp32")
    return float(np.mean(logits.argmax(-1) == np.asarray(test["labels"])))


def test_int8_keeps_predictions_and_shrinks_linear_weights(student, smoke_workspace):
    test = smoke_workspace.tokenized["test"]
    quantized = common.quantize_int8(student)
    fp32_predictions = inference.predict_on_cpu(student, test, smoke_workspace.tokenizer)
    int8_predictions = inference.predict_on_cpu(quantized, test, smoke_workspace.tokenizer)
    assert np.mean(fp32_predictions == int8_predictions) >= 0.9
    assert np.mean(fp32_predictions == np.asarray(test["labels"])) > 0.5  # trained: well above chance (0.25)
    # int8 weights take a quarter of fp32's; embeddings stay fp32, so the whole file shrinks less.
    assert inference.linear_weight_mb(quantized) < 0.3 * inference.linear_weight_mb(student)
    assert inference.size_on_disk_mb(quantized) < inference.size_on_disk_mb(student)
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.modules())
    assert all(p.dtype == torch.float32 for p in student.parameters())  # the original is left as it was


def test_the_deployment_teacher_is_the_reports_teacher(smoke_workspace, student_checkpoint):
    """The benchmark's deployment rows score the teacher on its own inputs, as the report does."""
    teacher = models.teacher_path(smoke_workspace.config)
    sizes = common.sizes_for(smoke_workspace.config)
    deployed = run._deployment(smoke_workspace.config, smoke_workspace, sizes, student_checkpoint, None)
    rows = {row["variant"]: row for row in deployed["rows"]}
    assert rows["teacher fp32"]["checkpoint"] == teacher
    assert rows["teacher fp32"]["accuracy"] == pytest.approx(teacher_accuracy(smoke_workspace, teacher))
    # The report's teacher accuracy comes from the cached test logits: the same number.
    logits, _ = pipeline.load_or_compute_teacher_logits(smoke_workspace, "test")
    assert rows["teacher fp32"]["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == smoke_workspace.test_labels))


def test_a_teacher_with_a_shorter_window_is_scored_on_its_window(short_window, smoke_workspace, student_checkpoint):
    teacher = models.teacher_path(smoke_workspace.config)
    on_window = teacher_accuracy(short_window, teacher)
    on_students_inputs = teacher_accuracy(smoke_workspace, teacher)
    assert on_window != on_students_inputs  # else this test could not tell the two inputs apart
    sizes = common.sizes_for(smoke_workspace.config)
    deployed = run._deployment(short_window.config, short_window, sizes, student_checkpoint, teacher)
    rows = {row["variant"]: row for row in deployed["rows"]}
    assert rows["teacher fp32"]["accuracy"] == pytest.approx(on_window)
    # The students read their own (longer) inputs, and speed is timed on those, as the table says.
    student_accuracy = np.mean(inference.predict_on_cpu(models.load_classifier(student_checkpoint),
                                                        smoke_workspace.tokenized["test"], smoke_workspace.tokenizer)
                               == smoke_workspace.test_labels)
    assert rows["student fp32"]["accuracy"] == pytest.approx(student_accuracy)
    longest = max(smoke_workspace.tokenized["test"]["length"])
    assert all(row["speed_inputs"] == f"the students' inputs (up to {longest} tokens)" for row in rows.values())


def test_teacher_rows_that_are_not_the_students_rows_are_refused(smoke_workspace, student_checkpoint):
    test = smoke_workspace.tokenized["test"]
    shuffled = test.select(np.random.default_rng(0).permutation(len(test)))
    with pytest.raises(ValueError, match="same rows"):
        inference.deployment_rows(student_checkpoint, test, smoke_workspace.tokenizer,
                                  models.teacher_path(smoke_workspace.config),
                                  common.sizes_for(smoke_workspace.config), teacher_test=shuffled)


def test_without_a_chosen_teacher_length_the_deployment_is_skipped_with_the_reason(smoke_workspace,
                                                                                   student_checkpoint):
    undecided = dataclasses.replace(smoke_workspace.config, teacher_max_length=None)
    workspace = dataclasses.replace(smoke_workspace, config=undecided)
    deployed = run._deployment(undecided, workspace, common.sizes_for(undecided), student_checkpoint, None)
    assert "rows" not in deployed and "notebook 02" in deployed["skipped"]


def test_the_speed_frame_reads_the_one_deployment_measurement(smoke_workspace, student_checkpoint):
    sizes = common.sizes_for(smoke_workspace.config)
    deployed = run._deployment(smoke_workspace.config, smoke_workspace, sizes, student_checkpoint, None)
    entries = [SimpleNamespace(name="teacher"), SimpleNamespace(name="distilled"), SimpleNamespace(name="baseline")]
    frame = inference.speed_frame(deployed, entries)
    assert list(frame.index) == ["teacher", "distilled", "baseline", "distilled int8"]
    rows = {row["variant"]: row for row in deployed["rows"]}
    for name, variant in (("teacher", "teacher fp32"), ("distilled", "student fp32"), ("baseline", "student fp32"),
                          ("distilled int8", "student int8")):
        for column in ("latency_batch1_ms", "throughput_batch32_rows_per_s", "size_on_disk_mb", "parameters_m"):
            assert frame.loc[name, column] == rows[variant][column], (name, column)
        assert frame.loc[name, "runtime"] == rows[variant]["runtime"]
    # Ratios against the teacher's row, each the quotient the column names (> 1: the student is faster/smaller).
    teacher, int8 = rows["teacher fp32"], rows["student int8"]
    assert frame.loc["distilled int8", "speedup_vs_teacher_batch32"] == pytest.approx(
        int8["throughput_batch32_rows_per_s"] / teacher["throughput_batch32_rows_per_s"])
    assert frame.loc["distilled int8", "latency_speedup_vs_teacher"] == pytest.approx(
        teacher["latency_batch1_ms"] / int8["latency_batch1_ms"])
    assert frame.loc["distilled int8", "size_ratio_vs_teacher"] == pytest.approx(
        int8["size_on_disk_mb"] / teacher["size_on_disk_mb"])
    assert frame.loc["distilled int8", "size_on_disk_mb"] < frame.loc["distilled", "size_on_disk_mb"]
    assert frame.loc["distilled int8", "runtime"].startswith("torch int8")
    assert deployed["int8_student_speedup_over_teacher_batch32"] == pytest.approx(
        frame.loc["distilled int8", "speedup_vs_teacher_batch32"])
