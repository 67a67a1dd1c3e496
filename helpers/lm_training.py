"""Fine-tuning the decoder-only student: its training rows (with the teacher's cached logits), the collator that
appends the gold answer and its end token, and a ``Trainer`` whose loss is CE_answer + λ · the verbalizer KD loss."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel, PrinterCallback, Trainer
from transformers.utils import logging as hf_logging

from helpers import data, distill, pipeline, train
from helpers.config import Config
from helpers.lm_models import hardware_label
from helpers.lm_prompts import (
    ANSWER_TOKENS,
    answer_cross_entropy,
    answer_ids,
    encode_prompts,
    join_prompts_and_answers,
    prompt_budget,
    score_batch,
    verbalizer_kd_loss,
    verbalizer_token_ids,
)


@dataclass
class AnswerCollator:
    """B rows (prompt_ids, label, teacher_logits) -> left-padded rows prompt + gold verbalizer + eos (one per row),
    labels on the two answer tokens only, plus the class labels and the teacher's logits."""

    verbalizer_ids: list[int]
    end_token_id: int
    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        labels = [feature["label"] for feature in features]
        answers = answer_ids(labels, self.verbalizer_ids, self.end_token_id)
        batch = join_prompts_and_answers([feature["prompt_ids"] for feature in features], answers, self.pad_token_id)
        batch["class_labels"] = torch.tensor(labels, dtype=torch.long)
        if "teacher_logits" in features[0]:
            batch["teacher_logits"] = torch.tensor([f["teacher_logits"] for f in features], dtype=torch.float32)
        return batch


class AnswerTrainer(Trainer):
    """``Trainer`` whose loss is CE_answer + kd_weight · the verbalizer KD loss; logs both components."""

    def __init__(self, *args, verbalizer_ids: list[int], kd_weight: float, temperature: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.verbalizer_ids = verbalizer_ids
        self.kd_weight = kd_weight
        self.temperature = temperature
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        scores, answer_log_probs = score_batch(model, inputs, self.verbalizer_ids, ANSWER_TOKENS)  # (B, C), (B,)
        components = {"answer_ce": answer_cross_entropy(answer_log_probs)}
        weights = {"answer_ce": 1.0}
        if self.kd_weight > 0:
            if "teacher_logits" not in inputs:
                raise ValueError("lm_kd_weight > 0 but the training rows carry no teacher_logits column.")
            components["verbalizer_kd"] = verbalizer_kd_loss(scores, inputs["teacher_logits"], self.temperature)
            weights["verbalizer_kd"] = self.kd_weight
        loss = distill.combine_losses(components, weights)
        for name, value in components.items():
            # Summed on the device and read only when logged: float() here would make every step wait for the GPU.
            total = self._sums.get(name)
            self._sums[name] = value.detach() if total is None else total + value.detach()
        self._steps += 1
        return (loss, {"scores": scores}) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._steps:
            logs.update({f"loss_{name}": round(float(total) / self._steps, 6) for name, total in self._sums.items()})
            self._sums, self._steps = {}, 0
        super().log(logs, *args, **kwargs)


@dataclass
class FineTuned:
    """A fine-tuned LM with its loss history and the seconds its training took, where."""

    model: PreTrainedModel
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    hardware: str = ""


def encode_rows(rows: Dataset, tokenizer, config: Config) -> Dataset:
    """prompt_ids and length per row (label and teacher_logits kept), in the LM's own tokens."""
    budget = prompt_budget(config.lm_max_length)

    def encode(batch):
        prompt_ids = encode_prompts(tokenizer, batch["text"], budget)
        return {"prompt_ids": prompt_ids, "length": [len(ids) for ids in prompt_ids]}

    return rows.map(encode, batched=True, remove_columns=["text"])


def finetune_lm(model: PreTrainedModel, tokenizer, rows: Dataset, config: Config, output_dir: str | Path, *,
                seed: int, kd_weight: float, quiet: bool = True) -> FineTuned:
    """Fine-tune on ``rows`` (text, label and, where kd_weight > 0, teacher_logits) with L = CE_answer + λ · KD.

    ``seed`` sets the order of the rows (the starting weights are the same pretrained model for every seed).
    """
    if quiet:
        hf_logging.set_verbosity_error()
    args = train.training_arguments(
        config, output_dir, seed=seed, epochs=config.lm_epochs, learning_rate=config.lm_learning_rate, quiet=quiet,
        per_device_train_batch_size=config.lm_batch_size, eval_strategy="no", save_strategy="no",
        save_total_limit=None)
    trainer = AnswerTrainer(
        model=model, args=args, train_dataset=encode_rows(rows, tokenizer, config),
        data_collator=AnswerCollator(verbalizer_token_ids(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id),
        verbalizer_ids=verbalizer_token_ids(tokenizer), kd_weight=kd_weight, temperature=config.lm_temperature)
    if quiet:
        trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return FineTuned(trainer.model, trainer.state.log_history, seconds, hardware_label())


def lm_training_rows(workspace: pipeline.Workspace) -> Dataset:
    """A stratified ``lm_train_rows`` subset of the students' training rows, each with the teacher's cached logits.

    The teacher read these articles through its own tokenizer; its logits are looked up by row, never recomputed from
    the LM's token ids. Both arms of the teacher-effect comparison train on exactly these rows.
    """
    config = workspace.config
    logits, _ = pipeline.load_or_compute_teacher_logits(workspace, "student_train")
    rows = workspace.student_train
    if len(logits) != len(rows):
        raise ValueError(f"{len(logits)} cached teacher logits for {len(rows)} student_train rows: the cache is stale.")
    indexed = rows.add_column("row", list(range(len(rows))))
    subset = data.stratified_subset(indexed, config.lm_train_rows, config.seed)
    return subset.add_column("teacher_logits", logits[np.asarray(subset["row"])].tolist()).remove_columns("row")
