import numpy as np
import pytest
from sklearn.metrics import f1_score

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


# ------------------------------------------------------------------------------------------------------ statistics
def test_paired_t_interval_matches_a_hand_computed_t_interval():
    result = evaluate.paired_t_interval(np.array([1.0, 2.0, 3.0]))
    # mean 2, sd 1, se 1/√3, t_{0.975, 2} = 4.3027 -> half-width 2.4841
    assert result["difference"] == pytest.approx(2.0) and result["std"] == pytest.approx(1.0)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((2 - 2.48414, 2 + 2.48414), abs=1e-4)
    # With 2 degrees of freedom the t CDF is closed-form: p = 1 − t/√(2 + t²), t = 2√3.
    assert result["p_value"] == pytest.approx(1 - np.sqrt(12 / 14), abs=1e-6)
    assert (result["seeds"], result["method"]) == (3, "paired t over seeds")
    assert evaluate.paired_t_interval([1.0, 2.0, 3.0], confidence=0.5)["ci_high"] < result["ci_high"]


def test_a_single_seed_gives_no_interval_and_no_p():
    result = evaluate.paired_t_interval(np.array([0.02]))
    assert result["difference"] == pytest.approx(0.02) and result["seeds"] == 1
    assert all(np.isnan(result[key]) for key in ("ci_low", "ci_high", "p_value", "std"))
    assert evaluate.verdict(result) == "no detectable difference"
    tost = evaluate.equivalence_test(np.array([0.0]), margin=0.01)
    assert np.isnan(tost["p_value"]) and tost["equivalent"] is False


def test_equivalence_test_needs_the_whole_90_interval_inside_the_margin():
    tight = evaluate.equivalence_test(np.array([0.001, -0.001, 0.002, 0.0, -0.002]), margin=0.01)
    assert tight["equivalent"] and tight["p_value"] < 0.001
    assert -0.01 < tight["ci90_low"] < tight["ci90_high"] < 0.01
    at_margin = evaluate.equivalence_test(np.array([0.009, 0.011, 0.010, 0.008, 0.012]), margin=0.01)
    assert not at_margin["equivalent"] and at_margin["p_value"] == pytest.approx(0.5, abs=0.05)
    # Equal differences have no spread: equivalent exactly when they lie inside the margin.
    assert evaluate.equivalence_test(np.array([0.005, 0.005]), margin=0.01)["equivalent"]
    assert not evaluate.equivalence_test(np.array([0.02, 0.02]), margin=0.01)["equivalent"]
    with pytest.raises(ValueError, match="margin"):
        evaluate.equivalence_test(np.array([0.0, 0.0]), margin=0)


def test_bootstrap_p_values_are_computed_under_the_null():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 4
    noisy = np.where(rng.random((3, 400)) < 0.7, labels, (labels + 1) % 4)
    same = evaluate.two_level_bootstrap(labels, noisy, noisy.copy(), resamples=200)
    assert (same["difference"], same["ci_low"], same["ci_high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    # A 30-point gap: no null draw comes near it, so p is the +1 correction's floor 1/(B+1), never 0.
    far = evaluate.two_level_bootstrap(labels, np.tile(labels, (3, 1)), noisy, resamples=199)
    assert far["p_value"] == pytest.approx(1 / 200) and far["p_value"] < 0.01
    assert far["arms"]["a"] == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0, "per_seed": [1.0, 1.0, 1.0]}
    one_seed = evaluate.bootstrap_accuracy_difference(labels, noisy[0], noisy[0])
    assert one_seed["bootstrap_p_value"] == 1.0 and "p_value" not in one_seed  # McNemar's key in merged rows
    assert evaluate.bootstrap_accuracy_difference(labels, labels, noisy[0])["bootstrap_p_value"] < 0.01


def test_two_level_bootstrap_scores_macro_f1_per_seed():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 300)
    a, b = (np.where(rng.random((2, 300)) < q, labels, rng.integers(0, 4, (2, 300))) for q in (0.9, 0.6))
    result = evaluate.two_level_bootstrap(labels, a, b, metric="macro_f1", resamples=100)
    expected = [f1_score(labels, p, average="macro") for p in a]
    assert result["arms"]["a"]["per_seed"] == pytest.approx(expected)
    assert result["difference"] == pytest.approx(np.mean(expected) - np.mean([f1_score(labels, p, average="macro")
                                                                             for p in b]))
    assert 0 < result["ci_low"] < result["difference"] < result["ci_high"]


def test_weighted_macro_f1_equals_macro_f1_on_the_repeated_rows():
    rng = np.random.default_rng(2)
    labels, predictions = rng.integers(0, 4, (2, 200))
    counts = rng.integers(0, 3, 200)
    repeated = np.repeat(np.arange(200), counts)
    assert evaluate.macro_f1(labels, predictions, counts.astype(float)) == pytest.approx(
        f1_score(labels[repeated], predictions[repeated], average="macro"))


@pytest.mark.parametrize("low, high, p_adjusted, expected", [
    (0.01, 0.03, None, "better"), (-0.03, -0.01, None, "worse"), (1e-9, 0.03, None, "better"),
    (0.0, 0.03, None, "no detectable difference"),  # touching 0 is not on one side of it
    (-0.03, 0.0, None, "no detectable difference"),
    (float("nan"), float("nan"), None, "no detectable difference"),  # one seed: no interval, no verdict
    (0.01, 0.03, 0.049, "better"), (-0.03, -0.01, 0.01, "worse"),
    (0.01, 0.03, 0.05, "no detectable difference"),  # Holm's p at alpha is not below it
    (0.01, 0.03, float("nan"), "no detectable difference"),
    (-0.01, 0.03, 0.001, "no detectable difference"),  # a small p never overrides an interval covering 0
])
def test_the_verdict_needs_the_interval_on_one_side_of_zero_and_the_adjusted_p_below_alpha(low, high, p_adjusted,
                                                                                          expected):
    interval = {"ci_low": low, "ci_high": high}
    assert evaluate.ALPHA == 0.05
    assert evaluate.verdict(interval, p_adjusted=p_adjusted) == expected
    link = "from" if expected.startswith("no") else "than"
    assert evaluate.verdict(interval, "baseline", p_adjusted) == f"{expected} {link} baseline"
    # A single-seed screen words the same interval (p plays no part there) as a screen, never as a verdict.
    screen = {"better": "screen: higher", "worse": "screen: lower"}.get(
        evaluate.verdict(interval), "screen: no detectable change")
    assert evaluate.screening_verdict(interval) == screen
