"""The results documents the README reads: which profile's, whether they are complete and belong together, the
compute they record and the `full` run's cost derived from it, and the few number formats every block shares."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from helpers import evaluate, experiments, results
from helpers.config import PROJECT_ROOT, Config, get_config

README = PROJECT_ROOT / "README.md"
REPORT_PROFILES = ("full", "cpu")  # in order of preference: the brief's models first
REQUIRED = ("teacher", "baseline", "distillation")  # the results without which there is no report


def complete(config: Config, strict: bool = False) -> bool:
    """Whether ``config``'s profile has a whole report of the current schema (a partial run never counts).
    ``strict``: results that do not belong together raise MixedResultsError instead of counting as incomplete."""
    try:
        documents = report_documents(config)
    except (FileNotFoundError, KeyError):
        return False
    except results.MixedResultsError:
        if strict:
            raise
        return False
    return all(name in documents for name in REQUIRED)


def report_profile(requested: str | None = None) -> str:
    """The profile whose results the README shows: the one asked for, else the first of full and cpu whose results
    are complete and consistent, else cpu (whose blocks then say that results are pending)."""
    if requested:
        return requested
    return next((name for name in REPORT_PROFILES if complete(get_config(name))), "cpu")


_LOADED: dict[str, dict[str, dict]] | None = None  # results folder -> its documents, while a render runs


@contextlib.contextmanager
def loaded_once() -> Iterator[None]:
    """Within this block every ``report_documents`` of one results folder reads and checks the files once."""
    global _LOADED
    _LOADED = {}
    try:
        yield
    finally:
        _LOADED = None


def report_documents(config: Config) -> dict[str, dict]:
    """Every results document the README reads, by name, after checking that they belong together (one profile,
    schema, code hash and data fingerprint; commits may differ); raises MixedResultsError naming the odd file out."""
    if _LOADED is not None:
        if config.results_dir not in _LOADED:
            _LOADED[config.results_dir] = _read_documents(config)
        return _LOADED[config.results_dir]
    return _read_documents(config)


def _read_documents(config: Config) -> dict[str, dict]:
    documents = {}
    for name in ("data", "teacher", "baseline", "distillation", "analysis"):
        if results.has_result(config, name):
            documents[name] = results.load_result(config, name)
    recorded = documents.get("distillation", {}).get("runs", {})
    if "baseline" in documents:
        recorded = {**recorded, "baseline": documents["baseline"]["runs"]}
    for runs in recorded.values():
        for run in runs:
            documents[run] = results.load_result(config, run)
    # Belonging together first: it names a file of older code (no code hash) before the schema check would.
    results.check_consistent(documents)
    if any(d["provenance"].get("schema") != results.SCHEMA_VERSION for d in documents.values()):
        raise results.MixedResultsError(f"{config.results_dir} holds results of another schema version: regenerate "
                                        "them with make report.")
    if documents and results.has_result(config, "decoder_student"):
        # The decoder student reads its own rows (its provenance has no data fingerprint): same code, same profile.
        decoder = {"decoder_student": results.load_result(config, "decoder_student")}
        results.check_consistent({**dict([next(iter(documents.items()))]), **decoder},
                                 ("profile", "schema", "code_hash"))
        documents.update(decoder)
    return documents


def student_runs(config: Config, name: str) -> list[dict]:
    """The final runs (one per seed) of student ``name`` as notebook 04 recorded them."""
    documents = report_documents(config)
    names = documents["baseline"]["runs"] if name == "baseline" else documents["distillation"]["runs"][name]
    return [documents[run] for run in names]


def mean_std(values: list[float], scale: float = 100.0) -> str:
    mean, std = evaluate.mean_std(list(np.asarray(values) * scale))
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
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


# ---------------------------------------------------------------------------------------------------- compute
def teacher_pass_seconds(teacher: dict) -> float:
    """Seconds of the teacher's logit passes when first computed (a pass served from cache records its first one)."""
    return sum(p.get("first_pass_seconds", p.get("seconds", 0.0)) for p in teacher["logit_passes"])


