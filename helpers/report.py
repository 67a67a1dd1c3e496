"""The README's numbers, generated from the results files.

The README holds blocks between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``; ``python -m
helpers.report`` rewrites each from the results of the report's profile (``full`` where its results exist, else
``offline``), and a test fails when the README and the results disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import results
from helpers.config import PROJECT_ROOT, Config, get_config

README = PROJECT_ROOT / "README.md"


def report_profile() -> str:
    """The profile whose results the README shows: full once anyone has run it, else offline."""
    return "full" if (PROJECT_ROOT / "results" / "full" / "teacher.json").exists() else "offline"


def _mean_std(values: list[float], scale: float = 100.0) -> str:
    values = np.asarray(values) * scale
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _provenance_line(document: dict) -> str:
    p = document["provenance"]
    hardware = p["hardware"]["gpu"] or f"CPU ({p['hardware']['cpu_count']} cores)"
    return (f"profile `{p['profile']}`, {hardware}, torch {p['versions']['torch']}, "
            f"transformers {p['versions']['transformers']}, {p['date'][:10]}")


def student_runs(config: Config, name: str) -> list[dict]:
    """Every seed's results document of the student ``name`` (e.g. baseline)."""
    folder = Path(config.results_dir) / "students"
    return [results.load_result(path) for path in sorted(folder.glob(f"{name}-seed*.json"))]


def headline_table(config: Config) -> pd.DataFrame:
    """Teacher and students on the test split: accuracy and macro-F1 (mean ± std over seeds), parameters."""
    teacher = results.load_result(config, "teacher")
    rows = [{"model": f"teacher: {config.teacher_name}", "seeds": "—",
             "test accuracy (%)": _mean_std([teacher["test"]["accuracy"]]),
             "macro-F1 (%)": _mean_std([teacher["test"]["macro_f1"]]),
             "parameters (M)": f"{teacher['parameters'] / 1e6:.1f}"}]
    students = [("baseline student: cross-entropy only", "baseline")]
    if results.has_result(config, "distillation"):
        chosen = results.load_result(config, "distillation")["chosen"]
        students.append((f"distilled student: {chosen}", chosen))
    for label, name in students:
        runs = student_runs(config, name)
        if not runs:
            continue
        rows.append({"model": label, "seeds": len(runs),
                     "test accuracy (%)": _mean_std([r["test"]["accuracy"] for r in runs]),
                     "macro-F1 (%)": _mean_std([r["test"]["macro_f1"] for r in runs]),
                     "parameters (M)": f"{runs[0]['parameters'] / 1e6:.1f}"})
    return pd.DataFrame(rows)


def results_block(config: Config) -> str | None:
    if not results.has_result(config, "teacher"):
        return None
    teacher = results.load_result(config, "teacher")
    return (f"{_markdown(headline_table(config))}\n\n"
            f"<sub>Test split: {teacher['test']['rows']:,} rows. Generated from `results/{config.profile}/` "
            f"({_provenance_line(teacher)}) by `python -m helpers.report`.</sub>")


def distillation_block(config: Config) -> str | None:
    """The ablation (validation picks, test reports) and the chosen student vs the baseline over seeds."""
    if not results.has_result(config, "distillation"):
        return None
    document = results.load_result(config, "distillation")
    table = pd.DataFrame(document["ablation"])
    shown = pd.DataFrame({
        "student": table["student"],
        "validation acc. (%)": (table["validation_accuracy"] * 100).map("{:.2f}".format),
        "test acc. (%)": (table["test_accuracy"] * 100).map("{:.2f}".format),
        "Δ validation (points)": table["validation_gain_points"].map("{:+.2f}".format),
        "Δ test (points)": table["test_gain_points"].map("{:+.2f}".format),
        "steps vs baseline": table["steps_vs_baseline"].map("{:.1f}×".format),
        "teacher at every step": table["teacher_every_step"].map({True: "yes", False: "no (cached logits)"}),
    })
    pooled = document["comparison"]["pooled"]
    seeds = len(document["seeds"])
    verdict = ("significantly better than" if pooled["ci_low"] > 0 and pooled["p_value"] < 0.05 else
               "significantly worse than" if pooled["ci_high"] < 0 and pooled["p_value"] < 0.05 else
               "not significantly different from")
    per_seed = "; ".join(f"seed {pair['seed']}: {pair['difference'] * 100:+.2f} points "
                         f"[{pair['ci_low'] * 100:+.2f}, {pair['ci_high'] * 100:+.2f}], "
                         f"McNemar p = {pair['p_value']:.3g}" for pair in document["comparison"]["per_seed"])
    rows = results.load_result(config, "teacher")["test"]["rows"]
    caution = (f"Per seed (each seed's pair of students on the same {rows:,} test rows): "
               f"{per_seed}. The pooled test counts the same test rows once per seed as if they were independent, "
               "so read it as an upper bound on the evidence.")
    return (f"{_markdown(shown)}\n\n"
            f"**Chosen on validation: `{document['chosen']}`.** Over {seeds} seeds it is {verdict} the baseline on the "
            f"test split: {pooled['difference'] * 100:+.2f} points (95% paired bootstrap interval "
            f"{pooled['ci_low'] * 100:+.2f} to {pooled['ci_high'] * 100:+.2f}; McNemar p = {pooled['p_value']:.3g}; "
            f"{pooled['only_a_correct']:,} rows only it got right, {pooled['only_b_correct']:,} only the baseline). "
            f"{caution}\n\n"
            f"<sub>Baseline row: mean of the baseline's seeds; other rows: seed {config.seed}. "
            f"{_provenance_line(document)}.</sub>")


