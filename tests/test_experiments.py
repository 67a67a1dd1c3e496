"""The experiment design: the screening choice, the final students and their seeds, the twins, the seed-paired
comparisons, the best control and the teacher rule, on hand-made runs and recipes (no training)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from helpers import evaluate, experiments, pipeline
from helpers.config import get_config
from helpers.distill import BASELINE, DistillSpec

LABELS = np.array([0, 1, 2, 3] * 100)


def predictions(wrong: int, labels=LABELS) -> np.ndarray:
    """The labels with the first ``wrong`` rows mispredicted: accuracy 1 − wrong / N."""
    predicted = labels.copy()
    predicted[:wrong] = (predicted[:wrong] + 1) % 4
    return predicted


def run(seed, test_wrong=0, validation_wrong=0, spec: DistillSpec = BASELINE) -> dict:
    """A student's results document, as far as the comparisons read it."""
    test, validation = predictions(test_wrong), predictions(validation_wrong)
    return {"spec": spec.settings(), "seed": seed, "test_predictions": test.tolist(),
            "validation_predictions": validation.tolist(),
            "test": {"accuracy": float((test == LABELS).mean())},
            "validation": {"accuracy": float((validation == LABELS).mean())}}


# ------------------------------------------------------------------------------------------------- statistics
def test_two_level_interval_carries_seed_variance():
    # Seed 0 gains 5 points, seed 1 loses 5: the mean is 0 and the interval must be wide, although each seed's
    # difference alone is clear on these rows.
    better, worse = LABELS.copy(), predictions(20)
    a, b = np.stack([better, worse]), np.stack([worse, better])
    interval = evaluate.two_level_bootstrap(LABELS, a, b, seed=3)
    assert interval["difference"] == pytest.approx(0.0)
    assert interval["ci_low"] < -0.02 and interval["ci_high"] > 0.02 and interval["p_value"] > 0.3
    same = evaluate.two_level_bootstrap(LABELS, np.stack([better, better]), np.stack([worse, worse]))
    assert same["ci_low"] > 0 and same["p_value"] < 0.01


def test_compare_pairs_runs_by_seed_whatever_their_order():
    a_wrong, b_wrong = {1: 40, 2: 20, 3: 60}, {1: 80, 2: 20, 3: 100, 9: 0}  # seed 9 has no partner in A
    runs_a = [run(seed, wrong) for seed, wrong in a_wrong.items()]
    runs_b = [run(seed, wrong) for seed, wrong in b_wrong.items()]
    comparison = experiments.compare(LABELS, runs_a, runs_b)
    differences = np.array([0.10, 0.0, 0.10])  # (80 − 40) / 400, 0, (100 − 60) / 400
    assert comparison["seeds"] == [1, 2, 3]
    assert [row["difference"] for row in comparison["per_seed"]] == pytest.approx(differences)
    assert [row["only_a_correct"] for row in comparison["per_seed"]] == [40, 0, 40]
    assert comparison["accuracy_a"] == pytest.approx([0.9, 0.95, 0.85])
    assert comparison["paired_t"] == pytest.approx(evaluate.paired_t_interval(differences))
    assert comparison["equivalence"] == pytest.approx(
        evaluate.equivalence_test(differences, experiments.EQUIVALENCE_MARGIN))
    assert comparison["across_seeds"]["difference"] == pytest.approx(differences.mean())
    # B's runs in another order pair the same way: the same comparison. (Pairing by position would not.)
    shuffled = experiments.compare(LABELS, runs_a, [runs_b[i] for i in (3, 2, 0, 1)])
    assert shuffled == comparison
    reordered = experiments.compare(LABELS, runs_a[::-1], runs_b)
    assert reordered["paired_t"] == pytest.approx(comparison["paired_t"])
    assert sorted(reordered["seeds"]) == comparison["seeds"]
    with pytest.raises(ValueError, match="No seed in common"):
        experiments.compare(LABELS, runs_a, [run(7)])


def test_compare_reads_the_split_it_is_given():
    runs_a = [run(seed, test_wrong=0, validation_wrong=40) for seed in (1, 2)]
    runs_b = [run(seed, test_wrong=40, validation_wrong=0) for seed in (1, 2)]
    assert experiments.compare(LABELS, runs_a, runs_b)["paired_t"]["difference"] == pytest.approx(0.1)
    validation = experiments.compare(LABELS, runs_a, runs_b, split="validation")
    assert validation["split"] == "validation" and validation["paired_t"]["difference"] == pytest.approx(-0.1)


