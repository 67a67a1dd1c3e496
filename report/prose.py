"""The README's generated sentences: only where a number decides the wording (the answer and its verdict, the
teacher's share, the regime, the plateau, the cost), each read from the results it describes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers import experiments, results
from helpers.config import PROJECT_ROOT, Config, get_config
from report.data import (
    compute_seconds,
    hardware,
    markdown_table,
    mean_std,
    report_documents,
    teacher_pass_seconds,
)

# Every figure the notebooks save, in reading order, with what it shows; the README lists those the profile has.
FIGURES = {
    "class_balance": "Rows per class and split (notebook 01).",
    "length_distributions": "Article lengths in words and tokens, with the truncation length (notebook 01).",
    "teacher_confidence": "The teacher's top probability on rows it trained on and on rows it never saw (notebook 02).",
    "teacher_training": "The stand-in teacher's own fine-tuning, with its accuracy on the unseen rows "
                        "(notebook 02; `full` downloads its teacher).",
    "teacher_confusion_matrix": "The teacher's confusion matrix on test (notebook 02).",
    "baseline_training": "The baseline student's training curve, first seed (notebook 03).",
    "baseline_confusion_matrix": "The baseline student's confusion matrix on test, first seed (notebook 03).",
    "distillation_training": "Baseline, chosen strategy, its twin and the compute control against optimizer steps: "
                             "hard-label loss, soft-target terms, validation accuracy (notebook 04).",
    "confusion_matrices": "Confusion matrices of teacher, chosen student and baseline, first seed (notebook 05).",
    "per_class_f1": "Per-class F1 on test, mean over seeds (notebook 05).",
    "efficiency": "Accuracy against latency and size, with the int8 student (notebook 05).",
    "reliability": "Calibration: accuracy against confidence, with rows per bin (notebook 05).",
    "decoder_student_loss": "The decoder student's answer cross-entropy, both arms on one scale, and the distillation "
                            "term apart (notebook 06).",
}
SHOWN = ("distillation_training",)  # inline beside the results; the others are listed under Details
CALIBRATION_GAP = 0.01  # ECE and NLL gaps (means over seeds) below this are not called a difference in calibration


def facts(config: Config) -> dict:
    """What the sentences read, from one set of results documents."""
    documents = report_documents(config)
    teacher, distillation = documents["teacher"], documents["distillation"]
    comparisons = distillation["comparisons"]
    headline = {row["comparison"]: row for row in distillation["headline"]}
    return {"documents": documents, "teacher": teacher, "distillation": distillation,
            "chosen": comparisons["chosen"], "twin": comparisons.get("twin"), "headline": headline,
            "primary": headline[comparisons["primary"]], "share": headline[comparisons["share"]],
            "plateau": comparisons["plateau"], "seeds": len(documents["baseline"]["runs"]),
            "grid": {row["student"]: row for row in distillation["grid"]},
            "where": distillation.get("selection_rows", "validation")}


def brief(row: dict, key: str = "difference_points") -> str:
    """A row's difference in points (``key``) with its 95% interval."""
    return f"{row[key]:+.2f} [{row['ci_low_points']:+.2f}, {row['ci_high_points']:+.2f}]"


def _relative(path: Path) -> str:
    resolved = path.resolve()
    return (resolved.relative_to(PROJECT_ROOT) if resolved.is_relative_to(PROJECT_ROOT) else path).as_posix()


# ---------------------------------------------------------------------------------------------- first screen
def summary_block(config: Config) -> str:
    """The first screen: the answer, the teacher's share, function matching's screen, table, picture, caveat, cost."""
    f = facts(config)
    chosen, primary, share, where = f["chosen"], f["primary"], f["share"], f["where"]
    family, _, rest = experiments.STRATEGIES[chosen][1].partition(": ")  # without its family prefix
    what = rest if family in ("response", "feature", "similarity", "discrete output", "T/α screen",
                              "function matching") else experiments.STRATEGIES[chosen][1]
    lines = [f"**Answer: {primary['verdict']}.** `{chosen}`, the strategy chosen on {where} rows, minus plain "
             f"fine-tuning: {brief(primary)} points (95% interval over {primary['seeds']} seeds). `{chosen}`: "
             f"{what.split(' (')[0]}.", ""]
    if f["twin"] == "baseline":
        lines.append(f"**The teacher's own share** is that same difference: `{chosen}`'s twin trains exactly as the "
                     "baseline (the argmax of the gold label at the teacher's confidence is the gold label).")
    else:
        holm = "" if pd.isna(share.get("p_holm")) else f", Holm-adjusted p = {share['p_holm']:.2g}"
        lines.append(f"**The teacher's own share** (`{chosen}` − its twin): {brief(share)} points: {share['verdict']}"
                     f"{holm}.")
    screen, views = f["grid"].get("consistent"), f["grid"].get("views-baseline")
    if screen and chosen != "consistent":
        lines += ["", f"**Function matching** (`consistent`, not chosen), screened once on the {where} rows: "
                      f"{brief(screen, 'gain_points')} points against the baseline" + (
                          f", {screen['gain_points'] - views['gain_points']:+.2f} against the same views without the "
                          "teacher" if views else "") + "."]
    picture = Path(config.figures_dir) / "answer.png"  # drawn by python -m report from the same results
    shown = ["", f"![each comparison as a difference in points with its 95% interval]({_relative(picture)})"]
    lines += ["", markdown_table(answer_table(f)), *(shown if picture.exists() else []), "",
              f"**Caveat.** {models_caveat(config)}", "", f"**Cost.** {cost_sentence(config)}"]
    return "\n".join(lines)


