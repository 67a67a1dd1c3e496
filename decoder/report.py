"""What notebook 06 reports about the decoder-only student: its evaluation rows and fixed example prompts, generations
before and after, the answer format over every scored row, the teacher's effect with ``evaluate``'s two-level
interval and verdict, the loss curves, the time per phase, the results document and the README's section."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import PreTrainedModel

from decoder.student import (
    ANSWER_TOKENS,
    NOT_A_LABEL,
    VERBALIZERS,
    LMRun,
    build_prompt,
    encode_prompts,
    join_prompts_and_answers,
    predict,
)
from helpers import data, evaluate, hardware, pipeline, results
from helpers.config import LABELS, Config
from report.data import hardware as provenance_hardware
from report.data import markdown_table

GENERATION_TOKENS = 12  # enough for the pretrained model's free continuation to read as text
AFTER_RULE = "the first run: with the teacher, first seed (fixed before any run, whatever its accuracy)"
FORMAT = "exactly one label word, then the end-of-sequence token (greedy decoding)"


def arm_name(kd_weight: float) -> str:
    return f"with teacher (λ={kd_weight:g})" if kd_weight > 0 else "without teacher (λ=0)"


def evaluation_rows(workspace: pipeline.Workspace) -> Dataset:
    """``lm_eval_rows`` stratified test rows (None: all of test)."""
    return data.stratified_subset(workspace.splits["test"], workspace.config.lm_eval_rows, workspace.config.seed)


def evaluate_lm(model: PreTrainedModel, tokenizer, rows: Dataset, config: Config) -> dict:
    """``evaluate.classification_metrics`` of the verbalizer scores on ``rows``, plus scores, answer codes, seconds."""
    start = time.perf_counter()
    scores, answers = predict(model, tokenizer, rows["text"], config)
    return {**evaluate.classification_metrics(np.asarray(rows["label"]), scores), "scores": scores,
            "answers": answers, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------------------------- examples
@torch.inference_mode()
def generate_answers(model: PreTrainedModel, tokenizer, articles: list[str], config: Config,
                     max_new_tokens: int = GENERATION_TOKENS) -> pd.DataFrame:
    """What the LM writes after each prompt, greedy, stopping at the end token, never repeating a 3-gram (a small
    greedy LM otherwise loops on its likeliest phrase; a one-word answer is unaffected). One row per article:
    ``generation`` (text before the end token), ``ended`` (within ``max_new_tokens``), ``tokens`` (written)."""
    model = model.to(hardware.device()).eval()
    prompts = encode_prompts(tokenizer, articles, config.lm_max_length - ANSWER_TOKENS)
    batch = join_prompts_and_answers(prompts, [[] for _ in prompts], tokenizer.pad_token_id)
    with hardware.autocast(config.precision):
        output = model.generate(input_ids=batch["input_ids"].to(model.device),
                                attention_mask=batch["attention_mask"].to(model.device), max_new_tokens=max_new_tokens,
                                do_sample=False, no_repeat_ngram_size=3, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id)
    # Rows that ended early are filled with pad (= eos for SmolLM2 and the stand-in): the first eos ends the answer.
    end, generated = tokenizer.eos_token_id, output[:, batch["input_ids"].shape[1]:].tolist()
    written = [ids[: ids.index(end)] if end in ids else ids for ids in generated]
    return pd.DataFrame({"generation": tokenizer.batch_decode(written, skip_special_tokens=True),
                         "ended": [end in ids for ids in generated], "tokens": [len(ids) for ids in written]})


def fixed_examples(test: Dataset, count: int = 10) -> pd.DataFrame:
    """The first test rows of each class in turn (World, Sports, Business, Sci/Tech, World, ...): shown before/after."""
    frame = test.to_pandas()
    frame["rank"] = frame.groupby("label").cumcount()
    picked = frame.sort_values(["rank", "label"], kind="stable").head(count)
    return picked.reset_index(names="row")[["row", "text", "label"]]


def example_answers(model: PreTrainedModel, tokenizer, examples: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per example: free generation, whether it ended, scored prediction and its probability among the verbalizers."""
    scores, _ = predict(model, tokenizer, examples["text"].tolist(), config)
    probabilities = evaluate.softmax(scores)
    answers = generate_answers(model, tokenizer, examples["text"].tolist(), config)
    answers["prediction"] = [LABELS[i] for i in probabilities.argmax(-1)]
    answers["probability"] = probabilities.max(-1).astype(float).round(3)
    answers["scores"] = [row.astype(float).round(3).tolist() for row in scores]
    return answers


