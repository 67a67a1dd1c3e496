"""The distillation experiments: a screening grid of teacher-using strategies, the rule that picks one on validation,
each teacher-using strategy beside its no-teacher twin, the controls, and the comparison over fresh seeds on test.

Every choice (the strategy, the label smoothing, the best control) reads validation only; test is read once, by
``final_comparisons``. No strategy depends on unlabelled text, which ``full`` does not have.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from helpers import evaluate, models, pipeline, results
from helpers.distill import BASELINE, DistillSpec

# One line of rationale and a source for each, shown in notebook 04.
STRATEGIES: dict[str, tuple[DistillSpec, str]] = {
    "response": (DistillSpec(name="response", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0),
                 "response: soft targets at T=2, half the weight on gold labels (Hinton et al. 2015)"),
    "response-confidence": (DistillSpec(name="response-confidence", hard_label_weight=0.5, kd_loss_weight=0.5,
                                        temperature=2.0, confidence_weighted=True),
                            "trust each row's soft targets as much as the teacher believes the gold label"),
    "teacher-labels": (DistillSpec(name="teacher-labels", hard_label_weight=0.0, teacher_label_weight=1.0),
                       "discrete output: the teacher's argmax replaces the gold label"),
    "feature": (DistillSpec(name="feature", feature_weight=1.0),
                "feature: hidden states matched to mapped teacher layers (PKD, Sun et al. 2019)"),
    "attention": (DistillSpec(name="attention", attention_weight=1.0),
                  "similarity: attention distributions of mapped layers (TinyBERT, Jiao et al. 2020)"),
    "committee": (DistillSpec(name="committee", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0,
                              soft_targets="committee"),
                  "for a memorised teacher: its probabilities averaged with cross-fitted students', which score "
                  "only rows they never trained on (Stanton et al. 2021)"),
    "augmented": (DistillSpec(name="augmented", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0,
                              unlabelled="augmented", epochs_scale=0.5),
                  "for a memorised teacher: it labels perturbed copies of the rows, where its targets are no longer "
                  "one-hot (TinyBERT's augmentation; Beyer et al. 2022); half the epochs over twice the rows keep "
                  "the baseline's steps"),
}

# Controls: what a gain could come from without any teacher. Label smoothing is chosen on validation (grid).
LABEL_SMOOTHING = (0.1, 0.2)
MATCHED_COMPUTE_RATIO = 2.0  # the baseline at twice its steps: is it at its plateau?
PLATEAU_GAIN = 0.002  # at its plateau: twice the steps add less than this to validation accuracy
CONTROLS: dict[str, tuple[DistillSpec, str]] = {
    **{f"label-smoothing-{e:g}": (DistillSpec(name=f"label-smoothing-{e:g}", label_smoothing=e),
                                  "regularisation without a teacher: label smoothing (Szegedy et al. 2016)")
       for e in LABEL_SMOOTHING},
    "matched-compute": (DistillSpec(name="matched-compute", epochs_scale=MATCHED_COMPUTE_RATIO),
                        "the baseline trained for twice the steps: a gain from extra compute shows here"),
}
# Run only where the profile has unlabelled rows (smoke keeps the path tested; full and cpu have none).
TRANSFER = DistillSpec(name="response-transfer", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0,
                       unlabelled="transfer")
# The smallest difference in accuracy that would matter to a reader: two one-sided tests claim "as good as" only
# when the seed-level 90% interval of the teacher's share lies inside ±this.
EQUIVALENCE_MARGIN = 0.005


def twin(spec: DistillSpec) -> DistillSpec:
    """The no-teacher twin of a teacher-using spec: the same rows, perturbed copies, steps and loss, with the BERT
    teacher replaced by students that saw the same rows (a peer baseline of another seed; cross-fitted baselines for
    a committee). Its difference from ``spec`` is what the teacher itself adds."""
    source = "crossfit" if spec.soft_targets == "committee" else "peer"
    return dataclasses.replace(spec, name=f"{spec.name}-without-teacher", soft_targets=source)


def specs() -> dict[str, DistillSpec]:
    return {name: spec for name, (spec, _) in {**STRATEGIES, **CONTROLS}.items()}


def rationale_table() -> pd.DataFrame:
    rows = [{"name": name, "kind": kind, "uses the BERT teacher": spec.uses_bert_teacher, "why": why}
            for kind, table in (("strategy", STRATEGIES), ("control", CONTROLS)) for name, (spec, why) in table.items()]
    rows.append({"name": "<strategy>-without-teacher", "kind": "twin", "uses the BERT teacher": False,
                 "why": "each final strategy with its soft targets from a peer student of another seed: the same "
                        "rows, copies, steps and loss without the teacher"})
    return pd.DataFrame(rows).set_index("name")


# ---------------------------------------------------------------------------------------------------- regime
# What "memorised" and "weaker" mean for a stand-in teacher (the brief's teacher: ~5 epochs over every train row,
# below a plain DistilBERT fine-tune on test): on the students' rows, accuracy and mean top probability at least these;
# on rows nobody trained on, this many points below the converged baseline.
MEMORISED = {"accuracy": 0.98, "top_probability": 0.9}
WEAKER_BY = (0.003, 0.025)


def memorisation_table(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray], seen: dict[str, bool]
                       ) -> pd.DataFrame:
    """Per split: rows, whether the teacher trained on them, accuracy, mean top probability and mean entropy (nats)."""
    rows = []
    for split, split_logits in logits.items():
        confidence = evaluate.confidence(split_logits)
        rows.append({"rows": split, "seen_in_training": seen[split], "count": len(split_logits),
                     "accuracy": float((split_logits.argmax(-1) == labels[split]).mean()),
                     "mean_top_probability": float(confidence["top_probability"].mean()),
                     "mean_entropy": float(confidence["entropy"].mean())})
    return pd.DataFrame(rows).set_index("rows")


def teacher_recipes(workspace: pipeline.Workspace, baseline: dict) -> list[dict]:
    """Each input length the profile tried with the card's recipe: memorisation on the students' rows, accuracy on
    the calibration rows against the baseline's there (points), and the fine-tuning time. Trains what is not cached."""
    config, rows = workspace.config, []
    for length in config.teacher_lengths_tried:
        variant = dataclasses.replace(config, teacher_max_length=length)
        teacher = models.load_classifier(pipeline.load_or_train_teacher(workspace, variant))
        table = memorisation_table(
            {split: pipeline.load_or_compute_teacher_logits(workspace, split, teacher, variant)[0]
             for split in ("student_train", "calibration")},
            {split: np.asarray(workspace.raw(split)["label"]) for split in ("student_train", "calibration")},
            {"student_train": True, "calibration": False})
        rows.append({"max_length": length, "seen_accuracy": table.loc["student_train", "accuracy"],
                     "seen_top_probability": table.loc["student_train", "mean_top_probability"],
                     "seen_entropy": table.loc["student_train", "mean_entropy"],
                     "unseen_accuracy": table.loc["calibration", "accuracy"],
                     "unseen_top_probability": table.loc["calibration", "mean_top_probability"],
                     "unseen_entropy": table.loc["calibration", "mean_entropy"],
                     "baseline_unseen_accuracy": baseline["calibration"]["accuracy"],
                     "below_baseline_points": (baseline["calibration"]["accuracy"]
                                               - table.loc["calibration", "accuracy"]) * 100,
                     "train_minutes": (teacher_training(variant) or {}).get("train_seconds", float("nan")) / 60})
    return rows


