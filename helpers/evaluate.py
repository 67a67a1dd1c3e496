"""Predictions, metrics, calibration and label-order checks, and the project's one statistics room: the paired t
interval over seeds, the TOST equivalence test, paired bootstraps with p-values under the null, the verdict rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from scipy import stats
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, precision_recall_fscore_support
from tqdm.auto import tqdm

from helpers import hardware
from helpers.config import LABELS, show_progress


@torch.inference_mode()
def predict_logits(model, dataset: Dataset, collator, batch_size: int, precision_name: str = "auto") -> np.ndarray:
    """Logits (N, C) in the dataset's order; rows are batched longest-first so each batch pads little."""
    device = hardware.device()
    model = model.to(device).eval()
    lengths = np.asarray(dataset["length"])
    order = np.argsort(-lengths, kind="stable")
    logits = np.zeros((len(dataset), model.config.num_labels), dtype=np.float32)
    columns = dataset.select_columns(["input_ids", "labels"])
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="predict", leave=False, disable=not show_progress() or len(starts) < 20):
        index = order[start : start + batch_size]
        # One Arrow read per batch: dataset[i] row by row costs ~0.1 ms a row, about what a GPU forward costs.
        rows = columns[index.tolist()]
        batch = collator([{"input_ids": ids, "labels": label}
                          for ids, label in zip(rows["input_ids"], rows["labels"], strict=True)])
        with hardware.autocast(precision_name):
            out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
        logits[index] = out.logits.float().cpu().numpy()
    return logits


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for a single value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def confidence(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Per row, the top class probability and the entropy (nats): (N, C) -> two (N,); a memorised row: ~1 and ~0."""
    probabilities = softmax(logits)
    entropy = -(probabilities * np.log(np.clip(probabilities, 1e-12, None))).sum(axis=-1)
    return {"top_probability": probabilities.max(axis=-1), "entropy": entropy}


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the bin-weighted gap between confidence and accuracy, over equal-width confidence bins."""
    table = reliability_table(probabilities, labels, bins)
    return float((table["count"] / len(labels) * (table["confidence"] - table["accuracy"]).abs()).sum())


def reliability_table(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Per confidence bin: rows, mean confidence and accuracy (the reliability diagram's data)."""
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = [{"bin_low": edges[b], "bin_high": edges[b + 1], "count": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean())}
            for b in range(bins) if (which == b).any()]
    return pd.DataFrame(rows)


def classification_metrics(labels: np.ndarray, logits: np.ndarray) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix, NLL and ECE of one model's logits."""
    labels = np.asarray(labels)
    predictions = logits.argmax(axis=-1)
    probabilities = softmax(logits)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=range(len(LABELS)),
                                                                     zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predictions)), "macro_f1": macro_f1(labels, predictions),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(LABELS, precision, recall, f1, support, strict=True)},
        "confusion_matrix": confusion_matrix(labels, predictions, labels=range(len(LABELS))).tolist(),
        "nll": float(log_loss(labels, probabilities, labels=range(len(LABELS)))),
        "ece": expected_calibration_error(probabilities, labels),
        "reliability": reliability_table(probabilities, labels).to_dict(orient="list"), "rows": int(len(labels))}


def per_class_table(metrics: dict) -> pd.DataFrame:
    return pd.DataFrame(metrics["per_class"]).T


def check_label_order(labels: np.ndarray, predictions: np.ndarray, model_name: str) -> None:
    """Raise unless, for each gold class, the model predicts that same index most often (its config says LABEL_0..3)."""
    matrix = confusion_matrix(labels, predictions, labels=range(len(LABELS)))
    most_predicted = matrix.argmax(axis=1)
    if not np.array_equal(most_predicted, np.arange(len(LABELS))):
        mapping = {LABELS[g]: f"model index {int(p)}" for g, p in enumerate(most_predicted)}
        raise ValueError(f"{model_name}'s label order differs from the data's: gold class -> most predicted "
                         f"{mapping}. Permute its logits (or its id2label) before use; nothing was cached.")


def mcnemar_test(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray) -> dict:
    """Exact McNemar test on paired predictions: do A and B err on the same rows more than chance allows?"""
    correct_a, correct_b = predictions_a == labels, predictions_b == labels
    only_a, only_b = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    p_value = 1.0 if only_a + only_b == 0 else stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p_value)}


METRICS = ("accuracy", "macro_f1")
ALPHA = 0.05  # every interval is 95%, every test at 5%