def speed_block(config: Config) -> str | None:
    """Latency, throughput, size and calibration of the three checkpoints, from notebook 05."""
    if not results.has_result(config, "analysis"):
        return None
    document = results.load_result(config, "analysis")
    table = pd.DataFrame(document["comparison"])
    shown = pd.DataFrame({
        "model": table["model"],
        "accuracy (%) [95% CI]": [f"{r.accuracy_mean * 100:.2f} [{r.accuracy_ci_low * 100:.2f}, "
                                  f"{r.accuracy_ci_high * 100:.2f}]" for r in table.itertuples()],
        "macro-F1 (%)": (table["macro_f1_mean"] * 100).map("{:.2f}".format),
        "agreement w/ teacher": (table["agreement_with_teacher"] * 100).map("{:.1f}%".format),
        "ECE": table["ece"].map("{:.3f}".format),
        "NLL": table["nll"].map("{:.3f}".format),
        "params (M)": table["parameters_m"].map("{:.1f}".format),
        "size (MB)": table["size_on_disk_mb"].map("{:.0f}".format),
        "latency b=1 (ms)": table["latency_batch1_ms"].map("{:.1f}".format),
        "rows/s b=32": table["throughput_batch32_rows_per_s"].map("{:.0f}".format),
        "speed-up b=32": table["speedup_vs_teacher_batch32"].map("{:.2f}×".format),
    })
    return (f"{_markdown(shown)}\n\n<sub>Accuracy interval: bootstrap over test rows (first seed); ECE/NLL: mean over "
            f"seeds; speed measured on {document['speed_device'].upper()} one model after another on real test "
            f"texts. {_provenance_line(document)}.</sub>")


def decoder_block(config: Config) -> str | None:
    """The decoder-only student's accuracy before and after, and four of its ten fixed prompts."""
    if not results.has_result(config, "decoder_student"):
        return None
    document = results.load_result(config, "decoder_student")
    before, after = document["before"], document["after"]
    lines = [
        "| | accuracy (%) | macro-F1 (%) |", "|---|---|---|",
        f"| before fine-tuning | {before['accuracy'] * 100:.1f} | {before['macro_f1'] * 100:.1f} |",
        f"| after fine-tuning | {after['accuracy'] * 100:.1f} | {after['macro_f1'] * 100:.1f} |",
    ]
    examples = document["examples"][:4]
    shown = pd.DataFrame({
        "article": [e["text"][:60] + "…" for e in examples], "gold": [e["gold"] for e in examples],
        "before: generates → scored class": [f"`{e['before']['generation']!r}` → {e['before']['prediction']}"
                                             for e in examples],
        "after: generates → scored class": [f"`{e['after']['generation']!r}` → {e['after']['prediction']}"
                                            for e in examples],
    })
    return ("\n".join(lines) + f"\n\n{_markdown(shown)}\n\n<sub>{document['model']} on {before['rows']:,} "
            f"stratified test rows; {_provenance_line(document)}.</sub>")


