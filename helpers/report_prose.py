"""The README's generated prose: the five-line summary, the headline, the six interview answers and the figure list,
each sentence derived from the results it describes (a different outcome gives different words)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import evaluate, experiments, results
from helpers.config import PROJECT_ROOT, Config, get_config
from helpers.report_data import complete, hardware, points, report_documents, student_runs

WORDS = {"better": "better than", "worse": "worse than", "no detectable difference": "not detectably different from"}

# Every figure the notebooks save, in reading order, with what it shows; the README lists those the profile has.
FIGURES = {
    "class_balance": "Rows per class and split (notebook 01).",
    "length_distributions": "Article lengths in words and tokens, with the truncation length (notebook 01).",
    "teacher_training": "The stand-in teacher's own fine-tuning (notebook 02; `full` downloads its teacher).",
    "teacher_confusion_matrix": "The teacher's confusion matrix on test (notebook 02).",
    "baseline_training": "The baseline student's training curves (notebook 03).",
    "baseline_confusion_matrix": "The baseline student's confusion matrix on test, first seed (notebook 03).",
    "distillation_training": "Baseline vs the chosen strategy: hard-label loss, teacher terms, validation "
                             "(notebook 04).",
    "confusion_matrices": "Confusion matrices of teacher, chosen student and baseline, first seed (notebook 05).",
    "per_class_f1": "Per-class F1 on test, mean over seeds (notebook 05).",
    "efficiency": "Accuracy against latency and size, with the int8 student (notebook 05).",
    "reliability": "Calibration: accuracy against confidence, with rows per bin (notebook 05).",
    "train_loss_baseline_vs_distilled": "Train loss, baseline vs chosen student (notebook 05).",
    "decoder_student_loss": "The decoder student's train loss, with and without the teacher (notebook 06).",
}


def regime(config: Config) -> dict:
    """The measured regime: teacher vs plain student on test, and the chosen strategy's two comparisons."""
    documents = report_documents(config)
    teacher = documents["teacher"]["test"]["accuracy"]
    baseline = float(np.mean([r["test"]["accuracy"] for r in student_runs(config, "baseline")]))
    comparisons = documents["distillation"]["comparisons"]
    chosen, control = comparisons["chosen"], comparisons["best_control"]
    return {"teacher": teacher, "baseline": baseline, "relation": "weaker" if teacher < baseline else "stronger",
            "seeds": len(documents["distillation"]["seeds"]), "chosen": chosen, "control": control,
            "versus_baseline": comparisons["versus_baseline"][chosen]["across_seeds"],
            "share": comparisons["chosen_vs_best_control"]["across_seeds"]}


def headline_block(config: Config) -> str | None:
    """The regime (teacher weaker or stronger, measured), and what the chosen strategy and the teacher's own share
    came to, each in the words its interval supports."""
    if not complete(config):
        return None
    r = regime(config)
    return (f"In the `{config.profile}` profile the teacher ({r['teacher'] * 100:.2f}% on test) is {r['relation']} "
            f"than the plain fine-tuned student ({r['baseline'] * 100:.2f}%, mean of {r['seeds']} seeds). The strategy "
            f"chosen on validation, `{r['chosen']}`, is {WORDS[evaluate.verdict(r['versus_baseline'])]} the "
            f"baseline: {points(r['versus_baseline'])}. It is {WORDS[evaluate.verdict(r['share'])]} the best "
            f"control that uses no BERT teacher, `{r['control']}`: {points(r['share'])}. That difference is the "
            "teacher's own share.")


def _share_meaning(share: dict) -> str:
    return {"better": "the teacher added something that label smoothing, self-distillation and extra steps did not",
            "worse": "a control without the BERT teacher did better than anything the teacher offered",
            "no detectable difference": "what the teacher itself adds is not detectable here; the controls without a "
                                        "BERT teacher do as well"}[evaluate.verdict(share)]


