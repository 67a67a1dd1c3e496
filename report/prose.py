"""The README's generated prose: the first screen, the six interview answers, the settings box and the figure list,
each sentence derived from the results it describes (a different outcome gives different words)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import evaluate, experiments, results
from helpers.config import PROJECT_ROOT, Config, get_config
from report.data import (
    complete,
    compute_seconds,
    full_cost,
    hardware,
    markdown_table,
    report_documents,
    student_runs,
    teacher_pass_seconds,
)

WORDS = {"better": "better than", "worse": "worse than", "no detectable difference": "not detectably different from"}

# Every figure the notebooks save, in reading order, with what it shows; the README lists those the profile has.
FIGURES = {
    "class_balance": "Rows per class and split (notebook 01).",
    "length_distributions": "Article lengths in words and tokens, with the truncation length (notebook 01).",
    "teacher_confidence": "The teacher's top probability on rows it trained on and on rows it never saw (notebook 02).",
    "teacher_training": "The stand-in teacher's own fine-tuning, with its accuracy on unseen calibration rows "
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
    "decoder_student_loss": "The decoder student's train loss, with and without the teacher (notebook 06).",
}
SHOWN = ("distillation_training",)  # inline beside the results; the others are listed under Details
CALIBRATION_GAP = 0.01  # ECE and NLL gaps (means over seeds) below this are not called a difference in calibration


# ------------------------------------------------------------------------------------------------- the facts
def regime(config: Config) -> dict:
    """The measured regime and the final comparison's rows the prose reads, from one set of results documents."""
    documents = report_documents(config)
    teacher, distillation = documents["teacher"], documents["distillation"]
    comparisons = distillation["comparisons"]
    chosen, rows = comparisons["chosen"], comparisons["rows"]
    memorised = {row["rows"]: row for row in teacher["memorisation"]}
    baseline_runs = student_runs(config, "baseline")
    return {
        "documents": documents, "chosen": chosen, "control": comparisons["best_control"],
        "teacher": teacher["test"]["accuracy"], "teacher_length": teacher["recipe"]["max_length"],
        "baseline": float(np.mean([r["test"]["accuracy"] for r in baseline_runs])), "seeds": len(baseline_runs),
        "seen": memorised["student_train"], "unseen": memorised["test"],
        "share": rows[comparisons["share"]], "versus_baseline": rows[f"{chosen} − baseline"],
        "versus_control": rows[f"{chosen} − {comparisons['best_control']} (best control)"],
        "response": rows.get("response − baseline"), "response_share": rows.get("response − response-without-teacher"),
        "compute": rows.get("matched-compute − baseline"), "plateau": comparisons["plateau_validation"]["paired_t"],
    }


def interval(comparison: dict) -> str:
    """A seed-level difference in points: its paired-t 95% interval, p and seeds."""
    t = comparison["paired_t"]
    return (f"{t['difference'] * 100:+.2f} points (95% interval {t['ci_low'] * 100:+.2f} to {t['ci_high'] * 100:+.2f} "
            f"over {t['seeds']} seeds, paired t p = {t['p_value']:.2g})")


def brief(comparison: dict) -> str:
    """A seed-level difference in points with its paired-t 95% interval, in brackets: for a sentence of several."""
    t = comparison["paired_t"]
    return f"{t['difference'] * 100:+.2f} [{t['ci_low'] * 100:+.2f}, {t['ci_high'] * 100:+.2f}]"


def verdict(comparison: dict) -> str:
    return evaluate.verdict(comparison["paired_t"])


