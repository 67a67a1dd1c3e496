"""Training speed: our Trainer step vs a first-draft KD loop, distillation vs baseline step; teacher logits vs cache."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import PretrainedConfig, PreTrainedModel, PrinterCallback, TrainerCallback
from transformers.utils import logging as hf_logging

from benchmark.common import BenchmarkSizes, build, clock, describe, profile_architectures
from helpers import cache, distill, hardware, models, pipeline
from helpers.config import Config
from helpers.train import BASELINE, Collator, DistillationTrainer, DistillSpec, collator_for, training_arguments

KD_SPEC = DistillSpec(name="kd", hard_label_weight=0.5, soft_target_weight=0.5, temperature=2.0)
TRAINING_VARIANTS = ("naive_kd", "baseline", "kd_cached", "kd_online")


class _EpochTimer(TrainerCallback):
    """Seconds of the Trainer's epoch: every step, batch loading included, not the Trainer's setup."""

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.start = clock()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.seconds = clock() - self.start


class OnlineLogitsTrainer(DistillationTrainer):
    """Our KD step with the teacher's logits computed at every step instead of read from the cache."""

    def __init__(self, *args, logit_teacher: PreTrainedModel, **kwargs):
        super().__init__(*args, **kwargs)
        self.logit_teacher = logit_teacher.to(self.args.device).eval()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            with torch.no_grad(), self.accelerator.autocast():
                teacher_logits = self.logit_teacher(input_ids=inputs["input_ids"],
                                                    attention_mask=inputs["attention_mask"]).logits.float()
            inputs = {**inputs, "target_logits": teacher_logits}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def our_trainer(config: Config, student: PreTrainedModel, rows: Dataset, tokenizer, spec: DistillSpec,
                output_dir: str | Path, *, online_teacher: PreTrainedModel | None = None,
                max_steps: int | None = None, grouped: bool = True) -> DistillationTrainer:
    """A DistillationTrainer with train_classifier's settings, one epoch over ``rows`` (or ``max_steps``);
    ``grouped=False``: batches of consecutive rows, for rows already laid out in the real sampler's batches."""
    hf_logging.set_verbosity_error()
    args = training_arguments(config, output_dir, seed=0, epochs=1, max_steps=max_steps or -1, eval_strategy="no",
                              save_strategy="no", disable_tqdm=True,  # only the step is measured
                              **({} if grouped else {"train_sampling_strategy": "sequential"}))
    kwargs = dict(model=student, args=args, train_dataset=rows, data_collator=collator_for(tokenizer), spec=spec)
    trainer = (OnlineLogitsTrainer(**kwargs, logit_teacher=online_teacher) if online_teacher is not None
               else DistillationTrainer(**kwargs))
    trainer.remove_callback(PrinterCallback)
    return trainer


def our_epoch(trainer: DistillationTrainer) -> float:
    """Seconds of one pass of ``trainer`` over its rows (its data loading, forward, backward, optimizer step)."""
    timer = _EpochTimer()
    trainer.add_callback(timer)
    trainer.train()
    trainer.remove_callback(timer)
    return timer.seconds


def real_epoch(config: Config, workspace: pipeline.Workspace, folder: str | Path) -> tuple[dict, list[list[int]]]:
    """One real epoch of our sampler over the training rows, no model run: its padding (vs padding every row to
    max_length) and its batches (row indices)."""
    rows = workspace.tokenized["student_train"]
    trainer = our_trainer(config, build(profile_architectures(config)[1]), rows, workspace.tokenizer, BASELINE,
                          Path(folder) / "epoch")
    batches = [list(index) for index in trainer.get_train_dataloader().batch_sampler]  # index lists, no collation
    lengths = np.asarray(rows["length"][:])
    padded = padded_tokens(lengths, batches, collator_for(workspace.tokenizer).pad_to_multiple_of)
    real = int(lengths.sum())
    stats = {"rows": len(rows), "batches": len(batches), "real_tokens": real, "padded_tokens": padded,
             "padding_share": 1 - real / padded, "naive_padding_share": 1 - real / (len(rows) * config.max_length)}
    return stats, batches