def shown_generation(generation: str, ended: bool) -> str:
    """The generation as a quoted string, marked ``⏹`` where the LM ended it and ``…`` where the token limit cut it."""
    return f"{generation!r} {'⏹' if ended else '…'}"


def before_after_table(examples: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame | None = None,
                       width: int = 70) -> pd.DataFrame:
    """The same prompts side by side: article, gold label, generation and scored prediction before (and after)."""
    table = pd.DataFrame({"article": [text[:width] + ("…" if len(text) > width else "") for text in examples["text"]],
                          "gold": [LABELS[i] for i in examples["label"]]})
    for stage, answers in (("before", before), ("after", after)):
        if answers is not None:
            table[f"{stage}: generates"] = [shown_generation(g, e) for g, e in zip(answers["generation"],
                                                                                   answers["ended"], strict=True)]
            table[f"{stage}: scored"] = [f"{p} ({q:.2f})" for p, q in zip(answers["prediction"],
                                                                          answers["probability"], strict=True)]
    return table


# ---------------------------------------------------------------------------------------------- answer format
def label_shares(answers: np.ndarray, predictions: np.ndarray) -> dict[str, dict[str, float]]:
    """Each label's share of the scored predictions (argmax s) and of the well-formed greedy answers (the rest:
    ``other``), over all scored rows. answers, predictions (N,)."""
    answered = {label: float(np.mean(answers == k)) for k, label in enumerate(LABELS)}
    return {"scored": {label: float(np.mean(predictions == k)) for k, label in enumerate(LABELS)},
            "answered": answered | {"other": float(np.mean(answers == NOT_A_LABEL))}}


def by_arm(runs: list[LMRun]) -> dict[str, list[LMRun]]:
    """The runs grouped by ``arm_name``, arms in order of first appearance."""
    names = dict.fromkeys(arm_name(run.kd_weight) for run in runs)
    return {name: [run for run in runs if arm_name(run.kd_weight) == name] for name in names}


def format_compliance(before: dict, runs: list[LMRun]) -> dict:
    """The share of scored test answers in ``FORMAT``, before fine-tuning, per run and per arm (mean over seeds), and
    each label's shares before and after."""
    arms = by_arm(runs)
    return {
        "definition": FORMAT, "rows": len(before["answers"]),
        "before": float(np.mean(before["answers"] != NOT_A_LABEL)),
        "runs": [{"arm": arm_name(r.kd_weight), "seed": r.seed, "share": float(np.mean(r.answers != NOT_A_LABEL))}
                 for r in runs],
        "arms": {name: float(np.mean([np.mean(r.answers != NOT_A_LABEL) for r in members]))
                 for name, members in arms.items()},
        "label_shares": {"before": label_shares(before["answers"], before["scores"].argmax(-1))} | {
            name: {kind: {label: float(np.mean([label_shares(r.answers, r.predictions)[kind][label] for r in members]))
                          for label in shares}
                   for kind, shares in label_shares(members[0].answers, members[0].predictions).items()}
            for name, members in arms.items()},
    }


def format_table(compliance: dict) -> pd.DataFrame:
    """Format compliance (%) before fine-tuning and per arm and seed, over every scored test answer."""
    rows = [{"arm": "before fine-tuning", "seed": "", "share": compliance["before"]}, *compliance["runs"]]
    return pd.DataFrame([{"model": row["arm"], "seed": row["seed"], "one label word + end (%)": row["share"] * 100}
                         for row in rows]).round(1)


