"""The distillation experiments: a screening grid of teacher-using strategies, the rule that picks one, the chosen
strategy beside its no-teacher twin and the controls over fresh seeds, and the comparison on test.

Every choice (teacher recipe, strategy, temperature and weights, label smoothing, best control, plateau check) reads
rows no model trained on (``pipeline.selection_split``); test is read once, by ``final_comparisons``. No strategy
needs unlabelled text, which ``full`` does not have."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from helpers import evaluate, models, pipeline, results
from helpers.distill import BASELINE, DistillSpec

RESPONSE = dict(hard_label_weight=0.5, soft_target_weight=0.5, temperature=2.0)  # Hinton et al.'s usual T and weights
CONSISTENT_STEPS = 2.0  # function matching's longer schedule: twice the baseline's steps (the issue allows 2-4x)

# One line of rationale and a source for each, shown in notebook 04. The T/α screen varies response KD's temperature
# and its weight on the teacher around Hinton's T=2, α=0.5; the grid chooses among all of them on unseen rows.
STRATEGIES: dict[str, tuple[DistillSpec, str]] = {
    "response": (DistillSpec(name="response", **RESPONSE),
                 "response: soft targets at T=2, half the weight on gold labels (Hinton et al. 2015)"),
    "response-T1": (DistillSpec(name="response-T1", **{**RESPONSE, "temperature": 1.0}),
                    "T/α screen: response KD at T=1 (the teacher's own probabilities)"),
    "response-T4": (DistillSpec(name="response-T4", **{**RESPONSE, "temperature": 4.0}),
                    "T/α screen: response KD at T=4 (softer: more of the teacher's ranking of wrong classes)"),
    "response-w0.9": (DistillSpec(name="response-w0.9", hard_label_weight=0.1, soft_target_weight=0.9, temperature=2.0),
                      "T/α screen: response KD with 0.9 of the weight on the teacher"),
    "response-confidence": (DistillSpec(name="response-confidence", **RESPONSE, confidence_weighted=True),
                            "trust each row's soft targets as much as the teacher believes the gold label"),
    "teacher-labels": (DistillSpec(name="teacher-labels", hard_label_weight=0.0, teacher_label_weight=1.0),
                       "discrete output: the teacher's argmax replaces the gold label"),
    "feature": (DistillSpec(name="feature", feature_weight=1.0),
                "feature: hidden states matched to mapped teacher layers (PKD, Sun et al. 2019)"),
    "attention": (DistillSpec(name="attention", attention_weight=1.0),
                  "similarity: attention distributions of mapped layers (TinyBERT, Jiao et al. 2020)"),
    "committee": (DistillSpec(name="committee", **RESPONSE, soft_targets="committee"),
                  "for a memorised teacher: its probabilities averaged with cross-fitted students', which score "
                  "only rows they never trained on (Stanton et al. 2021)"),
    "consistent": (DistillSpec(name="consistent", **RESPONSE, views="fresh", epochs_scale=CONSISTENT_STEPS),
                   "function matching: teacher and student read the same fresh augmented view at every step, the "
                   "teacher online, for twice the steps: inputs it has not memorised (Beyer et al. 2022)")}

# Controls: what a gain could come from without any teacher. Label smoothing is chosen on validation (grid).
LABEL_SMOOTHING = (0.1, 0.2)
MATCHED_COMPUTE_RATIO = 2.0  # the baseline at twice its steps: is it at its plateau?
# The plateau rule, declared before the pass: the baseline is at its plateau when the upper end of the seed-level 95%
# interval of (twice the steps − baseline) on the plateau rows lies below this gain.
PLATEAU_GAIN = 0.002
CONTROLS: dict[str, tuple[DistillSpec, str]] = {
    **{f"label-smoothing-{e:g}": (DistillSpec(name=f"label-smoothing-{e:g}", label_smoothing=e),
                                  "regularisation without a teacher: label smoothing (Szegedy et al. 2016)")
       for e in LABEL_SMOOTHING},
    "matched-compute": (DistillSpec(name="matched-compute", epochs_scale=MATCHED_COMPUTE_RATIO),
                        "the baseline trained for twice the steps: a gain from extra compute shows here"),
    "views-baseline": (DistillSpec(name="views-baseline", views="fresh", epochs_scale=CONSISTENT_STEPS),
                       "the baseline on the same fresh views for the same steps as function matching: a gain from "
                       "augmentation and steps shows here")}
# The smallest difference in accuracy that would matter to a reader: two one-sided tests claim "as good as" only
# when the seed-level 90% interval of the teacher's share lies inside ±this.
EQUIVALENCE_MARGIN = 0.005


def twin(spec: DistillSpec) -> DistillSpec:
    """The no-teacher twin of a teacher-using spec; its difference from ``spec`` is what the teacher itself adds.
    Same rows, views, steps and loss; the teacher's targets are replaced by the gold label smoothed row by row to the
    teacher's confidence (its memorisation without its choice of class; on fresh views, that target of the row), by a
    peer student of another seed for internal terms (they need a model's states), or by cross-fitted students for a
    committee. A twin that would train exactly as the baseline (teacher's hard labels alone, at the baseline's weight)
    is the baseline itself."""
    labels_only = dataclasses.replace(BASELINE, name=spec.name, hard_label_weight=0.0,
                                      teacher_label_weight=BASELINE.hard_label_weight, soft_targets=spec.soft_targets)
    if spec == labels_only and spec.soft_targets == "teacher":
        return BASELINE
    internal = spec.feature_weight > 0 or spec.attention_weight > 0
    source = "crossfit" if spec.soft_targets == "committee" else "peer" if internal else "gold-smoothed"
    return dataclasses.replace(spec, name=f"{spec.name}-without-teacher", soft_targets=source)


def specs() -> dict[str, DistillSpec]:
    return {name: spec for name, (spec, _) in {**STRATEGIES, **CONTROLS}.items()}


def rationale_table() -> pd.DataFrame:
    rows = [{"name": name, "kind": kind, "uses the BERT teacher": spec.uses_bert_teacher, "why": why}
            for kind, table in (("strategy", STRATEGIES), ("control", CONTROLS)) for name, (spec, why) in table.items()]
    rows.append({"name": "<strategy>-without-teacher", "kind": "twin", "uses the BERT teacher": False,
                 "why": "the chosen strategy with the gold label, smoothed row by row to the teacher's confidence, in "
                        "place of the teacher's targets: the same rows, views, steps and loss"})
    return pd.DataFrame(rows).set_index("name")


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
    the unseen rows against the baseline's there (points), and the fine-tuning time. Trains what is not cached."""
    config, rows = workspace.config, []
    splits = ("student_train", "unseen")
    for length in config.teacher_lengths_tried:
        variant = dataclasses.replace(config, teacher_max_length=length)
        teacher = models.load_classifier(pipeline.load_or_train_teacher(workspace, variant))
        table = memorisation_table(
            {split: pipeline.load_or_compute_teacher_logits(workspace, split, teacher, variant)[0] for split in splits},
            {split: np.asarray(workspace.raw(split)["label"]) for split in splits},
            {"student_train": True, "unseen": False})
        rows.append({"max_length": length, "seen_accuracy": table.loc["student_train", "accuracy"],
                     "seen_top_probability": table.loc["student_train", "mean_top_probability"],
                     "seen_entropy": table.loc["student_train", "mean_entropy"],
                     "unseen_accuracy": table.loc["unseen", "accuracy"],
                     "unseen_top_probability": table.loc["unseen", "mean_top_probability"],
                     "unseen_entropy": table.loc["unseen", "mean_entropy"],
                     "baseline_unseen_accuracy": baseline["unseen"]["accuracy"],
                     "below_baseline_points": (baseline["unseen"]["accuracy"] - table.loc["unseen", "accuracy"]) * 100,
                     "train_minutes": (teacher_training(variant) or {}).get("train_seconds", float("nan")) / 60})
    return rows


def teacher_rule(recipes: list[dict], baseline_accuracy: float) -> dict:
    """The rule, declared before any pass, that picks the report's teacher from the unseen rows: the memorised recipe
    (``MEMORISED`` on the students' rows) whose gap below the baseline is nearest the middle of ``WEAKER_BY`` (a gap
    on a few thousand rows is noisy, so a teacher at the window's edge may fall outside it on other rows); the longer
    input on a tie; if none is memorised, the most memorised. Returns the length and whether it meets both targets."""
    if not recipes:
        raise ValueError("teacher_rule needs at least one recipe.")
    middle = sum(WEAKER_BY) / 2

    def memorised(r: dict) -> bool:
        return r["seen_accuracy"] >= MEMORISED["accuracy"] and r["seen_top_probability"] >= MEMORISED["top_probability"]

    def gap(r: dict) -> float:
        return baseline_accuracy - r["unseen_accuracy"]

    pool = [r for r in recipes if memorised(r)]
    best = (min(pool, key=lambda r: (abs(gap(r) - middle), -r["max_length"])) if pool
            else max(recipes, key=lambda r: (r["seen_accuracy"], r["max_length"])))
    return {"max_length": int(best["max_length"]), "memorised": memorised(best),
            "weaker_in_window": WEAKER_BY[0] <= gap(best) <= WEAKER_BY[1], "gap_points": gap(best) * 100}


def teacher_training(config) -> dict | None:
    """The results document of the teacher fine-tuned here with ``config``'s recipe (None for the hub's teacher)."""
    if config.teacher_hub_id:
        return None
    name = f"teachers/teacher-{models.fine_tuned_teacher_path(config).name.removeprefix('teacher-')[:8]}"
    return results.load_result(config, name) if results.has_result(config, name) else None


def grid_specs(config) -> dict[str, DistillSpec]:
    """Every screening run, each once at the selection budget: the baseline, every strategy, the label smoothings,
    and function matching's two controls (its views and steps without the teacher's targets, and its twin)."""
    grid = {"baseline": BASELINE, **{name: spec for name, (spec, _) in STRATEGIES.items()},
            **{name: CONTROLS[name][0] for name in CONTROLS if name.startswith("label-smoothing")},
            "views-baseline": CONTROLS["views-baseline"][0],
            twin(STRATEGIES["consistent"][0]).name: twin(STRATEGIES["consistent"][0])}
    return grid


def run_grid(workspace: pipeline.Workspace) -> dict[str, dict]:
    """Every grid run once, with the selection seed, at the selection budget."""
    return {name: pipeline.load_or_train_student(workspace, spec, workspace.config.selection_seed, budget="selection")
            for name, spec in grid_specs(workspace.config).items()}


def grid_table(runs: dict[str, dict], workspace: pipeline.Workspace) -> pd.DataFrame:
    """Accuracy of every grid run on the selection rows and its paired difference from the same-seed baseline there,
    with an interval over those rows (one seed screens, it does not decide); beside it the same difference on
    validation, which the teacher trained on; cost in optimizer steps against the baseline's."""
    split = pipeline.selection_split(workspace)
    labels = {name: np.asarray(workspace.raw(name)["label"]) for name in {split, "validation"}}
    baseline = runs["baseline"]
    rows = []
    for name, run in runs.items():
        spec = pipeline.spec_of(run)
        gain = {where: evaluate.bootstrap_accuracy_difference(
            labels[where], np.asarray(run[f"{where}_predictions"]), np.asarray(baseline[f"{where}_predictions"]),
            seed=run["seed"]) for where in labels}
        rows.append({"student": name, "bert_teacher": spec.uses_bert_teacher, "accuracy": run[split]["accuracy"],
                     "gain_points": gain[split]["difference"] * 100, "ci_low_points": gain[split]["ci_low"] * 100,
                     "ci_high_points": gain[split]["ci_high"] * 100,
                     "validation_gain_points": gain["validation"]["difference"] * 100,
                     "steps_vs_baseline": run["optimizer_steps"] / baseline["optimizer_steps"],
                     "teacher_every_step": spec.uses_online_teacher,
                     "screening": "reference" if name == "baseline" else evaluate.screening_verdict(gain[split])})
    return pd.DataFrame(rows).set_index("student")


def selection_bias(table: pd.DataFrame) -> dict:
    """What choosing on rows the teacher trained on (validation) would favour teacher-using students by: their
    gain over the baseline on validation less their gain on unseen rows, averaged, against the same for the
    no-teacher runs (points). Measured where both exist (cpu); full, whose teacher saw every train row, quotes it."""
    runs = table.drop(index="baseline")
    shift = runs["validation_gain_points"] - runs["gain_points"]
    teacher, other = shift[runs["bert_teacher"]], shift[~runs["bert_teacher"]]
    return {"teacher_using_points": float(teacher.mean()), "no_teacher_points": float(other.mean()),
            "bias_points": float(teacher.mean() - other.mean()), "teacher_using_runs": len(teacher),
            "no_teacher_runs": len(other)}


def measured_selection_bias(profile: str = "cpu") -> dict | None:
    """``selection_bias`` as the committed ``profile`` pass measured it (for full, which cannot measure its own)."""
    path = results.PROJECT_ROOT / "results" / profile / "distillation.json"
    return results.load_result(path).get("selection_bias") if path.exists() else None


def reference(spec: DistillSpec) -> str:
    """The grid's no-teacher run at the same compute as ``spec``: the same views and steps, gold labels alone."""
    return "views-baseline" if spec.views else "baseline"


def choose(table: pd.DataFrame) -> dict[str, str]:
    """On the selection rows only: the teacher-using strategy with the largest gain over its compute-matched
    ``reference`` (a gain bought by steps or views is not the teacher's), and the most accurate label smoothing."""
    everything = specs()
    strategies = table[table["bert_teacher"] & table.index.isin(list(STRATEGIES))]
    gains = {name: row["accuracy"] - table.loc[reference(everything[name]), "accuracy"]
             for name, row in strategies.iterrows()}
    smoothing = table.loc[[f"label-smoothing-{e:g}" for e in LABEL_SMOOTHING]]
    return {"chosen": max(gains, key=gains.get), "label_smoothing": str(smoothing["accuracy"].idxmax())}


def final_specs(choice: dict[str, str], config) -> dict[str, tuple[DistillSpec, str]]:
    """Every student of the final comparison and its seeds: "all" (the baseline, the chosen strategy, ``final_extra``'s
    strategies, and their twins) or "control" (the first ``control_seeds``: twice the steps, and for function
    matching the same views without the teacher)."""
    everything = specs()
    final = {"baseline": (BASELINE, "all")}
    for name in dict.fromkeys([choice["chosen"], *config.final_extra]):
        final[name] = (everything[name], "all")
        final[twin(everything[name]).name] = (twin(everything[name]), "all")  # teacher-labels' is the baseline
    # The plateau check needs every seed where the profile has rows for it (cpu); elsewhere it is a control.
    final["matched-compute"] = (everything["matched-compute"], "all" if config.plateau_rows else "control")
    if everything[choice["chosen"]].views:
        final["views-baseline"] = (everything["views-baseline"], "control")
    return final


def final_seeds(config, seeds: str) -> tuple[int, ...]:
    return tuple(config.seeds) if seeds == "all" else tuple(config.seeds[: config.control_seeds])


def run_final(workspace: pipeline.Workspace, choice: dict[str, str]) -> dict[str, list[dict]]:
    """Each final student over its seeds at the final budget; the first seed keeps its validation curve."""
    config = workspace.config
    return {name: [pipeline.load_or_train_student(workspace, spec, seed, curve=seed == config.seeds[0])
                   for seed in final_seeds(config, seeds)]
            for name, (spec, seeds) in final_specs(choice, config).items()}


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
    return {"split": split, "rows": len(labels), "seeds": [ra["seed"] for ra, _ in pairs],
            "accuracy_a": [float(x) for x in (a == labels).mean(axis=1)],
            "accuracy_b": [float(x) for x in (b == labels).mean(axis=1)],
            "per_seed": per_seed, "paired_t": evaluate.paired_t_interval(differences),
            "across_seeds": evaluate.two_level_bootstrap(labels, a, b),
            "equivalence": evaluate.equivalence_test(differences, EQUIVALENCE_MARGIN)}


def best_control(final: dict[str, list[dict]], split: str) -> str:
    """The no-teacher student (twin or control) with the best mean accuracy on the selection rows, never test."""
    candidates = [name for name, runs in final.items()
                  if name != "baseline" and not pipeline.spec_of(runs[0]).uses_bert_teacher]
    return max(candidates, key=lambda name: np.mean([run[split]["accuracy"] for run in final[name]]))


def plateau_check(workspace: pipeline.Workspace, final: dict[str, list[dict]]) -> dict:
    """Twice the steps − the baseline on the plateau rows (the unseen rows and their extra; validation where the
    profile has none: no student trains on it), over the compute control's seeds, and the declared rule's reading:
    at the plateau when the interval's upper end lies below ``PLATEAU_GAIN``."""
    splits = [name for name in ("unseen", "unseen_more") if len(workspace.raw(name))] or ["validation"]
    labels = np.concatenate([np.asarray(workspace.raw(name)["label"]) for name in splits])

    def joined(runs: list[dict]) -> list[dict]:
        return [{"seed": run["seed"], "plateau_predictions": np.concatenate(
            [np.asarray(run[f"{name}_predictions"]) for name in splits])} for run in runs]

    check = compare(labels, joined(final["matched-compute"]), joined(final["baseline"]), split="plateau")
    return {**check, "split": "+".join(splits), "gain_limit": PLATEAU_GAIN,
            "at_plateau": bool(check["paired_t"]["ci_high"] < PLATEAU_GAIN)}


def final_comparisons(workspace: pipeline.Workspace, final: dict[str, list[dict]], choice: dict[str, str]) -> dict:
    """The headline on test. The one comparison declared primary before the pass: the chosen strategy − the
    baseline. Beside it, each with a Holm-adjusted p over all of them: the chosen strategy − its twin (the teacher's
    own share), − the best no-teacher control (picked on the selection rows), each extra strategy's pair, and each
    no-teacher student − the baseline. And the plateau check."""
    labels, chosen = workspace.test_labels, choice["chosen"]
    control = best_control(final, pipeline.selection_split(workspace))
    primary = f"{chosen} − baseline"
    rows = {primary: compare(labels, final[chosen], final["baseline"])}
    teacher_using = [name for name, runs in final.items() if pipeline.spec_of(runs[0]).uses_bert_teacher]
    twins = {name: twin(pipeline.spec_of(final[name][0])).name for name in teacher_using}
    for name in teacher_using:
        rows[f"{name} − {twins[name]}"] = compare(labels, final[name], final[twins[name]])
        if name != chosen:
            rows[f"{name} − baseline"] = compare(labels, final[name], final["baseline"])
    if control != twins[chosen]:
        rows[f"{chosen} − {control} (best control)"] = compare(labels, final[chosen], final[control])
    for name, runs in final.items():
        if name != "baseline" and name not in teacher_using:
            rows[f"{name} − baseline"] = compare(labels, runs, final["baseline"])
    others = [label for label in rows if label != primary]
    for label, p_holm in zip(others, evaluate.holm([rows[label]["paired_t"]["p_value"] for label in others]),
                             strict=True):
        rows[label]["p_holm"] = p_holm
    rows[primary]["p_holm"] = None  # declared primary: no adjustment
    return {"chosen": chosen, "primary": primary, "best_control": control, "teacher_using": teacher_using,
            "share": f"{chosen} − {twins[chosen]}", "twin": twins[chosen], "rows": rows,
            "plateau": plateau_check(workspace, final),
            "multiplicity": f"Holm over the {len(others)} comparisons beside the primary one"}


def headline_table(comparisons: dict) -> pd.DataFrame:
    """One row per comparison: the seed-level paired-t interval and p (primary), its Holm-adjusted p, the two-level
    bootstrap beside it, and the verdict (on the adjusted p where there is one)."""
    table = []
    for label, c in comparisons["rows"].items():
        t, boot = c["paired_t"], c["across_seeds"]
        table.append({"comparison": label, "seeds": len(c["seeds"]), "difference_points": t["difference"] * 100,
                      "ci_low_points": t["ci_low"] * 100, "ci_high_points": t["ci_high"] * 100,
                      "p_value": t["p_value"], "p_holm": c.get("p_holm"),
                      "bootstrap_ci_points": f"[{boot['ci_low'] * 100:+.2f}, {boot['ci_high'] * 100:+.2f}]",
                      "verdict": evaluate.verdict(t, p_adjusted=c.get("p_holm"))})
    return pd.DataFrame(table).set_index("comparison")


def soft_target_sources(workspace: pipeline.Workspace, choice: dict[str, str]) -> dict:
    """On the students' rows: the teacher's targets and those of the chosen strategy's twin, each as accuracy
    against gold and mean top probability. What the twin holds fixed (confidence) and what it does not (class)."""
    labels = np.asarray(workspace.raw("student_train")["label"])
    teacher = pipeline.load_or_compute_teacher_logits(workspace, "student_train")[0]
    twin_spec = twin(specs()[choice["chosen"]])
    kind = "gold-smoothed" if twin_spec == BASELINE else twin_spec.soft_targets  # teacher-labels' twin: its argmax
    if kind == "gold-smoothed":
        source = pipeline.smoothed_gold_logits(teacher, labels)
    else:
        source = pipeline.soft_targets(workspace, twin_spec, workspace.config.seeds[0], "final")

    def summary(name: str, logits: np.ndarray) -> dict:
        return {"kind": name, "accuracy": float((logits.argmax(-1) == labels).mean()),
                "mean_top_probability": float(evaluate.confidence(logits)["top_probability"].mean())}

    return {"teacher": summary("teacher", teacher), "twin_source": summary(kind, source)}