def models_caveat(config: Config) -> str:
    """Which models and rows produced the numbers, from the results' own provenance."""
    documents = report_documents(config)
    settings = documents["teacher"]["provenance"]["config"]
    student_rows = documents["baseline"]["provenance"]["config"]["max_train_rows"]
    if config.profile == "full":
        return (f"These are the brief's models (`{settings['teacher_name']}` → `{settings['student_name']}`) on AG "
                "News' full train split.")
    return (f"Stand-ins, **not the brief's models**: teacher {settings['teacher_name']}, student "
            f"{settings['student_name']}, trained on {student_rows:,} rows of {_train_split(documents)} and "
            f"tested on {documents['teacher']['test']['rows']:,} test rows. The brief's BERT → DistilBERT pair "
            "(`full`, same code) has not been run for this page.")


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


def _teacher_pass_seconds(teacher: dict) -> float:
    """Seconds of the teacher's logit passes when first computed (a pass served from cache records its first one)."""
    return sum(p.get("first_pass_seconds", p.get("seconds", 0.0)) for p in teacher["logit_passes"])


def compute_seconds(config: Config) -> list[tuple[str, float, int]]:
    """(notebook, seconds, runs) of training and teacher passes, summed from the results files."""
    documents = report_documents(config)
    teacher = documents["teacher"]
    seconds = _teacher_pass_seconds(teacher)
    if results.has_result(config, "teacher_training"):
        seconds += results.load_result(config, "teacher_training")["train_seconds"]
    # Every student the teacher's code version trained (grid, cross-fitting and final runs), not runs of older code
    # left in the folder.
    students = [document for path in sorted((Path(config.results_dir) / "students").glob("*.json"))
                if (document := results.load_result(path))["provenance"].get("code_hash")
                == teacher["provenance"].get("code_hash")]
    rows = [("02 · teacher (fine-tuning here, logit passes)", seconds, 1),
            ("03 · baseline students", sum(r["train_seconds"] for r in students if r["spec"]["name"] == "baseline"),
             sum(r["spec"]["name"] == "baseline" for r in students)),
            ("04 · distilled students and controls",
             sum(r["train_seconds"] for r in students if r["spec"]["name"] != "baseline"),
             sum(r["spec"]["name"] != "baseline" for r in students))]
    if "decoder_student" in documents:
        rows.append(("06 · decoder student (training + scoring)",
                     documents["decoder_student"]["wall_seconds"]["total"], 1))
    return rows


def full_cost(config: Config) -> dict[str, dict]:
    """The `full` report's GPU time and cost per quoted GPU: projected from a GPU benchmark's measured throughput
    where one exists, else estimated from FLOPs at an assumed share of the GPU's quoted peak (a range)."""
    from helpers import benchmark

    facts = results.external_facts()
    full = get_config("full")
    validation = full.validation_rows
    runs = experiments.planned_runs(full, facts["ag_news"]["train_rows"] - validation, validation,
                                    facts["ag_news"]["test_rows"])
    documents = report_documents(config)
    if "data" not in documents:
        return {}  # no measured tokens per row (notebook 01): no estimate
    tokens = documents["data"]["tokens"]["mean"]
    costs = {}
    for name, price in facts["gpu_hourly_usd"].items():
        if name.startswith("_"):
            continue
        peak = next((v for k, v in facts["gpu_peak_tflops"].items() if k.split()[0] in name), None)
        model = next(word for word in name.split() if any(ch.isdigit() for ch in word))
        measured = _measured_throughput(model)
        if measured is not None:
            projection = benchmark.project_runtime(runs, measured, price["usd_per_hour"])
            costs[name] = {"hours": (projection["total_hours"],) * 2, "usd": (projection["cost"],) * 2,
                           "measured": True, "usd_per_hour": price["usd_per_hour"]}
        elif peak is not None:
            ranges = [benchmark.project_runtime(runs, benchmark.flops_throughput(
                name, peak["tflops"], share, tokens, full.lm_max_length), price["usd_per_hour"])
                for share in reversed(benchmark.ASSUMED_SHARE_OF_PEAK)]
            costs[name] = {"hours": tuple(p["total_hours"] for p in ranges), "usd": tuple(p["cost"] for p in ranges),
                           "measured": False, "usd_per_hour": price["usd_per_hour"], "runs": len(runs)}
    return costs


