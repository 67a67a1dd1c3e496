"""GPU throughput, measured: full-size training on real rows, its share of the matmul peak, evaluation and decoder
rates. Rates only (hours and dollars: ``python -m helpers.plan``), in the form of the planner's training_throughput."""

from __future__ import annotations

import functools
import statistics
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, PretrainedConfig, PreTrainedModel

from benchmark.common import BenchmarkSizes, build, clock, describe, full_size_architectures, sample
from benchmark.training import KD_SPEC, our_epoch, our_trainer, padded_tokens, strided_batches
from helpers import evaluate, hardware, pipeline, plan
from helpers.config import LABELS, Config
from helpers.train import collator_for


def smollm2_architecture() -> LlamaConfig:
    """HuggingFaceTB/SmolLM2-135M's architecture (full's decoder student), for timing with random weights."""
    return LlamaConfig(vocab_size=49_152, hidden_size=576, intermediate_size=1_536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8_192,
                       tie_word_embeddings=True)


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the token/position embeddings and a (tied) LM head: what a token's FLOPs scale with."""
    return sum(p.numel() for name, p in model.named_parameters() if "embed" not in name and "lm_head" not in name)


def per_call_seconds(function, min_run_time: float) -> float:
    """Median seconds per call of ``function()`` over blocks timed for ``min_run_time`` s in all, by the loop of
    ``Timer.blocked_autorange`` on our clock: calls per block grow tenfold until a block lasts 10 ms (or min_run_time
    / 1000), so one GPU sync per block, not per call, reaches the timings (the sizing blocks are the warm-up)."""
    def block(calls: int) -> float:
        start = clock()
        for _ in range(calls):
            function()
        return clock() - start

    calls = 1
    while (first := block(calls)) < max(0.01, min_run_time / 1000) and first <= min_run_time:
        calls *= 10
    per_call, total = [], 0.0
    while total < min_run_time:
        seconds = block(calls)
        per_call.append(seconds / calls)
        total += seconds
    return statistics.median(per_call)


def matmul_peak_tflops(size: int = 8192, dtype: torch.dtype = torch.bfloat16, seconds: float = 1.0) -> float:
    """Measured dense matmul rate of the device (TFLOP/s): (size × size) @ (size × size), median of timed blocks."""
    a, b = (torch.randn(size, size, device=hardware.device(), dtype=dtype) for _ in range(2))
    return 2 * size**3 / per_call_seconds(lambda: a @ b, seconds) / 1e12


def lm_train_rate(config: Config, lm_architecture: PretrainedConfig | None = None, seconds: float = 2.0) -> float:
    """Rows/s of the decoder student's training step: random weights, synthetic rows of ``lm_max_length`` tokens,
    fused AdamW on CUDA as the Trainer's."""
    device = hardware.device()
    torch.manual_seed(0)
    lm: PreTrainedModel = AutoModelForCausalLM.from_config(lm_architecture or smollm2_architecture()).to(device)
    generator = torch.Generator().manual_seed(0)
    vocab_size = lm.config.vocab_size
    ids = torch.randint(min(1_000, vocab_size // 2), vocab_size, (config.lm_batch_size, config.lm_max_length),
                        generator=generator).to(device)  # (B, T)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=1e-5, fused=device.type == "cuda")

    def step():
        with hardware.autocast(config.precision):
            loss = lm(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return config.lm_batch_size / per_call_seconds(step, seconds)


def gpu_section(config: Config, workspace: pipeline.Workspace, epoch_batches: list[list[int]], sizes: BenchmarkSizes,
                folder: str | Path, architectures: tuple[PretrainedConfig, PretrainedConfig] | None = None,
                lm_architecture: PretrainedConfig | None = None, matmul_size: int = 8192) -> dict:
    """Full-size training throughput (our cached-KD step, batches of a real epoch), padded tokens per row beside the
    planner's, share of the matmul peak, evaluation rates, the decoder's step rate. Meant for a GPU; runs anywhere."""
    teacher_architecture, student_architecture = architectures or full_size_architectures()
    rows = workspace.tokenized["student_train"]
    rows = rows.select(strided_batches(epoch_batches, sizes.gpu_train_rows // config.batch_size, config.batch_size,
                                    np.asarray(rows["length"][:])))
    # Random logits stand in for the teacher's cached ones: their values do not change the step's cost.
    rows = pipeline.with_target_logits(rows, np.random.default_rng(0).normal(size=(len(rows), len(LABELS))).astype(
        np.float32))
    student = build(student_architecture)

    def one_pass(name: str, max_steps: int | None = None) -> float:
        return our_epoch(our_trainer(config, student, rows, workspace.tokenizer, KD_SPEC, Path(folder) / name,
                                     max_steps=max_steps, grouped=False))

    one_pass("gpu-warmup", max_steps=sizes.warmup_steps)
    seconds = statistics.median([one_pass(f"gpu-{repeat}") for repeat in range(sizes.repeats)])
    lengths = np.asarray(rows["length"][:])
    real_tokens = int(lengths.sum())
    padded = padded_tokens(lengths, config.batch_size, collator_for(workspace.tokenizer).pad_to_multiple_of)
    peak = matmul_peak_tflops(matmul_size)
    # ≈ 6 × non-embedding parameters (forward 2, backward 4); attention scores add ~1-2% at AG News lengths.
    flops_per_token = 6.0 * non_embedding_parameters(student)
    achieved = flops_per_token * real_tokens / seconds / 1e12
    # Teacher and student evaluation passes: the real prediction path at the eval batch size.
    eval_rows = sample(workspace.tokenized["test"], 8 * config.eval_batch_size, seed=3)
    eval_rate = {}
    for name, architecture in (("teacher", teacher_architecture), ("student", student_architecture)):
        predict = functools.partial(evaluate.predict_logits, build(architecture), eval_rows,
                                    collator_for(workspace.tokenizer), config.eval_batch_size, config.precision)
        predict()  # warm-up
        eval_rate[name] = len(eval_rows) / per_call_seconds(predict, 0.5)
    return {"device": hardware.gpu_name() or "cpu", "precision": hardware.resolve_precision(config.precision),
            "batch_size": config.batch_size, "rows": len(rows), "student": describe(student), "train_seconds": seconds,
            "tokens_per_second": real_tokens / seconds, "padded_tokens_per_row": padded / len(rows),
            "planner_padded_tokens_per_row": plan.tokens("gpu")["train"], "flops_per_token": flops_per_token,
            "achieved_tflops": achieved, "matmul_peak_tflops": peak, "share_of_matmul_peak": achieved / peak,
            "throughput": {"student_train_rows_per_second": len(rows) / seconds,
                           "student_eval_rows_per_second": eval_rate["student"],
                           "teacher_eval_rows_per_second": eval_rate["teacher"],
                           "lm_train_rows_per_second": lm_train_rate(config, lm_architecture)},
            "method": "real AG News rows, our Trainer step, random weights"}
