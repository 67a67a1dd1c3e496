import numpy as np
import pytest

from helpers import experiments
from helpers.train import DistillSpec


def run(validation, test, seconds=60.0, predictions=None, seed=0, rows=100, spec=None):
    return {"validation": {"accuracy": validation}, "test": {"accuracy": test}, "train_seconds": seconds,
            "test_predictions": predictions if predictions is not None else [], "seed": seed, "train_rows": rows,
            "spec": (spec or DistillSpec()).settings()}


def test_ablation_table_measures_gains_against_the_mean_baseline():
    baseline = [run(0.80, 0.81), run(0.82, 0.83)]
    transfer = experiments.TRANSFER_VARIANTS["response-transfer"]
    table = experiments.ablation_table({"response": run(0.84, 0.82, seconds=66.0, rows=200, spec=transfer),
                                        "feature": run(0.80, 0.81, spec=experiments.FAMILIES["feature"])}, baseline)
    assert table.loc["response", "validation_gain_points"] == pytest.approx(3.0)
    assert table.loc["response", "test_gain_points"] == pytest.approx(0.0)
    assert table.loc["response", "steps_vs_baseline"] == pytest.approx(2.0)
    assert table.loc["feature", "teacher_every_step"] and not table.loc["response", "teacher_every_step"]
    lines = experiments.findings(table)
    assert lines[0].startswith("1 of 2") and "response helped" in lines[1] and "2.0× the baseline's" in lines[1]
    assert "feature did not help" in lines[2] and "every step" in lines[2]


def test_best_by_validation_never_looks_at_test():
    runs = {"a": run(0.90, 0.50), "b": run(0.85, 0.99)}
    assert experiments.best_by_validation(runs, ["a", "b"]) == "a"
    assert experiments.best_by_validation({"a": run(0.9, 0), "b": run(0.9, 1)}, ["b", "a"]) == "b"


def test_combination_keeps_the_response_setting_and_adds_the_internal_term():
    spec = experiments.combined(experiments.RESPONSE_SWEEP["response-T4-w0.5"], experiments.FAMILIES["attention"])
    assert (spec.kd_loss_weight, spec.temperature, spec.attention_weight, spec.feature_weight) == (0.5, 4.0, 1.0, 0.0)
    assert spec.name == "response-T4-w0.5+attention" and spec.uses_online_teacher


def test_every_family_is_represented():
    specs = experiments.FAMILIES.values()
    assert any(s.kd_loss_weight for s in specs) and any(s.teacher_label_weight for s in specs)
    assert any(s.feature_weight for s in specs) and any(s.attention_weight for s in specs)
    assert experiments.RELATION.relation_weight > 0
    assert all(isinstance(s, DistillSpec) for s in specs)


def test_compare_students_pairs_rows_and_pools_seeds():
    labels = np.array([0, 1, 2, 3] * 25)
    better = labels.copy()
    worse = labels.copy()
    worse[:20] = (worse[:20] + 1) % 4
    chosen = [run(0, 1.0, predictions=better.tolist(), seed=s) for s in (0, 1)]
    baseline = [run(0, 0.8, predictions=worse.tolist(), seed=s) for s in (0, 1)]
    comparison = experiments.compare_students(labels, chosen, baseline)
    assert comparison["per_seed"][0]["only_a_correct"] == 20
    assert comparison["pooled"]["only_a_correct"] == 40
    assert comparison["pooled"]["difference"] == pytest.approx(0.2)
    assert comparison["pooled"]["p_value"] < 1e-6
    table = experiments.comparison_table(comparison, "response")
    assert list(table.index) == [0, 1, "pooled"]
    assert table.loc["pooled", "difference_points"] == pytest.approx(20.0)