def label_share_table(compliance: dict) -> pd.DataFrame:
    """Each label's share (%) of the scored predictions and of the well-formed answers, before and per arm."""
    return (pd.DataFrame({(stage, kind): shares for stage, by_kind in compliance["label_shares"].items()
                          for kind, shares in by_kind.items()}) * 100).round(1)


# ---------------------------------------------------------------------------------------- runs and the teacher
def seeds_table(runs: list[LMRun], labels: np.ndarray) -> pd.DataFrame:
    """One row per run: arm, seed, accuracy, macro-F1, format compliance and training minutes."""
    rows = []
    for run in runs:
        metrics = evaluate.classification_metrics(labels, run.scores)
        rows.append({"arm": arm_name(run.kd_weight), "seed": run.seed, "accuracy": metrics["accuracy"],
                     "macro_f1": metrics["macro_f1"], "format_compliance": float(np.mean(run.answers != NOT_A_LABEL)),
                     "train minutes": round(run.train_seconds / 60, 2), "cached": run.cached})
    return pd.DataFrame(rows)


def teacher_effect(runs: list[LMRun], labels: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict:
    """Each arm's mean accuracy and macro-F1 over seeds, and arm A (teacher) − arm B, with 95% intervals of
    ``evaluate.two_level_bootstrap`` (seeds, then rows; the same draws for both arms)."""
    arms = by_arm(runs)
    names = list(arms)
    if len(names) != 2:
        raise ValueError(f"Two arms to compare, got {names}.")
    a, b = (np.stack([run.predictions for run in arms[name]]) for name in names)
    fits = {metric: evaluate.two_level_bootstrap(labels, a, b, resamples=resamples, seed=seed, metric=metric)
            for metric in evaluate.METRICS}
    summary = {name: {metric: {key: fits[metric]["arms"][side][key] for key in ("mean", "ci_low", "ci_high")}
                      for metric in evaluate.METRICS}
               | {"per_seed": {metric: fits[metric]["arms"][side]["per_seed"] for metric in evaluate.METRICS}}
               for side, name in zip("ab", names, strict=True)}
    difference = {metric: {"mean": fit["difference"], "ci_low": fit["ci_low"], "ci_high": fit["ci_high"],
                           "p_value": fit["p_value"]} for metric, fit in fits.items()}
    return {"arms": summary, "seeds": fits["accuracy"]["seeds"], "rows": fits["accuracy"]["rows"],
            "resamples": resamples, "difference": {"of": names} | difference}


def teacher_effect_table(summary: dict) -> pd.DataFrame:
    """Accuracy and macro-F1 (%) with 95% intervals: each arm and the difference."""
    def cell(value: dict, sign: str = "") -> str:
        low, high = value["ci_low"] * 100, value["ci_high"] * 100
        return f"{value['mean'] * 100:{sign}.1f} [{low:{sign}.1f}, {high:{sign}.1f}]"

    rows = [(name, arm, "") for name, arm in summary["arms"].items()]
    rows.append(("difference (points)", summary["difference"], "+"))
    return pd.DataFrame([{"": name, "accuracy (%)": cell(value["accuracy"], sign),
                          "macro-F1 (%)": cell(value["macro_f1"], sign)} for name, value, sign in rows]).set_index("")


def conclusion(summary: dict, test_rows: int) -> str:
    """The conclusion, from the numbers by ``evaluate.verdict``'s rule (interval covering 0: no detectable difference).
    ``test_rows``: the whole test split's size, to say when fewer were scored."""
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


def loss_frame(runs: list[LMRun]) -> pd.DataFrame:
    """Per logged step and run, for ``plots.decoder_loss``: arm, seed, step, answer CE, λ·T²·KL (NaN if λ = 0)."""
    frames = []
    for run in runs:
        logged = pd.DataFrame([entry for entry in run.history if "loss" in entry])
        kd = logged.get("loss_verbalizer_kd", pd.Series(np.nan, index=logged.index)) * run.kd_weight
        frames.append(pd.DataFrame({"arm": arm_name(run.kd_weight), "seed": run.seed, "step": logged["step"],
                                    "answer_ce": logged["loss_answer_ce"], "kd_term": kd}))
    return pd.concat(frames, ignore_index=True)


def time_table(stand_in: dict | None, runs: list[LMRun], before_seconds: float) -> pd.DataFrame:
    """Measured seconds per phase and where they were measured. CPU time stays CPU time: nothing here is priced."""
    rows = [] if stand_in is None else [{"phase": "pretrain the stand-in", "runs": 1, "seconds": stand_in["seconds"],
                                         "measured on": stand_in["hardware"], "cached now": stand_in.get("cached")}]
    rows.append({"phase": "score test rows before fine-tuning", "runs": 1, "seconds": before_seconds,
                 "measured on": hardware.label(), "cached now": False})
    for phase, attribute in (("fine-tune", "train_seconds"), ("score test rows after", "evaluate_seconds")):
        rows.append({"phase": phase, "runs": len(runs), "seconds": sum(getattr(r, attribute) for r in runs),
                     "measured on": " / ".join(sorted({r.hardware for r in runs})),
                     "cached now": all(r.cached for r in runs)})
    table = pd.DataFrame(rows)
    table["minutes"] = (table["seconds"] / 60).round(2)
    return table


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
        "seeds": list(config.lm_seeds), "kd_weight": config.lm_kd_weight, "temperature": config.lm_temperature,
        "before": {name: before[name] for name in kept},
        "after": {"arm": arm_name(after_run.kd_weight), "seed": after_run.seed, "rule": AFTER_RULE,
                  **{name: value for name, value in evaluate.classification_metrics(labels, after_run.scores).items()
                     if name in kept}},
        "examples": [{"row": example["row"], "text": example["text"], "gold": LABELS[example["label"]],
                      "before": before_examples.iloc[i].to_dict(), "after": after_examples.iloc[i].to_dict()}
                     for i, example in enumerate(examples.to_dict(orient="records"))],
        "runs": seeds_table(runs, labels).to_dict(orient="records"),
        "teacher_effect": summary, "conclusion": conclusion(summary, test_rows),
        "format_compliance": format_compliance(before, runs),
        "history": {f"{arm_name(r.kd_weight)}, seed {r.seed}": r.history for r in runs},
        "time": times.to_dict(orient="records"),
        "wall_seconds": {"total": float(times["seconds"].sum())}, "hardware": hardware.label(),
    }


