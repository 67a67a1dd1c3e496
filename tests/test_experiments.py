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


def run(seed, test_wrong=0, validation_wrong=0, spec: DistillSpec = BASELINE, unseen_wrong=None) -> dict:
    """A student's results document, as far as the comparisons read it (unseen rows: as validation by default)."""
    test, validation = predictions(test_wrong), predictions(validation_wrong)
    unseen = predictions(validation_wrong if unseen_wrong is None else unseen_wrong)
    return {"spec": spec.settings(), "seed": seed, "test_predictions": test.tolist(),
            "validation_predictions": validation.tolist(), "unseen_predictions": unseen.tolist(),
            "unseen_more_predictions": unseen.tolist(),
            "test": {"accuracy": float((test == LABELS).mean())},
            "validation": {"accuracy": float((validation == LABELS).mean())},
            "unseen": {"accuracy": float((unseen == LABELS).mean())}}


class Rows:
    """A workspace as far as the comparisons read it: labelled splits (LABELS each) and the test labels."""

    def __init__(self, splits=("validation", "unseen", "unseen_more", "test")):
        self.splits = splits
        self.test_labels = LABELS

    def raw(self, split):
        return pd.DataFrame({"label": LABELS if split in self.splits else LABELS[:0]})


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
def test_every_family_is_screened_and_the_twins_controls_and_steps_follow_the_design():
    specs = experiments.specs()
    assert any(s.soft_target_weight and s.soft_targets == "teacher" for s in specs.values())
    assert any(s.teacher_label_weight for s in specs.values())
    assert any(s.feature_weight for s in specs.values()) and any(s.attention_weight for s in specs.values())
    # The T/α screen: response KD at other temperatures and weights, each a strategy the grid can choose.
    responses = [s for name, (s, _) in experiments.STRATEGIES.items() if name.startswith("response-") and
                 not s.confidence_weighted]
    assert {s.temperature for s in responses} >= {1.0, 4.0} and any(s.soft_target_weight == 0.9 for s in responses)
    grid = experiments.grid_specs(get_config("full"))
    assert set(experiments.STRATEGIES) <= set(grid) and "matched-compute" not in grid
    assert {"views-baseline", "consistent-without-teacher"} <= set(grid)  # function matching's two controls
    # Function matching: fresh views, the teacher online on them, for twice the baseline's steps; its
    # views-baseline has the same views and steps and no teacher.
    consistent, views = specs["consistent"], specs["views-baseline"]
    assert consistent.teacher_on_views and consistent.uses_online_teacher and not consistent.uses_cached_logits
    assert views.views == consistent.views and views.epochs_scale == consistent.epochs_scale
    assert not views.uses_bert_teacher and not views.uses_online_teacher
    config = get_config("full")
    epochs = {name: pipeline.training_settings(config, specs[name], "final")["epochs"]
              for name in ("matched-compute", "consistent", "response")}
    assert epochs == {"matched-compute": 2 * config.epochs, "consistent": 2 * config.epochs,
                      "response": config.epochs}
    assert specs["matched-compute"].gold_only and BASELINE.gold_only
    assert not any(specs[n].gold_only for n in ("views-baseline", "label-smoothing-0.1", "response"))


@pytest.mark.parametrize("name", list(experiments.STRATEGIES))
def test_a_twin_keeps_everything_but_the_teachers_targets(name):
    spec = experiments.STRATEGIES[name][0]
    twin = experiments.twin(spec)
    if name == "teacher-labels":  # its twin (the gold label, its argmax) trains exactly as the baseline: it is it
        assert twin == BASELINE
        return
    assert twin.name == f"{name}-without-teacher"
    assert spec.uses_bert_teacher and not twin.uses_bert_teacher
    internal = spec.feature_weight or spec.attention_weight
    expected = "crossfit" if spec.soft_targets == "committee" else "peer" if internal else "gold-smoothed"
    assert twin.soft_targets == expected
    changed = {field.name for field in dataclasses.fields(DistillSpec)
               if getattr(spec, field.name) != getattr(twin, field.name)}
    assert changed == {"name", "soft_targets"}
    # Still a student that learns from soft targets or internals; on fresh views the twin's targets are cached
    # (the row's), where the teacher's are computed online on each view.
    if spec.teacher_on_views:
        assert twin.uses_cached_logits and not twin.uses_online_teacher and twin.views == "fresh"
    else:
        assert (twin.uses_cached_logits, twin.uses_online_teacher) == (spec.uses_cached_logits,
                                                                         spec.uses_online_teacher)


