"""A Colab reset costs at most the run in progress (issue 28 item 3): epoch checkpoints go to the checkpoint folder
(a local disk), the finished student's final model and its results copy stay in the cache (Drive), and a results
folder wiped by the reset is restored from that copy without training again."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from helpers import pipeline, results, train
from helpers.distill import BASELINE


@pytest.fixture
def reset_workspace(smoke_workspace, tmp_path):
    """The smoke workspace with its own cache, results folder (A) and checkpoint folder: a student trained here
    is trained here, whatever earlier sessions left in the shared cache."""
    config = dataclasses.replace(smoke_workspace.config, cache_dir=str(tmp_path / "drive" / "cache"),
                                 results_dir=str(tmp_path / "content" / "results"),
                                 checkpoint_dir=str(tmp_path / "content" / "checkpoints"))
    return dataclasses.replace(smoke_workspace, config=config)


def test_a_reset_that_wipes_the_results_folder_costs_no_training(reset_workspace, monkeypatch):
    config = reset_workspace.config
    saves = []
    original = train.StepCounter.on_save

    def record(self, args, state, control, **kwargs):
        saves.append((Path(args.output_dir), sorted(p.name for p in Path(args.output_dir).glob("checkpoint-*"))))
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(train.StepCounter, "on_save", record)
    seed = config.seeds[0]
    first = pipeline.load_or_train_student(reset_workspace, BASELINE, seed=seed)
    monkeypatch.undo()
    run_dir = Path(config.cache_dir) / "runs" / first["run"]
    # Every epoch checkpoint was written under the checkpoint folder, none in the cache.
    assert len(saves) == config.epochs
    assert all(folder == Path(config.checkpoint_dir) / run_dir.name and names for folder, names in saves)
    assert not list(Path(config.checkpoint_dir).rglob("checkpoint-*"))  # gone once the final model is written
    assert not list(run_dir.glob("checkpoint-*")) and (run_dir / "final" / "config.json").exists()
    stored = json.loads((run_dir / "result.json").read_text())  # the results copy beside the final model
    assert stored == results.load_result(config, pipeline.student_result_name(BASELINE, seed, first["key"]))

    shutil.rmtree(config.results_dir)  # the reset: /content is wiped, Drive (the cache) is not

    def no_training(*args, **kwargs):
        raise AssertionError("a finished student was trained again after the reset")

    monkeypatch.setattr(pipeline, "train_student", no_training)
    again = pipeline.load_or_train_student(reset_workspace, BASELINE, seed=seed)
    assert again["test_predictions"] == first["test_predictions"] and again["key"] == first["key"]
    assert again["train_seconds"] == first["train_seconds"]
    assert results.has_result(config, pipeline.student_result_name(BASELINE, seed, first["key"]))  # put back


def test_a_copy_without_its_final_model_is_not_trusted(reset_workspace, monkeypatch):
    """The copy restores a result only beside a complete final model: a reset during the final save trains again."""
    config = reset_workspace.config
    seed = config.seeds[0]
    first = pipeline.load_or_train_student(reset_workspace, BASELINE, seed=seed)
    run_dir = Path(config.cache_dir) / "runs" / first["run"]
    shutil.rmtree(config.results_dir)
    weights = next((run_dir / "final").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-100])  # a final model cut short
    trained = []
    monkeypatch.setattr(pipeline, "train_student", lambda *args, **kwargs: trained.append(args) or {"test": {}})
    pipeline.load_or_train_student(reset_workspace, BASELINE, seed=seed)
    assert len(trained) == 1
