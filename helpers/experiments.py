"""The distillation experiments: a grid of teacher-using strategies, the controls that explain any gain, the rule that
picks the winner on validation, and the comparison over seeds on test.

Every choice is made on the validation split at the selection budget; the test split only reports the final-budget
comparison. No strategy depends on unlabelled rows, which ``full`` does not have.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import evaluate, pipeline
from helpers.train import BASELINE, DistillSpec

# One line of rationale and a source for each, shown in notebook 04.
STRATEGIES: dict[str, tuple[DistillSpec, str]] = {
    "response": (DistillSpec(name="response", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0),
                 "response: soft targets at T=2, half the weight on gold labels (Hinton et al. 2015)"),
    "teacher-labels": (DistillSpec(name="teacher-labels", hard_label_weight=0.0, teacher_label_weight=1.0),
                       "discrete output: the teacher's argmax replaces the gold label"),
    "feature": (DistillSpec(name="feature", feature_weight=1.0),
                "feature: hidden states matched to mapped teacher layers (PKD, Sun et al. 2019)"),
    "attention": (DistillSpec(name="attention", attention_weight=1.0),
                  "similarity: attention distributions of mapped layers (TinyBERT, Jiao et al. 2020)"),
    "response-T4": (DistillSpec(name="response-T4", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=4.0),
                    "response at a higher temperature: more of the teacher's dark knowledge"),
    "response-light": (DistillSpec(name="response-light", hard_label_weight=0.8, kd_loss_weight=0.2,
                                   temperature=1.0),
                       "a weaker teacher as a regulariser: low weight, low temperature (Yuan et al. 2020)"),
    "response-confidence": (DistillSpec(name="response-confidence", hard_label_weight=0.5, kd_loss_weight=0.5,
                                        temperature=2.0, confidence_weighted=True),
                            "trust each row's soft targets as much as the teacher believes the gold label"),
    "teacher-labels-agree": (DistillSpec(name="teacher-labels-agree", teacher_label_weight=1.0,
                                         teacher_label_mode="agree"),
                             "the teacher's label only where it agrees with the gold one"),
    "committee": (DistillSpec(name="committee", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0,
                              soft_targets="committee"),
                  "soft targets from a committee: the teacher averaged with cross-fitted students (a teacher "
                  "weaker than the student is corrected where the students know better)"),
    "augmented": (DistillSpec(name="augmented", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0,
                              unlabelled="augmented"),
                  "an augmentation transfer set: perturbed copies of the labelled rows, labelled softly by the "
                  "teacher (TinyBERT's data augmentation, Jiao et al. 2020); needs no new text"),
}
# The longest strategy (augmented: twice the rows) sets the compute control's budget.
LONGEST_STEPS_RATIO = 2.0

# Controls: what a gain could come from without the teacher. Label smoothing is chosen on validation.
LABEL_SMOOTHING = (0.1, 0.2)
CONTROLS: dict[str, tuple[DistillSpec, str]] = {
    **{f"label-smoothing-{e:g}": (DistillSpec(name=f"label-smoothing-{e:g}", label_smoothing=e),
                                  "regularisation without a teacher: label smoothing (Szegedy et al. 2016)")
       for e in LABEL_SMOOTHING},
    "self-distillation": (DistillSpec(name="self-distillation", hard_label_weight=0.5, kd_loss_weight=0.5,
                                      temperature=2.0, soft_targets="self"),
                          "a baseline student of the same seed as the teacher, no BERT (Furlanello et al. 2018)"),
    "matched-compute": (DistillSpec(name="matched-compute", epochs_scale=LONGEST_STEPS_RATIO),
                        "the baseline trained for as many optimizer steps as the longest strategy"),
}
# Run only where the profile has unlabelled rows (smoke keeps the path tested; full and cpu have none).
TRANSFER = DistillSpec(name="response-transfer", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0,
                       unlabelled="transfer")


def specs() -> dict[str, DistillSpec]:
    return {name: spec for name, (spec, _) in {**STRATEGIES, **CONTROLS}.items()}


def planned_runs(config, train_rows: int, validation_rows: int, test_rows: int) -> list[dict]:
    """Every training run and teacher pass a full report makes (notebooks 02-04 and 06), for the pre-flight estimate:
    the grid once at the selection budget, the final students over every seed, the committee's two cross-fitting
    students, the teacher's logit passes and the LM's fine-tunings (with and without the teacher, every LM seed).
    The chosen strategy is not known before the grid: it is priced as the costliest cached-logit one (augmented)."""
    selection_rows = min(train_rows, config.selection_max_train_rows or train_rows)
    selection_epochs = config.selection_epochs or config.epochs
    same_budget = selection_rows == train_rows and selection_epochs == config.epochs
    evaluation = validation_rows * config.epochs + validation_rows + test_rows

    def run(name: str, spec: DistillSpec, rows: int, epochs: float) -> dict:
        rows = rows * (2 if spec.unlabelled == "augmented" else 1)
        return {"name": name, "kind": "online-teacher" if spec.uses_online_teacher else "cached-logits",
                "train_rows": rows, "epochs": epochs * spec.epochs_scale, "eval_rows": evaluation}

    grid = {"baseline": BASELINE, **specs()}
    runs = [run(f"grid {name}", spec, selection_rows, selection_epochs) for name, spec in grid.items()]
    runs += [run(f"cross-fit {fold}", BASELINE, selection_rows // 2, config.epochs) for fold in "ab"]
    final = final_specs({"chosen": "augmented", "label_smoothing": f"label-smoothing-{LABEL_SMOOTHING[0]:g}"})
    for seed_index, _ in enumerate(config.seeds):
        if seed_index == 0 and same_budget:
            continue  # the grid's runs are the first seed's
        runs += [run(f"final {name} seed {seed_index}", spec, train_rows, config.epochs)
                 for name, spec in final.items()]
    runs += [{"name": "teacher logits", "kind": "teacher-logits", "train_rows": 2 * train_rows + validation_rows
              + test_rows}]
    runs += [{"name": f"LM λ={weight:g} seed {seed}", "kind": "lm", "train_rows": config.lm_train_rows,
              "epochs": config.lm_epochs, "eval_rows": config.lm_eval_rows or test_rows}
             for weight in (0.0, config.lm_kd_weight) for seed in config.lm_seeds]
    return runs


def rationale_table() -> pd.DataFrame:
    rows = [{"name": name, "kind": kind, "uses the BERT teacher": spec.uses_bert_teacher, "why": why}
            for kind, table in (("strategy", STRATEGIES), ("control", CONTROLS)) for name, (spec, why) in table.items()]
    return pd.DataFrame(rows).set_index("name")


def run_grid(workspace: pipeline.Workspace, seed: int | None = None) -> dict[str, dict]:
    """Baseline, every strategy and every control once (first seed) at the selection budget."""
    grid = {"baseline": BASELINE, **specs()}
    if len(workspace.transfer):
        grid[TRANSFER.name] = TRANSFER
    return {name: pipeline.load_or_train_student(workspace, spec, seed, budget="selection")
            for name, spec in grid.items()}


def grid_table(runs: dict[str, dict], validation_labels: np.ndarray) -> pd.DataFrame:
    """Validation accuracy of every grid run, its paired difference from the baseline of the same seed with a
    bootstrap interval over validation rows, and its cost (optimizer steps vs baseline, teacher every step)."""
    baseline = runs["baseline"]
    base_predictions = np.asarray(baseline["validation_predictions"])
    rows = []
    for name, run in runs.items():
        spec = pipeline.spec_of(run)
        difference = evaluate.bootstrap_accuracy_difference(
            validation_labels, np.asarray(run["validation_predictions"]), base_predictions, seed=run["seed"])
        rows.append({"student": name, "bert_teacher": spec.uses_bert_teacher,
                     "validation_accuracy": run["validation"]["accuracy"],
                     "gain_points": difference["difference"] * 100, "ci_low_points": difference["ci_low"] * 100,
                     "ci_high_points": difference["ci_high"] * 100,
                     "steps_vs_baseline": run["optimizer_steps"] / baseline["optimizer_steps"],
                     "teacher_every_step": spec.uses_online_teacher})
    table = pd.DataFrame(rows).set_index("student")
    table["verdict"] = np.where(table["ci_low_points"] > 0, "better",
                                np.where(table["ci_high_points"] < 0, "worse", "no detectable change"))
    table.loc["baseline", "verdict"] = "reference"
    return table


def choose(table: pd.DataFrame) -> dict[str, str]:
    """The teacher-using strategy and the label smoothing with the best validation accuracy, and the controls."""
    strategies = table[table["bert_teacher"] & table.index.isin(list(STRATEGIES))]
    smoothing = table.loc[[f"label-smoothing-{e:g}" for e in LABEL_SMOOTHING]]
    return {"chosen": str(strategies["validation_accuracy"].idxmax()),
            "label_smoothing": str(smoothing["validation_accuracy"].idxmax())}


def final_specs(choice: dict[str, str]) -> dict[str, DistillSpec]:
    """Every student of the final comparison: baseline, the chosen strategy and the three controls."""
    everything = specs()
    names = [choice["chosen"], choice["label_smoothing"], "self-distillation", "matched-compute"]
    return {"baseline": BASELINE, **{name: everything[name] for name in names}}


def run_final(workspace: pipeline.Workspace, choice: dict[str, str]) -> dict[str, list[dict]]:
    """Each final student over every seed at the full budget."""
    return {name: [pipeline.load_or_train_student(workspace, spec, seed) for seed in workspace.config.seeds]
            for name, spec in final_specs(choice).items()}


def compare(labels: np.ndarray, runs_a: list[dict], runs_b: list[dict]) -> dict:
    """A vs B over seeds: per seed a McNemar test and a paired bootstrap over test rows; across seeds a two-level
    bootstrap (seeds, then rows) whose interval carries both training-seed and test-row variance."""
    a = np.stack([np.asarray(r["test_predictions"]) for r in runs_a])
    b = np.stack([np.asarray(r["test_predictions"]) for r in runs_b])
    per_seed = [{"seed": run["seed"], **evaluate.mcnemar_test(labels, a[i], b[i]),
                 **evaluate.bootstrap_accuracy_difference(labels, a[i], b[i], seed=run["seed"])}
                for i, run in enumerate(runs_a)]
    return {"accuracy_a": [r["test"]["accuracy"] for r in runs_a],
            "accuracy_b": [r["test"]["accuracy"] for r in runs_b],
            "per_seed": per_seed, "across_seeds": evaluate.two_level_bootstrap(labels, a, b)}


def final_comparisons(labels: np.ndarray, final: dict[str, list[dict]], choice: dict[str, str]) -> dict:
    """The headline: chosen vs baseline, chosen vs the best control, and each control vs baseline."""
    chosen = choice["chosen"]
    controls = [name for name in final if name not in ("baseline", chosen)]
    versus_baseline = {name: compare(labels, final[name], final["baseline"]) for name in [chosen, *controls]}
    best_control = max(controls, key=lambda name: np.mean(versus_baseline[name]["accuracy_a"]))
    return {"chosen": chosen, "best_control": best_control, "versus_baseline": versus_baseline,
            "chosen_vs_best_control": compare(labels, final[chosen], final[best_control])}


def headline_table(comparisons: dict) -> pd.DataFrame:
    """One row per comparison: the difference in points with its two-level interval and bootstrap p-value."""
    chosen, control = comparisons["chosen"], comparisons["best_control"]
    pairs = [(f"{chosen} − baseline", comparisons["versus_baseline"][chosen]),
             (f"{chosen} − {control} (the teacher's own share)", comparisons["chosen_vs_best_control"])]
    pairs += [(f"{name} − baseline", comparison) for name, comparison in comparisons["versus_baseline"].items()
              if name != chosen]
    rows = [{"comparison": label, "difference_points": c["across_seeds"]["difference"] * 100,
             "ci_low_points": c["across_seeds"]["ci_low"] * 100, "ci_high_points": c["across_seeds"]["ci_high"] * 100,
             "p_value": c["across_seeds"]["p_value"], "seeds": len(c["per_seed"]),
             "verdict": verdict(c["across_seeds"])} for label, c in pairs]
    return pd.DataFrame(rows).set_index("comparison")


def verdict(interval: dict) -> str:
    if interval["ci_low"] > 0:
        return "better"
    if interval["ci_high"] < 0:
        return "worse"
    return "no detectable difference"
