import numpy as np
import pytest

from helpers import evaluate


def logits_for(predictions, classes=4, confidence=5.0):
    logits = np.zeros((len(predictions), classes))
    logits[np.arange(len(predictions)), predictions] = confidence
    return logits


def test_metrics_on_a_known_confusion_matrix():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    predictions = np.array([0, 1, 1, 1, 2, 2, 3, 0])
    metrics = evaluate.classification_metrics(labels, logits_for(predictions))
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["confusion_matrix"][0] == [1, 1, 0, 0]
    assert metrics["confusion_matrix"][3] == [1, 0, 0, 1]
    assert metrics["per_class"]["Sports"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["Sports"]["recall"] == pytest.approx(1.0)
    f1 = {"World": 0.5, "Sports": 0.8, "Business": 1.0, "Sci/Tech": 2 / 3}
    assert metrics["macro_f1"] == pytest.approx(np.mean(list(f1.values())))


def test_label_order_check_catches_a_permuted_teacher():
    labels = np.repeat(np.arange(4), 10)
    evaluate.check_label_order(labels, labels, "teacher")
    permuted = np.array([1, 0, 2, 3])[labels]
    with pytest.raises(ValueError, match="label order differs"):
        evaluate.check_label_order(labels, permuted, "teacher")


def test_mcnemar_counts_discordant_pairs():
    labels = np.zeros(30, dtype=int)
    a = np.zeros(30, dtype=int)
    b = np.zeros(30, dtype=int)
    b[:10] = 1  # B wrong on 10 rows where A is right
    result = evaluate.mcnemar_test(labels, a, b)
    assert (result["only_a_correct"], result["only_b_correct"]) == (10, 0)
    assert result["p_value"] == pytest.approx(2 * 0.5**10)
    assert evaluate.mcnemar_test(labels, a, a)["p_value"] == 1.0


def test_bootstrap_difference_interval_brackets_the_difference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 2000)
    a = np.where(rng.random(2000) < 0.9, labels, (labels + 1) % 4)
    b = np.where(rng.random(2000) < 0.8, labels, (labels + 1) % 4)
    result = evaluate.bootstrap_accuracy_difference(labels, a, b)
    assert result["ci_low"] < result["difference"] < result["ci_high"]
    assert result["ci_low"] > 0.05  # a 10-point gap on 2,000 rows is far from zero
    low, high = evaluate.bootstrap_interval(labels, a)
    assert low < (a == labels).mean() < high


def test_calibration_error_is_zero_when_confidence_matches_accuracy():
    # Four rows at confidence 0.75 of which three are right: perfectly calibrated.
    probabilities = np.array([[0.75, 0.25 / 3, 0.25 / 3, 0.25 / 3]] * 4)
    assert evaluate.expected_calibration_error(probabilities, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    assert evaluate.expected_calibration_error(probabilities, np.array([1, 1, 1, 1])) == pytest.approx(0.75)
