"""Speed and memory of the report's training and inference paths, side by side with naive references, as ratios.

One process, one data set, compared variants interleaved round by round (so background load hits both alike):

1. training: our step (the Trainer's length-grouped batches, dynamic padding, cached teacher logits, the profile's
   precision and fused AdamW) against a naive one (rows padded to max_length, fp32, teacher forward at every step,
   random sampler, plain AdamW). Ours passes over batches drawn evenly from a real epoch of our sampler; the naive
   loop over some of the same rows (padded to max_length, its cost per row is the same for every row).
2. distillation over baseline step cost, with cached logits and with the teacher run online.
3. inference of the full-size student (DistilBERT-base) against the full-size teacher (BERT-base), random weights,
   on real AG News test rows: latency at batch 1, throughput at batch 32.
4. the teacher-logit pass computed once, then read from the cache.
5. peak memory of each phase (``memory_method`` in the results says what it measures).

On a GPU it also measures full-size mixed-precision training, its share of the GPU's measured bf16 matmul peak, and
projects the full report's wall time (``gpu_section``). Results go to ``results/benchmark/<hardware>.json``.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import functools
import gc
import json
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PrinterCallback,
    TrainerCallback,
)
from transformers.utils import logging as hf_logging

from helpers import distill, evaluate, models, pipeline, results
from helpers.config import LABELS, PROJECT_ROOT, Config, get_config
from helpers.train import (
    BASELINE,
    Collator,
    DistillationTrainer,
    DistillSpec,
    collator_for,
    precision_flags,
    training_arguments,
)

KD_SPEC = DistillSpec(name="kd", hard_label_weight=0.5, kd_loss_weight=0.5, temperature=2.0)
TARGETS = {  # name -> (comparison, threshold)
    "train_speedup_over_naive": (">=", 2.0),
    "kd_step_over_baseline_step": ("<=", 1.05),
    "student_speedup_over_teacher_batch32": (">=", 1.8),
}
TRAINING_VARIANTS = ("naive_kd", "baseline", "kd_cached", "kd_online")


# ------------------------------------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class BenchmarkSizes:
    """How much work each measurement does."""

    train_rows: int  # rows our training variants pass over once per repeat (whole batches of a real epoch)
    naive_rows: int  # the naive loop's cost per row does not depend on the row (all padded): fewer suffice
    repeats: int  # timed repeats per compared variant, interleaved; medians are reported
    warmup_steps: int  # untimed training steps / inference batches before timing
    logits_rows: int  # rows of the teacher-logit pass (the training rows first, then others)
    inference_rows: int  # test rows timed at batch 32
    latency_rows: int  # test rows timed one at a time (batch 1)
    memory_steps: int  # steps / batches run for each phase's memory measurement
    full_size_inference: bool  # BERT-base vs DistilBERT-base (the brief's models) rather than the profile's own
    gpu_train_rows: int  # rows of the full-size training measurement (GPU only)
    inference_batch_size: int = 32


def sizes_for(config: Config, quick: bool = False) -> BenchmarkSizes:
    """Sizes per profile: minutes on 2 CPU cores (offline), seconds with --quick or the smoke profile."""
    batch = config.batch_size
    if config.profile == "smoke":
        return BenchmarkSizes(train_rows=2 * batch, naive_rows=batch, repeats=2, warmup_steps=1, logits_rows=64,
                              inference_rows=64, latency_rows=4, memory_steps=1, full_size_inference=False,
                              gpu_train_rows=2 * batch)
    if quick:
        return BenchmarkSizes(train_rows=8 * batch, naive_rows=2 * batch, repeats=2, warmup_steps=1,
                              logits_rows=256, inference_rows=32, latency_rows=8, memory_steps=1,
                              full_size_inference=True, gpu_train_rows=50 * batch)
    # A step of ours takes under a second on a CPU core, a naive one several. Ours: 24 batches per pass, a stride
    # through a real epoch of our sampler (with 8, the speed-up swung by 15% with the rows drawn).
    return BenchmarkSizes(train_rows=24 * batch, naive_rows=4 * batch, repeats=3, warmup_steps=2, logits_rows=768,
                          inference_rows=96, latency_rows=16, memory_steps=2, full_size_inference=True,
                          gpu_train_rows=200 * batch)


# ------------------------------------------------------------------------------------------------------ models
def full_size_architectures() -> tuple[PretrainedConfig, PretrainedConfig]:
    """(teacher, student) configs of the brief's models: BertConfig() is bert-base, DistilBertConfig() distilbert."""
    return BertConfig(num_labels=len(LABELS)), DistilBertConfig(num_labels=len(LABELS))