def answer_table(f: dict) -> pd.DataFrame:
    """Teacher and final students on test: accuracy and macro-F1 over seeds, optimizer steps against the baseline's."""
    teacher, documents = f["teacher"]["test"], f["documents"]
    rows = [{"model": "teacher", "seeds": "—", "accuracy (%)": mean_std([teacher["accuracy"]]),
             "macro-F1 (%)": mean_std([teacher["macro_f1"]]), "steps": "—"}]
    recorded = {"baseline": documents["baseline"]["runs"]}  # first, then the others as notebook 04 recorded them
    recorded |= {name: runs for name, runs in f["distillation"]["runs"].items() if name != "baseline"}
    steps = documents[recorded["baseline"][0]]["optimizer_steps"]
    for name, names in recorded.items():
        runs, twin = [documents[run] for run in names], name == f["twin"] != "baseline"
        rows.append({"model": f"**{name}**" if name == f["chosen"] else f"{name} (twin)" if twin else name,
                     "seeds": len(runs), "accuracy (%)": mean_std([r["test"]["accuracy"] for r in runs]),
                     "macro-F1 (%)": mean_std([r["test"]["macro_f1"] for r in runs]),
                     "steps": f"{runs[0]['optimizer_steps'] / steps:.1f}×"})
    return pd.DataFrame(rows)


def models_caveat(config: Config) -> str:
    """Which models and rows produced the numbers, from the results' own provenance."""
    documents = report_documents(config)
    settings = documents["teacher"]["provenance"]["config"]
    recorded = Config(**{name: settings[name] for name in ("teacher_hub_id", "student_hub_id", "local_base",
                                                           "student_layers")})
    teacher, student = recorded.model_description("teacher"), recorded.model_description("student")
    if config.profile == "full":
        return f"These are the brief's models (`{teacher}` → `{student}`) on AG News' train split."
    sizes = documents.get("data", {}).get("split_sizes", {})
    pooled = sizes.get("train", 0) + sizes.get("validation", 0)
    whole = results.external_facts()["ag_news"]["train_rows"]
    split = ("a synthetic train split" if settings.get("data_source") == "synthetic" else "AG News' train split"
             if pooled >= whole else f"a partial AG News train split ({pooled:,} of its {whole:,} rows, "
             f"{pooled / whole:.0%})")
    return (f"Stand-ins, **not the brief's models**: teacher {teacher} (reading "
            f"{documents['teacher']['recipe']['max_length']} tokens), student {student}, "
            f"{settings['max_train_rows']:,} training rows of {split}, all "
            f"{documents['teacher']['test']['rows']:,} test rows. `full` (same code) has not been run.")


def cost_sentence(config: Config) -> str:
    """This page's measured compute, and the real run's plan from the one planner (helpers.plan)."""
    from helpers import plan

    hours = sum(seconds for _, seconds, _ in compute_seconds(config)) / 3600
    real = plan.priced(get_config("full"))
    (t4_low, t4_high), (a_low, a_high) = real["hours"]["T4"], real["hours"]["A100"]
    a100_name, a100_price = plan.prices()["A100"]
    took = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
    return (f"This page took {took} of training on {hardware(report_documents(config)['teacher'])}. "
            f"The real run (`full`, planned, not measured: public throughputs in `results/external.json`, "
            f"`python -m helpers.plan`): about {real['central_T4_hours']:.1f} h on a free Colab T4 "
            f"({t4_low:.1f}–{t4_high:.1f} h), {a_low:.1f}–{a_high:.1f} h on an A100 (${a_low * a100_price:.2f}–"
            f"{a_high * a100_price:.2f} at {a100_name}).")


