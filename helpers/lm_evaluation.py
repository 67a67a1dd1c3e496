"""Evaluating the decoder-only student: class scores for raw articles, generation that stops at the end token, the
fixed example prompts and their before/after table, and an interval over both seeds and test rows."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import PreTrainedModel

from helpers import data, evaluate, pipeline, precision
from helpers.config import LABELS, Config
from helpers.lm_prompts import (
    encode_prompts,
    join_prompts_and_answers,
    prompt_budget,
    verbalizer_scores,
    verbalizer_token_ids,
)

GENERATION_TOKENS = 12  # enough for the pretrained model's free continuation to read as text


# ------------------------------------------------------------------------------------------------- predictions
@torch.inference_mode()
def predict_scores(model: PreTrainedModel, tokenizer, articles: list[str], config: Config,
                   batch_size: int | None = None) -> np.ndarray:
    """s: (N, C) verbalizer log-probabilities for raw articles, one forward pass per article; batched longest-first
    so batches pad little."""
    device = precision.device()
    model = model.to(device).eval()
    verbalizer_ids = verbalizer_token_ids(tokenizer)
    prompts = encode_prompts(tokenizer, articles, prompt_budget(config.lm_max_length))
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    scores = np.zeros((len(prompts), len(verbalizer_ids)), dtype=np.float32)
    batch_size = batch_size or config.eval_batch_size
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        with precision.autocast(config.precision):
            batch_scores = verbalizer_scores(model, [prompts[i] for i in index], verbalizer_ids,
                                             tokenizer.pad_token_id)
        scores[index] = batch_scores.float().cpu().numpy()
    return scores


@torch.inference_mode()
def generate_answers(model: PreTrainedModel, tokenizer, articles: list[str], config: Config,
                     max_new_tokens: int = GENERATION_TOKENS) -> pd.DataFrame:
    """What the LM writes after each prompt: greedy decoding that stops at the end-of-sequence token and never repeats
    a 3-gram (a small greedy LM otherwise loops on its likeliest phrase; a one-word answer is unaffected).

    Returns one row per article: ``generation`` (the text before the end token), ``ended`` (whether the LM ended its
    answer within ``max_new_tokens``) and ``tokens`` (how many it wrote before ending or being cut).
    """
    device = precision.device()
    model = model.to(device).eval()
    prompts = encode_prompts(tokenizer, articles, prompt_budget(config.lm_max_length))
    batch = join_prompts_and_answers(prompts, [[] for _ in prompts], tokenizer.pad_token_id)
    with precision.autocast(config.precision):
        output = model.generate(input_ids=batch["input_ids"].to(device),
                                attention_mask=batch["attention_mask"].to(device), max_new_tokens=max_new_tokens,
                                do_sample=False, no_repeat_ngram_size=3, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id)
    rows = []
    for ids in output[:, batch["input_ids"].shape[1]:].tolist():
        # Rows that ended early are filled with pad (= eos for SmolLM2 and the stand-in): the first eos ends the answer.
        ended = tokenizer.eos_token_id in ids
        written = ids[: ids.index(tokenizer.eos_token_id)] if ended else ids
        rows.append({"generation": tokenizer.decode(written, skip_special_tokens=True), "ended": ended,
                     "tokens": len(written)})
    return pd.DataFrame(rows)


def evaluation_rows(workspace: pipeline.Workspace) -> Dataset:
    """``lm_eval_rows`` stratified test rows (None: all of test)."""
    config = workspace.config
    return data.stratified_subset(workspace.splits["test"], config.lm_eval_rows, config.seed)


def evaluate_lm(model: PreTrainedModel, tokenizer, rows: Dataset, config: Config) -> dict:
    """``evaluate.classification_metrics`` of the verbalizer scores on ``rows``, plus the scores and the seconds."""
    start = time.perf_counter()
    scores = predict_scores(model, tokenizer, rows["text"], config)
    seconds = time.perf_counter() - start
    return {**evaluate.classification_metrics(np.asarray(rows["label"]), scores), "scores": scores, "seconds": seconds}


# ---------------------------------------------------------------------------------------------------- examples
def fixed_examples(test: Dataset, count: int = 10) -> pd.DataFrame:
    """The first test rows of each class in turn (World, Sports, Business, Sci/Tech, World, ...): the same prompts are
    shown before and after fine-tuning."""
    frame = test.to_pandas()
    frame["rank"] = frame.groupby("label").cumcount()
    picked = frame.sort_values(["rank", "label"], kind="stable").head(count)
    return picked.reset_index(names="row")[["row", "text", "label"]]


def example_answers(model: PreTrainedModel, tokenizer, examples: pd.DataFrame, config: Config) -> pd.DataFrame:
    """For each example: the free generation (and whether it ended), the scored prediction and its probability among
    the four verbalizers."""
    articles = examples["text"].tolist()
    scores = predict_scores(model, tokenizer, articles, config)
    probabilities = evaluate.softmax(scores)
    answers = generate_answers(model, tokenizer, articles, config)
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
        if answers is None:
            continue
        table[f"{stage}: generates"] = [shown_generation(g, e)
                                        for g, e in zip(answers["generation"], answers["ended"], strict=True)]
        table[f"{stage}: scored"] = [f"{p} ({q:.2f})"
                                     for p, q in zip(answers["prediction"], answers["probability"], strict=True)]
    return table


# ----------------------------------------------------------------------------------------------------- intervals
def seed_and_row_bootstrap(labels: np.ndarray, predictions: dict[str, np.ndarray], resamples: int = 2000,
                           seed: int = 0) -> dict:
    """Mean accuracy and macro-F1 over seeds of two arms and arm A − arm B, with 95% two-level bootstrap intervals.

    predictions: arm name -> (S, N) predicted classes, S seeds (the same seeds in both arms) on the same N rows; the
    first arm is A, the second B. The intervals and the difference's null p are ``evaluate.two_level_bootstrap``'s:
    each replicate draws seeds, then rows, the same draws for both arms (and, with one ``seed``, for both metrics).
    """
    labels = np.asarray(labels)
    names = list(predictions)
    stacked = [np.asarray(predictions[name]) for name in names]
    if len(names) != 2:
        raise ValueError(f"Two arms to compare, got {names}.")
    if stacked[0].ndim != 2 or any(p.shape != stacked[0].shape for p in stacked) or stacked[0].shape[1] != len(labels):
        raise ValueError(f"Predictions of shapes {[p.shape for p in stacked]} for {len(labels)} labels: "
                         "every arm needs (seeds, rows) on the same rows.")
    seeds, rows = stacked[0].shape
    results = {metric: evaluate.two_level_bootstrap(labels, *stacked, metric=metric, resamples=resamples, seed=seed)
               for metric in evaluate.METRICS}
    arms = {name: {metric: {key: results[metric]["arms"][side][key] for key in ("mean", "ci_low", "ci_high")}
                   for metric in evaluate.METRICS}
            | {"per_seed": {metric: results[metric]["arms"][side]["per_seed"] for metric in evaluate.METRICS}}
            for side, name in zip("ab", names, strict=True)}
    difference = {metric: {"mean": result["difference"], "ci_low": result["ci_low"], "ci_high": result["ci_high"],
                           "p_value": result["p_value"]} for metric, result in results.items()}
    return {"arms": arms, "seeds": seeds, "rows": rows, "resamples": resamples,
            "difference": {"of": names} | difference}