def profile_architectures(config: Config) -> tuple[PretrainedConfig, PretrainedConfig]:
    """(teacher, student) configs of the profile's models, read without downloading or training anything."""
    if config.profile == "full":
        return full_size_architectures()
    teacher = AutoConfig.from_pretrained(models.base_teacher_path(config))  # the fine-tuned teacher's architecture
    student_folder = Path(config.cache_dir) / "student-init"
    if config.profile == "offline" and not (student_folder / "config.json").exists():
        # models.student_init_path would build it from MiniLM (and write the cache); its architecture is this.
        student = DistilBertConfig(vocab_size=teacher.vocab_size,
                                   max_position_embeddings=teacher.max_position_embeddings, dim=teacher.hidden_size,
                                   n_layers=config.student_layers, n_heads=teacher.num_attention_heads,
                                   hidden_dim=teacher.intermediate_size, activation=teacher.hidden_act)
    else:
        student = AutoConfig.from_pretrained(models.student_init_path(config))
    return teacher, student


def build(architecture: PretrainedConfig, seed: int = 0) -> PreTrainedModel:
    """An untrained classifier of ``architecture`` with 4 labels: weights do not change speed or memory."""
    architecture = copy.deepcopy(architecture)
    architecture.num_labels = len(LABELS)
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(architecture)


def _describe(model: PreTrainedModel) -> dict:
    config = model.config
    return {"class": type(model).__name__, "parameters": models.parameter_count(model),
            "layers": getattr(config, "num_hidden_layers", None) or config.n_layers,
            "hidden": getattr(config, "hidden_size", None) or config.dim}


# ------------------------------------------------------------------------------------------------------ timing
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _inference_autocast(dev: torch.device):
    """The precision of evaluate.predict_logits: bf16 (else fp16) autocast on CUDA, fp32 on CPU."""
    if dev.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


class _EpochTimer(TrainerCallback):
    """Seconds from the start to the end of the Trainer's epoch: every step, batch loading included."""

    def __init__(self):
        self.seconds: float | None = None
        self._start = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):
        _sync()
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        _sync()
        self.seconds = time.perf_counter() - self._start


# ---------------------------------------------------------------------------------------------- our training
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
            inputs = {**inputs, "teacher_logits": teacher_logits}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def our_trainer(config: Config, student: PreTrainedModel, rows: Dataset, tokenizer, spec: DistillSpec,
                output_dir: str | Path, *, online_teacher: PreTrainedModel | None = None,
                max_steps: int | None = None, grouped: bool = True, seed: int = 0) -> DistillationTrainer:
    """A DistillationTrainer with train_classifier's settings, for one epoch over ``rows`` (or ``max_steps``).

    ``grouped=False``: batches of consecutive rows, for rows already laid out in batches of the real sampler.
    """
    hf_logging.set_verbosity_error()
    # Only the step is measured: no per-epoch evaluation or checkpoint.
    overrides = dict(max_steps=max_steps or -1, eval_strategy="no", save_strategy="no")
    if not grouped:
        overrides.update(train_sampling_strategy="sequential")
    args = training_arguments(config, output_dir, seed=seed, epochs=1, **overrides)
    kwargs = dict(model=student, args=args, train_dataset=rows,
                  data_collator=collator_for(tokenizer), spec=spec)
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


def padded_tokens(trainer: DistillationTrainer) -> int:
    """Tokens (real and padding) in one pass of the trainer's batches: what the model actually computes on."""
    return sum(int(batch["input_ids"].numel()) for batch in trainer.get_train_dataloader())