def headline_block(config: Config) -> str | None:
    """Two generated sentences: how the teacher compares with the baseline, and what distillation changed."""
    if not (results.has_result(config, "teacher") and results.has_result(config, "distillation")):
        return None
    teacher = results.load_result(config, "teacher")["test"]["accuracy"]
    baseline = np.mean([r["test"]["accuracy"] for r in student_runs(config, "baseline")])
    document = results.load_result(config, "distillation")
    pooled = document["comparison"]["pooled"]
    chosen = np.mean(document["comparison"]["chosen_accuracy"])
    relation = "stronger" if teacher > baseline else "weaker"
    return (f"In the `{config.profile}` profile the teacher ({teacher * 100:.2f}%) is {relation} than the plain "
            f"fine-tuned student ({baseline * 100:.2f}%, mean of {len(document['seeds'])} seeds) by "
            f"{abs(teacher - baseline) * 100:.2f} points. The best distillation setting on validation, "
            f"`{document['chosen']}`, reaches {chosen * 100:.2f}%: {pooled['difference'] * 100:+.2f} points over the "
            f"baseline (95% CI {pooled['ci_low'] * 100:+.2f} to {pooled['ci_high'] * 100:+.2f}, McNemar "
            f"p = {pooled['p_value']:.3g}, pooled over seeds; per seed: "
            + ", ".join(f"{pair['difference'] * 100:+.2f} (p = {pair['p_value']:.2g})"
                        for pair in document["comparison"]["per_seed"])
            + "). It is the variant that gives the student text it has no labels for — train rows the teacher labels "
              "softly — not a better loss on the labelled rows.")


def compute_block(config: Config) -> str | None:
    """Minutes of training and teacher passes per notebook, summed from the results files."""
    if not results.has_result(config, "teacher"):
        return None
    teacher = results.load_result(config, "teacher")
    teacher_seconds = sum(p.get("first_pass_seconds", p.get("seconds", 0.0)) for p in teacher["logit_passes"])
    if results.has_result(config, "teacher_training"):
        teacher_seconds += results.load_result(config, "teacher_training")["train_seconds"]
    students = [results.load_result(path) for path in sorted((Path(config.results_dir) / "students").glob("*.json"))]
    rows = [("02 · teacher (fine-tuning here, logit passes)", teacher_seconds, 1),
            ("03 · baseline students", sum(r["train_seconds"] for r in students if r["spec"]["name"] == "baseline"),
             sum(r["spec"]["name"] == "baseline" for r in students)),
            ("04 · distilled students", sum(r["train_seconds"] for r in students if r["spec"]["name"] != "baseline"),
             sum(r["spec"]["name"] != "baseline" for r in students))]
    if results.has_result(config, "decoder_student"):
        decoder = results.load_result(config, "decoder_student")
        rows.append(("06 · decoder student (training + scoring)", decoder["wall_seconds"]["total"], 1))
    lines = ["| notebook | runs | minutes |", "|---|---|---|"]
    lines += [f"| {name} | {runs} | {seconds / 60:.1f} |" for name, seconds, runs in rows]
    return ("\n".join(lines) + f"\n\n<sub>{_provenance_line(teacher)}; wall time on a machine whose 2 cores were "
            "at times shared with other jobs, so treat these as upper bounds; the benchmark measures speed side by "
            "side.</sub>")


def benchmark_block(config: Config) -> str | None:
    """The speed benchmark's ratios, one table per hardware it ran on (results/benchmark/*.json)."""
    files = sorted((PROJECT_ROOT / "results" / "benchmark").glob("*.json"))
    if not files:
        return None
    from helpers import benchmark

    parts = []
    for path in files:
        document = results.load_result(path)
        table = benchmark.summary_table(document)
        for column in ("ours / student", "reference / teacher", "ratio"):
            table[column] = table[column].map(lambda v: f"{v:,.3g}" if isinstance(v, int | float) else v)
        load = document.get("load_average_1min", {})
        before, after = load.get("before", float("nan")), load.get("after", float("nan"))
        parts.append(f"`{path.name}` ({_provenance_line(document)}; {document.get('threads', '?')} threads, "
                     f"1-min load average {before:.1f} → {after:.1f})\n\n{_markdown(table)}")
    return "\n\n".join(parts)


BLOCKS: dict[str, Callable[[Config], str | None]] = {
    "headline": headline_block, "results": results_block, "distillation": distillation_block,
    "speed": speed_block, "decoder": decoder_block, "compute": compute_block,
    "benchmark": benchmark_block,
}


def render(text: str, config: Config) -> str:
    """``text`` with every generated block replaced by its content from ``config``'s results."""
    for name, build in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(\n<!-- /generated:{name} -->)", re.DOTALL)
        if not pattern.search(text):
            continue
        content = build(config)
        if content is None:
            content = f"*No `{config.profile}` results yet: run the notebooks (`make report`).*"
        text = pattern.sub(lambda m, c=content: m.group(1) + c + m.group(2), text)
    return text


def main() -> None:
    config = get_config(report_profile())
    README.write_text(render(README.read_text(), config))
    print(f"README.md regenerated from results/{config.profile}/")


if __name__ == "__main__":
    main()
