import dataclasses

import pytest

from helpers import config as config_module
from helpers.config import PROFILES, get_config


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="full, offline, smoke"):
        get_config("fast")


def test_full_profile_names_the_briefs_models():
    config = get_config("full")
    assert config.teacher_name == "fabriceyhc/bert-base-uncased-ag_news"
    assert config.student_name == "distilbert-base-uncased"
    assert config.tokenizer_name == "bert-base-uncased"
    assert (config.max_length, config.epochs, config.data_source) == (128, 3, "hub")
    assert len(config.seeds) >= 3


def test_profiles_share_every_field_and_are_frozen():
    configs = [get_config(name) for name in PROFILES]
    assert {tuple(f.name for f in dataclasses.fields(c)) for c in configs} == {
        tuple(f.name for f in dataclasses.fields(configs[0]))}
    with pytest.raises(dataclasses.FrozenInstanceError):
        configs[0].epochs = 1


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("KD_PROFILE", "smoke")
    monkeypatch.setenv("KD_EPOCHS", "5")
    monkeypatch.setenv("KD_SEEDS", "3,4")
    monkeypatch.setenv("KD_MAX_TRAIN_ROWS", "all")
    monkeypatch.setenv("KD_BATCH_SIZE", "8")
    config = get_config()
    assert (config.profile, config.epochs, config.seeds, config.max_train_rows, config.batch_size) == (
        "smoke", 5, (3, 4), None, 8)
    assert config.seed == 3


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("KD_EPOCHS", "three")
    with pytest.raises(ValueError, match="KD_EPOCHS"):
        get_config("smoke")


def test_data_dir_override_only_for_local_data(monkeypatch, tmp_path):
    monkeypatch.setenv("KD_DATA_DIR", str(tmp_path))
    assert get_config("offline").data_dir == str(tmp_path)
    assert get_config("smoke").data_dir is None


def test_no_gpu_and_no_data_names_the_profile_to_use(monkeypatch, tmp_path):
    monkeypatch.delenv("KD_PROFILE", raising=False)
    monkeypatch.setenv("KD_DATA_DIR", str(tmp_path / "missing"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(RuntimeError, match="KD_PROFILE=smoke"):
        config_module.default_profile()