def cost_block(config: Config) -> str:
    """The real run's plan (helpers.plan) per GPU, default and thorough, in hours and dollars; what the default cuts."""
    from helpers import plan

    settings = {name: get_config("full", plan=name) for name in ("default", "thorough")}
    plans = {name: plan.priced(value) for name, value in settings.items()}
    rows = []
    for device, (label, price) in plan.prices().items():
        row = {"GPU": f"{label} (${price:.2f}/h)"}
        for name, priced in plans.items():
            low, high = priced["hours"][device]
            row |= {f"{name}: hours": f"{low:.1f}–{high:.1f}",
                    f"{name}: dollars": f"{low * price:.2f}–{high * price:.2f}"}
        rows.append(row)
    default, thorough = plans["default"], plans["thorough"]
    cut = (f"The default plan ({default['central_T4_hours']:.1f} h on a T4 at the central rate, "
           f"{sum(r['steps'] for r in default['runs']):,} optimizer steps, {default['drive_gb']:.1f} GB written to "
           f"Drive) against the thorough one ({sum(r['steps'] for r in thorough['runs']):,} steps): "
           f"{settings['default'].epochs} epochs, not {settings['thorough'].epochs}; the compute control on "
           f"{settings['default'].control_seeds} seeds, not {settings['thorough'].control_seeds}; and "
           f"{', '.join(settings['thorough'].final_extra) or 'nothing'} with its twin left to the screen. Both are "
           f"priced for `{default['chosen']}`; `python -m helpers.plan` prints the costliest choice too.")
    return f"{markdown_table(pd.DataFrame(rows))}\n\n{cut}"


# ----------------------------------------------------------------------------------------- the six questions
def interview_block(config: Config) -> str:
    """The brief's six interview questions, a paragraph each, every number from the results."""
    f = facts(config)
    documents, chosen, where = f["documents"], f["chosen"], f["where"]
    strategies = [row for row in f["grid"].values() if row["bert_teacher"]]
    best, worst = (max(strategies, key=lambda r: r["accuracy"]), min(strategies, key=lambda r: r["accuracy"]))
    passes, bias = f["teacher"]["logit_passes"], f["distillation"].get("selection_bias") or {}
    answers = {
        "1 · Training strategy":
            f"{len(strategies)} teacher-using strategies (the four families, response KD at other T and weights, a "
            f"committee, function matching) were screened once on {where} rows, each against its compute-matched "
            f"no-teacher run; `{chosen}` gained most and ran beside its twin, the baseline and the compute control "
            "over fresh seeds (screen under Details).",
        "2 · Implementation":
            "One function, `distill.distillation_loss`, is every student's loss, and `train.optimizer_and_schedule` "
            f"states the step; notebook 04 shows both on a real batch. The teacher's logits are cached once "
            f"({sum(p['rows'] for p in passes):,} rows, {teacher_pass_seconds(f['teacher']):.0f} s); feature, "
            "attention and function matching run it online, in the student's precision.",
        "3 · Model tuning":
            f"Every choice read {where} rows, never test; the screen ran from {worst['accuracy'] * 100:.2f}% "
            f"(`{worst['student']}`) to {best['accuracy'] * 100:.2f}% (`{best['student']}`). "
            + (f"Choosing on validation, which the teacher trained on, would have favoured teacher-using students by "
               f"{bias['bias_points']:+.2f} points (measured here). " if bias else "")
            + f"{_recipe(f['teacher'])} {_plateau(f['plateau'])}",
        "4 · Results":
            f"Primary (declared before the pass): `{chosen}` − baseline {brief(f['primary'])} points, "
            f"{f['primary']['verdict']}; the other rows of the table under Results read Holm-adjusted p ("
            + "; ".join(f"{label}: {row['p_holm']:.2g}" for label, row in f["headline"].items()
                        if row is not f["primary"] and not pd.isna(row.get("p_holm"))) + ").",
        "5 · Pipeline and code quality":
            f"One code path, three profiles; every artefact keyed by what produced it, code included; "
            f"{len(documents)} results files of one code version; a Colab reset costs the run in progress at most.",
        "6 · Limits, lessons, next": _limits(f),
    }
    return "\n\n".join(f"**{question}.** {answer}" for question, answer in answers.items())