def teacher_rule(recipes: list[dict], baseline_accuracy: float) -> int | None:
    """The input length whose teacher is memorised on the students' rows and weaker than the baseline on unseen rows
    by ``WEAKER_BY``, nearest the middle of that window (None when no recipe meets both). Reads the calibration rows
    only. Why the middle: a gap measured on the calibration rows carries their sampling noise, so a teacher at the
    window's edge there can land outside it on other rows (as a 32-token teacher did in an earlier pass: inside the
    window on calibration, below its floor on test)."""
    middle = sum(WEAKER_BY) / 2
    fitting = {r["max_length"]: abs(baseline_accuracy - r["unseen_accuracy"] - middle) for r in recipes
               if r["seen_accuracy"] >= MEMORISED["accuracy"]
               and r["seen_top_probability"] >= MEMORISED["top_probability"]
               and WEAKER_BY[0] <= baseline_accuracy - r["unseen_accuracy"] <= WEAKER_BY[1]}
    return min(fitting, key=lambda length: (fitting[length], -length), default=None)


def teacher_training(config) -> dict | None:
    """The results document of the teacher fine-tuned here with ``config``'s recipe (None for the hub's teacher)."""
    if config.teacher_source == "hub":
        return None
    name = f"teachers/teacher-{models.fine_tuned_teacher_path(config).name.removeprefix('teacher-')[:8]}"
    return results.load_result(config, name) if results.has_result(config, name) else None