def share_meaning(share: dict) -> str:
    """What the teacher's own share means, in the words its interval (and the equivalence test) supports."""
    t, equivalence, rows = share["paired_t"], share["equivalence"], share["across_seeds"]
    margin = equivalence["margin"] * 100
    if verdict(share) in ("better", "worse"):
        text = ("the teacher added accuracy that a student of the same rows, as a teacher, did not"
                if verdict(share) == "better" else "a peer student of the same rows was the better teacher")
        # The verdict reads the seed-level interval; say so where the bootstrap over seeds and rows does not agree.
        if rows["ci_low"] < 0 < rows["ci_high"]:
            text += (f", by the seed-level interval only (the two-level bootstrap, which also resamples test rows, "
                     f"includes 0: {rows['ci_low'] * 100:+.2f} to {rows['ci_high'] * 100:+.2f})")
        if equivalence["equivalent"]:
            text += (f"; the difference is small: within ±{margin:.1f} points by two one-sided tests "
                     f"(p = {equivalence['p_value']:.2g})")
        return text
    if equivalence["equivalent"]:
        return (f"the teacher added nothing detectable, and the two are equivalent within ±{margin:.1f} points "
                f"(two one-sided tests, p = {equivalence['p_value']:.2g})")
    bound = max(abs(t["ci_low"]), abs(t["ci_high"])) * 100
    return (f"the teacher added nothing detectable; with {t['seeds']} seeds a difference of up to {bound:.1f} points "
            "either way is not ruled out")


# ---------------------------------------------------------------------------------------------- first screen
def summary_block(config: Config) -> str | None:
    """The first screen: the answer at equal compute, the regime that explains it, the caveat and the cost."""
    if not complete(config):
        return None
    r = regime(config)
    share, versus = r["share"], r["versus_baseline"]
    lines = [
        f"**Answer.** What the teacher itself adds — `{r['chosen']}` ({_what(r['chosen'])}; chosen on validation) "
        "minus its twin — is "
        f"{interval(share)}: {share_meaning(share)}. Against plain fine-tuning at the same steps, `{r['chosen']}` is "
        f"{WORDS[verdict(versus)]} the baseline: {interval(versus)}.",
        "",
        f"**The regime.** {regime_sentence(r)} {quoted_regime()}",
        "",
        f"**Caveat.** {models_caveat(config)}",
        "",
        f"**Cost.** {cost_sentence(config)}",
    ]
    return "\n".join(lines)


def _what(strategy: str) -> str:
    """A strategy's one-line description, without its family prefix ("response: ...")."""
    why = experiments.STRATEGIES[strategy][1]
    return why.split(": ", 1)[1] if why.split(": ", 1)[0] in ("response", "feature", "similarity",
                                                               "discrete output") else why


def regime_sentence(r: dict) -> str:
    """The stand-in teacher measured: memorised (or not) where the students learn, weaker (or not) elsewhere."""
    seen, gap = r["seen"], (r["baseline"] - r["teacher"]) * 100
    relation = f"{gap:.2f} points below" if gap > 0 else f"{-gap:.2f} points above"
    memorised = (seen["accuracy"] >= experiments.MEMORISED["accuracy"]
                 and seen["mean_top_probability"] >= experiments.MEMORISED["top_probability"])
    targets = ("its soft targets there are nearly the gold label's one-hot" if memorised else
               f"short of memorised by this report's own bar ({experiments.MEMORISED['accuracy']:.0%} and "
               f"{experiments.MEMORISED['top_probability']})")
    return (f"On the students' rows the teacher scores {seen['accuracy'] * 100:.2f}%, mean top probability "
            f"{seen['mean_top_probability']:.3f}: {targets}. On test: {r['teacher'] * 100:.2f}%, {relation} the plain "
            f"student ({r['baseline'] * 100:.2f}%, {r['seeds']} seeds).")


def quoted_regime() -> str:
    """The brief's teacher and student as quoted from outside (results/external.json), never as measured."""
    facts = results.external_facts()
    card, public, distilbert = (facts["teacher_training"], facts["teacher_public_test_accuracy"],
                                facts["distilbert_public_test_accuracy"])
    return (f"The brief's teacher (quoted, not measured here): {card['epochs']} epochs over the train split, "
            f"{public['accuracy'] * 100:.1f}% on test in a public run, below public DistilBERT fine-tunes "
            f"({distilbert['low'] * 100:.1f}–{distilbert['high'] * 100:.1f}%).")


