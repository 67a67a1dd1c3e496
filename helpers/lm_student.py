"""The decoder-only student (notebook 06): a causal LM, asked for the topic of a news article, answers with a label
word; the BERT teacher's class distribution is distilled onto the LM's distribution over those four words.

Symbols, the same in notebook 06:
  x          the prompt (instruction, article, ``Topic:``) in the LM's own tokens
  v_k        the verbalizer of class k, one or more tokens: " World", " Sports", " Business", " Science"
  s_k        = Σ_j log p_θ(v_k,j | x, v_k,<j), the total log-probability of v_k after x; the prediction is argmax_k s_k
  z_t        the teacher's logits for the same article, computed through the teacher's own tokenizer (cached)
  CE_answer  = −(Σ_b s_b,y_b) / (Σ_b |v_y_b|): the causal-LM loss with every prompt and padding position set to −100
  L          = CE_answer + lm_kd_weight · T² · KL(softmax(z_t / T) ‖ softmax(s / T))

softmax(s) renormalises the LM's probabilities of the four verbalizers, so the KL compares two distributions over the
same four classes although the two models never share a token id.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from helpers import data, distill, evaluate, pipeline, results
from helpers.config import LABELS, Config
from helpers.plots import plt
from helpers.train import precision_flags

IGNORE_INDEX = -100  # the label the causal-LM loss skips (prompt and padding positions)
INSTRUCTION = "What is the topic of this news article: World, Sports, Business or Science?"
ARTICLE_CUE = "\nArticle:"
ANSWER_CUE = "\nTopic:"
VERBALIZERS: tuple[str, ...] = (" World", " Sports", " Business", " Science")  # in LABELS order; leading space
GENERATION_TOKENS = 4

# The tiny model of the SmolLM2 family (LlamaForCausalLM) built where no pretrained causal LM exists (offline, smoke):
# SmolLM2-135M is 576 wide, 30 layers, 9 query / 3 key-value heads, tied embeddings, a 49,152-token byte-level BPE.
LOCAL_LM_ARCHITECTURE = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
                         "tie_word_embeddings": True}
LOCAL_VOCAB_SIZE = 4_096
END_OF_TEXT = "<|endoftext|>"

# (where, GPU, assumed US dollars per hour): on-demand prices as listed in late 2025; check them before relying on them.
# Colab: $9.99 buys 100 compute units and a T4 runtime uses about 1.8 units an hour.
HOURLY_PRICES: tuple[tuple[str, str, float], ...] = (
    ("Colab pay-as-you-go", "T4", 0.18),
    ("Runpod on-demand", "A100 80GB", 1.64),
    ("Runpod on-demand", "H100 80GB", 2.69),
)


# ------------------------------------------------------------------------------------------------------- prompts
def build_prompt(article: str) -> str:
    """The one prompt template: instruction, article, answer cue. The answer follows ``Topic:`` (a verbalizer)."""
    return f"{INSTRUCTION}{ARTICLE_CUE} {article.strip()}{ANSWER_CUE}"


def encode_prompts(tokenizer, articles: list[str], max_prompt_tokens: int) -> list[list[int]]:
    """Token ids of ``build_prompt(article)`` for each article, the article cut so the prompt fits the budget.

    The instruction, the article and the cue are tokenized apart and joined, so truncation never cuts the cue; a
    byte-level BPE splits at those boundaries anyway, so the ids equal those of the whole prompt string.
    """
    head = tokenizer(INSTRUCTION + ARTICLE_CUE, add_special_tokens=False)["input_ids"]
    tail = tokenizer(ANSWER_CUE, add_special_tokens=False)["input_ids"]
    budget = max_prompt_tokens - len(head) - len(tail)
    if budget < 8:
        raise ValueError(f"A prompt budget of {max_prompt_tokens} tokens leaves {budget} for the article (the "
                         f"instruction and cue take {len(head) + len(tail)}): raise lm_max_length.")
    bodies = tokenizer([" " + article.strip() for article in articles], add_special_tokens=False)["input_ids"]
    return [head + body[:budget] + tail for body in bodies]


def verbalizer_token_ids(tokenizer, verbalizers: tuple[str, ...] = VERBALIZERS) -> list[list[int]]:
    """Each verbalizer's token ids (one or more), in LABELS order; raises if one is empty or two coincide."""
    if len(verbalizers) != len(LABELS):
        raise ValueError(f"{len(verbalizers)} verbalizers for {len(LABELS)} classes {LABELS}.")
    ids = tokenizer(list(verbalizers), add_special_tokens=False)["input_ids"]
    if any(len(token_ids) == 0 for token_ids in ids) or len({tuple(t) for t in ids}) != len(ids):
        raise ValueError(f"Verbalizers {verbalizers} tokenize to {ids}: each needs its own non-empty token ids.")
    return [list(token_ids) for token_ids in ids]


