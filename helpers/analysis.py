"""The analysis notebook's tables: teacher vs students from the results files and cached checkpoints (no training)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from datasets import Dataset

from helpers import data, evaluate, models, pipeline, results
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


def example_batch_table(batch: dict[str, torch.Tensor], student_logits: torch.Tensor, temperature: float
                        ) -> pd.DataFrame:
    """Per row of a batch: the gold label, and the teacher's and the student's probability of it at ``temperature``
    (what the soft-target term pulls the student towards), with the teacher's top class."""
    teacher = torch.softmax(batch["target_logits"] / temperature, dim=-1)
    student = torch.softmax(student_logits.detach().float() / temperature, dim=-1)
    gold = batch["labels"]
    return pd.DataFrame({
        "gold": [LABELS[i] for i in gold], "teacher's class": [LABELS[i] for i in teacher.argmax(-1)],
        f"teacher p(gold), T={temperature:g}": teacher[range(len(gold)), gold].numpy().round(3),
        f"student p(gold), T={temperature:g}": student[range(len(gold)), gold].numpy().round(3)})


def view_examples(batch: dict[str, torch.Tensor], tokenizer, row: int = 0, views: int = 3, seed: int = 0
                  ) -> pd.DataFrame:
    """One row of a batch as the students read it, and ``views`` fresh views of it: what function matching reads."""
    ids, mask = batch["input_ids"][row : row + 1], batch["attention_mask"][row : row + 1]
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        drawn = [data.fresh_view(ids, mask, special, tokenizer.mask_token_id, tokenizer.pad_token_id)
                 for _ in range(views)]

    def text(view_ids: torch.Tensor, view_mask: torch.Tensor) -> str:
        return tokenizer.decode(view_ids[0][view_mask[0].bool()], skip_special_tokens=False)

    return pd.DataFrame({"tokens": [int(mask.sum())] + [int(m.sum()) for _, m in drawn],
                         "text": [text(ids, mask)] + [text(i, m) for i, m in drawn]},
                        index=["the row"] + [f"view {k + 1}" for k in range(views)])


def example_rows(dataset: Dataset, per_class: int = 2) -> pd.DataFrame:
    """The first ``per_class`` rows of each class: a fixed set of headlines to show before/after training."""
    frame = dataset.to_pandas()
    picked = frame.groupby("label", sort=True).head(per_class).sort_values("label", kind="stable")
    return picked.reset_index(names="row")


@torch.inference_mode()
def predict_texts(model, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Class probabilities (N, 4) for raw texts."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt",
                        return_token_type_ids=False).to(next(model.parameters()).device)
    return torch.softmax(model.eval()(**encoded).logits.float(), dim=-1).cpu().numpy()


def before_after_predictions(examples: pd.DataFrame, before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
    """Predicted class and its probability before and after fine-tuning, beside the gold label."""
    return pd.DataFrame({"headline": examples["text"].str.slice(0, 90), "gold": [LABELS[i] for i in examples["label"]],
                         "before": [f"{LABELS[p.argmax()]} ({p.max():.2f})" for p in before],
                         "after": [f"{LABELS[p.argmax()]} ({p.max():.2f})" for p in after]})
