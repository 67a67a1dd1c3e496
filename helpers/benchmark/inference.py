"""Inference speed: batch-1 latency and batch-32 throughput of models side by side on real test rows, and the
teacher-logit pass computed once, then read from the cache."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import PretrainedConfig, PreTrainedModel

from helpers import cache, models, pipeline, precision
from helpers.benchmark.common import (
    BenchmarkSizes,
    build,
    describe,
    inference_batches,
    interleaved_seconds,
    median,
    sample,
)
from helpers.train import collator_for


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Post-training dynamic int8 quantization of a copy of ``model``'s Linear layers (CPU only): weights stored as
    int8 with one scale per tensor, activations quantized on the fly per batch. Embeddings and LayerNorm stay fp32."""
    fp32 = copy.deepcopy(model).to("cpu").eval()
    with warnings.catch_warnings():
        # torch 2.10+ flags torch.ao.quantization for a move to the torchao package (one more dependency); it still
        # works in 2.13. Where it goes, torchao's quantize_(model, Int8DynamicActivationInt8WeightConfig()) replaces it.
        warnings.filterwarnings("ignore", message=".*(torch.ao.quantization|quantize_per_tensor).*")
        quantized = torch.ao.quantization.quantize_dynamic(fp32, {torch.nn.Linear}, dtype=torch.qint8)
    quantized.config = fp32.config
    return quantized


def forward_pass(model: torch.nn.Module, device: torch.device, precision_name: str = "auto"
                 ) -> Callable[[dict], torch.Tensor]:
    """``batch -> logits`` of ``model`` on ``device`` in inference mode, at evaluate.predict_logits' precision (CPU:
    fp32)."""
    model = model.to(device).eval()

    @torch.inference_mode()
    def run(batch: dict) -> torch.Tensor:
        inputs = {k: v.to(device) for k, v in batch.items()}
        context = precision.autocast(precision_name) if device.type == "cuda" else contextlib.nullcontext()
        with context:
            return model(**inputs).logits

    return run


def speed_of(variants: dict[str, torch.nn.Module], test_rows: Dataset, tokenizer, sizes: BenchmarkSizes,
             device: torch.device | None = None, seed: int = 0) -> dict:
    """Latency at batch 1 and rows/s at batch 32 of every model in ``variants``, interleaved on real test rows.

    Int8 models run on CPU only: pass ``device=torch.device("cpu")`` with them. Returns per-repeat seconds and the
    medians: ``batch1.median_ms[name]``, ``batch32.rows_per_second[name]``.
    """
    device = device or precision.device()
    collator = collator_for(tokenizer)
    single, _ = inference_batches(sample(test_rows, sizes.latency_rows, seed), collator, 1)
    batched_rows = sample(test_rows, sizes.inference_rows, seed + 1)
    batched, _ = inference_batches(batched_rows, collator, sizes.inference_batch_size)
    passes = {name: forward_pass(model, device) for name, model in variants.items()}
    for run in passes.values():  # warm-up: kernels, allocator, oneDNN's first-call setup
        for batch in single[: sizes.warmup_steps] + batched[:1]:
            run(batch)
    latency = interleaved_seconds(passes, single, sizes.repeats)
    throughput = {name: [len(batched_rows) / sum(repeat) for repeat in repeats]
                  for name, repeats in interleaved_seconds(passes, batched, sizes.repeats).items()}
    flat = {name: [s for repeat in repeats for s in repeat] for name, repeats in latency.items()}
    return {
        "device": device.type, "threads": torch.get_num_threads(),
        "batch1": {"rows": len(single), "seconds": flat,
                   "median_ms": {name: 1000 * median(values) for name, values in flat.items()}},
        f"batch{sizes.inference_batch_size}": {
            "rows": len(batched_rows), "mean_padded_length": float(np.mean([b["input_ids"].shape[1] for b in batched])),
            "rows_per_second_per_repeat": throughput,
            "rows_per_second": {name: median(values) for name, values in throughput.items()}},
    }


def measure_inference(test_rows: Dataset, tokenizer, architectures: tuple[PretrainedConfig, PretrainedConfig],
                      sizes: BenchmarkSizes, seed: int = 0) -> tuple[dict, dict[str, Callable[[], object]]]:
    """Teacher and student (random weights: they do not change speed) side by side on real test rows; on CPU the
    student's int8 copy too. Returns the measurements and, per model and batch size, a memory phase."""
    named = dict(zip(("teacher", "student"), architectures, strict=True))
    built = {name: build(architecture) for name, architecture in named.items()}
    if precision.device().type == "cpu":
        built["student_int8"] = quantize_int8(built["student"])
    measured = speed_of(built, test_rows, tokenizer, sizes, seed=seed)
    measured["models"] = {name: describe(model) for name, model in built.items()}
    measured["precision"] = precision.resolve_precision()
    collator = collator_for(tokenizer)
    memory = {}
    for name, architecture in named.items():
        for batch_size in (1, sizes.inference_batch_size):
            batch = inference_batches(sample(test_rows, batch_size, seed), collator, batch_size)[0][:1]
            memory[f"inference_{name}_batch{batch_size}"] = (
                lambda a=architecture, b=batch: forward_pass(build(a), precision.device())(b[0]))
    return measured, memory


def measure_teacher_logits(workspace: pipeline.Workspace, teacher_architecture: PretrainedConfig,
                           picked: np.ndarray, repeats: int, folder: str | Path
                           ) -> tuple[dict, dict[str, Callable[[], object]], np.ndarray, Dataset]:
    """Time pipeline.load_or_compute_teacher_logits on the training rows ``picked``: the first pass, then from the
    cache (which lives in ``folder``). Returns the timings, the memory phases, the logits and the tokenized rows
    they belong to, in the order of ``picked``."""
    config = dataclasses.replace(workspace.config, cache_dir=str(Path(folder) / "logits-cache"))
    raw, tokenized = workspace.student_train.select(picked), workspace.tokenized["student_train"].select(picked)
    # Registered as unlabelled rows: the random-weight teacher would fail the label-order check (a cheap step).
    split = "transfer"
    space = dataclasses.replace(workspace, config=config, named={split: raw}, tokenized={split: tokenized},
                                fingerprints={split: cache.key_of("benchmark", picked.tolist())})
    teacher = build(teacher_architecture, seed=1)
    if config.teacher_source == "local":  # the cache key reads the teacher's folder
        teacher.save_pretrained(models.fine_tuned_teacher_path(config))

    def one_pass(expect_cached: bool, model: PreTrainedModel | None = None) -> np.ndarray:
        if not expect_cached:
            for stale in Path(config.cache_dir, "teacher_logits").glob("*"):
                stale.unlink()
        logits, info = pipeline.load_or_compute_teacher_logits(space, split, teacher=model or teacher)
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
                "cached_seconds": cached, "first_median_seconds": median(first),
                "cached_median_seconds": median(cached), "first_rows_per_second": len(tokenized) / median(first)}
    # In this order: the first pass (its teacher built inside it) leaves the file the cached pass reads.
    memory = {"teacher_logits_first": lambda: one_pass(False, build(teacher_architecture, seed=1)),
              "teacher_logits_cached": lambda: one_pass(True)}
    return measured, memory, logits, tokenized
