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
    sns.move_legend(axis, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # beside the bars, never over one
    return figure


def length_distributions(lengths: pd.DataFrame, max_length: int) -> plt.Figure:
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    sns.histplot(lengths, x="words", hue="label", element="step", bins=40, ax=axes[0])
    axes[0].set(title="Length in words")
    sns.histplot(lengths, x="tokens", hue="label", element="step", bins=40, ax=axes[1])
    axes[1].axvline(max_length, color="black", linestyle="--")
    # Labelled on the line itself: the hue legend is seaborn's, and a second legend would hide it.
    axes[1].annotate(f"max_length = {max_length}\n(longer rows are truncated)", xy=(max_length, 0.95),
                     xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points", va="top",
                     fontsize=8)
    axes[1].set(title="Length in bert-base-uncased tokens")
    figure.tight_layout()
    return figure


def history_frames(history: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trainer log history → (train rows: step, epoch, loss and components; eval rows: epoch, metrics)."""
    train = pd.DataFrame([h for h in history if "loss" in h])
    evaluation = pd.DataFrame([h for h in history if "eval_accuracy" in h])
    return train, evaluation


def training_curves(histories: dict[str, list[dict]], components: bool = False, x: str = "epoch") -> plt.Figure:
    """Per run (one colour each), against epochs (runs of different lengths line up) or optimizer steps (``x="step"``):
    the hard-label cross-entropy (comparable across runs), the other terms on their own axis when ``components`` (one
    line style per term), and validation accuracy where measured, its values written on the points."""
    panels = 3 if components else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.8), squeeze=False)
    axes = axes[0]
    styles = iter(["--", ":", "-."] * 4)
    term_styles: dict[str, str] = {}
    for name, history in histories.items():
        train, evaluation = history_frames(history)
        hard = train["loss_hard_label"] if "loss_hard_label" in train else train["loss"]
        line, = axes[0].plot(train[x], hard, label=name)
        if components:
            for column in [c for c in train.columns if c.startswith("loss_") and c != "loss_hard_label"]:
                term = column.removeprefix("loss_")
                style = term_styles.setdefault(term, next(styles))
                axes[1].plot(train[x], train[column], linestyle=style, color=line.get_color(), label=f"{name}: {term}")
        if len(evaluation):
            accuracy = evaluation["eval_accuracy"] * 100
            axes[-1].plot(evaluation[x], accuracy, marker="o", color=line.get_color(), label=name)
            for epoch, value in zip(evaluation[x], accuracy, strict=True):
                axes[-1].annotate(f"{value:.2f}", (epoch, value), textcoords="offset points", xytext=(0, 6),
                                  ha="center", fontsize=8, color=line.get_color())
    axes[0].set(title="Hard-label cross-entropy (train)", xlabel=x, ylabel="loss")
    axes[0].legend(fontsize=8)
    if components:
        axes[1].set(title="Teacher terms of the loss (train)", xlabel=x, ylabel="loss term")
        if axes[1].lines:
            axes[1].legend(fontsize=8)
        else:
            axes[1].text(0.5, 0.5, "no teacher term in these runs", ha="center", transform=axes[1].transAxes)
    low, high = axes[-1].get_ylim()
    middle = (low + high) / 2
    # At least a 4-point window, so that a fraction of a point does not fill the panel.
    axes[-1].set(ylim=(min(low, middle - 2), max(high, middle + 2)),
                 title="Validation accuracy at each epoch's end", xlabel=x, ylabel="accuracy (%)")
    axes[-1].legend(fontsize=8)
    figure.tight_layout()
    return figure


def confidence_histogram(top_probabilities: dict[str, np.ndarray]) -> plt.Figure:
    """The teacher's top probability per row, per set of rows (trained on or not): memorised rows pile up at 1.0."""
    figure, axis = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0.25, 1.0, 31)
    for name, values in top_probabilities.items():
        axis.hist(values, bins=bins, histtype="step", linewidth=1.8, density=True,
                  label=f"{name} (mean {np.mean(values):.3f})")
    axis.set(title="The teacher's top probability per row", xlabel="top probability", ylabel="density (log)",
             yscale="log")
    axis.legend(fontsize=8, loc="upper left")
    return figure


def per_class_f1(comparison: pd.DataFrame) -> plt.Figure:
    """F1 per class and model (mean over seeds)."""
    columns = [f"f1_{name}" for name in LABELS]
    frame = comparison[columns].rename(columns=lambda c: c.removeprefix("f1_")).reset_index(names="model").melt(
        id_vars="model", var_name="class", value_name="F1")
    figure, axis = plt.subplots(figsize=(8, 3.5))
    sns.barplot(frame, x="class", y="F1", hue="model", ax=axis)
    low = round(max(0.0, frame["F1"].min() - 0.05), 2)
    axis.set(title="Per-class F1 on the test split (mean over seeds)", xlabel="", ylim=(low, 1.0),
             ylabel=f"F1 (axis starts at {low:.2f})" if low > 0 else "F1")
    if low > 0:  # a broken-axis mark at the foot of the y axis
        axis.plot([-0.012, 0.012], [0.01, 0.03], transform=axis.transAxes, color="black", clip_on=False, lw=1)
        axis.plot([-0.012, 0.012], [0.03, 0.05], transform=axis.transAxes, color="black", clip_on=False, lw=1)
    sns.move_legend(axis, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return figure


def efficiency(comparison: pd.DataFrame, deployment: list[dict] | None = None) -> plt.Figure:
    """Accuracy against latency at batch 1 and against size: the accuracy/efficiency trade-off. The point is the
    mean over seeds; the segment is the first seed's 95% bootstrap interval over test rows. ``deployment`` adds
    the int8 student (one seed, no interval) from the deployment measurement."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for axis, column, label in ((axes[0], "latency_batch1_ms", "latency at batch 1 (ms)"),
                                (axes[1], "size_on_disk_mb", "size on disk (MB)")):
        for model, row in comparison.iterrows():
            if column not in row or pd.isna(row[column]):
                continue
            point, = axis.plot(row[column], row["accuracy_mean"] * 100, "o", label=f"{model} (mean over seeds)")
            axis.vlines(row[column], row["accuracy_ci_low"] * 100, row["accuracy_ci_high"] * 100,
                        color=point.get_color(), alpha=0.6)
        for row in deployment or []:
            if row["variant"].endswith("int8"):
                axis.plot(row[column], row["accuracy"] * 100, "D", color="black",
                          label=f"{row['variant']} (first seed)")
        axis.set(xlabel=label, ylabel="test accuracy (%)")
    hardware = {row["hardware"] for row in deployment or []}
    where = f" — {', '.join(sorted(hardware))}" if hardware else ""
    axes[0].set_title(f"Accuracy vs latency{where}")
    axes[1].set_title("Accuracy vs size")
    axes[1].legend(fontsize=8, title="segment: first seed's 95% bootstrap\ninterval over test rows", title_fontsize=7)
    figure.tight_layout()
    return figure


def reliability_diagram(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Accuracy against confidence per bin (diagonal: calibrated), over the rows per bin (few rows, shaky point)."""
    figure, (axis, counts) = plt.subplots(2, 1, figsize=(5.2, 6.2), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1.2]})
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    width = 1 / 15 / (len(tables) + 1)
    for offset, (name, table) in enumerate(tables.items()):
        point, = axis.plot(table["confidence"], table["accuracy"], marker="o", label=name)
        counts.bar(table["bin_low"] + (offset + 0.5) * width, table["count"], width=width, color=point.get_color(),
                   align="edge")
    axis.set(title="Reliability diagram (test, first seed)", ylabel="accuracy", xlim=(0.2, 1), ylim=(0.2, 1))
    axis.legend(fontsize=8)
    counts.set(xlabel="confidence", ylabel="rows per bin", yscale="log")
    figure.tight_layout()
    return figure