def macro_f1(labels: np.ndarray, predictions: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """The project's one macro-F1: sklearn's, over the classes present in labels or predictions (N,).
    ``sample_weight`` (N,) counts each row that many times, so a bootstrap replicate needs no copy of the rows.
    zero_division=0 scores a never-predicted class 0, as sklearn's default does, without its warning per replicate."""
    return float(f1_score(labels, predictions, average="macro", sample_weight=sample_weight, zero_division=0))


def _t_summary(differences: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    """The differences as a float array (S,), S, their mean and their standard error (nan for S < 2)."""
    values = np.asarray(differences, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"Expected per-seed differences of shape (S,), got {values.shape}.")
    seeds = len(values)
    mean = float(values.mean()) if seeds else float("nan")
    error = float(values.std(ddof=1) / np.sqrt(seeds)) if seeds > 1 else float("nan")
    return values, seeds, mean, error


def paired_t_interval(differences: np.ndarray, confidence: float = 0.95) -> dict:
    """The primary, seed-level interval: mean of per-seed paired differences (S,) with a t interval and a two-sided
    one-sample t-test of mean 0 (e.g. accuracy of A minus B per training seed, on all test rows). nan for S < 2."""
    values, seeds, mean, error = _t_summary(differences)
    result = {"difference": mean, "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan"),
              "seeds": seeds, "std": float(values.std(ddof=1)) if seeds > 1 else float("nan"),
              "method": "paired t over seeds"}
    if seeds < 2:
        return result
    half_width = float(stats.t.ppf(0.5 + confidence / 2, seeds - 1)) * error
    if np.ptp(values) == 0:  # equal differences: t is 0/0 or ±inf, which scipy answers with nan and a warning
        p_value = 1.0 if mean == 0 else 0.0
    else:
        p_value = float(stats.ttest_1samp(values, 0.0).pvalue)
    return result | {"ci_low": mean - half_width, "ci_high": mean + half_width, "p_value": p_value}


def equivalence_test(differences: np.ndarray, margin: float) -> dict:
    """Two one-sided t-tests (TOST) that the mean of per-seed differences (S,) lies within ±``margin`` (same units).
    p is the larger one-sided p (H0: mean <= −margin; H0: mean >= +margin); equivalent when p < 0.05, i.e. when the
    90% t interval lies inside (−margin, +margin). nan and not equivalent for S < 2."""
    if margin <= 0:
        raise ValueError(f"The equivalence margin must be > 0, got {margin}.")
    values, seeds, mean, error = _t_summary(differences)
    result = {"margin": float(margin), "difference": mean, "seeds": seeds, "p_value": float("nan"),
              "equivalent": False, "ci90_low": float("nan"), "ci90_high": float("nan")}
    if seeds < 2:
        return result
    half_width = float(stats.t.ppf(0.95, seeds - 1)) * error
    if np.ptp(values) == 0:  # no spread: each one-sided t is ±inf (see paired_t_interval)
        p_value = 0.0 if abs(mean) < margin else 1.0
    else:
        p_value = max(float(stats.ttest_1samp(values, -margin, alternative="greater").pvalue),
                      float(stats.ttest_1samp(values, margin, alternative="less").pvalue))
    return result | {"p_value": p_value, "equivalent": bool(p_value < 0.05), "ci90_low": mean - half_width,
                     "ci90_high": mean + half_width}


def _per_seed_scores(labels: np.ndarray, predictions: np.ndarray, metric: str, weights: np.ndarray) -> np.ndarray:
    """``metric`` of each seed's predictions (S, N) on rows counted ``weights`` (N,) times -> (S,)."""
    if metric == "accuracy":
        return (predictions == labels) @ weights / weights.sum()
    if metric == "macro_f1":
        return np.array([macro_f1(labels, row, weights) for row in predictions])
    raise ValueError(f"Unknown metric {metric!r}: expected one of {METRICS}.")


def _two_level_draws(labels: np.ndarray, arms: list[np.ndarray], metric: str, resamples: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed scores (K, S) of K arms of (S, N) predictions, and their means over bootstrap replicates (K, B).
    Each replicate draws S seeds, then N rows, with replacement; every arm gets the same draws, since a seed fixes
    both runs' data order and the arms are compared on the same rows. ``scipy.stats.bootstrap`` resamples one level."""
    rng = np.random.default_rng(seed)
    seeds, rows = arms[0].shape
    points = np.stack([_per_seed_scores(labels, arm, metric, np.ones(rows)) for arm in arms])
    draws = np.empty((len(arms), resamples))
    for replicate in range(resamples):
        picked, counts = np.unique(rng.integers(0, seeds, size=seeds), return_counts=True)
        # Row multiplicities rather than an index: no (S, N) copy per replicate, and sklearn takes them as weights.
        weights = np.bincount(rng.integers(0, rows, size=rows), minlength=rows).astype(float)
        for k, arm in enumerate(arms):  # each picked seed scored once, counted as often as it was drawn
            draws[k, replicate] = _per_seed_scores(labels, arm[picked], metric, weights) @ counts / seeds
    return points, draws


def _null_p_value(draws: np.ndarray, estimate: float) -> float:
    """Two-sided bootstrap p of no difference: draws shifted by −estimate follow the null with the data's spread, so
    p is the share of them at least as far from 0 as the estimate; the +1s count the observed sample, so p > 0."""
    return float((np.sum(np.abs(draws - estimate) >= abs(estimate)) + 1) / (len(draws) + 1))


def two_level_bootstrap(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray,
                        resamples: int = 2000, seed: int = 0, *, metric: str = "accuracy") -> dict:
    """Mean metric(A) − metric(B) over paired seeds, with a 95% two-level bootstrap interval (seeds, then rows) whose
    spread carries both the training-seed and the test-row variance, and its p-value under the null. Shapes: labels
    (N,); predictions_a, predictions_b (S, N), row s of each from the same seed; S = 1 is a paired bootstrap over rows
    alone. ``arms`` holds A's and B's own mean, 95% interval and per-seed scores."""
    labels, a, b = np.asarray(labels), np.asarray(predictions_a), np.asarray(predictions_b)
    if a.ndim != 2 or a.shape != b.shape or a.shape[1] != len(labels):
        raise ValueError(f"Predictions of shapes {a.shape} and {b.shape} for {len(labels)} labels: both need "
                         "(seeds, rows) on the same rows.")
    points, draws = _two_level_draws(labels, [a, b], metric, resamples, seed)
    difference = float(points[0].mean() - points[1].mean())
    low, high = np.percentile(draws[0] - draws[1], [2.5, 97.5])
    arms = {}
    for side, scores, arm_draws in zip("ab", points, draws, strict=True):
        arm_low, arm_high = np.percentile(arm_draws, [2.5, 97.5])
        arms[side] = {"mean": float(scores.mean()), "ci_low": float(arm_low), "ci_high": float(arm_high),
                      "per_seed": scores.tolist()}
    return {"difference": difference, "ci_low": float(low), "ci_high": float(high),
            "p_value": _null_p_value(draws[0] - draws[1], difference), "seeds": int(a.shape[0]),
            "rows": int(a.shape[1]), "metric": metric, "arms": arms}


def bootstrap_accuracy_difference(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray,
                                  resamples: int = 2000, seed: int = 0) -> dict:
    """Accuracy(A) − accuracy(B) of one pair of runs (N,) each, with a paired 95% bootstrap interval over test rows.
    Its null p is ``bootstrap_p_value``, not ``p_value``, which per-seed rows take from McNemar's test."""
    result = two_level_bootstrap(labels, np.asarray(predictions_a)[None], np.asarray(predictions_b)[None],
                                 resamples=resamples, seed=seed)
    return {"difference": result["difference"], "ci_low": result["ci_low"], "ci_high": result["ci_high"],
            "bootstrap_p_value": result["p_value"]}


def bootstrap_interval(labels: np.ndarray, predictions: np.ndarray, metric: str = "accuracy",
                       resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of accuracy or macro-F1 of one run's predictions (N,) over test rows."""
    _, draws = _two_level_draws(np.asarray(labels), [np.asarray(predictions)[None]], metric, resamples, seed)
    low, high = np.percentile(draws[0], [2.5, 97.5])
    return float(low), float(high)


def verdict(interval: dict, reference: str = "", p_adjusted: float | None = None) -> str:
    """The one verdict rule on an interval of A − B (``ci_low``, ``ci_high``): better or worse only when the whole
    interval lies on one side of 0 and, where the comparison is one of several (``p_adjusted``, e.g. ``holm``), its
    adjusted p is below ALPHA too. Otherwise no detectable difference, never equivalence: that needs
    ``equivalence_test``. ``reference``: B's name, appended ("better than B")."""
    significant = p_adjusted is None or p_adjusted < ALPHA
    if interval["ci_low"] > 0 and significant:
        word, link = "better", "than"
    elif interval["ci_high"] < 0 and significant:
        word, link = "worse", "than"
    else:
        word, link = "no detectable difference", "from"
    return f"{word} {link} {reference}" if reference else word


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for a family of comparisons (controls the family-wise error rate):
    the k-th smallest p times (m − k + 1), made monotone, capped at 1. Same order as given; nan stays nan."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")
    adjusted = np.full(len(p), np.nan)
    running = 0.0
    for rank, index in enumerate(order):
        if np.isnan(p[index]):
            continue
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return [float(x) for x in adjusted]


def screening_verdict(interval: dict) -> str:
    """The verdict rule's wording for one seed's screening interval: it screens, never decides (no seed variance)."""
    if interval["ci_low"] > 0:
        return "screen: higher"
    if interval["ci_high"] < 0:
        return "screen: lower"
    return "screen: no detectable change"
