"""The results documents the README reads: which profile's, whether they are complete and belong together, the
compute they record, and the number formats every block shares."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers import evaluate, results
from helpers.config import PROJECT_ROOT, Config, get_config

README = PROJECT_ROOT / "README.md"
REPORT_PROFILES = ("full", "cpu")  # in order of preference: the brief's models first


def complete(config: Config, strict: bool = False) -> bool:
    """Whether ``config``'s profile has a whole report of the current schema (a partial run never counts).
    ``strict``: results that do not belong together raise MixedResultsError instead of counting as incomplete."""
    try:
        return all(name in report_documents(config) for name in ("teacher", "baseline", "distillation"))
    except (FileNotFoundError, KeyError, results.MixedResultsError) as error:
        if strict and isinstance(error, results.MixedResultsError):
            raise
        return False


def report_profile(requested: str | None = None) -> str:
    """The profile asked for, else the first of full and cpu with complete results, else cpu (pending blocks)."""
    return requested or next((name for name in REPORT_PROFILES if complete(get_config(name))), "cpu")


def report_documents(config: Config) -> dict[str, dict]:
    """Every results document the README reads, by name, once they belong together (one profile, schema, code hash
    and data fingerprint; commits may differ); else MixedResultsError naming the odd file out."""
    documents = {name: results.load_result(config, name) for name in ("data", "teacher", "baseline", "distillation",
                                                                       "analysis") if results.has_result(config, name)}
    recorded = documents.get("distillation", {}).get("runs", {})
    if "baseline" in documents:
        recorded = {**recorded, "baseline": documents["baseline"]["runs"]}
    documents.update({run: results.load_result(config, run) for runs in recorded.values() for run in runs})
    # Belonging together first: it names a file of older code (no code hash) before the schema check would.
    results.check_consistent(documents)
    if any(d["provenance"].get("schema") != results.SCHEMA_VERSION for d in documents.values()):
        raise results.MixedResultsError(f"{config.results_dir} holds results of another schema version: regenerate "
                                        "them with make report.")
    if documents and results.has_result(config, "decoder_student"):
        # The decoder student reads its own rows (its provenance has no data fingerprint): same code, same profile.
        decoder = results.load_result(config, "decoder_student")
        results.check_consistent({**dict([next(iter(documents.items()))]), "decoder_student": decoder},
                                 ("profile", "schema", "code_hash"))
        documents["decoder_student"] = decoder
    return documents


def mean_std(values: list[float]) -> str:
    """Fractions as percentages: the mean, and ± the standard deviation where there is more than one."""
    mean, std = evaluate.mean_std([value * 100 for value in values])
    return f"{mean:.2f}" if len(values) == 1 else f"{mean:.2f} ± {std:.2f}"


def hardware(document: dict) -> str:
    """The hardware a document was produced on, in words."""
    machine = document["provenance"]["hardware"]
    return machine["gpu"] or f"CPU ({machine['cpu_count']} cores)"


def provenance_line(document: dict) -> str:
    """Profile, hardware, library versions, code (hash, then the commit it was run at) and date of a document."""
    p = document["provenance"]
    code = f"code `{p['code_hash'][:8]}`" if p.get("code_hash") else "code hash not recorded"  # older files
    commit = f"commit `{p['commit'][:7]}`" if p.get("commit") else "commit not recorded"
    return (f"profile `{p['profile']}`, {hardware(document)}, torch {p['versions']['torch']}, "
            f"transformers {p['versions']['transformers']}, {code} ({commit}), {p['date'][:10]}")


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a GitHub Markdown table (its index left out)."""
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in [frame.columns, *frame.itertuples(index=False)]]
    return "\n".join([lines[0], "|" + "---|" * len(frame.columns), *lines[1:]])


def teacher_pass_seconds(teacher: dict) -> float:
    """Seconds of the teacher's logit passes when first computed (a pass served from cache records its first one)."""
    return sum(p.get("first_pass_seconds", p.get("seconds", 0.0)) for p in teacher["logit_passes"])


def compute_seconds(config: Config) -> list[tuple[str, float, int]]:
    """(notebook, seconds, runs) of training and teacher passes, summed over the results files of this code version
    (older runs left in the folders do not count)."""
    documents = report_documents(config)
    teacher = documents["teacher"]
    code = teacher["provenance"].get("code_hash")
    teachers, students = ([d for path in sorted((Path(config.results_dir) / folder).glob("*.json"))
                           if (d := results.load_result(path))["provenance"].get("code_hash") == code]
                          for folder in ("teachers", "students"))
    baseline = [r for r in students if r["spec"]["name"] == "baseline"]
    others = [r for r in students if r["spec"]["name"] != "baseline"]
    rows = [("02 · teacher (fine-tuning every recipe tried, logit passes)",
             teacher_pass_seconds(teacher) + sum(t["train_seconds"] for t in teachers), len(teachers)),
            ("03 · baseline students", sum(r["train_seconds"] for r in baseline), len(baseline)),
            ("04 · distilled students, twins and controls", sum(r["train_seconds"] for r in others), len(others))]
    if "decoder_student" in documents:
        rows.append(("06 · decoder student (training + scoring)", documents["decoder_student"]["wall_seconds"]["total"],
                     1))
    return rows