def _of_this_code(config: Config, folder: str, code_hash: str | None) -> list[dict]:
    """The results documents in ``results/<profile>/<folder>/`` that this code version wrote (older runs left in the
    folder do not count)."""
    return [document for path in sorted((Path(config.results_dir) / folder).glob("*.json"))
            if (document := results.load_result(path))["provenance"].get("code_hash") == code_hash]


def compute_seconds(config: Config) -> list[tuple[str, float, int]]:
    """(notebook, seconds, runs) of training and teacher passes, summed from the results files."""
    documents = report_documents(config)
    teacher = documents["teacher"]
    code = teacher["provenance"].get("code_hash")
    teachers = _of_this_code(config, "teachers", code)
    students = _of_this_code(config, "students", code)
    rows = [("02 · teacher (fine-tuning every recipe tried, logit passes)",
             teacher_pass_seconds(teacher) + sum(t["train_seconds"] for t in teachers), len(teachers)),
            ("03 · baseline students", sum(r["train_seconds"] for r in students if r["spec"]["name"] == "baseline"),
             sum(r["spec"]["name"] == "baseline" for r in students)),
            ("04 · distilled students, twins and controls",
             sum(r["train_seconds"] for r in students if r["spec"]["name"] != "baseline"),
             sum(r["spec"]["name"] != "baseline" for r in students))]
    if "decoder_student" in documents:
        rows.append(("06 · decoder student (training + scoring)",
                     documents["decoder_student"]["wall_seconds"]["total"], 1))
    return rows


def full_cost(config: Config) -> dict[str, dict]:
    """The `full` report's GPU time and cost per quoted GPU: projected from a GPU benchmark's measured throughput
    where one exists, else estimated from FLOPs at an assumed share of the GPU's quoted peak (a range)."""
    from benchmark import projection

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
    a100 = _a100_estimate(runs, facts, tokens, full.lm_max_length)
    ratios = facts["gpu_speed_ratios_vs_a100"]
    for name, price in facts["gpu_hourly_usd"].items():
        if name.startswith("_"):
            continue
        model = next(word for word in name.split() if any(ch.isdigit() for ch in word))
        measured = _measured_throughput(model)
        if measured is not None:
            projected = projection.project_runtime(runs, measured, price["usd_per_hour"])
            costs[name] = {"hours": (projected["total_hours"],) * 2, "usd": (projected["cost"],) * 2,
                           "measured": True, "usd_per_hour": price["usd_per_hour"]}
            continue
        # Other GPUs scale the A100 estimate by measured public speed ratios, not by quoted peaks.
        low, high = a100
        if model in ratios:
            ratio = ratios[model]
            low, high = ((low * ratio["slower_low"], high * ratio["slower_high"]) if "slower_low" in ratio
                         else (low / ratio["faster_high"], high / ratio["faster_low"]))
        costs[name] = {"hours": (low, high), "usd": (low * price["usd_per_hour"], high * price["usd_per_hour"]),
                       "measured": False, "usd_per_hour": price["usd_per_hour"], "runs": len(runs)}
    return costs


def _a100_estimate(runs: list[dict], facts: dict, tokens: float, lm_max_length: int) -> tuple[float, float]:
    """Hours of the planned runs on an A100 from their FLOPs at the assumed share of its quoted peak (a range)."""
    from benchmark import projection

    peak = facts["gpu_peak_tflops"]["A100"]["tflops"]
    hours = [projection.project_runtime(runs, projection.flops_throughput("A100", peak, share, tokens, lm_max_length),
                                        None)["total_hours"] for share in reversed(projection.ASSUMED_SHARE_OF_PEAK)]
    return hours[0], hours[1]


def _measured_throughput(model: str):
    """The throughput a committed GPU benchmark measured on a ``model`` GPU (T4, A100, H100), if any."""
    from benchmark import projection

    for path in sorted((PROJECT_ROOT / "results" / "benchmark").glob("*.json")):
        if model.lower() in path.stem.lower():
            found = projection.load_throughput(path.parent, path.stem)
            if found is not None:
                return found
    return None
