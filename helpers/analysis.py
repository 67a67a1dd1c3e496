"""The analysis notebook's tables: teacher vs students from the results files and cached checkpoints (no training)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers import evaluate, models, pipeline, results
from helpers.config import LABELS, Config


@dataclass
class ModelRuns:
    """One model of the comparison: its name, its results documents (one per seed) and a checkpoint folder."""

    name: str
    runs: list[dict]
    checkpoint: str

    @property
    def predictions(self) -> np.ndarray:
        """(seeds, rows) test predictions."""
        return np.stack([np.asarray(r["test_predictions"]) for r in self.runs])


def load_models(config: Config) -> list[ModelRuns]:
    """Teacher, chosen distilled student and baseline student, as recorded by notebooks 02-04."""
    teacher = results.load_result(config, "teacher")
    document = results.load_result(config, "distillation")
    chosen = document["chosen"]
    distilled, baseline = (recorded_runs(config, document, name) for name in (chosen, "baseline"))
    return [ModelRuns("teacher", [teacher], models.teacher_path(config)),
            ModelRuns(f"distilled ({chosen})", distilled, pipeline.student_checkpoint(config, distilled[0])),
            ModelRuns("baseline", baseline, pipeline.student_checkpoint(config, baseline[0]))]


def recorded_runs(config: Config, document: dict, name: str) -> list[dict]:
    """The results documents of student ``name`` that notebook 04 recorded as its final runs (one per seed)."""
    return [results.load_result(config, run) for run in document["runs"][name]]


def speed_table(
    config: Config, entries: list[ModelRuns], texts: list[str], tokenizer, repeats: int = 3
) -> pd.DataFrame:
    """Latency at batch 1 and throughput at batch 32 of each checkpoint and of the chosen student's int8 copy, side
    by side on CPU on real test texts (``helpers.benchmark.speed_table``)."""
    from helpers import benchmark

    return benchmark.speed_table(config, entries, texts, tokenizer, repeats)


def comparison_table(entries: list[ModelRuns], labels: np.ndarray, speed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Accuracy and macro-F1 (mean ± std over seeds, 95% bootstrap interval of the first seed), per-class F1,
    agreement with the teacher, calibration (ECE, NLL), and speed/size where measured."""
    teacher_predictions = entries[0].predictions[0]
    rows = []
    for entry in entries:
        accuracy = evaluate.mean_std([r["test"]["accuracy"] for r in entry.runs])
        macro_f1 = evaluate.mean_std([r["test"]["macro_f1"] for r in entry.runs])
        low, high = evaluate.bootstrap_interval(labels, entry.predictions[0])
        row = {"model": entry.name, "seeds": len(entry.runs),
               "accuracy_mean": accuracy[0], "accuracy_std": accuracy[1], "accuracy_ci_low": low,
               "accuracy_ci_high": high, "macro_f1_mean": macro_f1[0], "macro_f1_std": macro_f1[1],
               "agreement_with_teacher": float(np.mean(entry.predictions == teacher_predictions)),
               "ece": float(np.mean([r["test"]["ece"] for r in entry.runs])),
               "nll": float(np.mean([r["test"]["nll"] for r in entry.runs]))}
        for name in LABELS:
            row[f"f1_{name}"] = float(np.mean([r["test"]["per_class"][name]["f1"] for r in entry.runs]))
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("model")
    if speed is not None:
        frame = frame.join(speed.drop(columns="device"))
    return frame


def error_examples(entries: list[ModelRuns], texts: list[str], labels: np.ndarray, per_group: int = 4) -> dict:
    """Rows the distilled student fixed and broke relative to the baseline (first seeds), and rows all three miss."""
    teacher, distilled, baseline = (entry.predictions[0] for entry in entries)
    groups = {"fixed by distillation": (distilled == labels) & (baseline != labels),
              "broken by distillation": (distilled != labels) & (baseline == labels),
              "missed by all three": (teacher != labels) & (distilled != labels) & (baseline != labels)}
    tables = {}
    for name, mask in groups.items():
        index = np.flatnonzero(mask)[:per_group]
        tables[name] = pd.DataFrame({
            "text": [texts[i][:140] for i in index], "gold": [LABELS[labels[i]] for i in index],
            "teacher": [LABELS[teacher[i]] for i in index], "distilled": [LABELS[distilled[i]] for i in index],
            "baseline": [LABELS[baseline[i]] for i in index]})
    counts = {name: int(mask.sum()) for name, mask in groups.items()}
    return {"counts": counts, "tables": tables}


def reliability(entries: list[ModelRuns]) -> dict[str, pd.DataFrame]:
    """Each model's reliability-diagram data (first seed), as stored with its test metrics."""
    return {entry.name: pd.DataFrame(entry.runs[0]["test"]["reliability"]) for entry in entries}
