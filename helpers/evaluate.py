"""Predictions, metrics, significance tests, calibration, label-order checks and latency."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)
from tqdm.auto import tqdm

from helpers import precision
from helpers.config import LABELS, show_progress


@torch.inference_mode()
def predict_logits(model, dataset: Dataset, collator, batch_size: int, precision_name: str = "auto") -> np.ndarray:
    """Logits (N, C) in the dataset's order; rows are batched longest-first so each batch pads little."""
    device = precision.device()
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
        with precision.autocast(precision_name):
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
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, average="macro")),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(LABELS, precision, recall, f1, support, strict=True)},
        "confusion_matrix": confusion_matrix(labels, predictions, labels=range(len(LABELS))).tolist(),
        "nll": float(log_loss(labels, probabilities, labels=range(len(LABELS)))),
        "ece": expected_calibration_error(probabilities, labels),
        "reliability": reliability_table(probabilities, labels).to_dict(orient="list"),
        "rows": int(len(labels)),
    }


def per_class_table(metrics: dict) -> pd.DataFrame:
    return pd.DataFrame(metrics["per_class"]).T


def check_label_order(labels: np.ndarray, predictions: np.ndarray, model_name: str) -> None:
    """Raise if the model's class indices are a permutation of the data's (its config only says LABEL_0..3).

    For each gold class, the class the model predicts most often must be the same index.
    """
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
    p_value = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p_value)}


def bootstrap_accuracy_difference(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray,
                                  resamples: int = 2000, seed: int = 0) -> dict:
    """Accuracy(A) − accuracy(B) with a paired 95% bootstrap interval over test rows."""
    rng = np.random.default_rng(seed)
    difference = (predictions_a == labels).astype(float) - (predictions_b == labels).astype(float)
    # In chunks: resamples × rows indices at once would take hundreds of MB for pooled seeds.
    means = np.concatenate([difference[rng.integers(0, len(labels), size=(min(200, resamples - done), len(labels)))]
                            .mean(axis=1) for done in range(0, resamples, 200)])
    low, high = np.percentile(means, [2.5, 97.5])
    return {"difference": float(difference.mean()), "ci_low": float(low), "ci_high": float(high)}


def two_level_bootstrap(labels: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray,
                        resamples: int = 2000, seed: int = 0) -> dict:
    """Mean accuracy(A) − accuracy(B) over paired seeds, with a 95% interval from a two-level bootstrap: resample the
    seed pairs, then the test rows (the same rows for A and B). Its spread carries both the training-seed and the
    test-row variance; p is the two-sided bootstrap p-value of no difference.

    Shapes: labels (N,); predictions_a, predictions_b (S, N), row s of each from the same seed.
    """
    rng = np.random.default_rng(seed)
    correct = (predictions_a == labels).astype(np.float32) - (predictions_b == labels).astype(np.float32)  # (S, N)
    seeds, rows = correct.shape
    means = np.empty(resamples)
    for i in range(resamples):
        picked = correct[rng.integers(0, seeds, size=seeds)]  # (S, N)
        means[i] = picked[:, rng.integers(0, rows, size=rows)].mean()
    low, high = np.percentile(means, [2.5, 97.5])
    p_value = min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean()))
    return {"difference": float(correct.mean()), "ci_low": float(low), "ci_high": float(high),
            "p_value": float(p_value), "seeds": int(seeds), "rows": int(rows)}


def bootstrap_interval(labels: np.ndarray, predictions: np.ndarray, metric: str = "accuracy",
                       resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of accuracy or macro-F1 over test rows."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(resamples):
        draw = rng.integers(0, len(labels), size=len(labels))
        if metric == "accuracy":
            scores.append(float((predictions[draw] == labels[draw]).mean()))
        else:
            scores.append(float(f1_score(labels[draw], predictions[draw], average="macro")))
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


@torch.inference_mode()
def measure_latency(model, batches: list[dict], warmup: int = 2, repeats: int = 5) -> dict:
    """Median seconds per batch and rows per second of ``model`` on pre-collated ``batches``."""
    device = precision.device()
    model = model.to(device).eval()
    batches = [{k: v.to(device) for k, v in b.items() if k in ("input_ids", "attention_mask")} for b in batches]
    for batch in batches[:warmup]:
        model(**batch)
    timings = []
    for _ in range(repeats):
        for batch in batches:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(**batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings.append((time.perf_counter() - start, batch["input_ids"].shape[0]))
    seconds = np.array([t for t, _ in timings])
    rows = np.array([n for _, n in timings])
    return {"median_batch_seconds": float(np.median(seconds)), "rows_per_second": float(rows.sum() / seconds.sum()),
            "device": device.type}
