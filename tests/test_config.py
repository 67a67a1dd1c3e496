import dataclasses

import pytest

from helpers import config as config_module
from helpers.config import PROFILES, Config, get_config


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="full, cpu, smoke"):
        get_config("fast")


def test_full_profile_names_the_briefs_models():
    config = get_config("full")
    assert config.teacher_name == "fabriceyhc/bert-base-uncased-ag_news"
    assert config.student_name == "distilbert-base-uncased"
    assert config.tokenizer_name == "bert-base-uncased"
    assert (config.max_length, config.epochs, config.data_source) == (128, 3, "hub")
    assert len(config.seeds) >= 3 and config.transfer_rows == 0


@pytest.fixture
def no_environment(monkeypatch):
    """No KD_* knob set: a profile is then exactly full's defaults with its listed changes."""
    for variable in config_module.ENV_OVERRIDES:
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_is_full_with_exactly_its_listed_changes(profile, no_environment):
    config, full = get_config(profile), Config()
    listed = config_module.PROFILE_CHANGES[profile]()
    assert set(listed) <= {f.name for f in dataclasses.fields(Config)}
    for name, value in listed.items():
        assert getattr(config, name) == value, name
    folders = {"profile", "cache_dir", "results_dir", "figures_dir"}
    unlisted = {f.name for f in dataclasses.fields(Config)} - set(listed) - folders
    assert {name for name in unlisted if getattr(config, name) != getattr(full, name)} == set()
    assert config.profile == profile and config.results_dir.endswith(f"results/{profile}")
    # describe() stars exactly the settings that differ from full.
    starred = {line.split()[1] for line in config.describe().splitlines() if line.startswith("*")}
    assert starred == {name for name in listed if getattr(config, name) != getattr(full, name)} | (
        {"profile"} if profile != "full" else set())


def test_configs_are_frozen_and_derived_settings_follow_their_fields():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_config("smoke").epochs = 1
    smoke = get_config("smoke")
    assert smoke.teacher_length == smoke.teacher_max_length == 24 < smoke.max_length
    assert get_config("full").teacher_length == get_config("full").max_length  # None: the students' length
    assert smoke.seed == smoke.selection_seed == 0 and smoke.seed not in smoke.seeds


@pytest.mark.parametrize("overrides, message", [
    ({"seeds": (0, 1)}, "selection_seed.*fresh seeds"),  # the grid's seed would be reused in the final comparison
    ({"selection_seed": 2}, "selection_seed.*fresh seeds"),
    ({"teacher_max_length": 64}, r"teacher_max_length.*between 8 and max_length \(32\)"),
    ({"teacher_max_length": 4}, "teacher_max_length"),
    ({"control_seeds": 0}, "control_seeds"),
    ({"calibration_rows": -1}, "calibration_rows"),
    ({"teacher_batch_size": 0}, "teacher_batch_size"),
])
def test_settings_that_break_the_design_are_refused_by_name(overrides, message, no_environment):
    with pytest.raises(ValueError, match=message):
        get_config("smoke", **overrides)


def test_offline_is_an_alias_of_cpu():
    assert get_config("offline").profile == "cpu"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("KD_PROFILE", "smoke")
    monkeypatch.setenv("KD_EPOCHS", "5")
    monkeypatch.setenv("KD_SEEDS", "3,4")
    monkeypatch.setenv("KD_MAX_TRAIN_ROWS", "all")
    monkeypatch.setenv("KD_BATCH_SIZE", "8")
    monkeypatch.setenv("KD_VALIDATION_ROWS", "40")
    monkeypatch.setenv("KD_LM_SEEDS", "7")
    config = get_config()
    assert (config.profile, config.epochs, config.seeds, config.max_train_rows, config.batch_size) == (
        "smoke", 5, (3, 4), None, 8)
    assert config.seed == config.selection_seed == 0 and config.validation_rows == 40
    assert config.data_seed == 0 and config.lm_seeds == (7,)


@pytest.mark.parametrize("variable, value, message", [
    ("KD_EPOCHS", "three", "KD_EPOCHS"), ("KD_EPOCHS", "0", "KD_EPOCHS"), ("KD_EPOCHS", "-1", "KD_EPOCHS"),
    ("KD_BATCH_SIZE", "0", "KD_BATCH_SIZE"), ("KD_MAX_TRAIN_ROWS", "-5", "KD_MAX_TRAIN_ROWS"),
    ("KD_MAX_TRAIN_ROWS", "3", "one row per class"), ("KD_SEEDS", "-1", r"\[0, 2\*\*32\)"),
    ("KD_SEEDS", "1,1", "repeat"), ("KD_SEEDS", ",", "at least one seed"), ("KD_DATA_DIR", "", "KD_DATA_DIR"),
    ("KD_LM_SEEDS", "2,2", "KD_LM_SEEDS.*repeat"), ("KD_SEEDS", "0,1", "selection_seed"),
])
def test_bad_knobs_fail_at_the_door_naming_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        get_config("cpu" if variable == "KD_DATA_DIR" else "smoke")


def test_data_dir_override_only_for_local_data(monkeypatch, tmp_path):
    monkeypatch.setenv("KD_DATA_DIR", str(tmp_path))
    assert get_config("cpu").data_dir == str(tmp_path)
    assert get_config("smoke").data_dir is None


def test_cpu_profile_falls_back_to_the_hub_without_a_local_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("KD_DATA_DIR", raising=False)
    monkeypatch.setattr(config_module, "SHARED_DATA_DIR", tmp_path / "missing")
    config = get_config("cpu")
    assert (config.data_source, config.hub_dataset) == ("hub", "fancyzhx/ag_news")


def test_default_profile_branches(monkeypatch, tmp_path):
    monkeypatch.delenv("KD_PROFILE", raising=False)
    monkeypatch.delenv("KD_DATA_DIR", raising=False)
    monkeypatch.setattr(config_module, "SHARED_DATA_DIR", tmp_path / "missing")
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert config_module.default_profile() == "full"
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setenv("KD_DATA_DIR", str(tmp_path))
    assert config_module.default_profile() == "cpu"
    monkeypatch.delenv("KD_DATA_DIR")
    monkeypatch.setattr(config_module, "hub_reachable", lambda: True)
    assert config_module.default_profile() == "cpu"


def test_no_gpu_no_folder_and_no_hub_names_both_fixes_at_once(monkeypatch, tmp_path):
    import time

    monkeypatch.delenv("KD_PROFILE", raising=False)
    monkeypatch.delenv("KD_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(config_module, "SHARED_DATA_DIR", tmp_path / "missing")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="KD_DATA_DIR.*HF_HUB_OFFLINE"):
        config_module.default_profile()
    assert time.perf_counter() - start < 1.0