def models_caveat(config: Config) -> str:
    """Which models and rows produced the numbers, from the results' own provenance."""
    documents = report_documents(config)
    settings = documents["teacher"]["provenance"]["config"]
    if config.profile == "full":
        return (f"These are the brief's models (`{settings['teacher_name']}` → `{settings['student_name']}`) on AG "
                "News' train split.")
    return (f"Stand-ins, **not the brief's models**: teacher {settings['teacher_name']} (reading "
            f"{documents['teacher']['recipe']['max_length']} tokens), student {settings['student_name']}, "
            f"{settings['max_train_rows']:,} training rows of {_train_split(documents)}, all "
            f"{documents['teacher']['test']['rows']:,} test rows. `full` (same code) has not been run.")


def _train_split(documents: dict) -> str:
    """The train split the rows came from, in words: synthetic, AG News' whole train split, or a stated part of it."""
    source = documents["teacher"]["provenance"]["config"].get("data_source")
    if source == "synthetic":
        return "a synthetic train split"
    sizes = documents.get("data", {}).get("split_sizes", {})
    pooled = sizes.get("train", 0) + sizes.get("validation", 0)
    whole = results.external_facts()["ag_news"]["train_rows"]
    if pooled >= whole:
        return "AG News' train split"
    return f"a partial AG News train split ({pooled:,} of its {whole:,} rows, {pooled / whole:.0%})"


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def cost_sentence(config: Config) -> str:
    """This report's measured compute, and the `full` report's GPU time and cost (measured or estimated, said so)."""
    from benchmark import projection

    hours = sum(seconds for _, seconds, _ in compute_seconds(config)) / 3600
    document = report_documents(config)["teacher"]
    costs = full_cost(config)
    if not costs:
        return (f"This page took {_duration(hours)} of training on {hardware(document)}. No `full` estimate: "
                "notebook 01's token statistics are missing.")
    parts = []
    for name, cost in costs.items():
        (low, high), (usd_low, usd_high) = cost["hours"], cost["usd"]
        span = _duration(low) if cost["measured"] else f"{_duration(low)}–{_duration(high)}"
        usd = f"${usd_low:.2f}" if cost["measured"] else f"${usd_low:.2f}–{usd_high:.2f}"
        parts.append(f"{name} {span} ({usd})")
    how = ("projected from the GPU benchmark's measured throughput" if all(c["measured"] for c in costs.values())
           else f"**estimated**, not measured: an A100 at {min(projection.ASSUMED_SHARE_OF_PEAK):.0%}–"
                f"{max(projection.ASSUMED_SHARE_OF_PEAK):.0%} of peak FLOPs, the others by public speed ratios")
    return (f"This page took {_duration(hours)} of training on {hardware(document)}. A `full` run ({how}; prices in "
            f"`results/external.json`): {', '.join(parts)}.")


# --------------------------------------------------------------------------------------------------- settings
def settings_block(config: Config) -> str | None:
    """The settings that shape the numbers, for `full` and this page's profile side by side (from the configs)."""
    profiles = ["full"] + ([config.profile] if config.profile != "full" else [])
    configs = {name: get_config(name) for name in profiles}
    response = experiments.STRATEGIES["response"][0]

    def row(label: str, value) -> dict:
        return {"setting": label, **{f"`{name}`": value(c) for name, c in configs.items()}}

    table = [
        row("student rows (train)", lambda c: "all" if c.max_train_rows is None else f"{c.max_train_rows:,}"),
        row("validation / calibration rows", lambda c: f"{c.validation_rows:,} / {c.calibration_rows:,}"),
        row("student: epochs, batch, lr, warm-up", lambda c: f"{c.epochs}, {c.batch_size}, {c.learning_rate:g}, "
                                                            f"{c.warmup_ratio:.0%}"),
        row("student max_length", lambda c: c.max_length),
        row("teacher recipe: epochs, batch, lr, warm-up", lambda c: f"{c.teacher_epochs:g}, {c.teacher_batch_size}, "
                                                                   f"{c.teacher_learning_rate:g}, "
                                                                   f"{c.teacher_warmup_ratio:.0%}"
                                                                   + (" (its card's; downloaded)"
                                                                      if c.teacher_source == "hub" else "")),
        row("teacher max_length", lambda c: c.teacher_length),
        row("response KD: w_hard, w_kd, T", lambda c: f"{response.hard_label_weight:g}, {response.kd_loss_weight:g}, "
                                                     f"{response.temperature:g}"),
        row("seeds: final (controls) / selection", lambda c: f"{len(c.seeds)} ({min(c.control_seeds, len(c.seeds))})"
                                                             f" / seed {c.selection_seed}"),
        row("grid budget", lambda c: f"{c.selection_max_train_rows or 'all'} rows, "
                                     f"{c.selection_epochs or c.epochs} epoch(s)"),
    ]
    import pandas as pd

    return markdown_table(pd.DataFrame(table))


