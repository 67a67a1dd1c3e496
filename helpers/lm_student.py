"""Notebook 06's experiment: did the BERT teacher help the decoder-only student? The same rows and steps fine-tune
the LM with the teacher's class distribution distilled onto its label words (λ = lm_kd_weight) and without it
(λ = 0), over several seeds; the results document; the README's before/after section (``decoder_markdown``).

The prompt, scoring and losses are in ``lm_prompts``, the starting model in ``lm_models``, fine-tuning in
``lm_training``, predictions, examples and intervals in ``lm_evaluation``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset

from helpers import data, evaluate, precision, results
from helpers.config import LABELS, Config
from helpers.lm_evaluation import predict_scores, seed_and_row_bootstrap, shown_generation
from helpers.lm_models import hardware_label, load_lm
from helpers.lm_prompts import ANSWER_CUE, ARTICLE_CUE, INSTRUCTION, VERBALIZERS, build_prompt
from helpers.lm_training import finetune_lm
from helpers.plots import plt
from helpers.report_data import hardware, markdown_table

RUN_VERSION = 1  # bump when fine-tuning or scoring changes: it is part of each run's cache key


def lm_seeds(config: Config) -> tuple[int, ...]:
    """Seeds of each arm (``config.lm_seeds``)."""
    return config.lm_seeds


def arm_name(kd_weight: float) -> str:
    return f"with teacher (λ={kd_weight:g})" if kd_weight > 0 else "without teacher (λ=0)"


# ------------------------------------------------------------------------------------------------------- runs
@dataclass
class LMRun:
    """One fine-tuning run (one arm, one seed) and its scores on the evaluation rows."""

    kd_weight: float
    seed: int
    scores: np.ndarray  # (N, C) verbalizer log-probabilities on the evaluation rows
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    hardware: str = ""
    cached: bool = False
    model_path: str | None = None  # kept for the first run only: its answers are the "after" examples

    @property
    def predictions(self) -> np.ndarray:
        return self.scores.argmax(-1)


def _run_key(config: Config, init_path: str, rows: Dataset, eval_rows: Dataset, kd_weight: float, seed: int) -> str:
    names = ("lm_name", "lm_source", "lm_train_rows", "lm_epochs", "lm_batch_size", "lm_learning_rate",
             "lm_max_length", "lm_temperature", "weight_decay", "warmup_ratio")
    settings = {name: getattr(config, name) for name in names} | {
        "init": init_path, "kd_weight": kd_weight, "seed": seed, "version": RUN_VERSION,
        "precision": precision.resolve_precision(config.precision),
        "prompt": [INSTRUCTION, ARTICLE_CUE, ANSWER_CUE, VERBALIZERS]}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(f"{data.fingerprint(rows)}|{data.fingerprint(eval_rows)}".encode())
    digest.update(np.asarray(rows["teacher_logits"], dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def load_or_run(config: Config, init_path: str, rows: Dataset, eval_rows: Dataset, kd_weight: float, seed: int,
                keep_model: bool = False, quiet: bool = True) -> LMRun:
    """Fine-tune from ``init_path`` on ``rows`` with λ = ``kd_weight`` and ``seed``, then score ``eval_rows``; cached
    under ``<cache_dir>/lm-runs/<key>/`` (key: settings, init, rows, teacher logits, evaluation rows, prompt).

    Only the scores, loss history and seconds are kept, and the model where ``keep_model``: six SmolLM2 copies
    would take 3 GB for what the report reads from their scores.
    """
    folder = Path(config.cache_dir) / "lm-runs" / _run_key(config, init_path, rows, eval_rows, kd_weight, seed)
    record_file, model_folder = folder / "run.json", folder / "model"
    if record_file.exists() and (not keep_model or (model_folder / "config.json").exists()):
        record = json.loads(record_file.read_text())
        return LMRun(kd_weight, seed, np.load(folder / "scores.npy"), record["history"], record["train_seconds"],
                     record["evaluate_seconds"], record["hardware"], True,
                     str(model_folder) if keep_model else None)
    model, tokenizer = load_lm(init_path)
    tuned = finetune_lm(model, tokenizer, rows, config, Path(config.cache_dir) / "runs" / "lm-student", seed=seed,
                        kd_weight=kd_weight, quiet=quiet)
    start = time.perf_counter()
    scores = predict_scores(tuned.model, tokenizer, eval_rows["text"], config)
    evaluate_seconds = time.perf_counter() - start
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    np.save(folder / "scores.npy", scores)
    if keep_model:
        tuned.model.save_pretrained(model_folder)
        tokenizer.save_pretrained(model_folder)
    record_file.write_text(json.dumps({"kd_weight": kd_weight, "seed": seed, "history": tuned.history,
                                       "train_seconds": tuned.train_seconds, "evaluate_seconds": evaluate_seconds,
                                       "hardware": tuned.hardware}))
    return LMRun(kd_weight, seed, scores, tuned.history, tuned.train_seconds, evaluate_seconds, tuned.hardware, False,
                 str(model_folder) if keep_model else None)


def teacher_effect_runs(config: Config, init_path: str, rows: Dataset, eval_rows: Dataset,
                        quiet: bool = True) -> list[LMRun]:
    """Both arms, λ = lm_kd_weight then λ = 0, over ``lm_seeds``: same rows, same steps, same starting weights.

    The first run (with the teacher, first seed) keeps its model: its answers are the notebook's "after".
    """
    if config.lm_kd_weight <= 0:
        raise ValueError(f"lm_kd_weight is {config.lm_kd_weight}: the teacher's effect needs a run with λ > 0.")
    seeds = lm_seeds(config)
    return [load_or_run(config, init_path, rows, eval_rows, kd_weight, seed, quiet=quiet,
                        keep_model=kd_weight > 0 and seed == seeds[0])
            for kd_weight in (config.lm_kd_weight, 0.0) for seed in seeds]


# ------------------------------------------------------------------------------------------------------ tables
def seeds_table(runs: list[LMRun], labels: np.ndarray) -> pd.DataFrame:
    """One row per run: arm, seed, accuracy, macro-F1 and training minutes."""
    rows = []
    for run in runs:
        metrics = evaluate.classification_metrics(labels, run.scores)
        rows.append({"arm": arm_name(run.kd_weight), "seed": run.seed, "accuracy": metrics["accuracy"],
                     "macro_f1": metrics["macro_f1"], "train minutes": round(run.train_seconds / 60, 2),
                     "cached": run.cached})
    return pd.DataFrame(rows)


def teacher_effect(runs: list[LMRun], labels: np.ndarray, resamples: int = 2000) -> dict:
    """The two arms' mean accuracy and macro-F1 and their difference, with two-level (seeds, rows) intervals."""
    arms = {}
    for run in runs:
        arms.setdefault(arm_name(run.kd_weight), []).append(run.predictions)
    return seed_and_row_bootstrap(labels, {name: np.stack(p) for name, p in arms.items()}, resamples=resamples)


