"""The decoder-only student of notebook 06: prompt and one-token answers, its starting model (SmolLM2 from the hub,
or ``decoder.stand_in``'s of the same family), one-pass scoring, fine-tuning with and without the teacher.

Symbols, as in notebook 06:
  x          the prompt (instruction, article, ``Topic:``) in the LM's own tokens
  v_k        class k's verbalizer, one token each: " World", " Sports", " Business", " Science"
  e          the end-of-sequence token; the answer to x is v_y then e, so a trained LM stops after the word
  s_k        = log p_θ(v_k | x), all four from the logits at x's last position (one pass); prediction argmax_k s_k
  z_t        the teacher's logits for the same article, through the teacher's own tokenizer (cached)
  CE_answer  = −(1 / 2B) Σ_b [log p_θ(v_y_b | x_b) + log p_θ(e | x_b, v_y_b)]: the causal-LM loss with −100 on every
             prompt and padding position, so only the answer word and its end are learned
  L          = CE_answer + λ · T² · KL(softmax(z_t / T) ‖ softmax(s / T)),  λ = lm_kd_weight, T = lm_temperature
softmax(s) renormalises over the four verbalizers, so the KL compares distributions over the same four classes
although the two models share no token id.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PrinterCallback, Trainer
from transformers.utils import logging as hf_logging

from helpers import cache, data, distill, hardware, pipeline, train
from helpers.config import LABELS, Config
from helpers.results import atomic_write_text

IGNORE_INDEX = -100  # the label the causal-LM loss skips (prompt and padding positions)
INSTRUCTION = "What is the topic of this news article: World, Sports, Business or Science?"
ARTICLE_CUE = "\nArticle:"
ANSWER_CUE = "\nTopic:"
VERBALIZERS: tuple[str, ...] = (" World", " Sports", " Business", " Science")  # in LABELS order; leading space
ANSWER_TOKENS = 2  # the verbalizer and the end-of-sequence token
NOT_A_LABEL = -1  # the answer code of a greedy answer that is not exactly one verbalizer then the end token
PROMPT_PARTS = (INSTRUCTION, ARTICLE_CUE, ANSWER_CUE, VERBALIZERS)  # in the cache keys: a new prompt, new models
RUN_VERSION = 2  # bump when fine-tuning or scoring changes (2: answer codes stored beside the scores)


# ------------------------------------------------------------------------------------------------------- prompts
def build_prompt(article: str) -> str:
    """The one prompt template: instruction, article, answer cue. The answer follows ``Topic:`` (a verbalizer)."""
    return f"{INSTRUCTION}{ARTICLE_CUE} {article.strip()}{ANSWER_CUE}"


def encode_prompts(tokenizer, articles: list[str], max_prompt_tokens: int) -> list[list[int]]:
    """Token ids of ``build_prompt(article)`` per article, the article cut to fit the budget. The parts are tokenized
    apart, so truncation never cuts the cue; a byte-level BPE splits there anyway: the ids equal the whole string's."""
    head = tokenizer(INSTRUCTION + ARTICLE_CUE, add_special_tokens=False)["input_ids"]
    tail = tokenizer(ANSWER_CUE, add_special_tokens=False)["input_ids"]
    budget = max_prompt_tokens - len(head) - len(tail)
    if budget < 8:
        raise ValueError(f"A prompt budget of {max_prompt_tokens} tokens leaves {budget} for the article (the "
                         f"instruction and cue take {len(head) + len(tail)}): raise lm_max_length.")
    bodies = tokenizer([" " + article.strip() for article in articles], add_special_tokens=False)["input_ids"]
    return [head + body[:budget] + tail for body in bodies]