def max_prompt_tokens(config: Config, verbalizer_ids: list[list[int]]) -> int:
    """lm_max_length holds prompt + answer: the prompt gets what the longest verbalizer leaves."""
    return config.lm_max_length - max(len(v) for v in verbalizer_ids)


# ------------------------------------------------------------------------------------- masking and scoring
def join_prompts_and_answers(prompt_ids: list[list[int]], answer_ids: list[list[int]],
                             pad_token_id: int) -> dict[str, torch.Tensor]:
    """A left-padded batch of rows prompt + answer whose labels are the answer ids, IGNORE_INDEX elsewhere.

    Left padding ends every row at the same position, so each row's answer is its last tokens and the model need only
    compute logits at the last (longest answer + 1) positions; position_ids restart at 0 on each row's first real
    token. An empty answer gives a prompt-only row (for generation).
    Returns input_ids, attention_mask, position_ids, labels: each (N, L) with L the longest prompt + answer.
    """
    if len(prompt_ids) != len(answer_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(answer_ids)} answers.")
    length = max(len(p) + len(a) for p, a in zip(prompt_ids, answer_ids, strict=True))
    rows = len(prompt_ids)
    input_ids = torch.full((rows, length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((rows, length), dtype=torch.long)
    labels = torch.full((rows, length), IGNORE_INDEX, dtype=torch.long)
    for row, (prompt, answer) in enumerate(zip(prompt_ids, answer_ids, strict=True)):
        start = length - len(prompt) - len(answer)
        input_ids[row, start:] = torch.as_tensor(list(prompt) + list(answer), dtype=torch.long)
        attention_mask[row, start:] = 1
        if answer:
            labels[row, length - len(answer):] = torch.as_tensor(answer, dtype=torch.long)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids, "labels": labels}


def candidate_rows(prompt_ids: list[list[int]], verbalizer_ids: list[list[int]]) -> tuple[list, list]:
    """Every prompt paired with every verbalizer: row b·C + k is prompt b followed by verbalizer k."""
    prompts = [prompt for prompt in prompt_ids for _ in verbalizer_ids]
    answers = [answer for _ in prompt_ids for answer in verbalizer_ids]
    return prompts, answers


def sum_answer_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ over each row's answer tokens of log p(token | everything before it).

    logits (N, K, V): the model's outputs at the last K positions of the rows (K = L: all of them); labels (N, L),
    IGNORE_INDEX off the answer. Logit position t predicts token t + 1, so every answer token must lie in the last
    K − 1 positions (true for left padding with K = longest answer + 1, and for any padding with K = L).
    Returns (N,) log-probabilities (float32).
    """
    length, kept = labels.shape[1], min(logits.shape[1], labels.shape[1])
    logits = logits[:, -kept:]
    if (labels[:, : length - kept + 1] != IGNORE_INDEX).any():
        raise ValueError(f"Answer labels lie outside the last {kept - 1} positions the {kept} kept logits predict.")
    targets = labels[:, length - kept + 1:]  # (N, K-1): the token each kept position but the last predicts
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (N, K-1, V)
    answer = targets != IGNORE_INDEX
    token_log_probs = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (N, K-1)
    return torch.where(answer, token_log_probs, torch.zeros_like(token_log_probs)).sum(-1)


def answer_log_probs(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(N,) total log-probability of each left-padded row's answer, computing logits only where answers are."""
    keep = int((batch["labels"] != IGNORE_INDEX).sum(-1).max()) + 1  # longest answer + the position before it
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=False)
    return sum_answer_log_probs(outputs.logits, batch["labels"])