def test_smoothed_gold_holds_the_teachers_confidence_and_never_its_class():
    teacher = np.log(np.array([[0.97, 0.01, 0.01, 0.01], [0.1, 0.6, 0.2, 0.1], [0.4, 0.3, 0.2, 0.1]]))
    gold = np.array([1, 1, 3])  # the teacher is wrong on the first and last rows
    probabilities = evaluate.softmax(pipeline.smoothed_gold_logits(teacher, gold))
    assert (probabilities.argmax(-1) == gold).all()
    assert probabilities.max(-1) == pytest.approx([0.97, 0.6, 0.4])
    assert probabilities[0] == pytest.approx([0.01, 0.97, 0.01, 0.01])
    assert probabilities.sum(-1) == pytest.approx(1.0)


def grid_table(best: str, best_control: str) -> pd.DataFrame:
    """A grid table whose accuracies on the selection rows rise in row order, ``best`` and ``best_control`` on top."""
    names = ["baseline", *experiments.STRATEGIES, *experiments.CONTROLS]
    specs = {"baseline": BASELINE, **experiments.specs()}
    table = pd.DataFrame({"accuracy": np.linspace(0.80, 0.90, len(names)),
                          "bert_teacher": [specs[n].uses_bert_teacher for n in names]}, index=names)
    table.loc[best, "accuracy"] = 0.95
    table.loc[best_control, "accuracy"] = 0.99  # a control is never chosen as the strategy
    return table


def test_choice_is_made_on_the_selection_rows_among_teacher_strategies():
    choice = experiments.choose(grid_table("committee", "matched-compute"))
    assert choice == {"chosen": "committee", "label_smoothing": "label-smoothing-0.2"}
    choice = experiments.choose(grid_table("response-T4", "label-smoothing-0.1"))
    assert choice == {"chosen": "response-T4", "label_smoothing": "label-smoothing-0.1"}


def test_a_gain_bought_by_steps_and_views_is_not_the_teachers():
    # Function matching has the highest accuracy, but its views-baseline (same views and steps, no teacher) is as
    # good: its gain over its compute-matched run is 0. Response's is smaller in accuracy, larger over its reference.
    table = grid_table("consistent", "matched-compute")
    table.loc["views-baseline", "accuracy"] = 0.95
    table.loc["response", "accuracy"] = 0.90
    table.loc["baseline", "accuracy"] = 0.80
    assert experiments.choose(table)["chosen"] == "response"
    table.loc["views-baseline", "accuracy"] = 0.80  # now the teacher adds 15 points on the same views
    assert experiments.choose(table)["chosen"] == "consistent"
    assert experiments.reference(experiments.specs()["consistent"]) == "views-baseline"
    assert experiments.reference(experiments.specs()["feature"]) == "baseline"


def test_selection_bias_is_the_teacher_using_runs_validation_advantage_over_the_others():
    table = pd.DataFrame({"bert_teacher": [False, True, True, False],
                          "gain_points": [0.0, 0.1, -0.1, 0.2], "validation_gain_points": [0.0, 0.5, 0.3, 0.1]},
                         index=["baseline", "response", "teacher-labels", "label-smoothing-0.1"])
    bias = experiments.selection_bias(table)
    assert bias["teacher_using_points"] == pytest.approx(0.4) and bias["no_teacher_points"] == pytest.approx(-0.1)
    assert bias["bias_points"] == pytest.approx(0.5) and bias["teacher_using_runs"] == 2