def _recipe(teacher: dict) -> str:
    rule = teacher.get("rule")
    if not rule:
        return "The teacher comes from the hub."
    low, high = (bound * 100 for bound in experiments.WEAKER_BY)
    return (f"The stand-in teacher's input length ({rule['max_length']} tokens) is the declared rule's choice among "
            f"{', '.join(str(r['max_length']) for r in teacher['recipes_tried'])}: "
            f"{'memorised' if rule['memorised'] else 'not memorised'}; the baseline minus it on unseen rows "
            f"{rule['gap_points']:+.2f} points ({'inside' if rule['weaker_in_window'] else 'outside'} the "
            f"{low:.1f}–{high:.1f} window).")


def _plateau(plateau: dict) -> str:
    t = plateau["paired_t"]
    reading = ("at its plateau by the declared rule" if plateau["at_plateau"] else
               "past its plateau (more steps hurt)" if t["ci_high"] < 0 else
               "**not** shown at its plateau by the declared rule")
    return (f"Twice the steps − the baseline on {plateau['rows']:,} unseen rows: {t['difference'] * 100:+.2f} "
            f"[{t['ci_low'] * 100:+.2f}, {t['ci_high'] * 100:+.2f}] over {len(plateau['seeds'])} seeds: {reading} "
            f"(upper end below +{plateau['gain_limit'] * 100:.1f}).")


def _limits(f: dict) -> str:
    """Question 6: limitations, calibration, speed, what we learned, next."""
    stand_in = f["teacher"]["provenance"]["profile"] != "full"
    parts = [f"Limits: {f['seeds']} seeds where they decide; "
             + ("stand-ins on a partial train split: the regime is mirrored, not the brief's models." if stand_in else
                "one teacher, one dataset, one student size.")]
    analysis = f["documents"].get("analysis") or {}
    by_model = {row["model"]: row for row in analysis.get("comparison", [])}
    base = by_model.get("baseline")
    chosen = next((row for name, row in by_model.items() if name.startswith("distilled")), None)
    if base and chosen:
        gaps = chosen["ece"] - base["ece"], chosen["nll"] - base["nll"]
        how = ("the distilled student is the worse calibrated" if min(gaps) > CALIBRATION_GAP else
               "the distilled student is the better calibrated" if max(gaps) < -CALIBRATION_GAP else
               f"ECE within {CALIBRATION_GAP * 100:g} point and NLL within {CALIBRATION_GAP}, so no difference is "
               "claimed" if max(map(abs, gaps)) <= CALIBRATION_GAP else "mixed")
        parts.append(f"Calibration: ECE {base['ece']:.2%} (baseline) and {chosen['ece']:.2%} (chosen), NLL "
                     f"{base['nll']:.4g} and {chosen['nll']:.4g}, means over seeds: {how}.")
    deployment = analysis.get("deployment")
    if deployment:
        parts.append(f"Speed: the int8 student runs {deployment['int8_student_speedup_over_teacher_batch32']:.1f}× "
                     f"the fp32 teacher's batch-32 CPU throughput, both timed on the students' inputs, at "
                     f"{deployment['int8_accuracy_delta_points']:+.2f} points against the fp32 student (notebook 05).")
    verdict = f["share"]["verdict"]
    learned = ("the teacher's own share showed beside a twin that trains the same" if verdict.startswith("better")
               else "the memorised teacher's choices cost a little against its own confidence on gold labels"
               if verdict.startswith("worse") else
               "beside a twin that holds its confidence fixed, the teacher's own contribution was not detectable")
    nexts = ["`full` on a GPU with the same design (`make report`, priced above)"]
    if not f["plateau"]["at_plateau"]:
        nexts.append("a longer student schedule, since the plateau was not shown")
    if "consistent" in f["grid"] and f["chosen"] != "consistent":
        nexts.append("function matching for longer than twice the steps (Beyer et al. train far longer)")
    parts.append(f"Learned: {learned}. Next: {'; '.join(nexts)}.")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------------- figures
def figures_block(config: Config, more: bool = False) -> str | None:
    """The profile's key figures inline (``more``: the others, as a list of links), from the profile's own folder."""
    folder = Path(config.figures_dir)
    present = [name for name in FIGURES if (folder / f"{name}.png").exists()]
    if not present:
        return None
    if not more:
        return "\n\n".join(f"**{FIGURES[name]}**\n\n![{name}]({_relative(folder / f'{name}.png')})" for name in SHOWN
                           if name in present)
    return "\n".join(f"- [{FIGURES[name]}]({_relative(folder / f'{name}.png')})" for name in present
                     if name not in SHOWN)