# ---------------------------------------------------------------------------------------------- the design
def test_every_family_and_every_control_is_specified():
    specs = experiments.specs()
    assert any(s.kd_loss_weight and s.soft_targets == "teacher" for s in specs.values())
    assert any(s.teacher_label_weight for s in specs.values())
    assert any(s.feature_weight for s in specs.values()) and any(s.attention_weight for s in specs.values())
    assert all(spec.uses_bert_teacher for spec, _ in experiments.STRATEGIES.values())
    controls = [specs[name] for name in experiments.CONTROLS]
    assert not any(s.uses_bert_teacher for s in controls)
    assert {s.label_smoothing > 0 for s in controls} == {True, False}
    assert not any(s.unlabelled == "transfer" for s in specs.values())  # full has no unlabelled rows
    # The steps each student gets: the compute control twice the baseline's epochs, augmented half of them over
    # twice the rows.
    config = get_config("full")
    epochs = {name: pipeline.training_settings(config, specs[name], "final")["epochs"]
              for name in ("matched-compute", "augmented", "response")}
    assert epochs == {"matched-compute": 2 * config.epochs, "augmented": config.epochs / 2,
                      "response": config.epochs}


@pytest.mark.parametrize("name", list(experiments.STRATEGIES))
def test_a_twin_keeps_everything_but_the_teacher(name):
    spec = experiments.STRATEGIES[name][0]
    twin = experiments.twin(spec)
    assert twin.name == f"{name}-without-teacher"
    assert spec.uses_bert_teacher and not twin.uses_bert_teacher
    assert twin.soft_targets == ("crossfit" if spec.soft_targets == "committee" else "peer")
    changed = {field.name for field in dataclasses.fields(DistillSpec)
               if getattr(spec, field.name) != getattr(twin, field.name)}
    assert changed == {"name", "soft_targets"}
    # Still a student that learns from soft targets or internals (only their source changed).
    assert (twin.uses_cached_logits, twin.uses_online_teacher) == (spec.uses_cached_logits, spec.uses_online_teacher)


def grid_table(best: str, best_control: str) -> pd.DataFrame:
    """A grid table whose validation accuracies rise in row order, ``best`` and ``best_control`` on top."""
    names = ["baseline", *experiments.STRATEGIES, *experiments.CONTROLS]
    specs = {"baseline": BASELINE, **experiments.specs()}
    table = pd.DataFrame({"validation_accuracy": np.linspace(0.80, 0.90, len(names)),
                          "bert_teacher": [specs[n].uses_bert_teacher for n in names]}, index=names)
    table.loc[best, "validation_accuracy"] = 0.95
    table.loc[best_control, "validation_accuracy"] = 0.99  # a control is never chosen as the strategy
    return table


def test_choice_is_made_on_validation_among_teacher_strategies():
    choice = experiments.choose(grid_table("committee", "matched-compute"))
    assert choice == {"chosen": "committee", "label_smoothing": "label-smoothing-0.2"}
    choice = experiments.choose(grid_table("feature", "label-smoothing-0.1"))
    assert choice == {"chosen": "feature", "label_smoothing": "label-smoothing-0.1"}


def test_final_specs_run_the_chosen_strategy_and_its_twin_on_every_seed():
    final = experiments.final_specs({"chosen": "augmented", "label_smoothing": "label-smoothing-0.1"})
    seeds = {name: which for name, (_, which) in final.items()}
    assert seeds == {"baseline": "all", "augmented": "all", "augmented-without-teacher": "all",
                     "response": "all", "response-without-teacher": "all", "matched-compute": "control"}
    assert final["augmented-without-teacher"][0] == experiments.twin(experiments.STRATEGIES["augmented"][0])
    assert final["baseline"][0] == BASELINE
    # Response chosen: it and its twin once, on every seed.
    final = experiments.final_specs({"chosen": "response", "label_smoothing": "label-smoothing-0.1"})
    assert {name: which for name, (_, which) in final.items()} == {
        "baseline": "all", "response": "all", "response-without-teacher": "all", "matched-compute": "control"}
    config = get_config("full")
    assert experiments.final_seeds(config, "all") == (1, 2, 3, 4, 5)
    assert experiments.final_seeds(config, "control") == (1, 2, 3)
    assert config.selection_seed not in experiments.final_seeds(config, "all")