def teacher_effect_table(summary: dict) -> pd.DataFrame:
    """Accuracy and macro-F1 (%) with 95% intervals: each arm and the difference."""
    def cell(value: dict, sign: str = "") -> str:
        return (f"{value['mean'] * 100:{sign}.1f} [{value['ci_low'] * 100:{sign}.1f}, "
                f"{value['ci_high'] * 100:{sign}.1f}]")

    rows = [{"": name, "accuracy (%)": cell(arm["accuracy"]), "macro-F1 (%)": cell(arm["macro_f1"])}
            for name, arm in summary["arms"].items()]
    difference = summary["difference"]
    rows.append({"": "difference (points)", "accuracy (%)": cell(difference["accuracy"], "+"),
                 "macro-F1 (%)": cell(difference["macro_f1"], "+")})
    return pd.DataFrame(rows).set_index("")


def conclusion(summary: dict, test_rows: int) -> str:
    """The notebook's and the README's conclusion, written from the numbers with ``evaluate.verdict``'s rule: a
    difference whose interval covers 0 is called no detectable difference. ``test_rows``: the size of the whole test
    split, to say when fewer were scored."""
    (name_a, arm_a), (name_b, arm_b) = summary["arms"].items()
    accuracy = summary["difference"]["accuracy"]
    verdict = {"better": "the teacher helps: the whole interval lies above 0",
               "worse": "the teacher hurts: the whole interval lies below 0",
               "no detectable difference": "no detectable difference: the interval of the difference covers 0",
               }[evaluate.verdict(accuracy)]
    text = (f"Over {summary['seeds']} seeds and {summary['rows']:,} test rows, the LM student {name_a} reaches "
            f"{arm_a['accuracy']['mean'] * 100:.1f}% accuracy and {name_b} {arm_b['accuracy']['mean'] * 100:.1f}%: "
            f"{accuracy['mean'] * 100:+.1f} points (95% interval over seeds and rows {accuracy['ci_low'] * 100:+.1f} "
            f"to {accuracy['ci_high'] * 100:+.1f}), {verdict}.")
    if summary["rows"] < test_rows:
        text += (f" Only {summary['rows']:,} of the {test_rows:,} test rows were scored (lm_eval_rows), to keep the "
                 "notebook within its CPU budget; the row part of the interval is wider for it.")
    return text