def verbalizer_scores(model: PreTrainedModel, prompt_ids: list[list[int]], verbalizer_ids: list[list[int]],
                      pad_token_id: int) -> torch.Tensor:
    """s: (B, C) total log-probability of each verbalizer after each prompt, all B·C candidates in one forward."""
    device = next(model.parameters()).device
    batch = join_prompts_and_answers(*candidate_rows(prompt_ids, verbalizer_ids), pad_token_id)
    batch = {name: tensor.to(device) for name, tensor in batch.items()}
    return answer_log_probs(model, batch).view(len(prompt_ids), len(verbalizer_ids))


# ------------------------------------------------------------------------------------------------------ losses
def answer_cross_entropy(scores: torch.Tensor, labels: torch.Tensor, verbalizer_lengths: torch.Tensor) -> torch.Tensor:
    """CE_answer = −(Σ_b s_b,y_b) / (Σ_b |v_y_b|): the mean over gold answer tokens, as the HF causal-LM loss.

    scores (B, C) verbalizer log-probabilities, labels (B,) gold classes, verbalizer_lengths (C,) tokens per
    verbalizer -> scalar.
    """
    gold = scores.gather(1, labels.unsqueeze(1)).squeeze(1)  # (B,)
    return -gold.sum() / verbalizer_lengths.to(scores.device)[labels].sum()


def verbalizer_kd_loss(scores: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(z_t / T) ‖ softmax(s / T)): the teacher's classes onto the LM's four verbalizers.

    scores (B, C) verbalizer log-probabilities of the LM, teacher_logits (B, C) -> scalar. softmax(s / T) is the LM's
    verbalizer distribution renormalised over the four classes and tempered, exactly as softmax(z / T) for a classifier.
    """
    return distill.soft_target_loss(scores, teacher_logits, temperature)


# --------------------------------------------------------------------------------------------- model and tokenizer
def local_lm_path(config: Config) -> Path:
    return Path(config.cache_dir) / "lm-init"


def build_local_lm(folder: str | Path, texts: list[str], seed: int) -> str:
    """A randomly initialised tiny LlamaForCausalLM (the SmolLM2 family) and a byte-level BPE tokenizer trained on
    ``texts`` and the prompt, both written with ``save_pretrained`` to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2 style, as SmolLM2's
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=LOCAL_VOCAB_SIZE, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # The prompt and the verbalizers are in the corpus so their words get merged like the articles' words.
    prompts = [build_prompt("") + verbalizer for verbalizer in VERBALIZERS] * 50
    bpe.train_from_iterator(list(texts) + prompts, trainer)
    # Like SmolLM2's tokenizer: <|endoftext|> for bos and eos and no pad token (load_lm falls back to eos).
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT)
    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=end, eos_token_id=end,
                                         **LOCAL_LM_ARCHITECTURE))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def lm_init_path(config: Config, texts: list[str] | None = None) -> str:
    """Hub id (``lm_source == "hub"``) or the folder of the tiny local LM, built once from ``texts``."""
    if config.lm_source == "hub":
        return config.lm_name
    if config.lm_source != "local":
        raise ValueError(f"lm_source must be 'hub' or 'local', not {config.lm_source!r}.")
    folder = local_lm_path(config)
    if not (folder / "config.json").exists():
        if not texts:
            raise ValueError(f"No local LM at {folder}: pass the training texts to build its tokenizer from.")
        build_local_lm(folder, texts, config.seed)
    return str(folder)


