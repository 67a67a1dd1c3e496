"""Tiny end-to-end runs on the smoke profile: thresholds, never exact floats."""

import dataclasses

import numpy as np
import pytest
import torch

from helpers import pipeline, plots
from helpers.train import Collator, DistillSpec, precision_flags, train_classifier


def test_collator_pads_to_the_longest_row_and_keeps_teacher_logits():
    batch = Collator(pad_token_id=0)([
        {"input_ids": [2, 7, 3], "labels": 1, "teacher_logits": [0.1, 0.2, 0.3, 0.4]},
        {"input_ids": [2, 3], "labels": 0, "teacher_logits": [1.0, 0.0, 0.0, 0.0]},
    ])
    assert batch["input_ids"].tolist() == [[2, 7, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["teacher_logits"].shape == (2, 4)
    assert Collator(0, pad_to_multiple_of=8)([{"input_ids": [1, 2, 3], "labels": 0}])["input_ids"].shape == (1, 8)


def test_precision_is_fp32_on_cpu_and_rejects_unknown_names():
    if not torch.cuda.is_available():
        assert precision_flags("auto") == {"bf16": False, "fp16": False}
    assert precision_flags("fp16") == {"bf16": False, "fp16": True}
    with pytest.raises(ValueError, match="precision"):
        precision_flags("int4")


def test_teacher_learns_the_smoke_task(smoke_workspace):
    logits, info = pipeline.load_or_compute_teacher_logits(smoke_workspace, "test")
    assert (logits.argmax(-1) == smoke_workspace.test_labels).mean() > 0.6
    again, info_again = pipeline.load_or_compute_teacher_logits(smoke_workspace, "test")
    assert info_again["cached"] and np.array_equal(logits, again)


def test_baseline_loss_falls_and_accuracy_beats_chance(smoke_workspace):
    result = pipeline.load_or_train_student(smoke_workspace, seed=0)
    train, evaluation = plots.history_frames(result["history"])
    assert train["loss"].iloc[-3:].mean() < train["loss"].iloc[:2].mean()
    assert result["test"]["accuracy"] > 0.4  # chance is 0.25
    assert len(evaluation) == smoke_workspace.config.epochs
    assert len(result["test_predictions"]) == len(smoke_workspace.test_labels)
    assert result["provenance"]["profile"] == "smoke"
    # Loaded from its results file the second time, not retrained.
    assert pipeline.load_or_train_student(smoke_workspace, seed=0)["provenance"] == result["provenance"]


def test_every_distillation_family_trains_and_logs_its_component(smoke_workspace):
    spec = DistillSpec(name="all-families", kd_loss_weight=1.0, temperature=2.0, teacher_label_weight=0.5,
                       teacher_label_mode="agree", feature_weight=1.0, attention_weight=1.0, relation_weight=1.0)
    result = pipeline.load_or_train_student(smoke_workspace, spec, seed=0)
    train, _ = plots.history_frames(result["history"])
    for component in ("hard_label", "soft_target", "teacher_label", "feature", "attention", "relation"):
        assert train[f"loss_{component}"].notna().all(), component
    assert train["loss_feature"].iloc[-1] < train["loss_feature"].iloc[0]  # the projection and student learn
    assert result["test"]["accuracy"] > 0.4


def test_a_changed_spec_under_the_same_name_is_retrained(smoke_workspace):
    first = pipeline.load_or_train_student(smoke_workspace, DistillSpec(name="kd", kd_loss_weight=1.0), seed=0)
    second = pipeline.load_or_train_student(smoke_workspace, DistillSpec(name="kd", kd_loss_weight=0.5), seed=0)
    assert second["spec"]["kd_loss_weight"] == 0.5 and first["spec"]["kd_loss_weight"] == 1.0


def test_an_interrupted_run_resumes_from_its_last_epoch_checkpoint(smoke_workspace, tmp_path):
    config = smoke_workspace.config
    common = dict(train_dataset=smoke_workspace.tokenized["student_train"],
                  eval_dataset=smoke_workspace.tokenized["validation"], tokenizer=smoke_workspace.tokenizer,
                  output_dir=tmp_path / "run", seed=0)
    from helpers.models import load_student

    # "Interrupted" after epoch 1 of 2: the checkpoint of epoch 1 is on disk.
    first = train_classifier(dataclasses.replace(config, epochs=1), load_student(config, 0), **common)
    assert not first.resumed and list((tmp_path / "run").glob("checkpoint-*"))
    second = train_classifier(dataclasses.replace(config, epochs=2), load_student(config, 0), **common)
    assert second.resumed
    # Only the second epoch ran again; the first came from the checkpoint (a fresh start would run both).
    assert first.steps_run > 0 and second.steps_run == first.steps_run
    assert second.train_seconds > first.train_seconds * 0.9  # the first epoch's time is carried over
    assert [h["epoch"] for h in second.history if "eval_accuracy" in h] == [1.0, 2.0]


def test_cached_logits_of_the_wrong_length_are_refused(smoke_workspace):
    with pytest.raises(ValueError, match="stale"):
        pipeline.with_teacher_logits(smoke_workspace.tokenized["test"], np.zeros((3, 4)))


def test_unlabelled_rows_get_soft_targets_only(smoke_workspace):
    from helpers import experiments
    from helpers.train import DistillationTrainer

    spec = experiments.TRANSFER_VARIANTS["response-transfer"]
    rows = pipeline.with_transfer_rows(smoke_workspace, pipeline.with_teacher_logits(
        smoke_workspace.tokenized["student_train"],
        pipeline.load_or_compute_teacher_logits(smoke_workspace, "student_train")[0]))
    labels = np.asarray(rows["labels"])
    assert (labels == -100).sum() == len(smoke_workspace.transfer) > 0
    assert not set(smoke_workspace.transfer["text"]) & set(smoke_workspace.student_train["text"])
    # A batch of unlabelled rows only: no cross-entropy, a finite loss that still trains the student.
    from helpers.models import load_student
    from helpers.train import collator_for

    student = load_student(smoke_workspace.config, seed=0).train()
    batch = collator_for(smoke_workspace.tokenizer)([rows[int(i)] for i in np.flatnonzero(labels == -100)[:8]])
    trainer = DistillationTrainer.__new__(DistillationTrainer)  # only compute_loss's state is needed
    trainer.spec, trainer._component_sums, trainer._component_steps = spec, __import__("collections").Counter(), 0
    loss = trainer.compute_loss(student, batch)
    assert torch.isfinite(loss) and trainer._component_sums["hard_label"] == 0.0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_transfer_needs_plain_soft_targets():
    with pytest.raises(ValueError, match="soft targets"):
        DistillSpec(name="bad", unlabelled_transfer=True)
