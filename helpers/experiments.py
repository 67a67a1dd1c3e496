"""The distillation experiments: one setting per family, a small sweep, and the rule that picks the winner.

Every choice is made on the validation split; the test split only reports the chosen student against the baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import evaluate, pipeline
from helpers.train import BASELINE, DistillSpec

# One sensible setting per family (weights put each term on the scale of the cross-entropy it joins).
FAMILIES: dict[str, DistillSpec] = {
    # Response-based (Hinton et al. 2015): soft targets at T=2, half the weight on the gold labels.
    "response": DistillSpec(name="response", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0),
    # Discrete output-based: the teacher's argmax replaces the gold label everywhere.
    "teacher-labels": DistillSpec(name="teacher-labels", hard_label_weight=0.0, teacher_label_weight=1.0,
                                  teacher_label_mode="all"),
    # Feature-based: hidden states of every student layer matched to every second teacher layer (PKD/TinyBERT style).
    "feature": DistillSpec(name="feature", feature_weight=1.0),
    # Similarity-based: attention distributions of mapped layers (MiniLM/TinyBERT style).
    "attention": DistillSpec(name="attention", attention_weight=1.0),
}

# Similarity-based, second flavour: sample-to-sample cosine-similarity matrices of mean-pooled last hidden states.
# Implemented and unit-tested (helpers.distill.relation_loss); left out of the grid that is run, whose similarity
# family is attention: every online-teacher run costs more than a cached-logit one (scripts/benchmark.py
# measures the per-step ratio), and CPU time bounded the offline grid.
RELATION = DistillSpec(name="relation", relation_weight=1.0)

# Ideas aimed at a teacher that may be weaker than its student: trust it only where (and as much as) it is right.
WEAK_TEACHER_VARIANTS: dict[str, DistillSpec] = {
    "response-confidence": DistillSpec(name="response-confidence", hard_label_weight=0.5, kd_loss_weight=0.5,
                                       temperature=2.0, confidence_weighted=True),
    "teacher-labels-agree": DistillSpec(name="teacher-labels-agree", hard_label_weight=1.0,
                                        teacher_label_weight=1.0, teacher_label_mode="agree"),
}

# The teacher on text the student has no labels for: soft targets on the unlabelled transfer split as well.
TRANSFER_VARIANTS: dict[str, DistillSpec] = {
    "response-transfer": DistillSpec(name="response-transfer", hard_label_weight=0.5, kd_loss_weight=0.5,
                                     temperature=2.0, unlabelled_transfer=True),
}

# A small sweep of the response family's temperature and weight.
RESPONSE_SWEEP: dict[str, DistillSpec] = {
    f"response-T{t:g}-w{w:g}": DistillSpec(name=f"response-T{t:g}-w{w:g}", hard_label_weight=1 - w,
                                           kd_loss_weight=w, temperature=t)
    for t, w in ((4.0, 0.5),)
}


def combined(best_response: DistillSpec, best_feature_family: DistillSpec) -> DistillSpec:
    """The best response setting plus the best feature/similarity term."""
    extra = {k: getattr(best_feature_family, k) for k in ("feature_weight", "attention_weight", "relation_weight")}
    return DistillSpec(**{**best_response.settings(), **extra,
                          "name": f"{best_response.name}+{best_feature_family.name}"})


def teacher_is_weaker(workspace: pipeline.Workspace) -> bool:
    """Whether the teacher's validation accuracy is below the baseline student's (first seed): only then are the
    variants that trust the teacher only where it is right worth their runs."""
    logits, _ = pipeline.load_or_compute_teacher_logits(workspace, "validation")
    teacher = float((logits.argmax(-1) == np.asarray(workspace.splits["validation"]["label"])).mean())
    baseline = pipeline.load_or_train_student(workspace, BASELINE, workspace.config.seed)["validation"]["accuracy"]
    return teacher < baseline


def run_ablation(workspace: pipeline.Workspace, seed: int | None = None) -> dict[str, dict]:
    """Every family, the response sweep, the weak-teacher variants where the teacher is weaker than the baseline
    student on validation, the best response setting combined with the best feature/similarity term, and the
    transfer-set variant where unlabelled rows exist: one run each (first seed), loaded where already trained."""
    specs = {**FAMILIES, **RESPONSE_SWEEP}
    if teacher_is_weaker(workspace):
        specs.update(WEAK_TEACHER_VARIANTS)
    runs = {name: pipeline.load_or_train_student(workspace, spec, seed) for name, spec in specs.items()}
    response_names = [name for name in ("response", "response-confidence", *RESPONSE_SWEEP) if name in runs]
    best_response = specs[best_by_validation(runs, response_names)]
    best_internal = specs[best_by_validation(runs, ["feature", "attention"])]
    combination = combined(best_response, best_internal)
    runs[combination.name] = pipeline.load_or_train_student(workspace, combination, seed)
    if len(workspace.tokenized["transfer"]):  # only where unlabelled rows exist (not in full: see the config)
        for name, spec in TRANSFER_VARIANTS.items():
            runs[name] = pipeline.load_or_train_student(workspace, spec, seed)
    return runs


def ablation_table(runs: dict[str, dict], baseline_runs: list[dict]) -> pd.DataFrame:
    """One row per spec: validation and test accuracy (first seed), the change over the baseline, and its cost in
    work: optimizer steps relative to the baseline's, and whether the teacher runs at every step.

    Wall-clock minutes are listed too, but they were measured on a machine other jobs shared at times; the per-step
    cost of each kind of step is measured side by side by scripts/benchmark.py.
    """
    base_validation = np.mean([r["validation"]["accuracy"] for r in baseline_runs])
    base_test = np.mean([r["test"]["accuracy"] for r in baseline_runs])
    base_rows = baseline_runs[0]["train_rows"]

    def row(name: str, validation: float, test: float, run: dict) -> dict:
        spec = pipeline.spec_of(run)
        return {"student": name, "validation_accuracy": validation, "test_accuracy": test,
                "steps_vs_baseline": run["train_rows"] / base_rows, "teacher_every_step": spec.uses_online_teacher,
                "train_minutes_shared_machine": run["train_seconds"] / 60}

    rows = [row("baseline", base_validation, base_test, baseline_runs[0])]
    rows += [row(name, run["validation"]["accuracy"], run["test"]["accuracy"], run) for name, run in runs.items()]
    table = pd.DataFrame(rows).set_index("student")
    table["validation_gain_points"] = (table["validation_accuracy"] - base_validation) * 100
    table["test_gain_points"] = (table["test_accuracy"] - base_test) * 100
    return table


def findings(table: pd.DataFrame) -> list[str]:
    """Plain-language lines read off the ablation table (nothing typed by hand), best validation gain first."""
    rows = table.drop(index="baseline").sort_values("validation_gain_points", ascending=False)
    better = int((rows["validation_gain_points"] > 0).sum())
    lines = [f"{better} of {len(rows)} settings beat the baseline on validation accuracy."]
    for name, row in rows.iterrows():
        verdict = "helped" if row["validation_gain_points"] > 0 else "did not help"
        cost = "with the teacher run at every step" if row["teacher_every_step"] else "from cached teacher logits"
        lines.append(f"{name} {verdict}: {row['validation_gain_points']:+.2f} points on validation, "
                     f"{row['test_gain_points']:+.2f} on test; {row['steps_vs_baseline']:.1f}× the baseline's "
                     f"optimizer steps, {cost}.")
    return lines


def comparison_table(comparison: dict, chosen: str) -> pd.DataFrame:
    """Per seed: both accuracies, the difference with its bootstrap interval, McNemar's p; then the pooled row."""
    rows = [{"seed": pair["seed"], chosen: comparison["chosen_accuracy"][i],
             "baseline": comparison["baseline_accuracy"][i], **_difference_columns(pair)}
            for i, pair in enumerate(comparison["per_seed"])]
    chosen_mean, baseline_mean = np.mean(comparison["chosen_accuracy"]), np.mean(comparison["baseline_accuracy"])
    rows.append({"seed": "pooled", chosen: chosen_mean, "baseline": baseline_mean,
                 **_difference_columns(comparison["pooled"])})
    return pd.DataFrame(rows).set_index("seed")


