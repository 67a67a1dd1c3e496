import dataclasses

import pytest

from helpers import config as config_module
from helpers.config import PROFILES, Config, get_config


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="full, cpu, smoke"):
        get_config("fast")


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
    # describe() lists exactly the settings that differ from full, with their values.
    described = config.describe().splitlines()
    assert described[0].startswith(f"profile {profile}: ")
    shown = {line.split()[0] for line in described[1:]}
    assert shown == {name for name in listed if getattr(config, name) != getattr(full, name)}


def test_the_teachers_length_is_read_only_once_the_rule_has_chosen_it(no_environment):
    smoke, cpu, full = get_config("smoke"), get_config("cpu"), get_config("full")
    for config in (smoke, cpu):  # the rule's profiles: no length to read before notebook 02 has run
        assert config.teacher_max_length is None and config.teacher_lengths_tried
        with pytest.raises(RuntimeError, match=r"notebook 02.*\(32, 24\)"):
            _ = config.teacher_length
    assert dataclasses.replace(smoke, teacher_max_length=24).teacher_length == 24
    assert full.teacher_length == full.max_length == 128  # no rule, no window of its own: the students' length
    assert dataclasses.replace(full, teacher_max_length=64).teacher_length == 64


def test_prepare_takes_the_teachers_length_from_teacher_json(no_environment, tmp_path, monkeypatch):
    from helpers import pipeline, results

    monkeypatch.setenv("KD_CACHE_DIR", str(tmp_path / "cache"))
    config = get_config("smoke", results_dir=str(tmp_path / "results"))
    with pytest.raises(RuntimeError, match="notebook 02"):
        _ = pipeline.prepare(config).config.teacher_length  # no teacher.json yet
    results.save_result(config, "teacher", {"rule_takes": 24})
    assert pipeline.prepare(config).config.teacher_length == 24
    # An explicit length wins over the file; a recorded length the rule never tried is refused.
    assert pipeline.prepare(dataclasses.replace(config, teacher_max_length=32)).config.teacher_length == 32
    results.save_result(config, "teacher", {"rule_takes": 16})
    with pytest.raises(ValueError, match="16.*re-run notebook 02"):
        pipeline.prepare(config)


@pytest.mark.parametrize("overrides, message", [
    ({"seeds": (0, 1)}, "selection_seed.*fresh seeds"),  # the grid's seed would be reused in the final comparison
    ({"selection_seed": 2}, "selection_seed.*fresh seeds"),
    ({"teacher_max_length": 64}, r"teacher_max_length.*between 8 and max_length \(32\)"),
    ({"teacher_max_length": 4}, "teacher_max_length"),
    ({"control_seeds": 0}, "control_seeds"),
    ({"unseen_rows": -1}, "unseen_rows=-1 is not valid.*>= 0"),
    ({"plateau_rows": -1}, "plateau_rows=-1 is not valid.*>= 0"),
    ({"plateau_rows": 32}, r"plateau_rows.*at least unseen_rows \(64\)"),  # the plateau rows hold the unseen ones
    ({"unseen_rows": 0, "plateau_rows": 0}, "teacher_lengths_tried.*unseen_rows > 0"),  # the rule reads them
    ({"teacher_hub_id": "bert-base-uncased"}, "teacher_lengths_tried.*teacher_hub_id=None"),
    ({"plan": "fast"}, "PLAN='fast' is not valid.*one of default, thorough"),
    ({"teacher_batch_size": 0}, "teacher_batch_size"),
])
def test_settings_that_break_the_design_are_refused_by_name(overrides, message, no_environment):
    with pytest.raises(ValueError, match=message):
        get_config("smoke", **overrides)


def test_settings_at_the_edge_of_the_rules_are_accepted(no_environment):
    assert get_config("smoke", plateau_rows=0).plateau_rows == 0  # 0: the plateau check reads validation
    assert get_config("smoke", plateau_rows=64).plateau_rows == 64  # exactly the unseen rows
    full = get_config("full", unseen_rows=0)
    assert full.teacher_lengths_tried == () and full.teacher_length == full.max_length  # full has no rule to run


def test_offline_is_an_alias_of_cpu(no_environment):
    """Every setting, not only the name: the committed results of earlier versions call the cpu profile
    "offline"."""
    assert get_config("offline") == get_config("cpu")
    with pytest.raises(ValueError, match="offline = cpu"):
        get_config("online")


@pytest.mark.parametrize("profile", ["full", "cpu"])
def test_the_thorough_plan_adds_an_epoch_seeds_and_response_kd(profile, no_environment, monkeypatch):
    default = get_config(profile)
    assert default.plan == "default" and default.final_extra == ()
    monkeypatch.setenv("KD_PLAN", "thorough")
    thorough = get_config(profile)
    assert (thorough.plan, thorough.epochs, thorough.control_seeds, thorough.final_extra) == (
        "thorough", 3, 5, ("response",))
    changed = {f.name for f in dataclasses.fields(Config) if getattr(thorough, f.name) != getattr(default, f.name)}
    assert changed <= {"plan", "epochs", "control_seeds", "final_extra"}
    assert get_config(profile, plan="thorough") == thorough  # the keyword and the variable agree


def test_full_trains_two_epochs_by_default_within_the_briefs_two_to_three(no_environment):
    assert get_config("full").epochs == 2
    assert get_config("full", plan="thorough").epochs == 3


def test_explicit_settings_win_over_the_plan(no_environment, monkeypatch):
    monkeypatch.setenv("KD_PLAN", "thorough")
    monkeypatch.setenv("KD_EPOCHS", "2")  # the default's own value: still the user's, not the plan's
    config = get_config("full")
    assert (config.epochs, config.control_seeds, config.final_extra) == (2, 5, ("response",))
    monkeypatch.delenv("KD_EPOCHS")
    config = get_config("full", epochs=2, final_extra=())
    assert (config.epochs, config.control_seeds, config.final_extra) == (2, 5, ())
    monkeypatch.setenv("KD_PLAN", "default")
    assert get_config("full", control_seeds=4).control_seeds == 4


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