def load_lm(path: str | Path):
    """(model, tokenizer) through ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained``, weights in float32.

    float32 because the optimiser keeps no master copy: mixed precision (bf16/fp16) comes from the Trainer's autocast.
    A tokenizer without a pad token (SmolLM2's) pads with eos; padding is masked, so the choice does not matter.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except OSError as error:
        hint = "" if Path(path).exists() else (" The hub is unreachable offline: use KD_PROFILE=offline or smoke, "
                                               "which build a tiny local LM of the same family.")
        raise OSError(f"Could not load the causal LM {str(path)!r}: {error}.{hint}") from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# ------------------------------------------------------------------------------------------------- training
@dataclass
class VerbalizerCollator:
    """Turns B rows (prompt_ids, label, teacher_logits) into the B·C candidate rows of ``join_prompts_and_answers``."""

    verbalizer_ids: list[list[int]]
    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        prompts = [feature["prompt_ids"] for feature in features]
        batch = join_prompts_and_answers(*candidate_rows(prompts, self.verbalizer_ids), self.pad_token_id)
        batch["class_labels"] = torch.tensor([feature["label"] for feature in features], dtype=torch.long)
        if "teacher_logits" in features[0]:
            batch["teacher_logits"] = torch.tensor([f["teacher_logits"] for f in features], dtype=torch.float32)
        return batch


class VerbalizerTrainer(Trainer):
    """``Trainer`` whose loss is CE_answer + kd_weight · the verbalizer KD loss; logs both components."""

    def __init__(self, *args, verbalizer_lengths: torch.Tensor, kd_weight: float, temperature: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.verbalizer_lengths = verbalizer_lengths
        self.kd_weight = kd_weight
        self.temperature = temperature
        self._sums: dict[str, float] = {}
        self._steps = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        class_labels = inputs["class_labels"]
        scores = answer_log_probs(model, inputs).view(len(class_labels), -1)  # (B, C)
        components = {"answer_ce": answer_cross_entropy(scores, class_labels, self.verbalizer_lengths)}
        weights = {"answer_ce": 1.0}
        if self.kd_weight > 0:
            if "teacher_logits" not in inputs:
                raise ValueError("lm_kd_weight > 0 but the training rows carry no teacher_logits column.")
            components["verbalizer_kd"] = verbalizer_kd_loss(scores, inputs["teacher_logits"], self.temperature)
            weights["verbalizer_kd"] = self.kd_weight
        loss = distill.combine_losses(components, weights)
        for name, value in components.items():
            self._sums[name] = self._sums.get(name, 0.0) + float(value.detach())
        self._steps += 1
        return (loss, {"scores": scores}) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._steps:
            logs.update({f"loss_{name}": round(total / self._steps, 6) for name, total in self._sums.items()})
            self._sums, self._steps = {}, 0
        super().log(logs, *args, **kwargs)


@dataclass
class LMOutcome:
    """A fine-tuned (or cached) LM student with its training record."""

    model: PreTrainedModel
    tokenizer: object
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    hardware: str = ""
    cached: bool = False


def encode_rows(rows: Dataset, tokenizer, config: Config) -> Dataset:
    """prompt_ids and length per row (label and teacher_logits kept), in the LM's own tokens."""
    budget = max_prompt_tokens(config, verbalizer_token_ids(tokenizer))

    def encode(batch):
        prompt_ids = encode_prompts(tokenizer, batch["text"], budget)
        return {"prompt_ids": prompt_ids, "length": [len(ids) for ids in prompt_ids]}

    return rows.map(encode, batched=True, remove_columns=["text"])