def test_final_specs_run_the_chosen_strategy_and_its_twin_on_every_seed():
    # Where the profile has plateau rows (cpu), the compute control runs every seed: the plateau check needs them.
    assert experiments.final_specs({"chosen": "response"}, get_config("smoke"))["matched-compute"][1] == "all"
    config = get_config("full")
    final = experiments.final_specs({"chosen": "response", "label_smoothing": "label-smoothing-0.1"}, config)
    assert {name: which for name, (_, which) in final.items()} == {
        "baseline": "all", "response": "all", "response-without-teacher": "all", "matched-compute": "control"}
    assert final["response-without-teacher"][0] == experiments.twin(experiments.STRATEGIES["response"][0])
    assert final["baseline"][0] == BASELINE
    # teacher-labels' twin is the baseline itself: no copy is trained.
    final = experiments.final_specs({"chosen": "teacher-labels", "label_smoothing": "label-smoothing-0.1"}, config)
    assert {name: which for name, (_, which) in final.items()} == {
        "baseline": "all", "teacher-labels": "all", "matched-compute": "control"}
    # Function matching chosen: its views-baseline joins the controls.
    final = experiments.final_specs({"chosen": "consistent", "label_smoothing": "label-smoothing-0.1"}, config)
    assert {name: which for name, (_, which) in final.items()} == {
        "baseline": "all", "consistent": "all", "consistent-without-teacher": "all", "matched-compute": "control",
        "views-baseline": "control"}
    # The thorough plan adds response KD and its twin on every seed.
    thorough = get_config("full", plan="thorough")
    final = experiments.final_specs({"chosen": "teacher-labels", "label_smoothing": "label-smoothing-0.1"}, thorough)
    assert final["response"][1] == final["response-without-teacher"][1] == "all"
    assert thorough.epochs == 3 and thorough.control_seeds == 5
    assert experiments.final_seeds(config, "all") == (1, 2, 3, 4, 5)
    assert experiments.final_seeds(config, "control") == (1, 2, 3)
    assert config.selection_seed not in experiments.final_seeds(config, "all")


def final_runs(chosen: str, validation_wrong: dict[str, int], test_wrong: dict[str, int], config=None
               ) -> dict[str, list[dict]]:
    """Runs of every final student over its seeds, with the given wrong rows (default 0) per student; the unseen
    rows as validation."""
    config = config or get_config("full", plan="thorough")
    return {name: [run(seed, test_wrong.get(name, 0), validation_wrong.get(name, 0), spec)
                   for seed in experiments.final_seeds(config, which)]
            for name, (spec, which) in experiments.final_specs({"chosen": chosen,
                                                                "label_smoothing": "label-smoothing-0.1"},
                                                               config).items()}


def test_best_control_reads_the_selection_rows_and_never_test():
    # On the selection rows matched-compute beats the twin; on test the twin is far ahead. The teacher-using
    # students and the baseline are better than both there, and are not controls.
    config = get_config("full", control_seeds=3)
    chosen = {"baseline": 0, "response": 0, "response-without-teacher": 60, "matched-compute": 40}
    test = {"response-without-teacher": 0, "matched-compute": 200}
    final = final_runs("response", chosen, test, config)
    assert experiments.best_control(final, "unseen") == "matched-compute"
    swapped = final_runs("response", {**chosen, "response-without-teacher": 20}, test, config)
    assert experiments.best_control(swapped, "unseen") == "response-without-teacher"
    assert experiments.best_control(final, "test") == "response-without-teacher"  # what reading test would do


