"""The README's numbers, generated from the results files.

The README holds blocks between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``; ``python -m
helpers.report`` rewrites each from the results of the report's profile (``full`` where its results exist, else
``cpu``), and a test fails when the README and the results disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd

from helpers import results
from helpers.config import PROJECT_ROOT, Config, get_config
from helpers.report_data import (  # noqa: F401  (re-exported: the tests and the notebooks read them from here)
    README,
    REPORT_PROFILES,
    complete,
    markdown_table,
    mean_std,
    points,
    provenance_line,
    report_documents,
    report_profile,
    student_runs,
)
from helpers.report_prose import compute_seconds, figures_block, headline_block, interview_block, summary_block


def headline_table(config: Config) -> pd.DataFrame:
    """Teacher and students on the test split: accuracy and macro-F1 (mean ± std over seeds), parameters."""
    teacher = results.load_result(config, "teacher")
    rows = [{"model": f"teacher: {config.teacher_name}", "seeds": "—",
             "test accuracy (%)": mean_std([teacher["test"]["accuracy"]]),
             "macro-F1 (%)": mean_std([teacher["test"]["macro_f1"]]),
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
                     "test accuracy (%)": mean_std([r["test"]["accuracy"] for r in runs]),
                     "macro-F1 (%)": mean_std([r["test"]["macro_f1"] for r in runs]),
                     "parameters (M)": f"{runs[0]['parameters'] / 1e6:.1f}"})
    return pd.DataFrame(rows)


def results_block(config: Config) -> str | None:
    if not results.has_result(config, "teacher"):
        return None
    teacher = results.load_result(config, "teacher")
    return (f"{markdown_table(headline_table(config))}\n\n"
            f"<sub>Test split: {teacher['test']['rows']:,} rows. Generated from `results/{config.profile}/` "
            f"({provenance_line(teacher)}) by `python -m helpers.report`.</sub>")


def distillation_block(config: Config) -> str | None:
    """The grid on validation (selection budget) and the final comparison over seeds on test."""
    if not complete(config):
        return None
    document = results.load_result(config, "distillation")
    grid = pd.DataFrame(document["grid"])
    shown = pd.DataFrame({
        "student": grid["student"], "BERT teacher": grid["bert_teacher"].map({True: "yes", False: "no"}),
        "validation acc. (%)": (grid["validation_accuracy"] * 100).map("{:.2f}".format),
        "Δ vs baseline (points) [95% CI]": [f"{r.gain_points:+.2f} [{r.ci_low_points:+.2f}, {r.ci_high_points:+.2f}]"
                                             for r in grid.itertuples()],
        "verdict": grid["verdict"], "steps vs baseline": grid["steps_vs_baseline"].map("{:.1f}×".format),
    })
    headline = pd.DataFrame(document["headline"])
    final = pd.DataFrame({
        "comparison (test, every seed)": headline["comparison"],
        "Δ (points)": headline["difference_points"].map("{:+.2f}".format),
        "95% interval (seeds × rows)": [f"[{r.ci_low_points:+.2f}, {r.ci_high_points:+.2f}]"
                                        for r in headline.itertuples()],
        "p": headline["p_value"].map("{:.3g}".format), "verdict": headline["verdict"],
    })
    return (f"{markdown_table(shown)}\n\n{markdown_table(final)}\n\n<sub>Grid: one run each (seed {config.seed}) on "
            f"validation, paired with the baseline of the same seed. Final: {len(document['seeds'])} seeds each; the "
            "interval is a "
            f"two-level bootstrap (seeds, then test rows). {provenance_line(document)}.</sub>")


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
    return (f"{markdown_table(shown)}\n\n<sub>Accuracy interval: bootstrap over test rows (first seed); ECE/NLL: "
            f"mean over seeds; speed measured on {document['speed_device']} one model after another on real "
            "test "
            f"texts. {provenance_line(document)}.</sub>")


def decoder_block(config: Config) -> str | None:
    """The decoder-only student with and without the teacher over seeds, and four of its fixed prompts before → after
    (rendered by ``helpers.lm_student.decoder_markdown``)."""
    if not results.has_result(config, "decoder_student"):
        return None
    from helpers import lm_student

    document = results.load_result(config, "decoder_student")
    return lm_student.decoder_markdown(document)


def compute_block(config: Config) -> str | None:
    """Minutes of training and teacher passes per notebook, summed from the results files."""
    if not results.has_result(config, "teacher"):
        return None
    lines = ["| notebook | runs | minutes |", "|---|---|---|"]
    lines += [f"| {name} | {runs} | {seconds / 60:.1f} |" for name, seconds, runs in compute_seconds(config)]
    teacher = results.load_result(config, "teacher")
    return ("\n".join(lines) + f"\n\n<sub>Wall time of each run as its results file recorded it "
            f"({provenance_line(teacher)}); model loading and evaluation outside training are not counted.</sub>")


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
        parts.append(f"`{path.name}` ({provenance_line(document)}; {document.get('threads', '?')} threads, "
                     f"1-min load average {before:.1f} → {after:.1f})\n\n{markdown_table(table)}")
    return "\n\n".join(parts)


BLOCKS: dict[str, Callable[[Config], str | None]] = {
    "summary": summary_block, "headline": headline_block, "results": results_block,
    "distillation": distillation_block, "interview": interview_block, "figures": figures_block,
    "speed": speed_block, "decoder": decoder_block, "compute": compute_block,
    "benchmark": benchmark_block,
}


def foreign_figure_links(text: str, profile: str) -> list[str]:
    """Figure links in ``text`` that point into another profile's figures folder than ``profile``'s."""
    return [link for link, folder in re.findall(r"(figures/([\w-]+)/[\w.-]+\.png)", text) if folder != profile]


def render(text: str, config: Config) -> str:
    """``text`` with every generated block replaced by its content from ``config``'s results; every block says
    "pending" until the profile's report is complete, and results that do not belong together are refused."""
    ready = complete(config, strict=True)
    for name, build in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(\n<!-- /generated:{name} -->)", re.DOTALL)
        if not pattern.search(text):
            continue
        content = build(config) if ready or name == "benchmark" else None
        if content is None:
            content = (f"*No complete `{config.profile}` results of the current code yet: run the notebooks "
                       "(`make report`).*")
        text = pattern.sub(lambda m, c=content: m.group(1) + c + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Regenerate the README's numbers from one profile's results.")
    parser.add_argument("--profile", choices=REPORT_PROFILES, help="default: the first complete of full, cpu")
    config = get_config(report_profile(parser.parse_args(argv).profile))
    README.write_text(render(README.read_text(), config))
    print(f"README.md regenerated from results/{config.profile}/")


if __name__ == "__main__":
    main()