def hardware_label() -> str:
    """Where this process runs: the GPU's name, else the CPU's core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def finetune_lm(model: PreTrainedModel, tokenizer, rows: Dataset, config: Config, output_dir: str | Path,
                quiet: bool = True) -> LMOutcome:
    """Fine-tune on ``rows`` (text, label and, where lm_kd_weight > 0, teacher_logits) with L = CE_answer + KD."""
    if quiet:
        hf_logging.set_verbosity_error()
    verbalizer_ids = verbalizer_token_ids(tokenizer)
    encoded = encode_rows(rows, tokenizer, config)
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.lm_epochs,
        per_device_train_batch_size=config.lm_batch_size,
        learning_rate=config.lm_learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a fraction of the steps
        lr_scheduler_type="linear",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="no",  # the final model is saved by the caller; runs take minutes
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",  # batches of similar length: less padding
        length_column_name="length",
        remove_unused_columns=False,  # the collator picks the columns
        dataloader_num_workers=config.num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=quiet,
        **precision_flags(config.precision),
    )
    trainer = VerbalizerTrainer(
        model=model, args=args, train_dataset=encoded,
        data_collator=VerbalizerCollator(verbalizer_ids, tokenizer.pad_token_id),
        verbalizer_lengths=torch.tensor([len(v) for v in verbalizer_ids]),
        kd_weight=config.lm_kd_weight, temperature=config.lm_temperature)
    if quiet:
        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return LMOutcome(trainer.model, tokenizer, trainer.state.log_history, seconds, hardware_label())


def lm_training_rows(workspace: pipeline.Workspace) -> Dataset:
    """A stratified ``lm_train_rows`` subset of the students' training rows, each with the teacher's cached logits.

    The teacher read these articles through its own tokenizer; its logits are looked up by row, never recomputed from
    the LM's token ids.
    """
    config = workspace.config
    logits, _ = pipeline.load_or_compute_teacher_logits(workspace, "student_train")
    rows = workspace.student_train
    if len(logits) != len(rows):
        raise ValueError(f"{len(logits)} cached teacher logits for {len(rows)} student_train rows: the cache is stale.")
    indexed = rows.add_column("row", list(range(len(rows))))
    subset = data.stratified_subset(indexed, config.lm_train_rows, config.seed)
    return subset.add_column("teacher_logits", logits[np.asarray(subset["row"])].tolist()).remove_columns("row")


def student_path(config: Config) -> Path:
    return Path(config.cache_dir) / "lm-student"


def _training_key(config: Config, rows: Dataset) -> str:
    names = ("lm_name", "lm_source", "lm_train_rows", "lm_epochs", "lm_batch_size", "lm_learning_rate",
             "lm_max_length", "lm_kd_weight", "lm_temperature", "weight_decay", "warmup_ratio", "seed")
    settings = {name: getattr(config, name) for name in names}
    if config.lm_source == "local":
        settings["local_lm"] = {**LOCAL_LM_ARCHITECTURE, "vocab_size": LOCAL_VOCAB_SIZE}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(data.fingerprint(rows).encode())
    digest.update(np.asarray(rows["teacher_logits"], dtype=np.float32).tobytes())
    digest.update(json.dumps([INSTRUCTION, ARTICLE_CUE, ANSWER_CUE, VERBALIZERS]).encode())
    return digest.hexdigest()[:16]


def load_or_finetune_lm(workspace: pipeline.Workspace, quiet: bool = True) -> LMOutcome:
    """The fine-tuned LM from ``<cache_dir>/lm-student/`` when its key (settings, rows, teacher logits, prompt)
    matches; otherwise fine-tune it from ``lm_init_path`` and cache it with its loss history and wall time."""
    config = workspace.config
    rows = lm_training_rows(workspace)
    key, folder = _training_key(config, rows), student_path(config)
    record_file = folder / "training.json"
    if record_file.exists():
        record = json.loads(record_file.read_text())
        if record["key"] == key:
            model, tokenizer = load_lm(folder)
            return LMOutcome(model, tokenizer, record["history"], record["train_seconds"], record["hardware"], True)
    model, tokenizer = load_lm(lm_init_path(config, rows["text"]))
    outcome = finetune_lm(model, tokenizer, rows, config, Path(config.cache_dir) / "runs" / "lm-student", quiet)
    if folder.exists():
        shutil.rmtree(folder)
    outcome.model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = {"key": key, "train_rows": len(rows), "history": outcome.history, "train_seconds": outcome.train_seconds,
              "hardware": outcome.hardware}
    record_file.write_text(json.dumps(record))
    return outcome


# ---------------------------------------------------------------------------------------------- predictions
def _autocast(device: torch.device):
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


@torch.inference_mode()
def predict_scores(model: PreTrainedModel, tokenizer, articles: list[str], config: Config,
                   batch_size: int | None = None) -> np.ndarray:
    """s: (N, C) verbalizer log-probabilities for raw articles; batched longest-first so batches pad little."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    verbalizer_ids = verbalizer_token_ids(tokenizer)
    prompts = encode_prompts(tokenizer, articles, max_prompt_tokens(config, verbalizer_ids))
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    scores = np.zeros((len(prompts), len(verbalizer_ids)), dtype=np.float32)
    batch_size = batch_size or config.eval_batch_size
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        with _autocast(device):
            batch_scores = verbalizer_scores(model, [prompts[i] for i in index], verbalizer_ids,
                                             tokenizer.pad_token_id)
        scores[index] = batch_scores.float().cpu().numpy()
    return scores