def verbalizer_token_ids(tokenizer, verbalizers: tuple[str, ...] = VERBALIZERS) -> list[int]:
    """The token id of each verbalizer, in LABELS order; raises where one is not exactly one token or two coincide
    (one-pass scoring reads one logit per class)."""
    if len(verbalizers) != len(LABELS):
        raise ValueError(f"{len(verbalizers)} verbalizers for {len(LABELS)} classes {LABELS}.")
    ids = tokenizer(list(verbalizers), add_special_tokens=False)["input_ids"]
    split = {word: tokenizer.convert_ids_to_tokens(token_ids) for word, token_ids in zip(verbalizers, ids, strict=True)
             if len(token_ids) != 1}
    if split:
        raise ValueError(f"Verbalizers must be one token each in {type(tokenizer).__name__} (vocabulary "
                         f"{len(tokenizer):,}), but {split} are not: pick label words this tokenizer keeps whole.")
    flat = [token_ids[0] for token_ids in ids]
    if len(set(flat)) != len(flat):
        raise ValueError(f"Verbalizers {verbalizers} tokenize to {flat}: each class needs its own token.")
    return flat


def answer_ids(labels: list[int], verbalizer_ids: list[int], end_token_id: int) -> list[list[int]]:
    """The answer each row is trained on: its gold verbalizer, then the end-of-sequence token."""
    return [[verbalizer_ids[label], end_token_id] for label in labels]


def join_prompts_and_answers(prompt_ids: list[list[int]], answer_ids: list[list[int]],
                             pad_token_id: int) -> dict[str, torch.Tensor]:
    """A left-padded batch of rows prompt + answer, labelled with the answer ids, IGNORE_INDEX elsewhere: every row's
    answer is its last tokens; position_ids restart at 0 on each first real token; an empty answer gives a prompt-only
    row. Returns input_ids, attention_mask, position_ids, labels, each (N, L), L the longest prompt + answer."""
    if len(prompt_ids) != len(answer_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(answer_ids)} answers.")
    length = max(len(p) + len(a) for p, a in zip(prompt_ids, answer_ids, strict=True))
    input_ids = torch.full((len(prompt_ids), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row, (prompt, answer) in enumerate(zip(prompt_ids, answer_ids, strict=True)):
        input_ids[row, length - len(prompt) - len(answer):] = torch.as_tensor(list(prompt) + list(answer))
        attention_mask[row, length - len(prompt) - len(answer):] = 1
        labels[row, length - len(answer):] = torch.as_tensor(answer, dtype=torch.long)  # empty answer: empty slice
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids, "labels": labels}


# ------------------------------------------------------------------------------------------------------ scoring
def score_batch(model: PreTrainedModel, batch: dict[str, torch.Tensor], verbalizer_ids: list[int],
                answer_length: int = ANSWER_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass over left-padded rows each ending with an answer of ``answer_length`` (≥ 1) tokens: s (B, C)
    at the prompt's last position, and (B,) each answer's total log-probability. Logits only at the last
    ``answer_length`` + 1 positions: the vocabulary projection is a small LM's costliest matrix product."""
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], logits_to_keep=answer_length + 1, use_cache=False)
    # Position t predicts token t + 1: the kept positions but the last predict the answer's tokens.
    log_probs = torch.log_softmax(outputs.logits[:, :answer_length].float(), dim=-1)  # (B, A, V)
    scores = log_probs[:, 0, torch.as_tensor(verbalizer_ids, device=log_probs.device)]  # (B, C)
    answer = batch["input_ids"][:, -answer_length:]  # (B, A)
    return scores, log_probs.gather(-1, answer.unsqueeze(-1)).squeeze(-1).sum(-1)


def next_token_log_probs(model: PreTrainedModel, sequences: list[list[int]], pad_token_id: int) -> torch.Tensor:
    """(B, V) next-token log-probabilities after each of B sequences, from one forward pass over them left-padded
    (logits at the last position only). After a prompt, its columns at the verbalizer ids are s (B, C)."""
    device = next(model.parameters()).device
    batch = join_prompts_and_answers(sequences, [[] for _ in sequences], pad_token_id)
    logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                   position_ids=batch["position_ids"].to(device), logits_to_keep=1, use_cache=False).logits
    return torch.log_softmax(logits[:, -1].float(), dim=-1)