def loss_figure(runs: list[LMRun], title: str = "Decoder student: train loss per arm and seed") -> plt.Figure:
    """Total train loss per logging step, one line per run, coloured by arm (the KD term is part of the total only
    where λ > 0; the answer cross-entropy is drawn dotted for comparison across arms)."""
    figure, axis = plt.subplots(figsize=(8, 3.6))
    colours = {}
    for run in runs:
        train = pd.DataFrame([entry for entry in run.history if "loss" in entry])
        name = arm_name(run.kd_weight)
        colour = colours.setdefault(name, f"C{len(colours)}")
        axis.plot(train["step"], train["loss"], color=colour, alpha=0.8,
                  label=f"{name}: total" if run.seed == runs[0].seed else None)
        axis.plot(train["step"], train["loss_answer_ce"], color=colour, linestyle=":", alpha=0.8,
                  label=f"{name}: answer CE" if run.seed == runs[0].seed else None)
    axis.set(title=title, xlabel="step", ylabel="loss")
    axis.legend()
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------------------------------- time and cost
def time_table(stand_in: dict | None, runs: list[LMRun], before_seconds: float) -> pd.DataFrame:
    """Measured seconds per phase and where they were measured. CPU time stays CPU time: nothing here is priced."""
    rows = []
    if stand_in is not None:
        rows.append({"phase": "pretrain the stand-in", "runs": 1, "seconds": stand_in["seconds"],
                     "measured on": stand_in["hardware"], "cached now": stand_in.get("cached", False)})
    rows.append({"phase": "score test rows before fine-tuning", "runs": 1, "seconds": before_seconds,
                 "measured on": hardware_label(), "cached now": False})
    for phase, attribute in (("fine-tune", "train_seconds"), ("score test rows after", "evaluate_seconds")):
        rows.append({"phase": phase, "runs": len(runs), "seconds": sum(getattr(r, attribute) for r in runs),
                     "measured on": " / ".join(sorted({r.hardware for r in runs})),
                     "cached now": all(r.cached for r in runs)})
    table = pd.DataFrame(rows)
    table["minutes"] = (table["seconds"] / 60).round(2)
    return table


def gpu_cost(gpu_seconds: float, usd_per_hour: float, *, measured: bool) -> dict:
    """US dollars for ``gpu_seconds`` at ``usd_per_hour`` (the caller's price: results/external.json, cited there).

    ``measured``: the seconds were measured on that GPU; otherwise they are an assumption and the result is labelled
    a projection. Never pass CPU seconds: they say nothing about a GPU's time.
    """
    return {"usd": gpu_seconds / 3600 * usd_per_hour, "gpu_seconds": gpu_seconds, "usd_per_hour": usd_per_hour,
            "basis": "measured GPU time" if measured else "projection (GPU time assumed, not measured)"}