def padded_tokens(lengths: np.ndarray, batches: list[list[int]] | int, pad_to_multiple_of: int | None) -> int:
    """Tokens ``batches`` (row indices; an int: consecutive rows in batches of that size, as the Trainer takes them
    with grouped=False) fill once padded to their longest row, rounded up to ``pad_to_multiple_of``. Unlike
    plan.padded_tokens_per_row, which draws its own batches, this counts the batches a measurement actually ran."""
    if isinstance(batches, int):
        batches = [range(start, min(start + batches, len(lengths))) for start in range(0, len(lengths), batches)]
    multiple = pad_to_multiple_of or 1
    return sum(-(-int(lengths[index].max()) // multiple) * multiple * len(index) for index in batches)


def strided_batches(batches: list[list[int]], count: int, batch_size: int, lengths: np.ndarray) -> np.ndarray:
    """Row indices of ``count`` full batches spread evenly over an epoch (the sampler sorts each mega-batch, so
    consecutive ones would be biased), the longest first as the sampler puts it (a few steps reach the peak memory)."""
    full = [index for index in batches if len(index) == batch_size]
    count = min(count, len(full))
    # Mid-points of equal strides: skips the epoch's first batch, which the sampler gives the longest row of all.
    picked = [full[int(i)] for i in (np.arange(count) + 0.5) * len(full) / count]
    longest = max(range(count), key=lambda i: lengths[picked[i]].max())
    picked.insert(0, picked.pop(longest))
    return np.concatenate(picked)


def naive_epoch(config: Config, student: PreTrainedModel, teacher: PreTrainedModel, rows: Dataset, tokenizer,
                max_steps: int | None = None) -> float:
    """Seconds of a first-draft KD loop over ``rows``: shuffled, padded to max_length, fp32, teacher run every step,
    torch's default AdamW."""
    device = hardware.device()
    student, teacher = student.to(device).train(), teacher.to(device).eval()
    padded = Collator(tokenizer.pad_token_id, pad_to_multiple_of=config.max_length)  # every row to max_length
    loader = torch.utils.data.DataLoader(rows, batch_size=config.batch_size, shuffle=True, collate_fn=padded,
                                         generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start = clock()
    for batch in itertools.islice(loader, max_steps):
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            teacher_logits = teacher(**inputs).logits
        logits = student(**inputs).logits
        loss = (KD_SPEC.hard_label_weight * torch.nn.functional.cross_entropy(logits, batch["labels"].to(device))
                + KD_SPEC.soft_target_weight * distill.soft_target_loss(logits, teacher_logits, KD_SPEC.temperature))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return clock() - start


def measure_training(config: Config, workspace: pipeline.Workspace, rows: Dataset,
                     architectures: tuple[PretrainedConfig, PretrainedConfig], sizes: BenchmarkSizes,
                     folder: str | Path) -> tuple[dict, dict[str, Callable[[], object]]]:
    """Seconds per pass of the naive KD loop and our baseline, cached-KD and online-KD steps, interleaved. Ours takes
    ``rows`` in our real sampler's batches; the naive loop shuffles the first ``naive_rows`` (padded to max_length,
    every row costs it the same). Returns the measurements and, per variant, a memory phase (builds, a few steps)."""
    tokenizer, (teacher_architecture, student_architecture) = workspace.tokenizer, architectures
    teacher, student = build(teacher_architecture, seed=1), build(student_architecture)
    plain_rows = rows.remove_columns("target_logits")
    naive_rows = plain_rows.select(range(min(sizes.naive_rows, len(plain_rows))))

    def make(variant: str, model: PreTrainedModel, teacher_model: PreTrainedModel | None, max_steps=None):
        if variant == "naive_kd":
            return lambda: naive_epoch(config, model, teacher_model, naive_rows, tokenizer, max_steps=max_steps)
        spec = BASELINE if variant == "baseline" else KD_SPEC
        data = rows if variant == "kd_cached" else plain_rows
        trainer = our_trainer(config, model, data, tokenizer, spec, Path(folder) / variant, max_steps=max_steps,
                              online_teacher=teacher_model if variant == "kd_online" else None, grouped=False)
        return lambda: our_epoch(trainer)

    def fresh(variant: str, max_steps: int):  # builds its own models: a phase's memory includes weights, optimizer
        return lambda: make(variant, build(student_architecture), build(teacher_architecture)
                            if variant in ("naive_kd", "kd_online") else None, max_steps)()

    students = {variant: copy.deepcopy(student) for variant in TRAINING_VARIANTS}
    for variant in TRAINING_VARIANTS:  # warm-up: kernels, allocator, the fused optimizer's first step
        make(variant, students[variant], teacher, max_steps=sizes.warmup_steps)()
    seconds = {variant: [] for variant in TRAINING_VARIANTS}
    for round_index in range(sizes.repeats):
        order = TRAINING_VARIANTS if round_index % 2 == 0 else TRAINING_VARIANTS[::-1]
        for variant in order:
            # A fresh Trainer per round, as train_classifier builds one per run (fresh optimizer, same batches).
            seconds[variant].append(make(variant, students[variant], teacher)())
    lengths = np.asarray(rows["length"][:])
    padded = {"ours": padded_tokens(lengths, config.batch_size, collator_for(tokenizer).pad_to_multiple_of),
              "naive_kd": len(rows) * config.max_length}
    real_tokens, optim = int(lengths.sum()), training_arguments(config, Path(folder) / "count", seed=0).optim
    medians = {variant: statistics.median(values) for variant, values in seconds.items()}
    rows_per_pass = {variant: len(naive_rows) if variant == "naive_kd" else len(rows) for variant in seconds}
    per_second = {variant: rows_per_pass[variant] / medians[variant] for variant in seconds}
    measured = {
        "rows": len(rows), "naive_rows": len(naive_rows), "rows_per_pass": rows_per_pass,
        "batch_size": config.batch_size, "max_length": config.max_length,
        "precision": {"ours": hardware.resolve_precision(config.precision), "naive_kd": "fp32"},
        "optimizer": {"ours": getattr(optim, "value", str(optim)),
                      "naive_kd": "torch.optim.AdamW (defaults)"},
        "teacher": describe(teacher), "student": describe(student), "real_tokens": real_tokens, "padded_tokens": padded,
        "padding_share": {variant: 1 - real_tokens / count for variant, count in padded.items()},
        "seconds": seconds, "median_seconds": medians, "samples_per_second": per_second,
        # Real (non-pad) tokens of the training rows per second: samples/s × their mean length.
        "tokens_per_second": {variant: value * real_tokens / len(rows) for variant, value in per_second.items()},
    }
    memory = {f"train_{variant}": fresh(variant, sizes.memory_steps) for variant in TRAINING_VARIANTS}
    return measured, memory


def measure_teacher_logits(workspace: pipeline.Workspace, teacher_architecture: PretrainedConfig,
                           picked: np.ndarray, repeats: int, folder: str | Path
                           ) -> tuple[dict, dict[str, Callable[[], object]], np.ndarray, Dataset]:
    """Time pipeline.load_or_compute_teacher_logits on training rows ``picked``, first pass then cached (in ``folder``);
    the timings, the memory phases, the logits and their tokenized rows, in the order of ``picked``."""
    config = dataclasses.replace(workspace.config, cache_dir=str(Path(folder) / "logits-cache"))
    raw, tokenized = workspace.student_train.select(picked), workspace.tokenized["student_train"].select(picked)
    split = "benchmark"
    space = dataclasses.replace(workspace, config=config, named={split: raw}, tokenized={split: tokenized},
                                fingerprints={split: cache.key_of("benchmark", picked.tolist())})
    teacher = build(teacher_architecture, seed=1)
    if not config.teacher_hub_id:  # the cache key reads the teacher's folder
        teacher.save_pretrained(models.fine_tuned_teacher_path(config))

    def one_pass(expect_cached: bool, model: PreTrainedModel | None = None) -> np.ndarray:
        if not expect_cached:
            for stale in Path(config.cache_dir, "teacher_logits").glob("*"):
                stale.unlink()
        # No label-order check: the random-weight teacher would fail it (a cheap step, timed with the rest).
        logits, info = pipeline.load_or_compute_teacher_logits(space, split, teacher=model or teacher,
                                                               check_labels=False)
        if info["cached"] is not expect_cached:
            raise RuntimeError(f"teacher-logit cache: expected cached={expect_cached}, got {info}")
        return logits

    one_pass(False)  # warm-up
    first, cached = [], []
    for _ in range(repeats):
        for timings, expect_cached in ((first, False), (cached, True)):
            start = clock()
            logits = one_pass(expect_cached)
            timings.append(clock() - start)
    first_median, cached_median = statistics.median(first), statistics.median(cached)
    measured = {"rows": len(tokenized), "batch_size": config.eval_batch_size, "first_seconds": first,
                "cached_seconds": cached, "first_median_seconds": first_median, "cached_median_seconds": cached_median,
                "first_rows_per_second": len(tokenized) / first_median}
    # In this order: the first pass (its teacher built inside it) leaves the file the cached pass reads.
    memory = {"teacher_logits_first": lambda: one_pass(False, build(teacher_architecture, seed=1)),
              "teacher_logits_cached": lambda: one_pass(True)}
    return measured, memory, logits, tokenized