# ----------------------------------------------------------------------------------------- the six questions
def interview_block(config: Config) -> str | None:
    """The brief's six interview questions, a paragraph each, every number from the results."""
    if not complete(config):
        return None
    r = regime(config)
    documents = r["documents"]
    distillation = documents["distillation"]
    grid = distillation["grid"]
    strategies = [row for row in grid if row["bert_teacher"]]
    best = max(strategies, key=lambda row: row["validation_accuracy"])
    worst = min(strategies, key=lambda row: row["validation_accuracy"])
    passes = documents["teacher"]["logit_passes"]
    answers = {
        "1 · Training strategy":
            f"{len(strategies)} teacher-using strategies (the four families, plus a committee with cross-fitted "
            "students and soft-labelled perturbed copies, both built for a memorised teacher) were screened once on "
            f"validation; `{r['chosen']}` was chosen. It and plain response KD then ran beside their no-teacher twins "
            "and the baseline over fresh seeds; label smoothing was screened, twice the steps is the compute control.",
        "2 · Implementation":
            "One function, `distill.distillation_loss`, computes every student's loss (notebook 04 shows it on a real "
            f"batch). The teacher's logits are cached once ({sum(p['rows'] for p in passes):,} rows, "
            f"{teacher_pass_seconds(documents['teacher']):.0f} s); feature and attention terms run it online.",
        "3 · Model tuning":
            f"Screening on validation (one seed, so it ranks, it does not decide) ran from "
            f"{worst['validation_accuracy'] * 100:.2f}% (`{worst['student']}`) to "
            f"{best['validation_accuracy'] * 100:.2f}% (`{best['student']}`). The students' epochs should sit at "
            f"their plateau, where twice the steps add under {experiments.PLATEAU_GAIN * 100:g} points on validation: "
            f"{_plateau(r)}.{_recipe_probe(config)} The stand-in teacher's input length ({r['teacher_length']} "
            f"tokens) was chosen on calibration rows nobody trains on: {_recipes(documents['teacher'])}. No choice "
            "read the test split.",
        "4 · Results":
            f"Points with seed-level 95% intervals (all rows: the comparison table under Results): the teacher's "
            f"own share (`{r['chosen']}` − its twin) {brief(r['share'])}, the whole effect (− the baseline) "
            f"{brief(r['versus_baseline'])}"
            + (f"; plain response KD − its twin {brief(r['response_share'])}, − the baseline {brief(r['response'])}"
               if r["response"] and r["chosen"] != "response" else "")
            + f". The best no-teacher student picked on validation is `{r['control']}`"
            + (", the twin itself." if r["control"] == f"{r['chosen']}-without-teacher"
               else f"; `{r['chosen']}` − it {brief(r['versus_control'])}."),
        "5 · Pipeline and code quality":
            f"One code path, three profiles; every artefact keyed by what produced it, code included; "
            f"{len(documents)} results files of one code version.",
        "6 · Limits, lessons, next": _limits(r),
    }
    return "\n\n".join(f"**{question}.** {answer}" for question, answer in answers.items())