def _difference_columns(pair: dict) -> dict:
    return {"difference_points": pair["difference"] * 100, "ci_low_points": pair["ci_low"] * 100,
            "ci_high_points": pair["ci_high"] * 100, "only_chosen_right": pair["only_a_correct"],
            "only_baseline_right": pair["only_b_correct"], "mcnemar_p": pair["p_value"]}


def best_by_validation(runs: dict[str, dict], names: list[str]) -> str:
    """The name among ``names`` with the highest validation accuracy (ties: the first listed)."""
    return max(names, key=lambda name: (runs[name]["validation"]["accuracy"], -names.index(name)))


def compare_students(labels: np.ndarray, chosen_runs: list[dict], baseline_runs: list[dict]) -> dict:
    """Chosen vs baseline over seeds: mean ± std, and per seed pair a McNemar test and a bootstrap interval."""
    pairs = []
    for chosen, baseline in zip(chosen_runs, baseline_runs, strict=True):
        a, b = np.asarray(chosen["test_predictions"]), np.asarray(baseline["test_predictions"])
        pairs.append({"seed": chosen["seed"], **evaluate.mcnemar_test(labels, a, b),
                      **evaluate.bootstrap_accuracy_difference(labels, a, b, seed=chosen["seed"])})
    # Pooled over seeds: every (row, seed) pair is one paired observation.
    pooled_a = np.concatenate([np.asarray(r["test_predictions"]) for r in chosen_runs])
    pooled_b = np.concatenate([np.asarray(r["test_predictions"]) for r in baseline_runs])
    pooled_labels = np.tile(labels, len(chosen_runs))
    return {
        "chosen_accuracy": [r["test"]["accuracy"] for r in chosen_runs],
        "baseline_accuracy": [r["test"]["accuracy"] for r in baseline_runs],
        "per_seed": pairs,
        "pooled": {**evaluate.mcnemar_test(pooled_labels, pooled_a, pooled_b),
                   **evaluate.bootstrap_accuracy_difference(pooled_labels, pooled_a, pooled_b)},
    }