def test_final_comparisons_declare_one_primary_and_holm_adjust_the_rest():
    chosen = {"response-T4-without-teacher": 60, "response-without-teacher": 80, "matched-compute": 40,
              "baseline": 44}
    test = {"response-T4": 20, "response-T4-without-teacher": 28, "baseline": 40, "matched-compute": 36}
    config = get_config("full", plan="thorough", control_seeds=3)
    final = final_runs("response-T4", chosen, test, config)
    comparisons = experiments.final_comparisons(Rows(), final,
                                                {"chosen": "response-T4", "label_smoothing": "label-smoothing-0.1"})
    assert comparisons["primary"] == "response-T4 − baseline"
    assert comparisons["teacher_using"] == ["response-T4", "response"]
    assert comparisons["best_control"] == "matched-compute"
    assert comparisons["share"] == "response-T4 − response-T4-without-teacher"
    rows = comparisons["rows"]
    assert set(rows) == {"response-T4 − baseline", "response-T4 − response-T4-without-teacher",
                         "response − baseline", "response − response-without-teacher",
                         "response-T4 − matched-compute (best control)",
                         "response-T4-without-teacher − baseline", "response-without-teacher − baseline",
                         "matched-compute − baseline"}
    assert rows["response-T4 − response-T4-without-teacher"]["seeds"] == [1, 2, 3, 4, 5]
    assert rows["response-T4 − response-T4-without-teacher"]["paired_t"]["difference"] == pytest.approx(8 / 400)
    assert comparisons["twin"] == "response-T4-without-teacher"
    assert rows["response-T4 − baseline"]["paired_t"]["difference"] == pytest.approx(20 / 400)
    # The control runs 3 seeds: paired with the baseline's first 3.
    assert rows["response-T4 − matched-compute (best control)"]["seeds"] == [1, 2, 3]
    # The primary row is unadjusted; every other row carries a Holm-adjusted p, never below its own p.
    assert rows["response-T4 − baseline"]["p_holm"] is None
    others = [label for label in rows if label != comparisons["primary"]]
    assert all(rows[label]["p_holm"] >= rows[label]["paired_t"]["p_value"] for label in others)
    # The plateau check reads every unseen row: matched compute gained 4 rows of 400 in each of the two splits.
    plateau = comparisons["plateau"]
    assert plateau["split"] == "unseen+unseen_more" and plateau["rows"] == 800
    assert plateau["paired_t"]["difference"] == pytest.approx(4 / 400) and not plateau["at_plateau"]
    assert experiments.final_comparisons(Rows(("validation", "test")), final, {"chosen": "response-T4"}
                                         )["plateau"]["split"] == "validation"
    # teacher-labels chosen: its twin is the baseline, so the teacher's share is the primary comparison itself.
    labels_final = final_runs("teacher-labels", {"matched-compute": 40}, {"teacher-labels": 20}, config)
    labelled = experiments.final_comparisons(Rows(), labels_final, {"chosen": "teacher-labels"})
    assert labelled["share"] == labelled["primary"] == "teacher-labels − baseline"
    assert labelled["rows"][labelled["primary"]]["p_holm"] is None
    table = experiments.headline_table(comparisons)
    assert list(table.index) == list(rows)
    assert table.loc["response-T4 − baseline", "difference_points"] == pytest.approx(5.0)
    assert table.loc["response-T4 − baseline", "seeds"] == 5
    assert table.loc["matched-compute − baseline", "seeds"] == 3
    # Equal gains on every seed: no spread, so p is 0 and the verdict follows the sign.
    assert table.loc["response-T4 − baseline", "verdict"] == "better"
    assert table.loc["response − response-without-teacher", "verdict"] == "no detectable difference"


def test_the_verdict_reads_the_adjusted_p_where_there_is_one():
    interval = {"ci_low": 0.001, "ci_high": 0.01}
    assert evaluate.verdict(interval) == "better"
    assert evaluate.verdict(interval, p_adjusted=0.03) == "better"
    assert evaluate.verdict(interval, p_adjusted=0.18) == "no detectable difference"
    assert evaluate.verdict({"ci_low": -0.01, "ci_high": -0.001}, p_adjusted=0.2) == "no detectable difference"