def final_runs(chosen: str, validation_wrong: dict[str, int], test_wrong: dict[str, int]) -> dict[str, list[dict]]:
    """Runs of every final student over its seeds, with the given wrong rows (default 0) per student."""
    config = get_config("full")
    return {name: [run(seed, test_wrong.get(name, 0), validation_wrong.get(name, 0), spec)
                   for seed in experiments.final_seeds(config, which)]
            for name, (spec, which) in experiments.final_specs({"chosen": chosen,
                                                                "label_smoothing": "label-smoothing-0.1"}).items()}


def test_best_control_reads_validation_and_never_test():
    # On validation matched-compute beats the twin; on test the twin is far ahead. The teacher-using students and
    # the baseline are better than both on validation, and are not controls.
    validation = {"baseline": 0, "augmented": 0, "response": 0, "augmented-without-teacher": 60,
                  "response-without-teacher": 80, "matched-compute": 40}
    test = {"augmented-without-teacher": 0, "response-without-teacher": 100, "matched-compute": 200}
    final = final_runs("augmented", validation, test)
    assert experiments.best_control(final) == "matched-compute"
    swapped = final_runs("augmented", {**validation, "augmented-without-teacher": 20}, test)
    assert experiments.best_control(swapped) == "augmented-without-teacher"


def test_final_comparisons_pair_every_teacher_strategy_with_its_twin_and_the_baseline():
    validation = {"augmented-without-teacher": 60, "response-without-teacher": 80, "matched-compute": 40,
                  "baseline": 44}
    test = {"augmented": 20, "augmented-without-teacher": 28, "baseline": 40, "matched-compute": 36}
    final = final_runs("augmented", validation, test)
    comparisons = experiments.final_comparisons(LABELS, LABELS, final,
                                                {"chosen": "augmented", "label_smoothing": "label-smoothing-0.1"})
    assert comparisons["teacher_using"] == ["augmented", "response"]
    assert comparisons["best_control"] == "matched-compute"
    assert comparisons["share"] == "augmented − augmented-without-teacher"
    rows = comparisons["rows"]
    assert set(rows) == {"augmented − baseline", "augmented − augmented-without-teacher", "response − baseline",
                         "response − response-without-teacher", "augmented − matched-compute (best control)",
                         "augmented-without-teacher − baseline", "response-without-teacher − baseline",
                         "matched-compute − baseline"}
    assert rows["augmented − augmented-without-teacher"]["seeds"] == [1, 2, 3, 4, 5]
    assert rows["augmented − augmented-without-teacher"]["paired_t"]["difference"] == pytest.approx(8 / 400)
    assert rows["augmented − baseline"]["paired_t"]["difference"] == pytest.approx(20 / 400)
    # The control runs 3 seeds: paired with the baseline's first 3.
    assert rows["augmented − matched-compute (best control)"]["seeds"] == [1, 2, 3]
    assert rows["matched-compute − baseline"]["paired_t"]["difference"] == pytest.approx(4 / 400)
    # The plateau check reads validation: matched compute gained 4 rows there too.
    plateau = comparisons["plateau_validation"]
    assert plateau["split"] == "validation" and plateau["paired_t"]["difference"] == pytest.approx(4 / 400)
    table = experiments.headline_table(comparisons)
    assert list(table.index) == list(rows)
    assert table.loc["augmented − baseline", "difference_points"] == pytest.approx(5.0)
    assert table.loc["augmented − baseline", "seeds"] == 5 and table.loc["matched-compute − baseline", "seeds"] == 3
    # Equal gains on every seed: no spread, so p is 0 and the verdict follows the sign.
    assert table.loc["augmented − baseline", "verdict"] == "better"
    assert table.loc["response − response-without-teacher", "verdict"] == "no detectable difference"


# ---------------------------------------------------------------------------------------------------- regime
def recipe(length, seen_accuracy, seen_top, unseen_accuracy):
    return {"max_length": length, "seen_accuracy": seen_accuracy, "seen_top_probability": seen_top,
            "unseen_accuracy": unseen_accuracy}


