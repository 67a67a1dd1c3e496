"""Tests for benchmark.inference's deployment side: int8 quantization of a trained smoke student, the speed
table of trained checkpoints."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark import common, inference
from helpers import models, pipeline


@pytest.fixture(scope="module")
def student(smoke_workspace):
    run = pipeline.load_or_train_student(smoke_workspace)
    return models.load_classifier(pipeline.student_checkpoint(smoke_workspace.config, run))


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


def test_speed_table_adds_the_chosen_students_int8_row(smoke_workspace, student):
    config = smoke_workspace.config
    checkpoint = pipeline.student_checkpoint(config, pipeline.load_or_train_student(smoke_workspace))
    entries = [SimpleNamespace(name="teacher", checkpoint=models.teacher_path(config)),
               SimpleNamespace(name="distilled", checkpoint=checkpoint),
               SimpleNamespace(name="baseline", checkpoint=checkpoint)]
    texts = list(smoke_workspace.splits["test"]["text"][:40])
    table = inference.speed_table(config, entries, texts, smoke_workspace.tokenizer, repeats=1)
    assert list(table.index) == ["teacher", "distilled", "baseline", "distilled int8"]
    assert table.loc["distilled int8", "runtime"].startswith("torch int8")
    assert table.loc["distilled int8", "size_on_disk_mb"] < table.loc["distilled", "size_on_disk_mb"]
    assert table.loc["teacher", "speedup_vs_teacher_batch32"] == 1.0
    assert (table["throughput_batch32_rows_per_s"] > 0).all()
