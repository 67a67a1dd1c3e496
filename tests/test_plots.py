import pandas as pd

from helpers import plots


def test_efficiency_plot_accepts_a_mean_outside_the_first_seeds_interval():
    # The point is the mean over seeds, the interval the first seed's: the mean can fall outside it (seen in smoke).
    frame = pd.DataFrame({"latency_batch1_ms": [15.0, 9.0], "size_on_disk_mb": [90.0, 60.0],
                          "accuracy_mean": [0.90, 0.95], "accuracy_ci_low": [0.89, 0.80],
                          "accuracy_ci_high": [0.91, 0.90]}, index=["teacher", "student"])
    int8 = {"variant": "student int8", "latency_batch1_ms": 5.0, "size_on_disk_mb": 25.0, "accuracy": 0.94,
            "hardware": "CPU (1 threads)"}
    figure = plots.efficiency(frame, [int8])
    legend = figure.axes[1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["teacher (mean over seeds)", "student (mean over seeds)",
                                                         "student int8 (first seed)"]
    assert "bootstrap" in legend.get_title().get_text()  # the reader is told which interval is drawn
    assert "CPU (1 threads)" in figure.axes[0].get_title()


def test_training_curves_plot_components_and_validation():
    history = [{"loss": 1.0, "loss_hard_label": 0.8, "loss_kd": 0.2, "step": 1, "epoch": 0.5},
               {"loss": 0.5, "loss_hard_label": 0.4, "loss_kd": 0.1, "step": 2, "epoch": 1.0},
               {"eval_accuracy": 0.7, "epoch": 1.0}]
    baseline = [{"loss": 1.1, "step": 1, "epoch": 1.0}, {"eval_accuracy": 0.6, "epoch": 1.0}]
    figure = plots.training_curves({"run": history, "baseline": baseline}, components=True)
    hard, terms, validation = figure.axes
    # The hard-label terms share an axis (the baseline's total is its hard-label loss); the teacher's term has its
    # own; each run keeps one colour across the panels.
    assert [list(line.get_ydata()) for line in hard.lines] == [[0.8, 0.4], [1.1]]
    assert len(terms.lines) == 1 and terms.lines[0].get_color() == hard.lines[0].get_color()
    assert [list(line.get_ydata()) for line in validation.lines] == [[70.0], [60.0]]


def test_readable_tables_show_shares_as_percentages_plain_names_and_no_nan():
    from helpers.notebook import readable

    frame = pd.DataFrame({"seeds": [1, 5], "accuracy_mean": [0.8724, 0.88625], "accuracy_std": [float("nan"), 0.0008],
                          "latency_batch1_ms": [16.096, 8.2], "runtime": ["torch fp32", None]},
                         index=pd.Index(["teacher", "baseline"], name="model"))
    shown = readable(frame)
    assert list(shown.columns) == ["seeds", "accuracy mean", "accuracy std", "latency batch1 ms", "runtime"]
    assert shown.loc["teacher"].tolist() == [1, "87.24%", "–", "16.1", "torch fp32"]
    assert shown.loc["baseline"].tolist() == [5, "88.62%", "0.08%", "8.2", "–"]
    assert not shown.isna().any().any() and frame["accuracy_std"].isna().any()  # the input is left as it was
    counts = readable(pd.DataFrame({"rows": [26_920.0, 53.2322]},
                                   index=pd.Index(["words", "tokens"], name="max_length")))
    assert counts["rows"].tolist() == ["26,920", "53.23"] and counts.index.name == "max length"