def _measured_throughput(model: str):
    """The throughput a committed GPU benchmark measured on a ``model`` GPU (T4, A100, H100), if any."""
    from helpers import benchmark

    for path in sorted((PROJECT_ROOT / "results" / "benchmark").glob("*.json")):
        if model.lower() in path.stem.lower():
            found = benchmark.load_throughput(path.parent, path.stem)
            if found is not None:
                return found
    return None


def _duration(hours: float) -> str:
    return f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"


def cost_sentence(config: Config) -> str:
    """This report's measured compute, and the `full` report's GPU time and cost (measured or estimated, said so)."""
    from helpers import benchmark

    hours = sum(seconds for _, seconds, _ in compute_seconds(config)) / 3600
    document = report_documents(config)["teacher"]
    costs = full_cost(config)
    parts = []
    for name, cost in costs.items():
        (low, high), (usd_low, usd_high) = cost["hours"], cost["usd"]
        span = _duration(low) if cost["measured"] else f"{_duration(low)}–{_duration(high)}"
        usd = f"${usd_low:.2f}" if cost["measured"] else f"${usd_low:.2f}–{usd_high:.2f}"
        parts.append(f"{span} on a {name} ({usd})")
    if not costs:
        return (f"This page took {_duration(hours)} of training on {hardware(document)}. No `full` estimate: "
                "notebook 01's token statistics are missing.")
    how = ("projected from the GPU benchmark's measured throughput" if all(c["measured"] for c in costs.values())
           else "**estimated**, not measured: FLOPs per row at "
                f"{min(benchmark.ASSUMED_SHARE_OF_PEAK):.0%}–{max(benchmark.ASSUMED_SHARE_OF_PEAK):.0%} of each GPU's "
                "quoted peak")
    return (f"This page took {_duration(hours)} of training on {hardware(document)}. A `full` run: "
            f"{', '.join(parts)}; {how}, at the hourly prices quoted in `results/external.json`.")


def _span(interval: dict) -> str:
    return (f"{interval['difference'] * 100:+.2f} points, 95% interval {interval['ci_low'] * 100:+.2f} to "
            f"{interval['ci_high'] * 100:+.2f}")


def summary_block(config: Config) -> str | None:
    """At most five lines: the answer, the one caveat, the cost."""
    if not complete(config):
        return None
    r = regime(config)
    versus, share = r["versus_baseline"], r["share"]
    answer = (f"**Answer.** Here the teacher is {r['relation']} than its student ({r['teacher'] * 100:.2f}% vs "
              f"{r['baseline'] * 100:.2f}% on test). The best teacher-using strategy on validation, `{r['chosen']}`, "
              f"is {WORDS[evaluate.verdict(versus)]} plain fine-tuning ({_span(versus)} over {r['seeds']} seeds "
              f"and the test rows) and {WORDS[evaluate.verdict(share)]} the best control without a BERT teacher, "
              f"`{r['control']}` ({_span(share)}): {_share_meaning(share)}.")
    return "\n".join([answer, "", f"**Caveat.** {models_caveat(config)}", "", f"**Cost.** {cost_sentence(config)}"])


SHOWN = ("distillation_training", "efficiency", "reliability", "per_class_f1")  # inline; the others are linked


