"""Figures (seaborn/matplotlib): each function returns a Figure; ``save`` writes it under the profile's figures/."""

from __future__ import annotations

from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() == "agg" or not matplotlib.get_backend():
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from helpers.config import LABELS, Config  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


def save(figure: plt.Figure, config: Config, name: str) -> Path:
    """Write ``figure`` to ``figures/<profile>/<name>.png`` and return the path."""
    path = Path(config.figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def confusion_matrices(matrices: dict[str, list[list[int]]], normalize: bool = True) -> plt.Figure:
    """One heatmap per model, side by side; rows are gold classes, columns predictions (row-normalised)."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices), 4), squeeze=False)
    for axis, (title, matrix) in zip(axes[0], matrices.items(), strict=True):
        values = np.asarray(matrix, dtype=float)
        shown = values / values.sum(axis=1, keepdims=True) if normalize else values
        sns.heatmap(shown, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", vmin=0,
                    vmax=1 if normalize else None, xticklabels=LABELS, yticklabels=LABELS, cbar=False, ax=axis)
        axis.set(title=title, xlabel="predicted", ylabel="gold")
    figure.tight_layout()
    return figure


def class_balance(balance: pd.DataFrame) -> plt.Figure:
    frame = balance.drop(index="total").reset_index(names="class").melt(id_vars="class", var_name="split",
                                                                        value_name="rows")
    figure, axis = plt.subplots(figsize=(7, 3.5))
    sns.barplot(frame, x="class", y="rows", hue="split", ax=axis)
    axis.set(title="Rows per class and split", xlabel="")
    return figure


def length_distributions(lengths: pd.DataFrame, max_length: int) -> plt.Figure:
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    sns.histplot(lengths, x="words", hue="label", element="step", bins=40, ax=axes[0])
    axes[0].set(title="Length in words")
    sns.histplot(lengths, x="tokens", hue="label", element="step", bins=40, ax=axes[1])
    axes[1].axvline(max_length, color="black", linestyle="--", label=f"max_length={max_length}")
    axes[1].set(title="Length in bert-base-uncased tokens")
    figure.tight_layout()
    return figure


def history_frames(history: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trainer log history → (train rows: step, epoch, loss and components; eval rows: epoch, metrics)."""
    train = pd.DataFrame([h for h in history if "loss" in h])
    evaluation = pd.DataFrame([h for h in history if "eval_accuracy" in h])
    return train, evaluation


def training_curves(histories: dict[str, list[dict]], components: bool = False) -> plt.Figure:
    """Train loss per logging step and validation accuracy per epoch, one line per run."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    for name, history in histories.items():
        train, evaluation = history_frames(history)
        line, = axes[0].plot(train["step"], train["loss"], label=f"{name}: total")
        if components:
            for column in [c for c in train.columns if c.startswith("loss_")]:
                axes[0].plot(train["step"], train[column], linestyle=":", color=line.get_color(), alpha=0.8,
                             label=f"{name}: {column.removeprefix('loss_')}")
        if len(evaluation):
            axes[1].plot(evaluation["epoch"], evaluation["eval_accuracy"], marker="o", label=name)
    axes[0].set(title="Train loss per logging step", xlabel="step", ylabel="loss")
    axes[1].set(title="Validation accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    return figure


def per_class_f1(comparison: pd.DataFrame) -> plt.Figure:
    """F1 per class and model (mean over seeds)."""
    columns = [f"f1_{name}" for name in LABELS]
    frame = comparison[columns].rename(columns=lambda c: c.removeprefix("f1_")).reset_index(names="model").melt(
        id_vars="model", var_name="class", value_name="F1")
    figure, axis = plt.subplots(figsize=(8, 3.5))
    sns.barplot(frame, x="class", y="F1", hue="model", ax=axis)
    low = frame["F1"].min()
    axis.set(title="Per-class F1 on the test split", xlabel="", ylim=(max(0.0, low - 0.05), 1.0))
    axis.legend(fontsize=8, loc="lower right")
    return figure


def efficiency(comparison: pd.DataFrame) -> plt.Figure:
    """Accuracy against latency at batch 1 and against parameters: the accuracy/efficiency trade-off."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for axis, column, label in ((axes[0], "latency_batch1_ms", "latency at batch 1 (ms)"),
                                (axes[1], "parameters_m", "parameters (millions)")):
        for model, row in comparison.iterrows():
            # The interval is the first seed's bootstrap interval; the point is the mean over seeds, which may lie
            # outside it, so the interval is drawn as its own segment rather than as error bars around the point.
            point, = axis.plot(row[column], row["accuracy_mean"] * 100, "o", label=model)
            axis.vlines(row[column], row["accuracy_ci_low"] * 100, row["accuracy_ci_high"] * 100,
                        color=point.get_color(), alpha=0.6)
        axis.set(xlabel=label, ylabel="test accuracy (%)")
    axes[0].set_title("Accuracy vs latency")
    axes[1].set_title("Accuracy vs size")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    return figure


def reliability_diagram(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    figure, axis = plt.subplots(figsize=(4.8, 4.4))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name, table in tables.items():
        axis.plot(table["confidence"], table["accuracy"], marker="o", label=name)
    axis.set(title="Reliability diagram (test)", xlabel="confidence", ylabel="accuracy", xlim=(0.2, 1), ylim=(0.2, 1))
    axis.legend(fontsize=8)
    return figure