@torch.inference_mode()
def generate_answers(model: PreTrainedModel, tokenizer, articles: list[str], config: Config,
                     max_new_tokens: int = GENERATION_TOKENS) -> list[str]:
    """What the LM writes after each prompt: greedy decoding of ``max_new_tokens`` tokens (left-padded batch)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    prompts = encode_prompts(tokenizer, articles, config.lm_max_length - max_new_tokens)
    batch = join_prompts_and_answers(prompts, [[] for _ in prompts], tokenizer.pad_token_id)
    output = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                            max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    new_tokens = output[:, batch["input_ids"].shape[1]:]
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in new_tokens]


def fixed_examples(test: Dataset, count: int = 10) -> pd.DataFrame:
    """The first test rows of each class in turn (World, Sports, Business, Sci/Tech, World, ...): the same prompts are
    shown before and after fine-tuning."""
    frame = test.to_pandas()
    frame["rank"] = frame.groupby("label").cumcount()
    picked = frame.sort_values(["rank", "label"], kind="stable").head(count)
    return picked.reset_index(names="row")[["row", "text", "label"]]


def example_answers(model: PreTrainedModel, tokenizer, examples: pd.DataFrame, config: Config) -> pd.DataFrame:
    """For each example: the free generation, the scored prediction and its probability among the four verbalizers."""
    articles = examples["text"].tolist()
    scores = predict_scores(model, tokenizer, articles, config)
    probabilities = evaluate.softmax(scores)
    return pd.DataFrame({"generation": generate_answers(model, tokenizer, articles, config),
                         "prediction": [LABELS[i] for i in probabilities.argmax(-1)],
                         "probability": probabilities.max(-1).astype(float).round(3),
                         "scores": [row.astype(float).round(3).tolist() for row in scores]})


def before_after_table(examples: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The same prompts side by side: article, gold label, generation and scored prediction before and after."""
    return pd.DataFrame({
        "article": examples["text"].str.slice(0, 70).values,
        "gold": [LABELS[i] for i in examples["label"]],
        "before: generates": before["generation"].map(repr).values,
        "before: scored": [f"{p} ({q:.2f})" for p, q in zip(before["prediction"], before["probability"], strict=True)],
        "after: generates": after["generation"].map(repr).values,
        "after: scored": [f"{p} ({q:.2f})" for p, q in zip(after["prediction"], after["probability"], strict=True)],
    })


def evaluation_rows(workspace: pipeline.Workspace) -> Dataset:
    """``lm_eval_rows`` stratified test rows (None: all of test)."""
    config = workspace.config
    return data.stratified_subset(workspace.splits["test"], config.lm_eval_rows, config.seed)


def evaluate_lm(model: PreTrainedModel, tokenizer, rows: Dataset, config: Config) -> dict:
    """evaluate.classification_metrics of the verbalizer scores on ``rows``, plus the seconds it took."""
    start = time.perf_counter()
    scores = predict_scores(model, tokenizer, rows["text"], config)
    metrics = evaluate.classification_metrics(np.asarray(rows["label"]), scores)
    return {**metrics, "predictions": scores.argmax(-1), "seconds": time.perf_counter() - start}