# ------------------------------------------------------------------------------------------------ screening
def run_grid(workspace: pipeline.Workspace) -> dict[str, dict]:
    """Baseline, every strategy and the label smoothings once (the selection seed) at the selection budget."""
    grid = {"baseline": BASELINE, **{name: spec for name, (spec, _) in STRATEGIES.items()},
            **{name: CONTROLS[name][0] for name in CONTROLS if name.startswith("label-smoothing")}}
    if len(workspace.transfer):
        grid[TRANSFER.name] = TRANSFER
    return {name: pipeline.load_or_train_student(workspace, spec, workspace.config.selection_seed, budget="selection")
            for name, spec in grid.items()}


def grid_table(runs: dict[str, dict], validation_labels: np.ndarray) -> pd.DataFrame:
    """Validation accuracy of every grid run and its paired difference from the same-seed baseline, with an interval
    over validation rows: one seed screens, it does not decide. Cost: optimizer steps vs the baseline's."""
    baseline = runs["baseline"]
    rows = []
    for name, run in runs.items():
        spec = pipeline.spec_of(run)
        difference = evaluate.bootstrap_accuracy_difference(
            validation_labels, np.asarray(run["validation_predictions"]),
            np.asarray(baseline["validation_predictions"]), seed=run["seed"])
        rows.append({"student": name, "bert_teacher": spec.uses_bert_teacher,
                     "validation_accuracy": run["validation"]["accuracy"],
                     "gain_points": difference["difference"] * 100, "ci_low_points": difference["ci_low"] * 100,
                     "ci_high_points": difference["ci_high"] * 100,
                     "steps_vs_baseline": run["optimizer_steps"] / baseline["optimizer_steps"],
                     "teacher_every_step": spec.uses_online_teacher,
                     "screening": "reference" if name == "baseline" else evaluate.screening_verdict(difference)})
    return pd.DataFrame(rows).set_index("student")


def choose(table: pd.DataFrame) -> dict[str, str]:
    """On validation only: the teacher-using strategy and the label smoothing with the best grid accuracy."""
    strategies = table[table["bert_teacher"] & table.index.isin(list(STRATEGIES))]
    smoothing = table.loc[[f"label-smoothing-{e:g}" for e in LABEL_SMOOTHING]]
    return {"chosen": str(strategies["validation_accuracy"].idxmax()),
            "label_smoothing": str(smoothing["validation_accuracy"].idxmax())}


# ------------------------------------------------------------------------------------------ final comparison
def final_specs(choice: dict[str, str]) -> dict[str, tuple[DistillSpec, str]]:
    """Every student of the final comparison and the seeds it runs: "all" (the baseline, the chosen strategy, plain
    response KD, the brief's first question, and their twins) or "control" (the first ``control_seeds``: matched
    compute). The seeds go where they decide the answer; label smoothing, a weaker control than the twins, is screened
    on validation only."""
    everything = specs()
    final = {"baseline": (BASELINE, "all")}
    for name in dict.fromkeys([choice["chosen"], "response"]):  # response KD is the brief's first question
        final[name] = (everything[name], "all")
        final[twin(everything[name]).name] = (twin(everything[name]), "all")
    final["matched-compute"] = (everything["matched-compute"], "control")
    return final


