"""Caches that cannot be misused: keyed by what produced them, written atomically, refused when damaged."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import cache, data, models, pipeline, results
from helpers.config import get_config
from report import data as report_data


def test_an_altered_or_truncated_array_is_detected_and_removed(tmp_path):
    path = tmp_path / "logits.npy"
    cache.save_array(path, np.ones((10, 4), dtype=np.float32), seconds=1.0)
    assert cache.load_array(path)[0].shape == (10, 4)
    np.save(path, np.zeros((10, 4), dtype=np.float32))  # changed values, same shape
    with pytest.warns(UserWarning, match="logits.npy"):
        assert cache.load_array(path) is None
    assert not path.exists()
    cache.save_array(path, np.ones((10, 4), dtype=np.float32), seconds=1.0)
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.warns(UserWarning, match="damaged"):
        assert cache.load_array(path) is None


def test_an_interrupted_folder_write_leaves_nothing(tmp_path):
    target = tmp_path / "teacher"
    with pytest.raises(KeyboardInterrupt), cache.atomic_folder(target) as folder:
        (folder / "config.json").write_text("")
        raise KeyboardInterrupt
    assert not target.exists() and not list(tmp_path.iterdir())


def test_incomplete_model_folders_are_recognised(tmp_path, smoke_workspace):
    from helpers import models

    folder = tmp_path / "model"
    models.load_student(smoke_workspace.config, 0).save_pretrained(folder)
    assert cache.complete_model_folder(folder)
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-100])
    assert not cache.complete_model_folder(folder)
    (folder / "config.json").write_text("")
    assert not cache.complete_model_folder(folder)


def test_another_data_folder_gets_another_teacher_and_students(tmp_path):
    frames = {}
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        for split, rows, seed in (("train", 400, 1), ("test", 80, 2)):
            frame = data.synthetic_frame(rows, seed + (name == "b") * 10)
            frame.to_parquet(folder / f"{split}.parquet")
        frames[name] = get_config("cpu", data_source="local", data_dir=str(folder), cache_dir=str(tmp_path / "cache"),
                                  teacher_max_length=24)  # as notebook 02's rule would record it
    from helpers import models

    path = models.fine_tuned_teacher_path
    assert path(frames["a"]) != path(frames["b"])
    # The same data: the same teacher, unless it reads another number of tokens (the rule's other length).
    same = get_config("cpu", data_source="local", data_dir=str(tmp_path / "a"), cache_dir=str(tmp_path / "cache"))
    assert path(dataclasses.replace(same, teacher_max_length=24)) == path(frames["a"])
    assert path(dataclasses.replace(same, teacher_max_length=32)) != path(frames["a"])
    # Before the rule has chosen, no teacher folder can be named: it raises instead of guessing a length.
    with pytest.raises(RuntimeError, match="notebook 02"):
        path(same)


def test_student_keys_change_with_rows_seed_and_settings(smoke_workspace):
    from helpers.distill import BASELINE

    key = pipeline.student_key(smoke_workspace, BASELINE, 0, "final")
    assert key != pipeline.student_key(smoke_workspace, BASELINE, 1, "final")
    # smoke's grid trains on half the students' rows: another budget, another run.
    assert smoke_workspace.config.selection_max_train_rows < smoke_workspace.config.max_train_rows
    assert key != pipeline.student_key(smoke_workspace, BASELINE, 0, "selection")
    # A selection budget equal to the final one (all the rows, the same epochs) reuses the final run...
    same_rows = {**smoke_workspace.fingerprints, "selection_train": smoke_workspace.fingerprints["student_train"]}
    same_budget = pipeline.Workspace(**{**smoke_workspace.__dict__, "fingerprints": same_rows})
    assert smoke_workspace.config.selection_epochs is None
    assert key == pipeline.student_key(same_budget, BASELINE, 0, "selection")
    # ...and fewer epochs at selection make it another run again.
    cheaper = pipeline.Workspace(**{**same_budget.__dict__, "config": dataclasses.replace(
        smoke_workspace.config, selection_epochs=1)})
    assert key != pipeline.student_key(cheaper, BASELINE, 0, "selection")
    changed = pipeline.Workspace(**{**smoke_workspace.__dict__,
                                    "fingerprints": {**smoke_workspace.fingerprints, "student_train": "other"}})
    assert key != pipeline.student_key(changed, BASELINE, 0, "final")


def test_empty_unseen_splits_prepare_twice(tmp_path):  # full has no unseen rows
    config = get_config("smoke", unseen_rows=0, plateau_rows=0, teacher_lengths_tried=(), cache_dir=str(tmp_path / "c"),
                        results_dir=str(tmp_path / "r"))
    for _ in range(2):
        workspace = pipeline.prepare(config)
        assert len(workspace.tokenized["unseen"]) == len(workspace.tokenized["unseen_more"]) == 0


def test_a_truncated_results_file_is_named(tmp_path):
    path = tmp_path / "teacher.json"
    path.write_text('{"provenance": {')
    with pytest.raises(ValueError, match="teacher.json"):
        results.load_result(path)


def test_data_files_that_cannot_be_read_are_named(tmp_path):
    (tmp_path / "train.csv").write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    (tmp_path / "test.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="train.csv.*UTF-8"):
        data.load_local_dataset(tmp_path)
    (tmp_path / "train.csv").write_text("text,label\nnews,1\n")
    with pytest.raises(ValueError, match="test.parquet.*truncated or corrupt"):
        data.load_local_dataset(tmp_path)


def test_the_report_refuses_results_that_do_not_belong_together():
    documents = {"teacher.json": {"provenance": {"profile": "cpu", "schema": 3, "code_hash": "abc",
                                                  "data_fingerprint": "x"}},
                 "students/baseline-seed0.json": {"provenance": {"profile": "cpu", "schema": 3, "code_hash": "abc",
                                                                  "data_fingerprint": "y"}}}
    with pytest.raises(results.MixedResultsError, match="data_fingerprint.*baseline-seed0"):
        results.check_consistent(documents)
    documents["students/baseline-seed0.json"]["provenance"]["data_fingerprint"] = "x"
    results.check_consistent(documents)


def test_a_partial_run_never_replaces_a_complete_report(tmp_path, monkeypatch):
    partial = get_config("full", results_dir=str(tmp_path / "full"))
    results.save_result(partial, "teacher", {"test": {"accuracy": 0.9}})
    assert not report_data.complete(partial)
    assert json.loads(results.result_path(partial, "teacher").read_text())["provenance"]["profile"] == "full"


def test_the_teacher_logit_cache_refuses_a_label_order_the_data_does_not_have(smoke_workspace, tmp_path):
    """The check sits in the one function that caches teacher logits: rows whose gold labels are rotated by one class
    (as a teacher whose LABEL_k means another class would look) stop it before anything is cached."""
    config = dataclasses.replace(smoke_workspace.config, cache_dir=str(tmp_path))
    rotated = smoke_workspace.splits["test"].map(lambda row: {"label": (row["label"] + 1) % 4})
    space = dataclasses.replace(smoke_workspace, config=config, named={"rotated": rotated}, tokenized={},
                                fingerprints={"rotated": "rotated-test"})
    teacher = models.load_teacher(smoke_workspace.config)
    with pytest.raises(ValueError, match="label order differs"):
        pipeline.load_or_compute_teacher_logits(space, "rotated", teacher=teacher)
    assert not list(Path(tmp_path, "teacher_logits").glob("*.npy"))
    logits, _ = pipeline.load_or_compute_teacher_logits(space, "rotated", teacher=teacher, check_labels=False)
    assert logits.shape == (len(rotated), 4)