def accuracy_table(before: dict, after: dict) -> pd.DataFrame:
    """Accuracy and macro-F1 before (zero-shot) and after fine-tuning."""
    frame = pd.DataFrame({"before (zero-shot)": {"accuracy": before["accuracy"], "macro_f1": before["macro_f1"]},
                          "after fine-tuning": {"accuracy": after["accuracy"], "macro_f1": after["macro_f1"]}}).T
    frame["test rows"] = [before["rows"], after["rows"]]
    return frame


# ---------------------------------------------------------------------------------------------- loss and cost
def loss_figure(history: list[dict], title: str = "Decoder student: train loss") -> plt.Figure:
    """Total train loss and its components (CE on answer tokens, verbalizer KD) per logging step."""
    train = pd.DataFrame([entry for entry in history if "loss" in entry])
    figure, axis = plt.subplots(figsize=(8, 3.6))
    axis.plot(train["step"], train["loss"], marker=".", label="total")
    for column in [c for c in train.columns if c.startswith("loss_")]:
        axis.plot(train["step"], train[column], linestyle=":", label=f"{column.removeprefix('loss_')} (unweighted)")
    axis.set(title=title, xlabel="step", ylabel="loss")
    axis.legend()
    figure.tight_layout()
    return figure


def cost_table(seconds: float, hardware: str,
               prices: tuple[tuple[str, str, float], ...] = HOURLY_PRICES) -> pd.DataFrame:
    """What the measured wall time would cost rented at each assumed hourly price.

    ``seconds`` were measured on ``hardware``; each row prices that duration at one rate. It is not a prediction of
    how long the run would take on the rented GPU: ``same hardware`` marks the rows where the two coincide.
    """
    rows = [{"rented": f"{where}, {gpu}", "USD per hour (assumed)": price, "measured on": hardware,
             "wall seconds": round(seconds, 1), "cost of that time (USD)": round(seconds / 3600 * price, 4),
             "same hardware": gpu.split()[0] in hardware} for where, gpu, price in prices]
    return pd.DataFrame(rows)


def measured_hardware(outcome: LMOutcome) -> str:
    """Where the wall time was measured: training (perhaps cached from an earlier run) and evaluation (now)."""
    now = hardware_label()
    if not outcome.hardware or outcome.hardware == now:
        return now
    return f"{outcome.hardware} (training), {now} (evaluation)"


def payload(config: Config, outcome: LMOutcome, examples: pd.DataFrame, before_examples: pd.DataFrame,
            after_examples: pd.DataFrame, before: dict, after: dict) -> dict:
    """The results document of notebook 06 (``results.save_result`` adds the provenance)."""
    seconds = {"train": outcome.train_seconds, "evaluate_before": before["seconds"],
               "evaluate_after": after["seconds"]}
    total = sum(seconds.values())
    hardware = measured_hardware(outcome)
    summary = ("accuracy", "macro_f1", "nll", "ece", "per_class", "confusion_matrix", "rows", "predictions")
    return {
        "model": config.lm_name, "train_rows": config.lm_train_rows, "epochs": config.lm_epochs,
        "prompt": build_prompt("{article}"), "verbalizers": list(VERBALIZERS),
        "before": {name: before[name] for name in summary}, "after": {name: after[name] for name in summary},
        "examples": [{"row": example["row"], "text": example["text"], "gold": LABELS[example["label"]],
                      "before": before_examples.iloc[i].to_dict(), "after": after_examples.iloc[i].to_dict()}
                     for i, example in enumerate(examples.to_dict(orient="records"))],
        "history": outcome.history, "training_cached": outcome.cached,
        "wall_seconds": {**seconds, "total": total}, "hardware": hardware,
        "cost": cost_table(total, hardware).to_dict(orient="records"),
        "hourly_prices_assumed": [{"where": w, "gpu": g, "usd_per_hour": p} for w, g, p in HOURLY_PRICES],
    }


def save(config: Config, document: dict) -> Path:
    return results.save_result(config, "decoder_student", document)