def figures_block(config: Config) -> str | None:
    """The profile's key figures inline and the rest as links, all from the profile's own folder."""
    folder = Path(config.figures_dir)
    present = [name for name in FIGURES if (folder / f"{name}.png").exists()]
    if not complete(config) or not present:
        return None
    resolved = folder.resolve()
    relative = (resolved.relative_to(PROJECT_ROOT) if resolved.is_relative_to(PROJECT_ROOT) else folder).as_posix()
    shown = [f"**{FIGURES[name]}**\n\n![{name}]({relative}/{name}.png)" for name in SHOWN if name in present]
    linked = [f"[{name.replace('_', ' ')}]({relative}/{name}.png)" for name in present if name not in SHOWN]
    return "\n\n".join(shown + ([f"More: {' · '.join(linked)}."] if linked else []))


def _seen_unseen(teacher: dict) -> tuple[float, float]:
    """The teacher's accuracy on rows it was trained on (pooled) and on test."""
    seen = [r for r in teacher["seen_vs_unseen"] if r["seen_in_training"]]
    pooled = sum(r["accuracy"] * r["count"] for r in seen) / max(1, sum(r["count"] for r in seen))
    return pooled, teacher["test"]["accuracy"]


def interview_block(config: Config) -> str | None:
    """Short answers to the brief's six interview questions, each resting on a number this page shows."""
    if not complete(config):
        return None
    documents = report_documents(config)
    r = regime(config)
    grid = documents["distillation"]["grid"]
    strategies = [row for row in grid if row["bert_teacher"]]
    controls = [row for row in grid if not row["bert_teacher"] and row["student"] != "baseline"]
    settings = documents["teacher"]["provenance"]["config"]
    validation_rows = settings["validation_rows"]
    best = max(strategies, key=lambda row: row["validation_accuracy"])
    worst = min(strategies, key=lambda row: row["validation_accuracy"])
    detectable = [row["student"] for row in strategies if row["verdict"] == "better"]
    seen, unseen = _seen_unseen(documents["teacher"])
    passes = documents["teacher"]["logit_passes"]
    first_pass = _teacher_pass_seconds(documents["teacher"])
    data = documents.get("data", {})
    smoothing = documents["distillation"]["choice"]["label_smoothing"]
    answers = {
        "Training strategy":
            f"{len(strategies)} teacher-using strategies from the four families (response, discrete labels, "
            f"features, attention) and weak-teacher variants, beside {len(controls)} controls that use no BERT "
            f"teacher, each paired with the same-seed baseline on {validation_rows:,} validation rows (one row = "
            f"{100 / validation_rows:.3f} points). The teacher is frozen; its logits are cached once.",
        "Implementation details":
            f"Soft targets are KL at temperature T (scaled by T²) in fp32; the teacher's logits for "
            f"{sum(p['rows'] for p in passes):,} rows took {first_pass:.0f} s once, so a cached-logit step costs what "
            "a baseline step does"
            + (f"; dynamic padding removes {data['padding_saved']:.0%} of the tokens a fixed length would pad"
               if "padding_saved" in data else "") + ". Precision is decided once from the GPU's compute capability.",
        "Model tuning":
            f"Validation accuracy across the strategies ran from {worst['validation_accuracy'] * 100:.2f}% "
            f"(`{worst['student']}`) to {best['validation_accuracy'] * 100:.2f}% (`{best['student']}`); "
            + (f"{len(detectable)} beat the baseline detectably on validation ({_names(detectable)})"
               if detectable else "none beat the baseline detectably on validation")
            + f". Label smoothing's ε was chosen on validation (`{smoothing}`); {selection_stability(documents)}.",
        "Results interpretation":
            f"{_memorisation(seen, unseen)}. On unseen rows the teacher is {r['relation']} than the student. "
            f"`{r['chosen']}` vs baseline: {points(r['versus_baseline'])}; vs `{r['control']}`: "
            f"{points(r['share'])}, so {_share_meaning(r['share'])}.",
        "Pipeline and code quality":
            "One code path for three profiles (`full`, `cpu`, `smoke`); every artefact keyed by what produced it and "
            f"resumable; this page is generated from {len(documents)} results files of one code version, and "
            "`make test` runs the `full` path against a local stand-in hub.",
        "Conceptual alternatives": _alternatives(documents),
    }
    return "\n\n".join(f"**{question}.** {answer}" for question, answer in answers.items())


