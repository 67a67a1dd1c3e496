import pandas as pd

from helpers import plots


def test_efficiency_plot_accepts_a_mean_outside_the_first_seeds_interval():
    # The point is the mean over seeds, the interval the first seed's: the mean can fall outside it (seen in smoke).
    frame = pd.DataFrame({"latency_batch1_ms": [15.0, 9.0], "parameters_m": [22.7, 17.4],
                          "accuracy_mean": [0.90, 0.95], "accuracy_ci_low": [0.89, 0.80],
                          "accuracy_ci_high": [0.91, 0.90]}, index=["teacher", "student"])
    figure = plots.efficiency(frame)
    assert [t.get_text() for t in figure.axes[1].get_legend().get_texts()] == ["teacher", "student"]


def test_training_curves_plot_components_and_validation():
    history = [{"loss": 1.0, "loss_hard_label": 0.8, "step": 1, "epoch": 0.5},
               {"loss": 0.5, "loss_hard_label": 0.4, "step": 2, "epoch": 1.0},
               {"eval_accuracy": 0.7, "epoch": 1.0}]
    figure = plots.training_curves({"run": history}, components=True)
    assert len(figure.axes[0].lines) == 2 and len(figure.axes[1].lines) == 1