def final_seeds(config, seeds: str) -> tuple[int, ...]:
    return tuple(config.seeds) if seeds == "all" else tuple(config.seeds[: config.control_seeds])


def run_final(workspace: pipeline.Workspace, choice: dict[str, str]) -> dict[str, list[dict]]:
    """Each final student over its seeds at the final budget; the first seed keeps its validation curve."""
    config = workspace.config
    return {name: [pipeline.load_or_train_student(workspace, spec, seed, curve=seed == config.seeds[0])
                   for seed in final_seeds(config, seeds)]
            for name, (spec, seeds) in final_specs(choice).items()}


def compare(labels: np.ndarray, runs_a: list[dict], runs_b: list[dict], split: str = "test") -> dict:
    """A − B on ``split``, paired by seed. The primary interval is seed-level: a paired t over the per-seed accuracy
    differences (each on all rows). Beside it, a two-level bootstrap (seeds, then rows), per-seed McNemar tests,
    and two one-sided tests against ``EQUIVALENCE_MARGIN``."""
    by_seed = {run["seed"]: run for run in runs_b}
    pairs = [(run, by_seed[run["seed"]]) for run in sorted(runs_a, key=lambda run: run["seed"])  # order-free bootstrap
             if run["seed"] in by_seed]
    if not pairs:
        raise ValueError("No seed in common: a paired comparison needs runs of the same seeds.")
    a = np.stack([np.asarray(ra[f"{split}_predictions"]) for ra, _ in pairs])  # (S, N)
    b = np.stack([np.asarray(rb[f"{split}_predictions"]) for _, rb in pairs])
    differences = (a == labels).mean(axis=1) - (b == labels).mean(axis=1)  # (S,)
    per_seed = [{"seed": ra["seed"], "difference": float(differences[i]), **evaluate.mcnemar_test(labels, a[i], b[i])}
                for i, (ra, _) in enumerate(pairs)]
    return {"split": split, "seeds": [ra["seed"] for ra, _ in pairs],
            "accuracy_a": [float(x) for x in (a == labels).mean(axis=1)],
            "accuracy_b": [float(x) for x in (b == labels).mean(axis=1)],
            "per_seed": per_seed, "paired_t": evaluate.paired_t_interval(differences),
            "across_seeds": evaluate.two_level_bootstrap(labels, a, b),
            "equivalence": evaluate.equivalence_test(differences, EQUIVALENCE_MARGIN)}


def best_control(final: dict[str, list[dict]]) -> str:
    """The no-teacher student (twin or control) with the best mean validation accuracy: chosen without test."""
    candidates = [name for name, runs in final.items()
                  if name != "baseline" and not pipeline.spec_of(runs[0]).uses_bert_teacher]
    return max(candidates, key=lambda name: np.mean([run["validation"]["accuracy"] for run in final[name]]))


def final_comparisons(labels: np.ndarray, validation_labels: np.ndarray, final: dict[str, list[dict]],
                      choice: dict[str, str]) -> dict:
    """The headline: each teacher-using strategy against the baseline and against its twin (the teacher's own
    share), the chosen strategy against the best control (picked on validation), each control against the
    baseline, and the plateau check (matched compute − baseline) on validation as well as test."""
    teacher_using = [name for name, runs in final.items() if pipeline.spec_of(runs[0]).uses_bert_teacher]
    control = best_control(final)
    rows = {}
    for name in teacher_using:
        rows[f"{name} − baseline"] = compare(labels, final[name], final["baseline"])
        rows[f"{name} − {name}-without-teacher"] = compare(labels, final[name], final[f"{name}-without-teacher"])
    rows[f"{choice['chosen']} − {control} (best control)"] = compare(labels, final[choice["chosen"]], final[control])
    for name, runs in final.items():
        if name != "baseline" and name not in teacher_using:
            rows[f"{name} − baseline"] = compare(labels, runs, final["baseline"])
    plateau = compare(validation_labels, final["matched-compute"], final["baseline"], split="validation")
    return {"chosen": choice["chosen"], "best_control": control, "teacher_using": teacher_using,
            "share": f"{choice['chosen']} − {choice['chosen']}-without-teacher", "rows": rows,
            "plateau_validation": plateau}


