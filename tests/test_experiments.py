import numpy as np
import pytest

from helpers import evaluate, experiments


def run(predictions, seed=0):
    return {"test_predictions": list(predictions), "seed": seed,
            "test": {"accuracy": float(np.mean(np.asarray(predictions) == LABELS))}}


LABELS = np.array([0, 1, 2, 3] * 100)


def test_two_level_interval_carries_seed_variance():
    rng = np.random.default_rng(0)
    # Seed 0 gains 5 points, seed 1 loses 5: the mean is 0 and the interval must be wide, although each seed's
    # difference alone is clear on these rows.
    better, worse = LABELS.copy(), LABELS.copy()
    worse[:20] = (worse[:20] + 1) % 4
    a = np.stack([better, worse])
    b = np.stack([worse, better])
    interval = evaluate.two_level_bootstrap(LABELS, a, b, seed=int(rng.integers(100)))
    assert interval["difference"] == pytest.approx(0.0)
    assert interval["ci_low"] < -0.02 and interval["ci_high"] > 0.02 and interval["p_value"] > 0.3
    same = evaluate.two_level_bootstrap(LABELS, np.stack([better, better]), np.stack([worse, worse]))
    assert same["ci_low"] > 0 and same["p_value"] < 0.01


def test_compare_pairs_rows_per_seed_and_never_pools_them():
    better, worse = LABELS.copy(), LABELS.copy()
    worse[:20] = (worse[:20] + 1) % 4
    comparison = experiments.compare(LABELS, [run(better, 0), run(better, 1)], [run(worse, 0), run(worse, 1)])
    assert [pair["only_a_correct"] for pair in comparison["per_seed"]] == [20, 20]
    assert "pooled" not in comparison
    assert comparison["across_seeds"]["difference"] == pytest.approx(0.05)
    assert experiments.verdict(comparison["across_seeds"]) == "better"


def test_every_family_and_every_control_is_in_the_grid():
    specs = experiments.specs()
    assert any(s.kd_loss_weight and s.soft_targets == "teacher" for s in specs.values())
    assert any(s.teacher_label_weight for s in specs.values())
    assert any(s.feature_weight for s in specs.values()) and any(s.attention_weight for s in specs.values())
    controls = [specs[name] for name in experiments.CONTROLS]
    assert not any(s.uses_bert_teacher for s in controls)
    assert {s.label_smoothing > 0 for s in controls} == {True, False}
    assert any(s.epochs_scale == experiments.LONGEST_STEPS_RATIO for s in controls)
    assert not any(s.unlabelled == "transfer" for s in specs.values())  # full has no unlabelled rows


def test_choice_is_made_on_validation_among_teacher_strategies():
    import pandas as pd

    names = ["baseline", *experiments.STRATEGIES, *experiments.CONTROLS]
    specs = {"baseline": None, **experiments.specs()}
    table = pd.DataFrame({"validation_accuracy": np.linspace(0.80, 0.90, len(names)),
                          "bert_teacher": [specs[n] is not None and specs[n].uses_bert_teacher for n in names]},
                         index=names)
    table.loc["self-distillation", "validation_accuracy"] = 0.99  # a control never gets chosen
    choice = experiments.choose(table)
    assert choice["chosen"] == "augmented" and choice["label_smoothing"] == "label-smoothing-0.2"
    assert set(experiments.final_specs(choice)) == {"baseline", "augmented", "label-smoothing-0.2",
                                                    "self-distillation", "matched-compute"}


def test_the_plan_counts_every_run_and_prices_it():
    from helpers import benchmark
    from helpers.config import get_config

    config = get_config("full")
    plan = experiments.planned_runs(config, 114_000, 6_000, 7_600)
    grid = 1 + len(experiments.specs())
    final = 5 * len(config.seeds)  # selection budget differs from the final one in full: no run is shared
    assert len(plan) == grid + 2 + final + 1 + 2 * len(config.lm_seeds)
    assert sum(run["kind"] == "online-teacher" for run in plan) == 2
    throughput = {"device": "T4", "student_train_rows_per_second": 100.0, "online_teacher_step_ratio": 2.0,
                  "student_eval_rows_per_second": 1000.0, "teacher_eval_rows_per_second": 500.0,
                  "lm_train_rows_per_second": 50.0}
    projection = benchmark.project_runtime(plan, throughput, price_per_hour=1.0)
    assert projection["runs"] == len(plan) and projection["cost"] == projection["total_hours"]