def test_teacher_rule_takes_the_memorised_teacher_nearest_the_middle_of_the_window():
    baseline = 0.880
    weaker = baseline - (experiments.WEAKER_BY[0] + experiments.WEAKER_BY[1]) / 2
    memorised = (0.995, 0.97)
    recipes = [recipe(128, *memorised, baseline + 0.010),  # too strong: above the baseline on unseen rows
               recipe(96, 0.93, 0.80, weaker),  # weaker, but not memorised
               recipe(64, 0.995, 0.85, weaker),  # right on its rows, not confident enough there
               recipe(32, *memorised, weaker),  # memorised and weaker by the target
               recipe(24, *memorised, weaker - 0.01),
               recipe(16, *memorised, baseline - 0.2)]  # far too weak
    assert experiments.teacher_rule(recipes, baseline) == 32
    assert experiments.teacher_rule([r for r in recipes if r["max_length"] != 32], baseline) == 24
    assert experiments.teacher_rule([recipes[0], recipes[1], recipes[5]], baseline) is None
    assert experiments.teacher_rule([], baseline) is None
    # At the window's edge (0.45 points below) vs near its middle: the middle wins, though the input is shorter.
    edge, middle = recipe(32, *memorised, baseline - 0.0045), recipe(24, *memorised, weaker - 0.001)
    assert experiments.teacher_rule([edge, middle], baseline) == 24
    assert experiments.teacher_rule([edge], baseline) == 32


def test_memorisation_table_reports_accuracy_and_confidence_per_split():
    confident = np.array([[9.0, 0, 0, 0], [0, 9.0, 0, 0], [0, 0, 9.0, 0], [0, 0, 0, 9.0]])
    unsure = np.zeros((4, 4))
    unsure[np.arange(4), [0, 1, 3, 3]] = 0.5
    table = experiments.memorisation_table({"student_train": confident, "calibration": unsure},
                                           {"student_train": np.arange(4), "calibration": np.arange(4)},
                                           {"student_train": True, "calibration": False})
    assert table.loc["student_train", "accuracy"] == 1.0 and table.loc["calibration", "accuracy"] == 0.75
    assert table.loc["student_train", "mean_top_probability"] > experiments.MEMORISED["top_probability"]
    assert table.loc["calibration", "mean_top_probability"] < 0.5
    assert table.loc["calibration", "mean_entropy"] > table.loc["student_train", "mean_entropy"]
    assert bool(table.loc["student_train", "seen_in_training"]) and table.loc["calibration", "count"] == 4


@pytest.mark.parametrize("profile", ["full", "smoke"])
def test_a_peer_is_another_final_seed_in_a_cycle(profile):
    config = get_config(profile)
    seeds = list(config.seeds)
    peers = [pipeline.peer_seed(config, seed) for seed in seeds]
    assert peers == seeds[1:] + seeds[:1]
    assert all(peer != seed for peer, seed in zip(peers, seeds, strict=True))
    assert sorted(peers) == sorted(seeds)  # every seed is one student's peer
    with pytest.raises(ValueError, match="peer"):
        pipeline.peer_seed(config, config.selection_seed)  # the grid's seed has no peer among the final seeds
    with pytest.raises(ValueError, match="at least two"):
        pipeline.peer_seed(dataclasses.replace(config, seeds=(seeds[0],)), seeds[0])


# ---------------------------------------------------------------------------------------------------- planning
def test_the_plan_counts_every_run_a_full_report_makes():
    config = get_config("full")
    plan = experiments.planned_runs(config, 114_000, 6_000, 7_600)
    names = [run["name"] for run in plan]
    grid = [name for name in names if name.startswith("grid ")]
    assert len(grid) == 1 + len(experiments.STRATEGIES) + len(experiments.LABEL_SMOOTHING)
    assert "grid matched-compute" not in grid  # the compute control runs in the final comparison only
    # Final: baseline, augmented (priced as chosen), response and their twins on 5 seeds; matched compute on 3.
    final = [name for name in names if name.startswith("final ")]
    assert len(final) == 5 * 5 + 1 * 3
    by_name = {run["name"]: run for run in plan}
    assert by_name["grid baseline"]["train_rows"] == 20_000 and by_name["grid baseline"]["epochs"] == 1
    assert by_name["final augmented seed 1"]["train_rows"] == 228_000
    assert by_name["final augmented seed 1"]["epochs"] == 1.5
    assert by_name["final matched-compute seed 3"]["epochs"] == 6
    assert "final matched-compute seed 4" not in by_name
    assert by_name["final baseline seed 5"]["eval_rows"] == 6_000 + 7_600
    assert sum(run["kind"] == "online-teacher" for run in plan) == 2  # feature and attention, screened once
    assert sum(name.startswith("cross-fit") for name in names) == 2
    assert sum(run["kind"] == "lm" for run in plan) == 2 * len(config.lm_seeds)
    assert len(plan) == len(grid) + 2 + len(final) + 1 + 2 * len(config.lm_seeds)