def decoder_loss(curves: pd.DataFrame) -> plt.Figure:
    """The decoder student's train loss per optimizer step, on log scales. Left: both arms' answer cross-entropy on
    one scale (mean over seeds as a line, their range shaded). Right: the with-teacher arm's weighted distillation
    term λ · T² · KL. ``curves``: one row per logged step and run with arm, seed, step, answer_ce and kd_term (NaN
    without the teacher), as ``decoder.report.loss_frame`` returns it."""
    figure, (ce_axis, kd_axis) = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for colour, (arm, runs) in zip(sns.color_palette("deep"), curves.groupby("arm", sort=False), strict=False):
        for axis, column in ((ce_axis, "answer_ce"), (kd_axis, "kd_term")):
            per_step = runs.groupby("step")[column].agg(["mean", "min", "max"]).dropna()
            if per_step.empty:
                continue
            axis.plot(per_step.index, per_step["mean"], color=colour, label=arm)
            axis.fill_between(per_step.index, per_step["min"], per_step["max"], color=colour, alpha=0.2, linewidth=0)
    seeds = curves.groupby("arm")["seed"].nunique().max()
    for axis in (ce_axis, kd_axis):  # log scale, labelled at 1-2-5 steps only: 0.5, 1, 2, 5 rather than 5×10⁻¹
        axis.set_yscale("log")
        axis.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
        axis.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ce_axis.set(title="Answer cross-entropy, both arms", xlabel="optimizer step", ylabel="nats (log scale)")
    kd_axis.set(title="Distillation term λ·T²·KL, with teacher", xlabel="optimizer step")
    ce_axis.legend(title=f"mean of {seeds} seeds, range shaded", fontsize=8, title_fontsize=8)
    figure.tight_layout()
    return figure