def _memorisation(seen: float, unseen: float) -> str:
    """What the teacher's accuracy on rows it trained on, beside test, says about its soft targets there."""
    gap = (seen - unseen) * 100
    if gap >= 2:
        return (f"The teacher scores {gap:.1f} points higher on rows it trained on ({seen * 100:.2f}%) than on test "
                f"({unseen * 100:.2f}%): its soft targets on the students' rows partly repeat labels it memorised")
    epochs = results.external_facts()["teacher_training"]["epochs"]
    return (f"The teacher scores {seen * 100:.2f}% on rows it trained on and {unseen * 100:.2f}% on test "
            f"({gap:+.2f} points): its soft targets on the students' rows are not memorised, unlike those of "
            f"`full`'s teacher, quoted as trained for {epochs} epochs on them")


def selection_stability(documents: dict) -> str:
    """Whether the grid's ranking (selection budget) holds at the final budget, on the specs run both ways (seed 0
    of the final comparison); when the grid already ran at the final budget there is nothing to check."""
    distillation = documents["distillation"]
    settings = distillation["provenance"]["config"]
    rows, epochs = settings["selection_max_train_rows"], settings["selection_epochs"]
    if ((rows is None or (settings["max_train_rows"] is not None and rows >= settings["max_train_rows"]))
            and epochs in (None, settings["epochs"])):
        return "the grid ran at the final budget, so its choice needs no check at a larger one"
    first = {name: documents[runs[0]] for name, runs in distillation["runs"].items()}
    grid = {row["student"]: row["validation_accuracy"] for row in distillation["grid"]}
    both = [name for name in first if name in grid]
    by_grid = sorted(both, key=lambda name: -grid[name])
    by_final = sorted(both, key=lambda name: -first[name]["validation"]["accuracy"])
    pairs = [(a, b) for i, a in enumerate(both) for b in both[i + 1:]]
    agree = sum((grid[a] - grid[b]) * (first[a]["validation"]["accuracy"] - first[b]["validation"]["accuracy"]) > 0
                for a, b in pairs)
    verdict = ("the same top" if by_grid[0] == by_final[0]
               else f"a different top (`{by_grid[0]}` at the selection budget, `{by_final[0]}` at the final one)")
    return (f"of the {len(both)} students run at both budgets, the selection budget's validation ranking gives "
            f"{verdict}, and {agree} of {len(pairs)} pairs keep their order at the final budget")


def _names(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _alternatives(documents: dict) -> str:
    parts = []
    deployment = documents.get("analysis", {}).get("deployment")
    if deployment:
        int8 = next(row for row in deployment["rows"] if row["variant"] == "student int8")
        parts.append(f"post-training int8 quantization of the chosen student runs "
                     f"{deployment['int8_student_speedup_over_teacher_batch32']:.1f}× the fp32 teacher's batch-32 CPU "
                     f"throughput at {deployment['int8_accuracy_delta_points']:+.2f} points of accuracy against the "
                     f"fp32 student (95% interval {int8['accuracy_delta_ci_low']:+.2f} to "
                     f"{int8['accuracy_delta_ci_high']:+.2f})")
    decoder = documents.get("decoder_student")
    if decoder:
        difference = decoder["teacher_effect"]["difference"]["accuracy"]
        parts.append(f"a decoder-only student taught with the teacher's distribution on its label words differs by "
                     f"{difference['mean'] * 100:+.1f} points from one without it (95% interval "
                     f"{difference['ci_low'] * 100:+.1f} to {difference['ci_high'] * 100:+.1f})")
    parts.append("ONNX Runtime was measured against the torch path in the benchmark (kept only where it pays); "
                 "pruning and vocabulary trimming are not measured here")
    return "Beyond distillation: " + "; ".join(parts) + "."
