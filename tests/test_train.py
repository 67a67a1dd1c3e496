"""Tiny end-to-end runs on the smoke profile: thresholds, never exact floats."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import distill, experiments, feature_terms, models, pipeline, plots, train
from helpers.distill import DistillSpec
from helpers.train import Collator, DistillationTrainer, train_classifier, training_arguments


def test_collator_pads_to_the_longest_row_and_keeps_target_logits():
    batch = Collator(pad_token_id=0)([
        {"input_ids": [2, 7, 3], "labels": 1, "target_logits": [0.1, 0.2, 0.3, 0.4]},
        {"input_ids": [2, 3], "labels": 0, "target_logits": [1.0, 0.0, 0.0, 0.0]},
    ])
    assert batch["input_ids"].tolist() == [[2, 7, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["target_logits"].shape == (2, 4)
    assert Collator(0, pad_to_multiple_of=8)([{"input_ids": [1, 2, 3], "labels": 0}])["input_ids"].shape == (1, 8)


def test_teacher_learns_the_smoke_task(smoke_workspace):
    logits, info = pipeline.load_or_compute_teacher_logits(smoke_workspace, "test")
    assert (logits.argmax(-1) == smoke_workspace.test_labels).mean() > 0.6
    again, info_again = pipeline.load_or_compute_teacher_logits(smoke_workspace, "test")
    assert info_again["cached"] and np.array_equal(logits, again)


def test_baseline_loss_falls_and_accuracy_beats_chance(smoke_workspace):
    config = smoke_workspace.config
    seed = config.seeds[0]  # notebook 02 trains this one first, with its curve
    result = pipeline.load_or_train_student(smoke_workspace, seed=seed, curve=True)
    train, evaluation = plots.history_frames(result["history"])
    assert train["loss"].iloc[-3:].mean() < train["loss"].iloc[:2].mean()
    assert result["test"]["accuracy"] > 0.4  # chance is 0.25
    assert len(evaluation) == config.epochs and evaluation["eval_accuracy"].iloc[-1] > 0.4
    assert len(result["test_predictions"]) == len(smoke_workspace.test_labels)
    # Scored on the unseen rows (where choices are made) and, a gold-only final student, on the plateau check's
    # extra unseen rows; nobody trained on either.
    assert len(result["unseen_predictions"]) == config.unseen_rows
    assert len(result["unseen_more_predictions"]) == config.plateau_rows - config.unseen_rows
    assert result["provenance"]["profile"] == "smoke" and result["provenance"]["seed"] == seed
    assert result["provenance"]["data_fingerprint"] == smoke_workspace.data_fingerprint
    assert result["provenance"]["code_hash"] and result["provenance"]["schema"]
    # Loaded from its results file the second time, not retrained; its epoch checkpoints are gone.
    assert pipeline.load_or_train_student(smoke_workspace, seed=seed)["provenance"] == result["provenance"]
    run_dir = pipeline.Path(pipeline.student_checkpoint(config, result)).parent
    assert (run_dir / "final" / "config.json").exists() and not list(run_dir.glob("checkpoint-*"))


def test_a_cached_student_without_a_curve_is_retrained_where_a_curve_is_asked_for_and_trains_alike(smoke_workspace):
    config, seed = smoke_workspace.config, max(smoke_workspace.config.seeds) + 1  # a seed no other test trains
    # An earlier session's run of this test: start without a cached student, neither its results file nor the
    # copy beside its final model (which would put the file back).
    for stored in (Path(config.results_dir) / "students").glob(f"baseline-seed{seed}-*.json"):
        stored.unlink()
    for run_dir in (Path(config.cache_dir) / "runs").glob(f"baseline-seed{seed}-*"):
        shutil.rmtree(run_dir)
    plain = pipeline.load_or_train_student(smoke_workspace, seed=seed)
    assert not plain["curve"] and plots.history_frames(plain["history"])[1].empty
    with_curve = pipeline.load_or_train_student(smoke_workspace, seed=seed, curve=True)
    assert with_curve["curve"] and len(plots.history_frames(with_curve["history"])[1]) == config.epochs
    # Scoring each epoch does not change the training (it once moved dropout: test accuracy 0.775 against 0.88).
    assert with_curve["test_predictions"] == plain["test_predictions"]
    # The curve run then answers a request without one (each run's first seed is the curve run in every notebook).
    assert pipeline.load_or_train_student(smoke_workspace, seed=seed)["provenance"] == with_curve["provenance"]


def test_every_distillation_family_trains_and_logs_its_component(smoke_workspace):
    spec = DistillSpec(name="all-families", soft_target_weight=1.0, temperature=2.0, teacher_label_weight=0.5,
                       feature_weight=1.0, attention_weight=1.0)
    result = pipeline.load_or_train_student(smoke_workspace, spec, seed=0)
    assert result["bert_teacher"]
    train, _ = plots.history_frames(result["history"])
    for component in ("hard_label", "soft_target", "teacher_label", "feature", "attention"):
        assert train[f"loss_{component}"].notna().all(), component
    assert train["loss_feature"].iloc[-1] < train["loss_feature"].iloc[0]  # the projection and student learn
    assert result["test"]["accuracy"] > 0.4


def test_a_changed_spec_under_the_same_name_is_retrained(smoke_workspace):
    first = pipeline.load_or_train_student(smoke_workspace, DistillSpec(name="kd", soft_target_weight=1.0), seed=0)
    second = pipeline.load_or_train_student(smoke_workspace, DistillSpec(name="kd", soft_target_weight=0.5), seed=0)
    assert second["spec"]["soft_target_weight"] == 0.5 and first["spec"]["soft_target_weight"] == 1.0


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
        pipeline.with_target_logits(smoke_workspace.tokenized["test"], np.zeros((3, 4)))


def test_the_trainer_gives_the_teacher_its_window_and_trains_student_and_projections(smoke_workspace, tmp_path):
    """compute_loss of a real trainer, a real batch and the profile's tiny teacher and student (a wider, deeper
    teacher: projections and a layer map), the teacher reading fewer tokens than the student."""
    config, tokenizer = smoke_workspace.config, smoke_workspace.tokenizer
    window = 12  # smoke's rows are 9-20 tokens: shorter than its teacher_max_length, so set one that cuts
    spec = DistillSpec(name="online", feature_weight=1.0, attention_weight=1.0)
    teacher = models.load_teacher(config, attn_implementation="eager")
    student = models.load_student(config, seed=0, attn_implementation="eager").train()
    arguments = training_arguments(config, tmp_path, seed=0, quiet=True, eval_strategy="no")
    trainer = DistillationTrainer(model=student, args=arguments, spec=spec, teacher=teacher, teacher_max_length=window,
                                  tokenizer=tokenizer)
    assert trainer.layer_mapping == feature_terms.layer_map(1, 2) and len(trainer.projections) == 1

    rows = smoke_workspace.tokenized["student_train"]
    lengths = np.asarray(rows["length"] if "length" in rows.column_names else [len(i) for i in rows["input_ids"]])
    picked = [*np.flatnonzero(lengths > window)[:3], *np.flatnonzero(lengths < window)[:2],
              *np.flatnonzero(lengths == window)[:1]]
    batch = Collator(tokenizer.pad_token_id)([rows[int(i)] for i in picked])
    seen = trainer.teacher_window(batch)
    assert seen["input_ids"].shape == seen["attention_mask"].shape == (len(picked), window)
    assert torch.equal(seen["attention_mask"], batch["attention_mask"][:, :window])
    for row, index in enumerate(picked):
        ids = batch["input_ids"][row, :window].tolist()
        if lengths[index] > window:  # cut as the teacher's tokenizer would: its last token becomes [SEP]
            ids[-1] = tokenizer.sep_token_id
        assert seen["input_ids"][row].tolist() == ids, (row, lengths[index])
    assert batch["input_ids"][0, window - 1] != tokenizer.sep_token_id  # the batch itself is left as it was
    short = Collator(tokenizer.pad_token_id)([rows[int(i)] for i in picked[3:5]])
    assert trainer.teacher_window(short)["input_ids"] is short["input_ids"]  # nothing to cut

    torch.manual_seed(0)
    loss = trainer.compute_loss(student, batch)
    assert set(trainer._component_sums) == {"hard_label", "feature", "attention"}
    assert torch.isfinite(loss) and all(v.item() > 0 for v in trainer._component_sums.values())
    # The same loss as distillation_loss on the teacher's outputs over the window (same dropout draws).
    torch.manual_seed(0)
    student_outputs = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        teacher_outputs = teacher(**seen, output_hidden_states=True, output_attentions=True)
    expected, _ = distill.distillation_loss(spec, student_outputs, batch["labels"], batch["attention_mask"],
                                            teacher_outputs=teacher_outputs, layer_mapping=trainer.layer_mapping,
                                            projections=trainer.projections)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.projections.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    # Outside training (validation) the loss is plain cross-entropy, whatever the spec.
    student.eval()
    with torch.no_grad():
        validation = trainer.compute_loss(student, batch)
        plain = torch.nn.functional.cross_entropy(
            student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"])
    assert validation.item() == pytest.approx(plain.item(), rel=1e-6)


def test_the_grid_trains_every_strategy_at_the_selection_budget_and_reads_no_test(smoke_workspace):
    config = smoke_workspace.config
    grid = experiments.run_grid(smoke_workspace)
    smoothing = {f"label-smoothing-{e:g}" for e in experiments.LABEL_SMOOTHING}
    assert set(grid) == {"baseline", *experiments.STRATEGIES, *smoothing, "views-baseline",
                         "consistent-without-teacher"}
    assert all(run["seed"] == config.selection_seed and run["budget"] == "selection" for run in grid.values())
    assert not any("test" in run or "test_predictions" in run for run in grid.values())  # the grid never reads test
    assert all(len(run["unseen_predictions"]) == config.unseen_rows for run in grid.values())
    table = experiments.grid_table(grid, smoke_workspace)
    rows = len(smoke_workspace.raw("selection_train"))
    assert rows < len(smoke_workspace.student_train)
    assert grid["consistent"]["train_rows"] == grid["baseline"]["train_rows"] == rows
    # Function matching and its views-baseline: twice the baseline's steps on the same rows.
    assert table.loc["consistent", "steps_vs_baseline"] == pytest.approx(2.0, abs=0.1)
    assert table.loc["views-baseline", "steps_vs_baseline"] == pytest.approx(2.0, abs=0.1)
    assert table.loc["feature", "teacher_every_step"] and table.loc["consistent", "teacher_every_step"]
    assert not table.loc["response", "teacher_every_step"]
    assert table.loc["committee", "bert_teacher"] and not table.loc[sorted(smoothing)[0], "bert_teacher"]
    assert table.loc["baseline", "screening"] == "reference"
    assert table.loc["baseline", "gain_points"] == 0.0
    assert np.median(table["accuracy"]) > 0.4  # chance is 0.25
    choice = experiments.choose(table)
    assert choice["chosen"] in experiments.STRATEGIES and choice["label_smoothing"] in smoothing
    # The chosen strategy gains most over its compute-matched run without a teacher (function matching's is the
    # views-baseline: the same views and steps), not the highest accuracy: a gain bought by steps is not the teacher's.
    gains = {name: table.loc[name, "accuracy"] - table.loc["views-baseline" if spec.views else "baseline", "accuracy"]
             for name, (spec, _) in experiments.STRATEGIES.items() if table.loc[name, "bert_teacher"]}
    assert gains[choice["chosen"]] == max(gains.values())
    # The accuracy the choice reads is the unseen rows' (the grid also scores validation, to measure the bias).
    unseen = np.asarray(smoke_workspace.raw("unseen")["label"])
    best = grid[choice["chosen"]]
    assert table.loc[choice["chosen"], "accuracy"] == pytest.approx(
        np.mean(np.asarray(best["unseen_predictions"]) == unseen))