def _plateau(r: dict) -> str:
    plateau, compute = r["plateau"], r["compute"]
    gain = plateau["difference"]
    # The plateau test: twice the steps add under PLATEAU_GAIN on validation. Past the plateau only where the whole
    # interval says more steps hurt.
    at = ("more steps overfit: the baseline is past its plateau, not short of it" if plateau["ci_high"] < 0
          else "at its plateau by that test" if gain < experiments.PLATEAU_GAIN
          else "**not** at the plateau by that test"
          + (", a point estimate whose interval cannot tell" if plateau["ci_low"] < 0 else ""))
    text = (f"twice the steps gave {gain * 100:+.2f} points on validation (95% interval {plateau['ci_low'] * 100:+.2f} "
            f"to {plateau['ci_high'] * 100:+.2f}, {plateau['seeds']} seeds)")
    return text + (f" and {compute['paired_t']['difference'] * 100:+.2f} on test" if compute else "") + f": {at}"


def _recipe_probe(config: Config) -> str:
    """The probe that set the students' learning rate on validation, where the profile has one."""
    path = PROJECT_ROOT / "results" / "probes" / f"student_recipe_{config.profile}.json"
    if not path.exists():
        return ""
    probe = results.load_result(path)
    doubling = [d for d in probe["doubling"] if d["learning_rate"] == config.learning_rate]
    if not doubling:
        return ""
    mean = sum(d["doubling_minus_base_points"] for d in doubling) / len(doubling)
    rate = f"{config.learning_rate:.0e}".replace("e-0", "e-")
    # A decision made before the pass, by the code of its day: its own code hash is named, not the report's.
    return (f" The students' learning rate ({rate}) was set beforehand in a probe on validation "
            f"(`{path.relative_to(PROJECT_ROOT)}`, code `{probe['provenance'].get('code_hash', '?')[:8]}`), where "
            f"twice the steps moved accuracy by {mean:+.2f} points (mean of {len(doubling)} seeds).")


def _recipes(teacher: dict) -> str:
    tried = teacher.get("recipes_tried") or []
    if not tried:
        return "none tried: the teacher comes from the hub"
    seen = min(t["seen_accuracy"] for t in tried), min(t["seen_top_probability"] for t in tried)
    gaps = ", ".join(f"{t['max_length']} tokens {-t['below_baseline_points']:+.2f}" for t in tried)
    rule = teacher.get("rule_takes")
    low, high = (bound * 100 for bound in experiments.WEAKER_BY)
    text = (f"every length memorised its rows (≥ {seen[0] * 100:.1f}%, top probability ≥ {seen[1]:.3f}); "
            f"against the baseline on unseen rows: {gaps} points")
    if not rule:
        return text + "; none met both targets"
    return text + (f"; the rule takes the one nearest the middle of the −{high:.1f} to −{low:.1f} window"
                   if len(tried) > 1 else f"; the rule takes {rule}")