def test_holm_multiplies_the_kth_smallest_p_by_the_hypotheses_left_and_stays_monotone():
    assert evaluate.holm([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert evaluate.holm([0.029] * 6) == pytest.approx([0.174] * 6)
    assert evaluate.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


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
    rule = experiments.teacher_rule(recipes, baseline)
    assert rule["max_length"] == 32 and rule["memorised"] and rule["weaker_in_window"]
    assert experiments.teacher_rule([r for r in recipes if r["max_length"] != 32], baseline)["max_length"] == 24
    # None in the window: the memorised one nearest its middle, said to be outside it.
    outside = experiments.teacher_rule([recipes[0], recipes[1], recipes[5]], baseline)
    assert outside["max_length"] == 128 and not outside["weaker_in_window"]
    # None memorised: the most memorised.
    assert experiments.teacher_rule([recipes[1], recipes[2]], baseline) == {
        "max_length": 64, "memorised": False, "weaker_in_window": True, "gap_points": pytest.approx(
            (baseline - weaker) * 100)}
    with pytest.raises(ValueError):
        experiments.teacher_rule([], baseline)
    # At the window's edge (0.45 points below) vs near its middle: the middle wins, though the input is shorter.
    edge, middle = recipe(32, *memorised, baseline - 0.0045), recipe(24, *memorised, weaker - 0.001)
    assert experiments.teacher_rule([edge, middle], baseline)["max_length"] == 24
    assert experiments.teacher_rule([edge], baseline)["max_length"] == 32


def test_memorisation_table_reports_accuracy_and_confidence_per_split():
    confident = np.array([[9.0, 0, 0, 0], [0, 9.0, 0, 0], [0, 0, 9.0, 0], [0, 0, 0, 9.0]])
    unsure = np.zeros((4, 4))
    unsure[np.arange(4), [0, 1, 3, 3]] = 0.5
    table = experiments.memorisation_table({"student_train": confident, "unseen": unsure},
                                           {"student_train": np.arange(4), "unseen": np.arange(4)},
                                           {"student_train": True, "unseen": False})
    assert table.loc["student_train", "accuracy"] == 1.0 and table.loc["unseen", "accuracy"] == 0.75
    assert table.loc["student_train", "mean_top_probability"] > experiments.MEMORISED["top_probability"]
    assert table.loc["unseen", "mean_top_probability"] < 0.5
    assert table.loc["unseen", "mean_entropy"] > table.loc["student_train", "mean_entropy"]
    assert bool(table.loc["student_train", "seen_in_training"]) and table.loc["unseen", "count"] == 4


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


# ------------------------------------------------------------------------------------------------- plateau rule
def plateau_run(seed: int, unseen_wrong: int, more_wrong: int) -> dict:
    """A gold-only final student as the plateau check reads it: its predictions on the unseen rows and on their
    extra (400 rows each, so one row of the 800 is 0.00125)."""
    return {"seed": seed, "spec": BASELINE.settings(), "unseen_predictions": predictions(unseen_wrong).tolist(),
            "unseen_more_predictions": predictions(more_wrong).tolist()}


@pytest.mark.parametrize("gains, at_plateau", [
    ([0, 0, 0, 0, 0], True),  # twice the steps changed nothing
    ([-8, -8, -8, -8, -8], True),  # twice the steps lost accuracy: nothing to gain from more steps
    ([1, 1, 1, 1, 1], True),  # a detectable gain (0.125 points, interval above 0), yet below the declared 0.2
    ([2, 0, 2, 0, 0], False),  # mean gain 0.1 points, below the limit, but the interval reaches 0.27 points
    ([8, 8, 8, 8, 8], False),  # a gain of 1 point on every seed
    ([16, -16, 16, -16, 0], False),  # no detectable difference, but an interval too wide to bound the gain
])
def test_at_the_plateau_exactly_when_the_intervals_upper_end_is_below_the_declared_gain(gains, at_plateau):
    """``gains``: rows of the 800 that twice the steps gets right and the baseline does not, per seed."""
    seeds = range(1, len(gains) + 1)
    baseline = [plateau_run(seed, 40, 40 + gain) for seed, gain in zip(seeds, gains, strict=True)]
    control = [plateau_run(seed, 40, 40) for seed in seeds]
    check = experiments.plateau_check(Rows(), {"baseline": baseline, "matched-compute": control})
    assert check["paired_t"]["difference"] == pytest.approx(np.mean(gains) / 800)
    expected = evaluate.paired_t_interval(np.asarray(gains) / 800)  # the declared interval, worked out apart
    assert check["paired_t"]["ci_high"] == pytest.approx(expected["ci_high"])
    assert (expected["ci_high"] < experiments.PLATEAU_GAIN) is at_plateau  # the case is the one described
    assert check["at_plateau"] is at_plateau
    assert check["gain_limit"] == experiments.PLATEAU_GAIN == 0.002