@torch.inference_mode()
def predict(model: PreTrainedModel, tokenizer, articles: list[str], config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Scores s (N, C) of raw articles and the answer code (N,) of greedy decoding: k where it writes exactly v_k then
    the end token, else ``NOT_A_LABEL``; ``eval_batch_size`` batches, longest first. A second pass, over prompt + the
    greedy first token, sees if the next is the end (no 3-gram blocking: the model's own answer, unaided)."""
    model = model.to(hardware.device()).eval()
    verbalizer_ids, end = verbalizer_token_ids(tokenizer), tokenizer.eos_token_id
    prompts = encode_prompts(tokenizer, articles, config.lm_max_length - ANSWER_TOKENS)
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    scores = np.zeros((len(prompts), len(verbalizer_ids)), dtype=np.float32)
    codes = np.full(len(prompts), NOT_A_LABEL, dtype=np.int64)
    for start in range(0, len(order), config.eval_batch_size):
        index = order[start : start + config.eval_batch_size]
        with hardware.autocast(config.precision):
            log_probs = next_token_log_probs(model, [prompts[i] for i in index], tokenizer.pad_token_id)  # (B, V)
            first = log_probs.argmax(-1).tolist()
            answered = [prompts[i] + [token] for i, token in zip(index, first, strict=True)]
            ended = next_token_log_probs(model, answered, tokenizer.pad_token_id).argmax(-1).tolist()
        scores[index] = log_probs[:, verbalizer_ids].cpu().numpy()
        codes[index] = [verbalizer_ids.index(t) if t in verbalizer_ids and e == end else NOT_A_LABEL
                        for t, e in zip(first, ended, strict=True)]
    return scores, codes


# ------------------------------------------------------------------------------------------------------- losses
def answer_cross_entropy(answer_log_probs: torch.Tensor, answer_tokens: int = ANSWER_TOKENS) -> torch.Tensor:
    """CE_answer = −Σ_b log p(answer_b | x_b) / (B · answer_tokens): the mean over answer tokens, as the HF causal-LM
    loss with −100 on every prompt and padding position. answer_log_probs (B,) -> scalar."""
    return -answer_log_probs.sum() / (answer_log_probs.numel() * answer_tokens)


def verbalizer_kd_loss(scores: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(z_t / T) ‖ softmax(s / T)): the teacher's classes onto the LM's four verbalizers.
    scores (B, C) verbalizer log-probabilities of the LM, teacher_logits (B, C) -> scalar."""
    return distill.soft_target_loss(scores, teacher_logits, temperature)


# ------------------------------------------------------------------------------------------------ the starting model
def load_lm(path: str | Path):
    """(model, tokenizer) through ``AutoModelForCausalLM`` / ``AutoTokenizer``, weights in float32 (mixed precision
    comes from autocast). With no pad token (SmolLM2, the stand-in) it pads with eos: padding is masked and left of
    the prompt, and generation is told the same id."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except OSError as error:
        hint = "" if Path(path).exists() else (" The hub is unreachable offline: use KD_PROFILE=cpu or smoke, "
                                               "which pretrain a tiny stand-in of the same family here.")
        raise OSError(f"Could not load the causal LM {str(path)!r}: {error}.{hint}") from error
    if tokenizer.eos_token_id is None:
        raise ValueError(f"The tokenizer of {str(path)!r} has no eos token: answers could not end.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


# ------------------------------------------------------------------------------------------------------ training
def collate_answers(features: list[dict], verbalizer_ids: list[int], end_token_id: int,
                    pad_token_id: int) -> dict[str, torch.Tensor]:
    """B rows (prompt_ids, label, teacher_logits) -> left-padded rows prompt + gold verbalizer + eos, labels on the
    two answer tokens only, plus the class labels and the teacher's logits."""
    labels = [feature["label"] for feature in features]
    batch = join_prompts_and_answers([feature["prompt_ids"] for feature in features],
                                     answer_ids(labels, verbalizer_ids, end_token_id), pad_token_id)
    batch["class_labels"] = torch.tensor(labels, dtype=torch.long)
    if "teacher_logits" in features[0]:
        batch["teacher_logits"] = torch.tensor([f["teacher_logits"] for f in features], dtype=torch.float32)
    return batch


class AnswerTrainer(Trainer):
    """``Trainer`` whose loss is CE_answer + kd_weight · the verbalizer KD loss; logs both components unweighted."""

    def __init__(self, *args, verbalizer_ids: list[int], kd_weight: float, temperature: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.verbalizer_ids, self.kd_weight, self.temperature = verbalizer_ids, kd_weight, temperature
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        scores, answer_log_probs = score_batch(model, inputs, self.verbalizer_ids, ANSWER_TOKENS)  # (B, C), (B,)
        components, weights = {"answer_ce": answer_cross_entropy(answer_log_probs)}, {"answer_ce": 1.0}
        if self.kd_weight > 0:
            if "teacher_logits" not in inputs:
                raise ValueError("lm_kd_weight > 0 but the training rows carry no teacher_logits column.")
            components["verbalizer_kd"] = verbalizer_kd_loss(scores, inputs["teacher_logits"], self.temperature)
            weights["verbalizer_kd"] = self.kd_weight
        for name, value in components.items():  # summed on the device, read only when logged
            self._sums[name] = value.detach() + self._sums.get(name, 0)
        self._steps += 1
        loss = distill.combine_losses(components, weights)
        return (loss, {"scores": scores}) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._steps:
            logs.update({f"loss_{name}": round(float(total) / self._steps, 6) for name, total in self._sums.items()})
            self._sums, self._steps = {}, 0
        super().log(logs, *args, **kwargs)


def training_rows(workspace: pipeline.Workspace) -> Dataset:
    """A stratified ``lm_train_rows`` subset of the students' training rows, each with the teacher's cached logits
    (looked up by row: the teacher read these articles through its own tokenizer). Both arms train on these rows."""
    config = workspace.config
    logits, _ = pipeline.load_or_compute_teacher_logits(workspace, "student_train")
    rows = workspace.student_train
    if len(logits) != len(rows):
        raise ValueError(f"{len(logits)} cached teacher logits for {len(rows)} student_train rows: the cache is stale.")
    subset = data.stratified_subset(rows.add_column("row", list(range(len(rows)))), config.lm_train_rows, config.seed)
    return subset.add_column("teacher_logits", logits[np.asarray(subset["row"])].tolist()).remove_columns("row")


def finetune_lm(model: PreTrainedModel, tokenizer, rows: Dataset, config: Config, output_dir: str | Path, *,
                seed: int, kd_weight: float) -> tuple[PreTrainedModel, list[dict], float]:
    """Fine-tune on ``rows`` (text, label, teacher_logits) with L = CE_answer + λ · KD, quietly; (model, log history,
    seconds). ``seed`` sets the order of the rows (every seed starts from the same pretrained weights)."""
    hf_logging.set_verbosity_error()
    args = train.training_arguments(
        config, output_dir, seed=seed, epochs=config.lm_epochs, learning_rate=config.lm_learning_rate, quiet=True,
        per_device_train_batch_size=config.lm_batch_size, eval_strategy="no", save_strategy="no", save_total_limit=None)
    budget = config.lm_max_length - ANSWER_TOKENS
    encoded = rows.map(lambda batch: {"prompt_ids": (ids := encode_prompts(tokenizer, batch["text"], budget)),
                                      "length": [len(i) for i in ids]}, batched=True, remove_columns=["text"])
    verbalizer_ids = verbalizer_token_ids(tokenizer)
    trainer = AnswerTrainer(
        model=model, args=args, train_dataset=encoded,
        data_collator=partial(collate_answers, verbalizer_ids=verbalizer_ids, end_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id),
        verbalizer_ids=verbalizer_ids, kd_weight=kd_weight, temperature=config.lm_temperature)
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    return trainer.model, trainer.state.log_history, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------- runs
@dataclass
class LMRun:
    """One fine-tuning run (one arm, one seed): its scores and answer codes on the evaluation rows, its history."""

    kd_weight: float
    seed: int
    scores: np.ndarray  # (N, C) verbalizer log-probabilities on the evaluation rows
    answers: np.ndarray  # (N,) class of a greedy answer that is one verbalizer then the end token, else NOT_A_LABEL
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    hardware: str = ""
    cached: bool = False
    model_path: str | None = None  # kept for the first run only: its answers are the "after" examples

    @property
    def predictions(self) -> np.ndarray:
        return self.scores.argmax(-1)


def load_or_run(config: Config, init_path: str, rows: Dataset, eval_rows: Dataset, kd_weight: float, seed: int,
                keep_model: bool = False) -> LMRun:
    """Fine-tune from ``init_path`` on ``rows`` with λ = ``kd_weight`` and ``seed``, then score ``eval_rows``; cached
    atomically under ``<cache_dir>/lm-runs/<key>/`` (key: settings, init, rows, teacher logits, evaluation rows,
    prompt). Scores, answer codes, history and seconds are kept, the model only where ``keep_model``."""
    names = ("lm_hub_id", "lm_train_rows", "lm_epochs", "lm_batch_size", "lm_learning_rate",
             "lm_max_length", "lm_temperature", "weight_decay", "warmup_ratio")
    key = cache.key_of({name: getattr(config, name) for name in names}, init_path, kd_weight, seed, RUN_VERSION,
                       hardware.resolve_precision(config.precision), PROMPT_PARTS,
                       data.fingerprint(rows), data.fingerprint(eval_rows),
                       np.asarray(rows["teacher_logits"], dtype=np.float32).round(5).tolist())
    folder = Path(config.cache_dir) / "lm-runs" / key
    model_folder = folder / "model" if keep_model else None
    if (folder / "run.json").exists() and (not keep_model or cache.complete_model_folder(model_folder)):
        stored = [cache.load_array(folder / name) for name in ("scores.npy", "answers.npy")]
        if all(entry is not None for entry in stored):
            record = json.loads((folder / "run.json").read_text())
            return LMRun(kd_weight, seed, stored[0][0], stored[1][0], record["history"], record["train_seconds"],
                         record["evaluate_seconds"], record["hardware"], True, model_folder and str(model_folder))
    model, tokenizer = load_lm(init_path)
    tuned, history, train_seconds = finetune_lm(model, tokenizer, rows, config,  # a Trainer folder per run
                                                Path(config.cache_dir) / "runs" / "lm-student" / key, seed=seed,
                                                kd_weight=kd_weight)
    start = time.perf_counter()
    scores, answers = predict(tuned, tokenizer, eval_rows["text"], config)
    record = {"kd_weight": kd_weight, "seed": seed, "history": history, "train_seconds": train_seconds,
              "evaluate_seconds": time.perf_counter() - start, "hardware": hardware.label()}
    with cache.atomic_folder(folder) as temporary:
        cache.save_array(temporary / "scores.npy", scores)
        cache.save_array(temporary / "answers.npy", answers)
        if keep_model:
            tuned.save_pretrained(temporary / "model")
            tokenizer.save_pretrained(temporary / "model")
        atomic_write_text(temporary / "run.json", json.dumps(record))
    return LMRun(kd_weight, seed, scores, answers, history, record["train_seconds"], record["evaluate_seconds"],
                 record["hardware"], False, model_folder and str(model_folder))


def teacher_effect_runs(config: Config, init_path: str, rows: Dataset, eval_rows: Dataset) -> list[LMRun]:
    """Both arms (λ = lm_kd_weight, then 0) over ``lm_seeds``: same rows, steps, starting weights. Pre-registered: the
    first run (teacher, first seed) keeps its model, and its answers are the "after" examples whatever its accuracy."""
    if config.lm_kd_weight <= 0:
        raise ValueError(f"lm_kd_weight is {config.lm_kd_weight}: the teacher's effect needs a run with λ > 0.")
    return [load_or_run(config, init_path, rows, eval_rows, kd_weight, seed,
                        keep_model=kd_weight > 0 and seed == config.lm_seeds[0])
            for kd_weight in (config.lm_kd_weight, 0.0) for seed in config.lm_seeds]
