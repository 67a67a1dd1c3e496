"""The README's numbers, generated from the results files: ``python -m report`` rewrites every block between
``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` from the report profile's results (``full`` where they
exist, else ``cpu``); a test fails when the README and the results disagree."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from helpers import results
from helpers.config import PROJECT_ROOT, Config
from report.data import complete, compute_seconds, markdown_table, provenance_line
from report.prose import cost_block, figures_block, interview_block, summary_block


def distillation_block(config: Config) -> str:
    """The final comparison over fresh seeds on test: the primary row first, the others with Holm-adjusted p."""
    document = results.load_result(config, "distillation")
    headline, comparisons = pd.DataFrame(document["headline"]), document["comparisons"]
    rows = list(headline.itertuples())
    final = pd.DataFrame({
        "comparison (test)": headline["comparison"], "seeds": headline["seeds"],
        "Δ (points)": headline["difference_points"].map("{:+.2f}".format),
        "95% interval, paired t over seeds": [f"[{r.ci_low_points:+.2f}, {r.ci_high_points:+.2f}]" for r in rows],
        "p": headline["p_value"].map("{:.2g}".format),
        "p, Holm": ["primary" if r.comparison == comparisons["primary"] else "—" if pd.isna(r.p_holm) else
                    f"{r.p_holm:.2g}" for r in rows],
        "two-level bootstrap [95%]": headline["bootstrap_ci_points"],
        # One seed gives no seed-level interval: it is not a decision, whatever the bootstrap over rows says.
        "verdict": [r.verdict if r.seeds > 1 else "one seed: not decided" for r in rows],
    })
    return (f"{markdown_table(final)}\n\n<sub>Paired by seed, each seed on all test rows. The first row is the one "
            "comparison declared primary before the pass; the verdicts of the others read "
            f"{comparisons['multiplicity']} (Holm-adjusted p). The two-level bootstrap resamples seeds, then "
            "rows.</sub>")


def screening_block(config: Config) -> str:
    """The screen: one run each on the selection rows against the same-seed baseline, and the gain on validation."""
    document = results.load_result(config, "distillation")
    grid, where = pd.DataFrame(document["grid"]), document.get("selection_rows", "validation")
    screen = pd.DataFrame({
        "student": grid["student"], "BERT teacher": grid["bert_teacher"].map({True: "yes", False: "no"}),
        f"{where} acc. (%)": (grid["accuracy"] * 100).map("{:.2f}".format),
        "Δ vs baseline (points) [95% CI over rows]": [
            f"{r.gain_points:+.2f} [{r.ci_low_points:+.2f}, {r.ci_high_points:+.2f}]" for r in grid.itertuples()],
        "Δ on validation": grid["validation_gain_points"].map("{:+.2f}".format),
        "screen": grid["screening"], "steps vs baseline": grid["steps_vs_baseline"].map("{:.1f}×".format),
    })
    settings, bias = document["provenance"]["config"], document.get("selection_bias")
    measured = (f" Choosing on validation, which the teacher trained on, would favour the teacher-using runs by "
                f"{bias['bias_points']:+.2f} points on average (their Δ moves {bias['teacher_using_points']:+.2f}, the "
                f"others' {bias['no_teacher_points']:+.2f})." if bias and where != "validation" else "")
    return (f"Screening on the {where} rows (one run each, selection seed {settings['selection_seed']}, "
            f"{settings['selection_max_train_rows'] or 'all'} training rows): it chose `{document['chosen']}`. One "
            f"seed screens; it does not decide.{measured}\n\n{markdown_table(screen)}")


def speed_block(config: Config) -> str | None:
    """Accuracy, calibration, size and speed of teacher, chosen student and baseline (notebook 05's comparison)."""
    if not results.has_result(config, "analysis"):
        return None
    from helpers.notebook import readable

    document = results.load_result(config, "analysis")
    names = {"model": "model", "seeds": "seeds", "accuracy_mean": "accuracy", "accuracy_std": "accuracy std",
             "macro_f1_mean": "macro-f1", "agreement_with_teacher": "agreement w/ teacher", "ece": "ece", "nll": "NLL",
             "parameters_m": "params (M)", "size_on_disk_mb": "size (MB)", "latency_batch1_ms": "latency b=1 (ms)",
             "throughput_batch32_rows_per_s": "rows/s b=32", "speedup_vs_teacher_batch32": "speed-up b=32"}
    table = pd.DataFrame(document["comparison"])[list(names)].rename(columns=names)
    return (f"{markdown_table(readable(table))}\n\n<sub>Means and standard deviations over seeds; speed: one "
            f"measurement on {document['speed_device']}, every model on the students' test inputs (the baseline "
            f"shares the chosen student's architecture). {provenance_line(document)}.</sub>")


def decoder_block(config: Config) -> str | None:
    """The decoder-only student: its loss plot, ``decoder.report``'s section and the behaviour change measured."""
    if not results.has_result(config, "decoder_student"):
        return None
    from decoder import report as decoder_report

    document = results.load_result(config, "decoder_student")
    figure = f"figures/{config.profile}/decoder_student_loss.png"
    plot = f"![decoder student loss]({figure})\n\n" if (PROJECT_ROOT / figure).exists() else ""
    return f"{plot}{decoder_report.decoder_markdown(document, examples=3)}\n\n{decoder_behaviour(document)}"


def decoder_behaviour(document: dict) -> str:
    """The shown run's rank among all runs, the share of scored test answers that are one label word and an end of
    sequence, before and after, and each label's share of the answers before and after."""
    runs, after = sorted(document["runs"], key=lambda run: run["accuracy"]), document["after"]
    compliance = document["format_compliance"]
    rank = next(i for i, run in enumerate(runs, 1) if run["arm"] == after["arm"] and run["seed"] == after["seed"])
    arms = ", ".join(f"{arm} {share:.0%}" for arm, share in compliance["arms"].items())
    shares = compliance["label_shares"]
    moves = ", ".join(f"{label} {shares['before']['scored'][label]:.0%} → {shares[after['arm']]['scored'][label]:.0%}"
                      for label in document["before"]["per_class"])
    return (f"**What changed, measured on all {compliance['rows']:,} scored test answers.** Answers that are "
            f"{compliance['definition']}: {compliance['before']:.0%} before fine-tuning; after, mean over seeds: "
            f"{arms}. Each label's share of the scored answers, before → after ({after['arm']}, mean over seeds): "
            f"{moves}. The \"after\" examples come from {after.get('rule', 'the run ' + after['arm'])}: run {rank} of "
            f"{len(runs)} by test accuracy (1 = worst).")


def compute_block(config: Config) -> str:
    """Minutes of training and teacher passes per notebook, summed from the results files."""
    rows = [f"| {name} | {runs} | {seconds / 60:.1f} |" for name, seconds, runs in compute_seconds(config)]
    teacher = results.load_result(config, "teacher")
    return "\n".join(["| notebook | runs | minutes |", "|---|---|---|", *rows]) + (
        f"\n\n<sub>Wall time of each run as its results file recorded it ({provenance_line(teacher)}); model loading "
        "and evaluation outside training are not counted.</sub>")


def benchmark_block(config: Config) -> str | None:
    """The speed benchmark's ratios, one table per hardware it ran on (results/benchmark/*.json)."""
    files = sorted((PROJECT_ROOT / "results" / "benchmark").glob("*.json"))
    if not files:
        return None
    from benchmark import run

    parts = []
    for path in files:
        document = results.load_result(path)
        table = run.summary_table(document)
        # One number per fact: the int8 student on trained checkpoints is the report's own measurement (notebook 05,
        # question 6); the benchmark's rows of it are in its file.
        table = table[~table.iloc[:, 0].astype(str).str.startswith("trained checkpoints")]
        for column in ("ours / student", "reference / teacher", "ratio"):
            table[column] = table[column].map(lambda v: f"{v:,.3g}" if isinstance(v, int | float) else v)
        load = document["load_average_1min"]
        parts.append(f"`{path.name}` ({provenance_line(document)}; {document['threads']} threads, 1-min load average "
                     f"{load['before']:.1f} → {load['after']:.1f})\n\n{markdown_table(table)}")
    return "\n\n".join(parts)


def answer_figure(config: Config) -> Path | None:
    """The first screen's picture (the profile's ``answer.png``): every final comparison with its 95% interval."""
    if not complete(config):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    headline = pd.DataFrame(results.load_result(config, "distillation")["headline"]).iloc[::-1]
    figure, axis = plt.subplots(figsize=(7.5, 0.45 * len(headline) + 1.0))
    for y, row in enumerate(headline.itertuples()):
        colour = "#1f6fb4" if row.comparison == headline["comparison"].iloc[-1] else "#555555"
        axis.plot([row.ci_low_points, row.ci_high_points], [y, y], color=colour, linewidth=2)
        axis.plot(row.difference_points, y, "o", color=colour)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_yticks(range(len(headline)), headline["comparison"])
    axis.set_xlabel("difference in test accuracy (points), 95% interval over seeds")
    axis.set_title(f"{config.profile}: the primary comparison (blue) and the others", fontsize=10)
    figure.tight_layout()
    path = Path(config.figures_dir) / "answer.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# Every block but benchmark and cost (which read no profile's results) says "pending" until the report is complete.
BLOCKS: dict[str, Callable[[Config], str | None]] = {
    "summary": summary_block, "distillation": distillation_block, "screening": screening_block,
    "interview": interview_block, "figures": figures_block, "more_figures": lambda c: figures_block(c, more=True),
    "speed": speed_block, "decoder": decoder_block, "compute": compute_block,
    "benchmark": benchmark_block, "cost": cost_block,
}


def foreign_figure_links(text: str, profile: str) -> list[str]:
    """Figure links in ``text`` that point into another profile's figures folder than ``profile``'s."""
    return [link for link, folder in re.findall(r"(figures/([\w-]+)/[\w.-]+\.png)", text) if folder != profile]


def render(text: str, config: Config) -> str:
    """``text`` with every generated block rewritten from ``config``'s results, which must belong together."""
    ready = complete(config, strict=True)
    for name, build in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(\n<!-- /generated:{name} -->)", re.DOTALL)
        if not pattern.search(text):
            continue
        content = build(config) if ready or name in ("benchmark", "cost") else None
        if content is None:
            content = (f"*No complete `{config.profile}` results of the current code yet: run the notebooks "
                       "(`make report`).*")
        text = pattern.sub(lambda m, c=content: m.group(1) + c + m.group(2), text)
    return text
