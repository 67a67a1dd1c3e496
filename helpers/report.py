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


BLOCKS: dict[str, Callable[[Config], str | None]] = {"results": results_block}


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