# ------------------------------------------------------------------------------------------------------ results
def payload(config: Config, *, model_name: str, stand_in: dict | None, examples: pd.DataFrame,
            before_examples: pd.DataFrame, after_examples: pd.DataFrame, before: dict, runs: list[LMRun],
            labels: np.ndarray, summary: dict, times: pd.DataFrame, test_rows: int) -> dict:
    """The results document of notebook 06 (``results.save_result`` adds the provenance)."""
    kept = ("accuracy", "macro_f1", "nll", "ece", "per_class", "confusion_matrix", "rows")
    after_run = runs[0]
    return {
        "model": model_name, "stand_in": stand_in, "train_rows": config.lm_train_rows, "epochs": config.lm_epochs,
        "prompt": build_prompt("{article}"), "verbalizers": list(VERBALIZERS), "answer": "verbalizer + eos",
        "seeds": list(lm_seeds(config)), "kd_weight": config.lm_kd_weight, "temperature": config.lm_temperature,
        "before": {name: before[name] for name in kept},
        "after": {"arm": arm_name(after_run.kd_weight), "seed": after_run.seed,
                  **{name: value for name, value in evaluate.classification_metrics(labels, after_run.scores).items()
                     if name in kept}},
        "examples": [{"row": example["row"], "text": example["text"], "gold": LABELS[example["label"]],
                      "before": before_examples.iloc[i].to_dict(), "after": after_examples.iloc[i].to_dict()}
                     for i, example in enumerate(examples.to_dict(orient="records"))],
        "runs": seeds_table(runs, labels).to_dict(orient="records"),
        "teacher_effect": summary, "conclusion": conclusion(summary, test_rows),
        "history": {f"{arm_name(r.kd_weight)}, seed {r.seed}": r.history for r in runs},
        "time": times.to_dict(orient="records"),
        "wall_seconds": {"total": float(times["seconds"].sum())}, "hardware": hardware_label(),
    }


def save(config: Config, document: dict) -> Path:
    return results.save_result(config, "decoder_student", document)


def decoder_markdown(document: dict, examples: int = 4) -> str:
    """The README's before/after section from a ``decoder_student`` results document: accuracy with and without the
    teacher (intervals over seeds and rows), the conclusion, and the first ``examples`` fixed prompts."""
    summary, before = document["teacher_effect"], document["before"]
    zero_shot = pd.DataFrame([{"": "before fine-tuning (zero-shot)", "accuracy (%)": f"{before['accuracy'] * 100:.1f}",
                               "macro-F1 (%)": f"{before['macro_f1'] * 100:.1f}"}])
    table = pd.concat([zero_shot, teacher_effect_table(summary).reset_index()], ignore_index=True)
    shown = pd.DataFrame({
        "article": [e["text"][:60] + "…" for e in document["examples"][:examples]],
        "gold": [e["gold"] for e in document["examples"][:examples]],
        "before: generates → scored": [f"`{shown_generation(e['before']['generation'], e['before']['ended'])}` → "
                                       f"{e['before']['prediction']}" for e in document["examples"][:examples]],
        "after: generates → scored": [f"`{shown_generation(e['after']['generation'], e['after']['ended'])}` → "
                                      f"{e['after']['prediction']}" for e in document["examples"][:examples]],
    })
    provenance = document["provenance"]
    stand_in = " (a stand-in pretrained here, not SmolLM2)" if document.get("stand_in") else ""
    return (f"{markdown_table(table)}\n\n{document['conclusion']}\n\n{markdown_table(shown)}\n\n"
            f"<sub>{document['model']}{stand_in}; after: {document['after']['arm']}, seed {document['after']['seed']}; "
            f"⏹ the model ended its answer, … the token limit cut it. Intervals: 95%, resampling seeds then test rows "
            f"({summary['resamples']:,} replicates). Profile `{provenance['profile']}`, {hardware(document)}, "
            f"{provenance['date'][:10]}.</sub>")