def real_epoch(config: Config, workspace: pipeline.Workspace, folder: str | Path) -> tuple[dict, list[list[int]]]:
    """One real epoch of our sampler over the profile's training rows, without running a model: its batches (row
    indices), their padding, and the seconds the sampler takes to order the epoch before its first batch (the
    accelerator idles meanwhile)."""
    rows = workspace.tokenized["student_train"]
    trainer = our_trainer(config, build(profile_architectures(config)[1]), rows, workspace.tokenizer, BASELINE,
                          Path(folder) / "epoch")
    sampler = trainer.get_train_dataloader().batch_sampler  # index lists, no collation
    start = time.perf_counter()
    iterator = iter(sampler)
    batches = [next(iterator)]
    sampler_seconds = time.perf_counter() - start
    batches.extend(iterator)
    lengths = np.asarray(rows["length"][:])
    multiple = collator_for(workspace.tokenizer).pad_to_multiple_of or 1
    padded = sum(-(-int(lengths[index].max()) // multiple) * multiple * len(index) for index in batches)
    real = int(lengths.sum())
    stats = {"rows": len(rows), "batches": len(batches), "real_tokens": real, "padded_tokens": padded,
             "padding_share": 1 - real / padded, "naive_padding_share": 1 - real / (len(rows) * config.max_length),
             "sampler_start_seconds": sampler_seconds}
    return stats, [list(index) for index in batches]


def strided_batches(batches: list[list[int]], count: int, batch_size: int, lengths: np.ndarray) -> np.ndarray:
    """Row indices of ``count`` full batches spread evenly over an epoch (the sampler sorts each mega-batch
    longest-first, so consecutive batches would be biased long or short), the longest batch first as the sampler
    puts it (so a few steps reach the peak memory)."""
    full = [index for index in batches if len(index) == batch_size]
    count = min(count, len(full))
    # Mid-points of equal strides: skips the epoch's first batch, which the sampler gives the longest row of all.
    picked = [full[int(i)] for i in (np.arange(count) + 0.5) * len(full) / count]
    longest = max(range(count), key=lambda i: lengths[picked[i]].max())
    picked.insert(0, picked.pop(longest))
    return np.concatenate(picked)


# -------------------------------------------------------------------------------------------- naive training
def naive_collator(tokenizer, max_length: int) -> Collator:
    """Every row padded to max_length (a Collator rounding each batch up to a multiple of max_length)."""
    return Collator(tokenizer.pad_token_id, pad_to_multiple_of=max_length)


def naive_epoch(config: Config, student: PreTrainedModel, teacher: PreTrainedModel, rows: Dataset, tokenizer,
                spec: DistillSpec = KD_SPEC, max_steps: int | None = None, seed: int = 0) -> tuple[float, int]:
    """A first-draft KD loop over ``rows``: random order, padded to max_length, fp32, the teacher run at every step,
    torch's default AdamW. Returns (seconds, padded tokens)."""
    dev = device()
    student, teacher = student.to(dev).train(), teacher.to(dev).eval()
    loader = torch.utils.data.DataLoader(rows, batch_size=config.batch_size, shuffle=True,
                                         collate_fn=naive_collator(tokenizer, config.max_length),
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    tokens = 0
    _sync()
    start = time.perf_counter()
    for step, batch in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        inputs = {k: batch[k].to(dev) for k in ("input_ids", "attention_mask")}
        labels = batch["labels"].to(dev)
        with torch.no_grad():
            teacher_logits = teacher(**inputs).logits
        logits = student(**inputs).logits
        loss = (spec.hard_label_weight * torch.nn.functional.cross_entropy(logits, labels)
                + spec.kd_loss_weight * distill.soft_target_loss(logits, teacher_logits, spec.temperature))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(inputs["input_ids"].numel())
    _sync()
    return time.perf_counter() - start, tokens


# ---------------------------------------------------------------------------------------------------- memory
@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc on Linux, where the peak RSS (VmHWM) can be reset through /proc/self/clear_refs; else None."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_method() -> str:
    if torch.cuda.is_available():
        return ("torch.cuda.max_memory_allocated during the phase minus memory allocated before it: tensors only "
                "(weights, gradients, optimizer state, activations), not the CUDA context or allocator cache")
    if _glibc() is not None:
        return ("resident set size: the process's peak (VmHWM, reset before the phase via /proc/self/clear_refs) "
                "minus its RSS before the phase, after gc and malloc_trim; includes building the phase's models")
    return "resident set size sampled every 2 ms (psutil) during the phase, minus RSS before it"


def peak_memory_mb(phase: Callable[[], object]) -> float:
    """Extra memory (MB) that ``phase()`` needs at its peak, over what the process held before it."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        phase()
        _sync()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    if _glibc() is not None:
        _glibc().malloc_trim(0)  # hand freed heap back, so the phase's allocations show up as new resident pages
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
        before = _rss_mb("VmRSS")
        phase()
        return _rss_mb("VmHWM") - before
    return _sampled_peak_mb(phase)


def _sampled_peak_mb(phase: Callable[[], object]) -> float:
    import psutil  # an accelerate dependency

    process, peak, done = psutil.Process(), [0], threading.Event()
    before = process.memory_info().rss

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        phase()
    finally:
        done.set()
        sampler.join()
    return max(peak[0] - before, 0) / 2**20


# ------------------------------------------------------------------------------------------------------- data
def _sample(dataset: Dataset, rows: int, seed: int) -> Dataset:
    rows = min(rows, len(dataset))
    return dataset.select(np.sort(np.random.default_rng(seed).choice(len(dataset), rows, replace=False)))


def _inference_batches(dataset: Dataset, collator: Collator, batch_size: int) -> list[dict]:
    """Rows longest-first in batches (as evaluate.predict_logits batches them), collated once."""
    order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        batch = collator([dataset[int(i)] for i in order[start : start + batch_size]])
        batches.append({k: batch[k] for k in ("input_ids", "attention_mask")})
    return batches


@torch.inference_mode()
def forward_seconds(model: PreTrainedModel, batches: list[dict]) -> list[float]:
    """Seconds of each batch's forward pass, at the precision of evaluate.predict_logits."""
    dev = device()
    model = model.to(dev).eval()
    seconds = []
    for batch in batches:
        batch = {k: v.to(dev) for k, v in batch.items()}
        _sync()
        start = time.perf_counter()
        with _inference_autocast(dev):
            model(**batch)
        _sync()
        seconds.append(time.perf_counter() - start)
    return seconds


# ------------------------------------------------------------------------------------------------ the phases
def measure_teacher_logits(workspace: pipeline.Workspace, teacher_architecture: PretrainedConfig,
                           picked: np.ndarray, repeats: int, folder: str | Path
                           ) -> tuple[dict, dict[str, Callable[[], object]], np.ndarray, Dataset]:
    """Time pipeline.load_or_compute_teacher_logits on the training rows ``picked``: the first pass, then from the
    cache (which lives in ``folder``). Returns the timings, the memory phases, the logits and the tokenized rows
    they belong to, in the order of ``picked``."""
    config = dataclasses.replace(workspace.config, cache_dir=str(Path(folder) / "logits-cache"))
    raw, tokenized = workspace.student_train.select(picked), workspace.tokenized["student_train"].select(picked)
    space = dataclasses.replace(workspace, config=config, student_train=raw, tokenized={"student_train": tokenized})
    teacher = build(teacher_architecture, seed=1)
    if config.teacher_source == "local":  # the cache key reads the teacher's folder
        teacher.save_pretrained(models.fine_tuned_teacher_path(config))

    def one_pass(expect_cached: bool, model: PreTrainedModel | None = None) -> np.ndarray:
        if not expect_cached:
            for stale in Path(config.cache_dir, "teacher_logits").glob("*"):
                stale.unlink()
        logits, info = pipeline.load_or_compute_teacher_logits(space, "student_train", teacher=model or teacher)
        if info["cached"] is not expect_cached:
            raise RuntimeError(f"teacher-logit cache: expected cached={expect_cached}, got {info}")
        return logits

    one_pass(False)  # warm-up
    first, cached = [], []
    for _ in range(repeats):
        for timings, expect_cached in ((first, False), (cached, True)):
            start = time.perf_counter()
            logits = one_pass(expect_cached)
            timings.append(time.perf_counter() - start)
    measured = {"rows": len(tokenized), "batch_size": config.eval_batch_size, "first_seconds": first,
                "cached_seconds": cached, "first_median_seconds": _median(first),
                "cached_median_seconds": _median(cached),
                "first_rows_per_second": len(tokenized) / _median(first)}
    # In this order: the first pass (its teacher built inside it) leaves the file the cached pass reads.
    memory = {"teacher_logits_first": lambda: one_pass(False, build(teacher_architecture, seed=1)),
              "teacher_logits_cached": lambda: one_pass(True)}
    return measured, memory, logits, tokenized


def measure_training(config: Config, workspace: pipeline.Workspace, rows: Dataset,
                     architectures: tuple[PretrainedConfig, PretrainedConfig], sizes: BenchmarkSizes,
                     folder: str | Path) -> tuple[dict, dict[str, Callable[[], object]]]:
    """Seconds per pass of the naive KD loop and of our baseline, cached-KD and online-KD steps, interleaved.

    ``rows`` are laid out in batches of our real sampler (``strided_batches``): ours takes them in that order. The
    naive loop shuffles the first ``sizes.naive_rows`` of them: padded to max_length, its cost per row is the same
    for every row, so its samples/s (and tokens/s on these rows) compare with ours on all of them.

    Returns the measurements and, per variant, a callable that builds its models and runs a few steps (for memory).
    """
    tokenizer = workspace.tokenizer
    teacher_architecture, student_architecture = architectures
    teacher = build(teacher_architecture, seed=1)
    plain_rows = rows.remove_columns("teacher_logits")
    naive_rows = plain_rows.select(range(min(sizes.naive_rows, len(plain_rows))))
    student = build(student_architecture)

    def make(variant: str, model: PreTrainedModel, teacher_model: PreTrainedModel | None, max_steps=None):
        if variant == "naive_kd":
            return lambda: naive_epoch(config, model, teacher_model, naive_rows, tokenizer, max_steps=max_steps)[0]
        spec = BASELINE if variant == "baseline" else KD_SPEC
        data = rows if variant == "kd_cached" else plain_rows
        trainer = our_trainer(config, model, data, tokenizer, spec, Path(folder) / variant, max_steps=max_steps,
                              online_teacher=teacher_model if variant == "kd_online" else None, grouped=False)
        return lambda: our_epoch(trainer)

    def fresh(variant: str, max_steps: int):
        # Builds its own models, so a phase's memory includes its weights and optimizer state.
        needs_teacher = variant in ("naive_kd", "kd_online")
        return lambda: make(variant, build(student_architecture),
                            build(teacher_architecture) if needs_teacher else None, max_steps)()

    students = {variant: copy.deepcopy(student) for variant in TRAINING_VARIANTS}
    for variant in TRAINING_VARIANTS:  # warm-up: kernels, allocator, the fused optimizer's first step
        make(variant, students[variant], teacher, max_steps=sizes.warmup_steps)()
    seconds = {variant: [] for variant in TRAINING_VARIANTS}
    for round_index in range(sizes.repeats):
        order = TRAINING_VARIANTS if round_index % 2 == 0 else TRAINING_VARIANTS[::-1]
        for variant in order:
            # A fresh Trainer per round, as train_classifier builds one per run (fresh optimizer, same batches).
            seconds[variant].append(make(variant, students[variant], teacher)())
    counter = our_trainer(config, student, plain_rows, tokenizer, BASELINE, Path(folder) / "count", grouped=False)
    padded = {"ours": padded_tokens(counter), "naive_kd": len(rows) * config.max_length}
    real_tokens = int(np.sum(rows["length"]))
    medians = {variant: _median(values) for variant, values in seconds.items()}
    rows_per_pass = {variant: len(naive_rows) if variant == "naive_kd" else len(rows) for variant in seconds}
    per_second = {variant: rows_per_pass[variant] / medians[variant] for variant in seconds}
    measured = {
        "rows": len(rows), "naive_rows": len(naive_rows), "rows_per_pass": rows_per_pass,
        "batch_size": config.batch_size, "max_length": config.max_length,
        "precision": {"ours": _precision_name(config.precision), "naive_kd": "fp32"},
        "optimizer": {"ours": getattr(counter.args.optim, "value", str(counter.args.optim)),
                      "naive_kd": "torch.optim.AdamW (defaults)"},
        "teacher": _describe(teacher), "student": _describe(student),
        "real_tokens": real_tokens, "padded_tokens": padded,
        "padding_share": {variant: 1 - real_tokens / count for variant, count in padded.items()},
        "seconds": seconds, "median_seconds": medians,
        "samples_per_second": per_second,
        # Real (non-pad) tokens of the training rows per second: samples/s × their mean length.
        "tokens_per_second": {variant: value * real_tokens / len(rows) for variant, value in per_second.items()},
    }
    memory = {f"train_{variant}": fresh(variant, sizes.memory_steps) for variant in TRAINING_VARIANTS}
    return measured, memory


def _precision_name(precision: str) -> str:
    flags = precision_flags(precision)
    return "bf16" if flags["bf16"] else "fp16" if flags["fp16"] else "fp32"


def measure_inference(test_rows: Dataset, tokenizer, architectures: tuple[PretrainedConfig, PretrainedConfig],
                      sizes: BenchmarkSizes, seed: int = 0) -> tuple[dict, dict[str, Callable[[], object]]]:
    """Teacher and student forward passes on real test rows: batch-1 latency and batch-32 throughput, interleaved."""
    collator = collator_for(tokenizer)
    single = _inference_batches(_sample(test_rows, sizes.latency_rows, seed), collator, 1)
    batched_rows = _sample(test_rows, sizes.inference_rows, seed + 1)
    batched = _inference_batches(batched_rows, collator, sizes.inference_batch_size)
    named = dict(zip(("teacher", "student"), architectures, strict=True))
    built = {name: build(architecture) for name, architecture in named.items()}
    for model in built.values():
        forward_seconds(model, single[: sizes.warmup_steps] + batched[:1])
    latency = {name: [] for name in built}
    throughput = {name: [] for name in built}
    for round_index in range(sizes.repeats):
        # Interleaved batch by batch, the order flipped each round, so load changes hit both models alike.
        names = ("teacher", "student") if round_index % 2 == 0 else ("student", "teacher")
        for batch in single:
            for name in names:
                latency[name].extend(forward_seconds(built[name], [batch]))
        batch_seconds = {name: 0.0 for name in names}
        for batch in batched:
            for name in names:
                batch_seconds[name] += forward_seconds(built[name], [batch])[0]
        for name in names:
            throughput[name].append(len(batched_rows) / batch_seconds[name])
    measured = {
        "models": {name: _describe(model) for name, model in built.items()},
        "precision": "fp32" if device().type == "cpu" else str(_inference_autocast(device()).fast_dtype),
        "batch1": {"rows": len(single), "seconds": latency,
                   "median_ms": {name: 1000 * _median(values) for name, values in latency.items()}},
        f"batch{sizes.inference_batch_size}": {
            "rows": len(batched_rows), "mean_padded_length": float(np.mean([b["input_ids"].shape[1] for b in batched])),
            "rows_per_second_per_repeat": throughput,
            "rows_per_second": {name: _median(values) for name, values in throughput.items()}},
    }
    memory = {}
    for name, architecture in named.items():
        for label, batches in (("batch1", single[:1]), (f"batch{sizes.inference_batch_size}", batched[:1])):
            memory[f"inference_{name}_{label}"] = (
                lambda a=architecture, b=batches: forward_seconds(build(a), b))
    return measured, memory


# ------------------------------------------------------------------------------------------------ GPU section
def matmul_peak_tflops(size: int = 8192, dtype: torch.dtype = torch.bfloat16, repeats: int = 20) -> float:
    """Measured dense matmul peak of the device (TFLOP/s): the median of ``repeats`` (size × size) @ (size × size)."""
    dev = device()
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    seconds = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        a @ b
        _sync()
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / _median(seconds) / 1e12


def training_flops_per_token(model: PreTrainedModel) -> float:
    """≈ 6 × non-embedding parameters (forward 2, backward 4); attention scores add ~1-2% at AG News lengths."""
    embeddings = sum(p.numel() for name, p in model.named_parameters() if "embeddings" in name)
    return 6.0 * (models.parameter_count(model) - embeddings)


def gpu_section(config: Config, workspace: pipeline.Workspace, epoch_batches: list[list[int]],
                sizes: BenchmarkSizes, folder: str | Path, student_runs: int,
                architectures: tuple[PretrainedConfig, PretrainedConfig] | None = None,
                matmul_size: int = 8192) -> dict:
    """Full-size training throughput at the profile's precision (bf16/fp16 on a GPU) with our cached-KD step, its
    share of the measured matmul peak, and a projection of the full report's wall time on this device.

    Meant for a GPU; runs anywhere (the tests run it tiny on CPU). ``epoch_batches``: a real epoch's batches.
    """
    teacher_architecture, student_architecture = architectures or full_size_architectures()
    rows = workspace.tokenized["student_train"]
    picked = strided_batches(epoch_batches, sizes.gpu_train_rows // config.batch_size, config.batch_size,
                             np.asarray(rows["length"][:]))
    rows = rows.select(picked)
    # Random logits stand in for the teacher's cached ones: their values do not change the step's cost.
    fake_logits = np.random.default_rng(0).normal(size=(len(rows), len(LABELS))).astype(np.float32)
    rows = pipeline.with_teacher_logits(rows, fake_logits)
    student = build(student_architecture)

    def one_pass(name: str, max_steps: int | None = None) -> float:
        return our_epoch(our_trainer(config, student, rows, workspace.tokenizer, KD_SPEC, Path(folder) / name,
                                     max_steps=max_steps, grouped=False))

    one_pass("gpu-warmup", max_steps=sizes.warmup_steps)
    seconds = _median([one_pass(f"gpu-{repeat}") for repeat in range(sizes.repeats)])
    real_tokens = int(np.sum(rows["length"]))
    peak = matmul_peak_tflops(matmul_size)
    achieved = training_flops_per_token(student) * real_tokens / seconds / 1e12
    # Teacher-logit and student evaluation passes: the real prediction path at the eval batch size.
    test = workspace.tokenized["test"]
    eval_rows = _sample(test, min(len(test), 8 * config.eval_batch_size), seed=3)
    collator = collator_for(workspace.tokenizer)
    inference_rows_per_second = {}
    for name, architecture in (("teacher", teacher_architecture), ("student", student_architecture)):
        model = build(architecture)
        evaluate.predict_logits(model, eval_rows, collator, config.eval_batch_size)  # warm-up
        timings = []
        for _ in range(sizes.repeats):
            start = time.perf_counter()
            evaluate.predict_logits(model, eval_rows, collator, config.eval_batch_size)
            timings.append(time.perf_counter() - start)
        inference_rows_per_second[name] = len(eval_rows) / _median(timings)
        del model
    samples_per_second = len(rows) / seconds
    projection = project_report_seconds(get_config("full"), samples_per_second, inference_rows_per_second,
                                        student_runs)
    return {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "precision": _precision_name(config.precision), "batch_size": config.batch_size, "rows": len(rows),
        "student": _describe(student), "train_seconds": seconds, "samples_per_second": samples_per_second,
        "tokens_per_second": real_tokens / seconds,
        "flops_per_token": training_flops_per_token(student), "achieved_tflops": achieved,
        "matmul_peak_tflops": peak, "share_of_matmul_peak": achieved / peak,
        "inference_rows_per_second": inference_rows_per_second, "projection": projection,
    }


def project_report_seconds(full: Config, samples_per_second: float, inference_rows_per_second: dict[str, float],
                           student_runs: int, train_rows: int = 120_000, test_rows: int = 7_600) -> dict:
    """Wall time of the full report on this device: every student run (training plus its evaluation passes) and
    the teacher's logit passes over train, validation and test."""
    student_train_rows = train_rows - full.validation_rows
    training = student_train_rows * full.epochs / samples_per_second
    # train_classifier evaluates on validation each epoch; the pipeline then predicts test and validation once.
    evaluation = (full.validation_rows * (full.epochs + 1) + test_rows) / inference_rows_per_second["student"]
    teacher_logits = train_rows + test_rows  # student_train + validation + test: the whole data set once
    teacher_seconds = teacher_logits / inference_rows_per_second["teacher"]
    per_run = training + evaluation
    return {"student_runs": student_runs, "student_train_rows": student_train_rows, "epochs": full.epochs,
            "per_student_run_seconds": per_run, "student_training_seconds": training,
            "student_evaluation_seconds": evaluation, "teacher_logits_seconds": teacher_seconds,
            "total_seconds": per_run * student_runs + teacher_seconds,
            "total_hours": (per_run * student_runs + teacher_seconds) / 3600}


# ------------------------------------------------------------------------------------------------ the benchmark
def hardware_slug() -> str:
    """``nvidia-h100-80gb-hbm3`` on a GPU, ``cpu-2cores`` on CPU: one results file per hardware."""
    if torch.cuda.is_available():
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")
    return f"cpu-{os.cpu_count()}cores"


def default_output_dir(config: Config) -> Path:
    # Smoke-profile numbers only check the code: they go with the other (git-ignored) smoke results.
    if config.profile == "smoke":
        return Path(config.results_dir) / "benchmark"
    return PROJECT_ROOT / "results" / "benchmark"


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ratios(training: dict, inference: dict, teacher_logits: dict, batch_size: int) -> dict[str, float]:
    """The headline ratios, each from its measured parts (> 1 means ours / the student / the cache is faster,
    except the step-cost ratios, where > 1 means the distillation step costs more)."""
    seconds, per_second = training["median_seconds"], training["samples_per_second"]
    batched = inference[f"batch{batch_size}"]["rows_per_second"]
    latency = inference["batch1"]["median_ms"]
    return {
        "train_speedup_over_naive": per_second["kd_cached"] / per_second["naive_kd"],
        "train_tokens_speedup_over_naive": training["tokens_per_second"]["kd_cached"]
        / training["tokens_per_second"]["naive_kd"],
        "kd_step_over_baseline_step": seconds["kd_cached"] / seconds["baseline"],
        "kd_online_step_over_baseline_step": seconds["kd_online"] / seconds["baseline"],
        "student_speedup_over_teacher_batch1": latency["teacher"] / latency["student"],
        f"student_speedup_over_teacher_batch{batch_size}": batched["student"] / batched["teacher"],
        "teacher_logits_first_over_cached": teacher_logits["first_median_seconds"]
        / teacher_logits["cached_median_seconds"],
    }


def check_targets(document: dict) -> dict:
    checks = {}
    for name, (comparison, threshold) in TARGETS.items():
        value = document[name]
        met = value <= threshold if comparison == "<=" else value >= threshold
        checks[name] = {"target": f"{comparison} {threshold}", "value": value, "met": bool(met)}
    return checks


def run_benchmark(config: Config, sizes: BenchmarkSizes | None = None, output_dir: str | Path | None = None,
                  student_runs: int | None = None, with_gpu_section: bool | None = None,
                  threads: int | None = None, log: Callable[[str], None] = print) -> dict:
    """Run every measurement, write ``<output_dir>/<hardware>.json`` and return its document.

    ``threads``: torch's CPU threads (default: every core this process may use).
    """
    sizes = sizes or sizes_for(config)
    torch.set_num_threads(threads or _available_cores())
    load_before = os.getloadavg()
    started = time.perf_counter()
    workspace = pipeline.prepare(config)
    architectures = profile_architectures(config)
    with tempfile.TemporaryDirectory() as folder:
        epoch, epoch_batches = real_epoch(config, workspace, folder)
        # The training rows: batches spread over a real epoch of our sampler. The logit pass covers them first,
        # then random other training rows up to logits_rows.
        train_indices = strided_batches(epoch_batches, sizes.train_rows // config.batch_size, config.batch_size,
                                        np.asarray(workspace.tokenized["student_train"]["length"][:]))
        others = np.setdiff1d(np.arange(len(workspace.student_train)), train_indices)
        extra = np.random.default_rng(config.seed).permutation(others)[: max(sizes.logits_rows - len(train_indices), 0)]
        log(f"teacher logits: first pass vs cache ({len(train_indices) + len(extra)} rows)")
        teacher_logits, logit_memory, logits, tokenized = measure_teacher_logits(
            workspace, architectures[0], np.concatenate([train_indices, extra]), sizes.repeats, folder)
        rows = pipeline.with_teacher_logits(tokenized.select(range(len(train_indices))), logits[: len(train_indices)])
        log(f"training: naive vs ours, baseline vs distillation ({len(rows)} rows x {sizes.repeats} repeats)")
        training, training_memory = measure_training(config, workspace, rows, architectures, sizes, folder)
        training["real_epoch"] = epoch
        log("inference: student vs teacher at batch 1 and 32")
        inference_architectures = full_size_architectures() if sizes.full_size_inference else architectures
        inference, inference_memory = measure_inference(workspace.tokenized["test"], workspace.tokenizer,
                                                        inference_architectures, sizes)
        log("peak memory per phase")
        phases = {**training_memory, **inference_memory, **logit_memory}
        peak = {name: peak_memory_mb(phase) for name, phase in phases.items()}
        if with_gpu_section is None:
            with_gpu_section = torch.cuda.is_available()
        runs = student_runs if student_runs is not None else 2 * len(get_config("full").seeds)
        gpu = None
        if with_gpu_section:
            log("GPU: full-size mixed-precision training, matmul peak, projection of the report")
            gpu = gpu_section(config, workspace, epoch_batches, sizes, folder, runs,
                              architectures=None if sizes.full_size_inference else architectures,
                              matmul_size=8192 if torch.cuda.is_available() else 256)
    document = {
        "provenance": results.provenance(config),
        "hardware_slug": hardware_slug(), "threads": torch.get_num_threads(), "device": device().type,
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "seconds": time.perf_counter() - started, "sizes": dataclasses.asdict(sizes),
        **ratios(training, inference, teacher_logits, sizes.inference_batch_size),
        "peak_memory_mb": peak, "memory_method": memory_method(),
        "training": training, "inference": inference, "teacher_logits": teacher_logits, "gpu": gpu,
    }
    document["targets"] = check_targets(document)
    path = Path(output_dir or default_output_dir(config)) / f"{hardware_slug()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=_json_default))
    document["path"] = str(path)
    return document


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---------------------------------------------------------------------------------------------------- tables
def summary_table(document: dict) -> pd.DataFrame:
    """One row per comparison: ours/student, reference/teacher, their ratio, the target and whether it is met."""
    training, inference, logits = document["training"], document["inference"], document["teacher_logits"]
    batch = document["sizes"]["inference_batch_size"]
    targets = check_targets(document)  # from the stored measurements, so a target added later is checked too

    def row(what, ours, reference, unit, ratio_name):
        target = targets.get(ratio_name, {})
        return {"measurement": what, "ours / student": ours, "reference / teacher": reference, "unit": unit,
                "ratio": document[ratio_name], "target": target.get("target", ""),
                "met": {True: "yes", False: "NO"}.get(target.get("met"), "")}

    per_second, tokens, seconds = (training["samples_per_second"], training["tokens_per_second"],
                                   training["median_seconds"])
    rows = [
        row("train: ours (KD, cached logits) vs naive KD", per_second["kd_cached"], per_second["naive_kd"],
            "samples/s", "train_speedup_over_naive"),
        row("train: ours vs naive, real tokens", tokens["kd_cached"], tokens["naive_kd"], "tokens/s",
            "train_tokens_speedup_over_naive"),
        row("train: KD step (cached logits) vs baseline step", seconds["kd_cached"], seconds["baseline"],
            "s/pass", "kd_step_over_baseline_step"),
        row("train: KD step (online teacher) vs baseline step", seconds["kd_online"], seconds["baseline"],
            "s/pass", "kd_online_step_over_baseline_step"),
        row("inference batch 1: student vs teacher latency", inference["batch1"]["median_ms"]["student"],
            inference["batch1"]["median_ms"]["teacher"], "ms (ratio: speed-up)",
            "student_speedup_over_teacher_batch1"),
        row(f"inference batch {batch}: student vs teacher", inference[f"batch{batch}"]["rows_per_second"]["student"],
            inference[f"batch{batch}"]["rows_per_second"]["teacher"], "rows/s",
            f"student_speedup_over_teacher_batch{batch}"),
        row("teacher logits: first pass vs cached", logits["first_median_seconds"], logits["cached_median_seconds"],
            "s (ratio: first/cached)", "teacher_logits_first_over_cached"),
    ]
    return pd.DataFrame(rows)


def memory_table(document: dict) -> pd.DataFrame:
    return pd.DataFrame({"phase": list(document["peak_memory_mb"]),
                         "peak MB": list(document["peak_memory_mb"].values())})


def gpu_table(document: dict) -> pd.DataFrame | None:
    gpu = document.get("gpu")
    if not gpu:
        return None
    projection = gpu["projection"]
    return pd.DataFrame([
        {"measurement": f"full-size student training ({gpu['precision']}, batch {gpu['batch_size']})",
         "value": gpu["samples_per_second"], "unit": "samples/s"},
        {"measurement": "achieved training throughput", "value": gpu["achieved_tflops"], "unit": "TFLOP/s"},
        {"measurement": "measured bf16 matmul peak", "value": gpu["matmul_peak_tflops"], "unit": "TFLOP/s"},
        {"measurement": "share of matmul peak", "value": gpu["share_of_matmul_peak"], "unit": ""},
        {"measurement": "projected time per student run", "value": projection["per_student_run_seconds"] / 60,
         "unit": "min"},
        {"measurement": f"projected report ({projection['student_runs']} student runs + teacher logits)",
         "value": projection["total_hours"], "unit": "h"},
    ])