def _limits(r: dict) -> str:
    """Question 6: limitations, what we learned, calibration, the trade-off with the brief's real sizes, next."""
    documents = r["documents"]
    parts = [f"Limits: stand-ins on a partial train split, {r['seeds']} seeds where they decide; the regime is "
             "mirrored, not the brief's models."]
    analysis = documents.get("analysis")
    if analysis:
        by_model = {row["model"]: row for row in analysis["comparison"]}
        base = by_model.get("baseline")
        chosen = next((row for name, row in by_model.items() if name.startswith("distilled")), None)
        if base and chosen:
            # Means over seeds without an interval: a direction is named only past CALIBRATION_GAP on both scores.
            gaps = chosen["ece"] - base["ece"], chosen["nll"] - base["nll"]
            worse, better = min(gaps) > CALIBRATION_GAP, max(gaps) < -CALIBRATION_GAP
            how = ("the distilled student is the worse calibrated (temperature scaling, not run here, is the usual "
                   "fix)" if worse else "the distilled student is the better calibrated" if better
                   else f"within {CALIBRATION_GAP} of each other on both, so no difference is claimed"
                   if max(map(abs, gaps)) <= CALIBRATION_GAP else "mixed")
            parts.append(f"Calibration: ECE {base['ece']:.3f} (baseline) and {chosen['ece']:.3f} (chosen), NLL "
                         f"{base['nll']:.3f} and {chosen['nll']:.3f}, means over seeds: {how}.")
        deployment = analysis.get("deployment")
        if deployment:
            speedup = deployment["int8_student_speedup_over_teacher_batch32"]
            delta = deployment["int8_accuracy_delta_points"]
            parts.append(f"Speed: the int8 student runs {speedup:.1f}× "
                         f"the fp32 teacher's batch-32 CPU throughput at {delta:+.2f} "
                         "points against the fp32 student (notebook 05).")
    sizes = _brief_sizes()
    if sizes:
        parts.append(f"Size: the brief's pair is {sizes['teacher']:.1f}M → {sizes['student']:.1f}M parameters "
                     f"({sizes['student'] / sizes['teacher']:.0%}), the stand-ins' "
                     f"{documents['teacher']['parameters'] / 1e6:.1f}M → "
                     f"{student_runs_parameters(documents) / 1e6:.1f}M.")
    learned = {"better": "the teacher's own share showed only beside a twin that trains the same",
               "worse": "a peer student of the same rows was the better teacher, by a small margin",
               "no detectable difference": "beside a twin that trains the same, the teacher's own contribution "
                                           "was not detectable"}[verdict(r["share"])]
    nexts = ["`full` on a GPU with the same design"]
    compute = r["compute"]
    if compute and verdict(compute) == "worse":
        nexts.append("a student recipe where twice the steps neither help nor hurt, so that the compute control is "
                     "neutral")
    plateau = r["plateau"]
    if plateau["difference"] >= experiments.PLATEAU_GAIN and plateau["ci_low"] < 0:
        nexts.append(f"more seeds for the plateau check (its {plateau['seeds']}-seed validation interval spans "
                     f"{plateau['ci_low'] * 100:+.2f} to {plateau['ci_high'] * 100:+.2f} points)")
    if verdict(r["share"]) != "better":
        nexts.append("more seeds for the teacher's own share")
    parts.append(f"Learned: {learned}. Next: {'; '.join(nexts)}.")
    return " ".join(parts)


def student_runs_parameters(documents: dict) -> int:
    first = documents["baseline"]["runs"][0]
    return documents[first]["parameters"]


def _brief_sizes() -> dict | None:
    """The brief's teacher and student parameter counts, as the committed benchmark measured them (the architectures
    built from their configs, no hub)."""
    for path in sorted((PROJECT_ROOT / "results" / "benchmark").glob("*.json")):
        models = results.load_result(path).get("inference", {}).get("models", {})
        if {"teacher", "student"} <= set(models):
            return {"teacher": models["teacher"]["parameters"] / 1e6, "student": models["student"]["parameters"] / 1e6}
    return None


# ----------------------------------------------------------------------------------------------------- figures
def figures_block(config: Config, more: bool = False) -> str | None:
    """The profile's key figures inline (``more``: the others, as a list of links), from the profile's own folder."""
    folder = Path(config.figures_dir)
    present = [name for name in FIGURES if (folder / f"{name}.png").exists()]
    if not complete(config) or not present:
        return None
    resolved = folder.resolve()
    relative = (resolved.relative_to(PROJECT_ROOT) if resolved.is_relative_to(PROJECT_ROOT) else folder).as_posix()
    if not more:
        return "\n\n".join(f"**{FIGURES[name]}**\n\n![{name}]({relative}/{name}.png)" for name in SHOWN
                           if name in present)
    return "\n".join(f"- [{FIGURES[name]}]({relative}/{name}.png)" for name in present if name not in SHOWN)


def more_figures_block(config: Config) -> str | None:
    """Every other figure of the profile, linked with what it shows (under Details)."""
    return figures_block(config, more=True)