def headline_table(comparisons: dict) -> pd.DataFrame:
    """One row per comparison: the seed-level paired-t interval and p (primary), the two-level bootstrap beside it,
    and the verdict of the seed-level interval."""
    table = []
    for label, c in comparisons["rows"].items():
        t, boot = c["paired_t"], c["across_seeds"]
        table.append({"comparison": label, "seeds": len(c["seeds"]), "difference_points": t["difference"] * 100,
                      "ci_low_points": t["ci_low"] * 100, "ci_high_points": t["ci_high"] * 100,
                      "p_value": t["p_value"], "bootstrap_ci_points": f"[{boot['ci_low'] * 100:+.2f}, "
                                                                      f"{boot['ci_high'] * 100:+.2f}]",
                      "bootstrap_p": boot["p_value"], "verdict": evaluate.verdict(t)})
    return pd.DataFrame(table).set_index("comparison")


# ---------------------------------------------------------------------------------------------------- planning
def planned_runs(config, train_rows: int, validation_rows: int, test_rows: int) -> list[dict]:
    """Every training run and teacher pass a report makes (notebooks 02-04 and 06), for the pre-flight estimate: the
    grid once at the selection budget, the committee's two cross-fitting students, the final students over their
    seeds, the teacher's logit passes and the LM's fine-tunings. The chosen strategy is not known before the grid: it
    is priced as the costliest cached-logit one (augmented)."""
    selection_rows = min(train_rows, config.selection_max_train_rows or train_rows)
    selection_epochs = config.selection_epochs or config.epochs

    def run(name: str, spec: DistillSpec, rows: int, epochs: float, evaluated: int) -> dict:
        rows = rows * (2 if spec.unlabelled == "augmented" else 1)
        return {"name": name, "kind": "online-teacher" if spec.uses_online_teacher else "cached-logits",
                "train_rows": rows, "epochs": epochs * spec.epochs_scale, "eval_rows": evaluated}

    grid = {"baseline": BASELINE, **{name: spec for name, (spec, _) in STRATEGIES.items()},
            **{name: CONTROLS[name][0] for name in CONTROLS if name.startswith("label-smoothing")}}
    runs = [run(f"grid {name}", spec, selection_rows, selection_epochs, validation_rows) for name, spec in grid.items()]
    runs += [run(f"cross-fit {fold}", BASELINE, selection_rows // 2, config.epochs, selection_rows // 2)
             for fold in "ab"]
    final = final_specs({"chosen": "augmented", "label_smoothing": f"label-smoothing-{LABEL_SMOOTHING[0]:g}"})
    for name, (spec, seeds) in final.items():
        runs += [run(f"final {name} seed {seed}", spec, train_rows, config.epochs, validation_rows + test_rows)
                 for seed in final_seeds(config, seeds)]
    runs += [{"name": "teacher logits", "kind": "teacher-logits",
              "train_rows": 2 * train_rows + validation_rows + test_rows}]
    runs += [{"name": f"LM λ={weight:g} seed {seed}", "kind": "lm", "train_rows": config.lm_train_rows,
              "epochs": config.lm_epochs, "eval_rows": config.lm_eval_rows or test_rows}
             for weight in (0.0, config.lm_kd_weight) for seed in config.lm_seeds]
    return runs