def save(config: Config, document: dict):
    return results.save_result(config, "decoder_student", document)


def decoder_markdown(document: dict, examples: int = 4) -> str:
    """The README's section from a ``decoder_student`` document: accuracy with and without the teacher (intervals over
    seeds and rows), the conclusion, the first ``examples`` fixed prompts before and after."""
    summary, before = document["teacher_effect"], document["before"]
    zero_shot = pd.DataFrame([{"": "before fine-tuning (zero-shot)", "accuracy (%)": f"{before['accuracy'] * 100:.1f}",
                               "macro-F1 (%)": f"{before['macro_f1'] * 100:.1f}"}])
    table = pd.concat([zero_shot, teacher_effect_table(summary).reset_index()], ignore_index=True)
    shown = document["examples"][:examples]
    pairs = pd.DataFrame({
        "article": [e["text"][:60] + "…" for e in shown], "gold": [e["gold"] for e in shown],
        **{f"{when}: generates → scored": [f"`{shown_generation(e[when]['generation'], e[when]['ended'])}` → "
                                          f"{e[when]['prediction']}" for e in shown] for when in ("before", "after")},
    })
    provenance = document["provenance"]
    stand_in = " (a stand-in pretrained here, not SmolLM2)" if document.get("stand_in") else ""
    return (f"{markdown_table(table)}\n\n{document['conclusion']}\n\n{markdown_table(pairs)}\n\n"
            f"<sub>{document['model']}{stand_in}; after: {document['after']['arm']}, seed {document['after']['seed']}; "
            f"⏹ the model ended its answer, … the token limit cut it. Intervals: 95%, resampling seeds then test rows "
            f"({summary['resamples']:,} replicates). Profile `{provenance['profile']}`, "
            f"{provenance_hardware(document)}, {provenance['date'][:10]}.</sub>")
