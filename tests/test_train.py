"""Tiny end-to-end runs on the smoke profile: thresholds, never exact floats."""

import dataclasses

import numpy as np
import pytest
import torch

from helpers import pipeline, plots, train
from helpers.train import Collator, DistillSpec, train_classifier


def test_collator_pads_to_the_longest_row_and_keeps_teacher_logits():
    batch = Collator(pad_token_id=0)([
        {"input_ids": [2, 7, 3], "labels": 1, "teacher_logits": [0.1, 0.2, 0.3, 0.4]},
        {"input_ids": [2, 3], "labels": 0, "teacher_logits": [1.0, 0.0, 0.0, 0.0]},
    ])
    assert batch["input_ids"].tolist() == [[2, 7, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["teacher_logits"].shape == (2, 4)
    assert Collator(0, pad_to_multiple_of=8)([{"input_ids": [1, 2, 3], "labels": 0}])["input_ids"].shape == (1, 8)


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
    assert result["provenance"]["data_fingerprint"] == smoke_workspace.data_fingerprint
    assert result["provenance"]["commit"] and result["provenance"]["schema"]
    # Loaded from its results file the second time, not retrained; its epoch checkpoints are gone.
    assert pipeline.load_or_train_student(smoke_workspace, seed=0)["provenance"] == result["provenance"]
    run_dir = pipeline.Path(pipeline.student_checkpoint(smoke_workspace.config, result)).parent
    assert (run_dir / "final" / "config.json").exists() and not list(run_dir.glob("checkpoint-*"))


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


def test_an_interrupted_run_resumes_from_its_newest_complete_checkpoint(smoke_workspace, tmp_path, monkeypatch):
    config = dataclasses.replace(smoke_workspace.config, epochs=2)
    common = dict(train_dataset=smoke_workspace.tokenized["student_train"],
                  eval_dataset=smoke_workspace.tokenized["validation"], tokenizer=smoke_workspace.tokenizer,
                  output_dir=tmp_path / "run", seed=0)
    from helpers.models import load_student

    original = train.StepCounter.on_save

    def interrupt_after_first_save(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train.StepCounter, "on_save", interrupt_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config, load_student(config, 0), **common)
    monkeypatch.undo()
    (complete,) = list((tmp_path / "run").glob("checkpoint-*"))
    # A half-written checkpoint beside it (killed while saving) must be ignored and removed, not picked.
    broken = tmp_path / "run" / "checkpoint-999"
    broken.mkdir()
    (broken / "trainer_state.json").write_text("")
    with pytest.warns(UserWarning, match="incomplete checkpoint"):
        outcome = train_classifier(config, load_student(config, 0), **common)
    assert outcome.resumed and not broken.exists()
    epoch_steps = int(complete.name.split("-")[-1])
    assert outcome.steps_run == epoch_steps  # only the second epoch ran again
    assert [h["epoch"] for h in outcome.history if "eval_accuracy" in h] == [1.0, 2.0]
    assert not list((tmp_path / "run").glob("checkpoint-*"))  # cleaned once the final model is written


def test_cached_logits_of_the_wrong_length_are_refused(smoke_workspace):
    with pytest.raises(ValueError, match="other rows"):
        pipeline.with_teacher_logits(smoke_workspace.tokenized["test"], np.zeros((3, 4)))


def test_unlabelled_rows_get_soft_targets_only(smoke_workspace):
    from helpers import experiments
    from helpers.train import DistillationTrainer

    spec = experiments.TRANSFER
    rows = pipeline.with_unlabelled_rows(smoke_workspace, pipeline.with_teacher_logits(
        smoke_workspace.tokenized["student_train"],
        pipeline.load_or_compute_teacher_logits(smoke_workspace, "student_train")[0]), "transfer")
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
        DistillSpec(name="bad", unlabelled="transfer")
    with pytest.raises(ValueError, match="unlabelled"):
        DistillSpec(name="bad", kd_loss_weight=1.0, unlabelled="elsewhere")


def test_every_strategy_and_control_trains_at_the_selection_budget(smoke_workspace):
    from helpers import experiments

    grid = experiments.run_grid(smoke_workspace)
    assert set(grid) >= {"baseline", *experiments.STRATEGIES, *experiments.CONTROLS}
    table = experiments.grid_table(grid, np.asarray(smoke_workspace.splits["validation"]["label"]))
    rows = len(smoke_workspace.raw("selection_train"))
    assert grid["augmented"]["train_rows"] == 2 * rows and grid["baseline"]["train_rows"] == rows
    assert table.loc["matched-compute", "steps_vs_baseline"] == pytest.approx(experiments.LONGEST_STEPS_RATIO, 0.05)
    assert not table.loc["self-distillation", "bert_teacher"] and table.loc["committee", "bert_teacher"]
    assert np.median([run["test"]["accuracy"] for run in grid.values()]) > 0.4  # chance is 0.25
    choice = experiments.choose(table)
    assert choice["chosen"] in experiments.STRATEGIES and choice["label_smoothing"].startswith("label-smoothing")
