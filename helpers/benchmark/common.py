"""What every measurement shares: how much work it does, the models it times, and how a pass is timed."""

from __future__ import annotations

import copy
import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    PretrainedConfig,
    PreTrainedModel,
)

from helpers import models
from helpers.config import LABELS, PROJECT_ROOT, Config
from helpers.train import Collator


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
    gpu_train_rows: int  # rows of the GPU throughput measurement
    accuracy_rows: int | None = None  # test rows the deployment variants predict (None: all), on CPU
    inference_batch_size: int = 32


def sizes_for(config: Config, quick: bool = False) -> BenchmarkSizes:
    """Sizes per profile: minutes on 2 CPU cores (cpu), seconds with --quick or the smoke profile."""
    batch = config.batch_size
    if config.data_source == "synthetic":  # the smoke profile's tiny models: the code is checked, not timed
        return BenchmarkSizes(train_rows=2 * batch, naive_rows=batch, repeats=2, warmup_steps=1, logits_rows=64,
                              inference_rows=64, latency_rows=4, memory_steps=1, full_size_inference=False,
                              gpu_train_rows=2 * batch)
    if quick:
        return BenchmarkSizes(train_rows=8 * batch, naive_rows=2 * batch, repeats=2, warmup_steps=1,
                              logits_rows=256, inference_rows=32, latency_rows=8, memory_steps=1,
                              full_size_inference=True, gpu_train_rows=50 * batch, accuracy_rows=1_000)
    # A step of ours takes under a second on a CPU core, a naive one several. Ours: 24 batches per pass, a stride
    # through a real epoch of our sampler (with 8, the speed-up swung by 15% with the rows drawn). In full the
    # deployment variants predict on the host's CPU: 2,000 test rows keep that to minutes.
    return BenchmarkSizes(train_rows=24 * batch, naive_rows=4 * batch, repeats=3, warmup_steps=2, logits_rows=768,
                          inference_rows=96, latency_rows=16, memory_steps=2, full_size_inference=True,
                          gpu_train_rows=200 * batch, accuracy_rows=2_000 if config.teacher_source == "hub" else None)


# ------------------------------------------------------------------------------------------------------ models
def full_size_architectures() -> tuple[PretrainedConfig, PretrainedConfig]:
    """(teacher, student) configs of the brief's models: BertConfig() is bert-base, DistilBertConfig() distilbert."""
    return BertConfig(num_labels=len(LABELS)), DistilBertConfig(num_labels=len(LABELS))


def profile_architectures(config: Config) -> tuple[PretrainedConfig, PretrainedConfig]:
    """(teacher, student) configs of the profile's models, read without downloading or training anything."""
    if config.teacher_source == "hub":  # the brief's models
        return full_size_architectures()
    teacher = AutoConfig.from_pretrained(models.base_teacher_path(config))  # the fine-tuned teacher's architecture
    student_folder = Path(config.cache_dir) / "student-init"
    if config.local_base == "minilm" and not (student_folder / "config.json").exists():
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


def describe(model: torch.nn.Module) -> dict:
    """Class, parameters, layers and width of a classifier (of an int8 one: its fp32 original's config)."""
    config = model.config
    return {"class": type(model).__name__, "parameters": models.parameter_count(model),
            "layers": getattr(config, "num_hidden_layers", None) or config.n_layers,
            "hidden": getattr(config, "hidden_size", None) or config.dim}


# ------------------------------------------------------------------------------------------------------ timing
def sync() -> None:
    """Wait for queued GPU work, so a timer stops when the work is done rather than when it was queued."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def interleaved_seconds(passes: dict[str, Callable[[object], object]], inputs: Sequence[object], repeats: int
                        ) -> dict[str, list[list[float]]]:
    """Seconds of ``passes[name](x)`` for every name and input, ``[name][repeat][input]``.

    Interleaved input by input, the order of names flipped every repeat, so background load hits every variant alike
    (on shared cores it comes and goes within seconds). ``torch.utils.benchmark.Timer`` times one statement at a
    time (and sets torch's threads to one unless told otherwise), so it cannot interleave; this is its loop.
    """
    names = list(passes)
    seconds = {name: [] for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            seconds[name].append([])
        for x in inputs:
            for name in order:
                sync()
                start = time.perf_counter()
                passes[name](x)
                sync()
                seconds[name][-1].append(time.perf_counter() - start)
    return seconds


# -------------------------------------------------------------------------------------------------------- data
def sample(dataset: Dataset, rows: int | None, seed: int) -> Dataset:
    """``rows`` random rows of ``dataset`` in their original order (all of them for None)."""
    if rows is None or rows >= len(dataset):
        return dataset
    return dataset.select(np.sort(np.random.default_rng(seed).choice(len(dataset), rows, replace=False)))


def inference_batches(dataset: Dataset, collator: Collator, batch_size: int) -> tuple[list[dict], np.ndarray]:
    """Rows longest-first in collated batches (as evaluate.predict_logits batches them) and the row order."""
    order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
    columns = dataset.select_columns(["input_ids"])
    batches = []
    for start in range(0, len(order), batch_size):
        rows = columns[order[start : start + batch_size].tolist()]["input_ids"]
        batch = collator([{"input_ids": ids, "labels": 0} for ids in rows])
        batches.append({k: batch[k] for k in ("input_ids", "attention_mask")})
    return batches, order


# ---------------------------------------------------------------------------------------------------- hardware
def hardware_slug() -> str:
    """``nvidia-h100-80gb-hbm3`` on a GPU, ``cpu-2cores`` on CPU: one results file per hardware."""
    if torch.cuda.is_available():
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")
    return f"cpu-{os.cpu_count()}cores"


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_output_dir(config: Config) -> Path:
    # Smoke-profile numbers only check the code: they go with the other (git-ignored) smoke results.
    if config.data_source == "synthetic":
        return Path(config.results_dir) / "benchmark"
    return PROJECT_ROOT / "results" / "benchmark"
