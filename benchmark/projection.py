"""GPU throughput and what it predicts: the report's planned runs, each timed from measured rows per second, priced
at an hourly rate the caller passes in (prices live in results/external.json, never in code).

``gpu_section`` measures on real rows inside the benchmark; ``warmup_throughput`` is a short timed warm-up on
synthetic batches, for a GPU that has no benchmark file yet.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, PretrainedConfig, PreTrainedModel

from benchmark.common import (
    BenchmarkSizes,
    build,
    clock,
    describe,
    forward_pass,
    full_size_architectures,
    sample,
)
from benchmark.training import KD_SPEC, our_epoch, our_trainer, strided_batches
from helpers import evaluate, hardware, pipeline
from helpers.config import LABELS, PROJECT_ROOT, Config
from helpers.train import collator_for

KINDS = ("cached-logits", "online-teacher", "lm", "teacher-logits")
# A forward pass costs about a third of a training step (forward 1, backward 2): the LM's scoring passes are
# projected from its measured training rate with this factor rather than measured separately.
FORWARD_SHARE_OF_STEP = 1 / 3


@dataclass(frozen=True)
class PlannedRun:
    """One run the report will make. ``kind``: 'cached-logits' (baseline and response/label students: the step
    costs what the baseline's does), 'online-teacher' (the teacher runs at every step), 'lm' (the decoder student),
    'teacher-logits' (a forward pass of the teacher over ``train_rows``). ``eval_rows``: rows the run predicts
    (validation each epoch, then test): forward passes only."""

    kind: str
    train_rows: int
    epochs: float = 1.0
    eval_rows: int = 0
    name: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"PlannedRun kind {self.kind!r} is not one of {', '.join(KINDS)}.")
        if self.train_rows < 0 or self.epochs < 0 or self.eval_rows < 0:
            raise ValueError(f"PlannedRun {self.name or self.kind}: rows and epochs must be >= 0.")


@dataclass(frozen=True)
class Throughput:
    """Measured rates on one device (rows per second), and where they were measured."""

    device: str
    student_train_rows_per_second: float  # a cached-logit (= baseline) student step
    online_teacher_step_ratio: float  # seconds of an online-teacher step over a cached-logit one
    student_eval_rows_per_second: float
    teacher_eval_rows_per_second: float
    lm_train_rows_per_second: float
    source: str = ""


def run_seconds(run: PlannedRun, throughput: Throughput) -> float:
    """Predicted wall seconds of one run: its training rows over the measured rate, plus its evaluation passes."""
    if run.kind == "teacher-logits":
        return run.train_rows / throughput.teacher_eval_rows_per_second
    if run.kind == "lm":
        rate = throughput.lm_train_rows_per_second
        return run.train_rows * run.epochs / rate + run.eval_rows / (rate / FORWARD_SHARE_OF_STEP)
    step_cost = throughput.online_teacher_step_ratio if run.kind == "online-teacher" else 1.0
    return (run.train_rows * run.epochs * step_cost / throughput.student_train_rows_per_second
            + run.eval_rows / throughput.student_eval_rows_per_second)


def project_runtime(planned_runs: list[PlannedRun | dict], throughput: Throughput | dict,
                    price_per_hour: float | None) -> dict:
    """Predicted wall time and cost of ``planned_runs`` at ``throughput``; ``price_per_hour`` (USD) from the cited
    prices (``results.external_facts()["gpu_hourly_usd"]``), or None for time only.

    Counts what it is given, run by run: no assumed number of runs, no per-run overhead (model loading, Trainer
    setup: seconds each on a GPU).
    """
    runs = [run if isinstance(run, PlannedRun) else PlannedRun(**run) for run in planned_runs]
    throughput = throughput if isinstance(throughput, Throughput) else Throughput(**throughput)
    seconds = [run_seconds(run, throughput) for run in runs]
    by_kind = {kind: {"runs": sum(run.kind == kind for run in runs),
                      "seconds": sum(s for run, s in zip(runs, seconds, strict=True) if run.kind == kind)}
               for kind in KINDS}
    total = sum(seconds)
    return {
        "device": throughput.device, "throughput_source": throughput.source, "runs": len(runs),
        "by_kind": {kind: value for kind, value in by_kind.items() if value["runs"]},
        "per_run": [{**asdict(run), "seconds": s} for run, s in zip(runs, seconds, strict=True)],
        "total_seconds": total, "total_hours": total / 3600, "price_per_hour": price_per_hour,
        "cost": None if price_per_hour is None else total / 3600 * price_per_hour,
    }


def price_for_device(gpu_prices: dict, device_name: str) -> tuple[str, float] | None:
    """The cited hourly price whose GPU model (T4, A100, H100, ...) appears in ``device_name``, as (name, USD);
    ``gpu_prices``: ``results.external_facts()["gpu_hourly_usd"]``."""
    for name, entry in gpu_prices.items():
        if name.startswith("_"):
            continue
        model = next((word for word in name.split() if re.fullmatch(r"[A-Z]+\d+\w*", word)), None)
        if model and model.lower() in device_name.lower():
            return name, float(entry["usd_per_hour"])
    return None


def load_throughput(folder: str | Path | None = None, slug: str | None = None) -> Throughput | None:
    """The throughput a benchmark file measured on this hardware (``results/benchmark/<slug>.json``), if any."""
    path = Path(folder or PROJECT_ROOT / "results" / "benchmark") / f"{slug or hardware.slug()}.json"
    if not path.exists():
        return None
    gpu = json.loads(path.read_text()).get("gpu") or {}
    return Throughput(**gpu["throughput"]) if "throughput" in gpu else None


# Assumed share of a GPU's quoted dense peak that fine-tuning these small models reaches (short rows, batch 32,
# dynamic padding): an assumption, not a measurement, stated wherever an estimate built on it is shown. A benchmark
# run on the GPU replaces it with the measured share (gpu_section's ``share_of_matmul_peak``).
ASSUMED_SHARE_OF_PEAK = (0.1, 0.3)


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the token/position embeddings and a (tied) LM head: what a token's FLOPs scale with."""
    return sum(p.numel() for name, p in model.named_parameters() if "embed" not in name and "lm_head" not in name)


def meta_model(architecture: PretrainedConfig, causal: bool = False) -> torch.nn.Module:
    """``architecture`` built on the meta device: its parameter shapes, no memory, nothing downloaded."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(architecture) if causal else build(architecture)


def flops_throughput(device: str, peak_tflops: float, share_of_peak: float, tokens_per_row: float,
                     lm_tokens_per_row: float) -> Throughput:
    """An *estimated* ``Throughput`` for a GPU that was never measured: the brief's models' FLOPs per row (training
    ≈ 6 × non-embedding parameters per token, a forward pass 2 ×) over ``share_of_peak`` of its quoted peak. Rows
    carry ``tokens_per_row`` tokens (the data's measured mean: dynamic padding), the LM's ``lm_tokens_per_row``."""
    teacher_architecture, student_architecture = full_size_architectures()
    teacher, student = (non_embedding_parameters(meta_model(a)) for a in (teacher_architecture, student_architecture))
    lm = non_embedding_parameters(meta_model(smollm2_architecture(), causal=True))
    rate = peak_tflops * 1e12 * share_of_peak
    return Throughput(device=device, student_train_rows_per_second=rate / (6 * student * tokens_per_row),
                      online_teacher_step_ratio=(6 * student + 2 * teacher) / (6 * student),
                      student_eval_rows_per_second=rate / (2 * student * tokens_per_row),
                      teacher_eval_rows_per_second=rate / (2 * teacher * tokens_per_row),
                      lm_train_rows_per_second=rate / (6 * lm * lm_tokens_per_row),
                      source=f"estimate: FLOPs per row over {share_of_peak:.0%} of the quoted {peak_tflops:g} TFLOP/s "
                             "peak (not measured)")


# ------------------------------------------------------------------------------------------------- measuring
def smollm2_architecture() -> LlamaConfig:
    """HuggingFaceTB/SmolLM2-135M's architecture (full's decoder student), for timing with random weights."""
    return LlamaConfig(vocab_size=49_152, hidden_size=576, intermediate_size=1_536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8_192,
                       tie_word_embeddings=True)


def per_call_seconds(function, min_run_time: float) -> float:
    """Median seconds per call of ``function()`` over blocks of calls timed for ``min_run_time`` seconds in all.

    ``torch.utils.benchmark.Timer.blocked_autorange``'s loop on the benchmark's clock: calls per block grow tenfold
    until a block lasts 10 ms (or a thousandth of ``min_run_time``), so one GPU synchronisation per block, not per
    call, reaches the timings (the first, sizing blocks are the warm-up).
    """
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


def _synthetic_batch(rows: int, length: int, vocab_size: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(1_000, vocab_size // 2), vocab_size, (rows, length), generator=generator)
    return {"input_ids": ids.to(device),
            "attention_mask": torch.ones(rows, length, dtype=torch.long, device=device)}


def _train_step(model: PreTrainedModel, batch: dict, precision_name: str, labels: torch.Tensor,
                teacher: PreTrainedModel | None = None):
    """A closure running one optimizer step of ``model`` (fused AdamW on CUDA, as the Trainer's), the teacher's
    forward first where given."""
    device = batch["input_ids"].device
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")

    def step():
        with hardware.autocast(precision_name):
            if teacher is not None:
                with torch.no_grad():
                    teacher(**batch)
            output = model(**batch, labels=labels)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def warmup_throughput(config: Config, seconds: float = 3.0, tokens_per_row: int = 64,
                      architectures: tuple[PretrainedConfig, PretrainedConfig] | None = None,
                      lm_architecture: PretrainedConfig | None = None) -> Throughput:
    """A short timed warm-up on this device with synthetic batches of ``tokens_per_row`` tokens (AG News averages
    ~50 BERT tokens; the LM's rows are ``config.lm_max_length``): the brief's models with random weights, each rate
    the median of a ``seconds``-long block. About 30 s on a T4."""
    device = hardware.device()
    teacher_architecture, student_architecture = architectures or full_size_architectures()
    teacher, student = build(teacher_architecture, seed=1).to(device), build(student_architecture).to(device)
    train = _synthetic_batch(config.batch_size, tokens_per_row, student.config.vocab_size, device)
    labels = torch.randint(0, len(LABELS), (config.batch_size,), device=device)
    evaluation = _synthetic_batch(config.eval_batch_size, tokens_per_row, student.config.vocab_size, device)
    cached = per_call_seconds(_train_step(student, train, config.precision, labels), seconds)
    online = per_call_seconds(_train_step(copy.deepcopy(student), train, config.precision, labels,
                                          teacher=teacher.eval()), seconds)
    student_eval, teacher_eval = (per_call_seconds(functools.partial(forward_pass(model, device, config.precision),
                                                                     evaluation), seconds)
                                  for model in (student, teacher))
    del teacher, student
    return Throughput(device=hardware.gpu_name() or "cpu", student_train_rows_per_second=config.batch_size / cached,
                      online_teacher_step_ratio=online / cached,
                      student_eval_rows_per_second=config.eval_batch_size / student_eval,
                      teacher_eval_rows_per_second=config.eval_batch_size / teacher_eval,
                      lm_train_rows_per_second=warmup_lm_rate(config, lm_architecture, seconds),
                      source=f"warm-up: synthetic batches of {tokens_per_row} tokens, random weights")


def matmul_peak_tflops(size: int = 8192, dtype: torch.dtype = torch.bfloat16, seconds: float = 1.0) -> float:
    """Measured dense matmul rate of the device (TFLOP/s): (size × size) @ (size × size), median of timed blocks."""
    a = torch.randn(size, size, device=hardware.device(), dtype=dtype)
    b = torch.randn(size, size, device=hardware.device(), dtype=dtype)
    return 2 * size**3 / per_call_seconds(lambda: a @ b, seconds) / 1e12


def gpu_section(config: Config, workspace: pipeline.Workspace, epoch_batches: list[list[int]],
                sizes: BenchmarkSizes, folder: str | Path, online_teacher_step_ratio: float,
                architectures: tuple[PretrainedConfig, PretrainedConfig] | None = None,
                lm_architecture: PretrainedConfig | None = None, matmul_size: int = 8192) -> dict:
    """Full-size training throughput at the profile's precision with our cached-KD step on real rows, its share of
    the measured matmul peak, evaluation rates of teacher and student, and the LM's step rate: the ``Throughput``
    that ``project_runtime`` prices. Meant for a GPU; runs anywhere (the tests run it tiny on CPU)."""
    teacher_architecture, student_architecture = architectures or full_size_architectures()
    rows = workspace.tokenized["student_train"]
    rows = rows.select(strided_batches(epoch_batches, sizes.gpu_train_rows // config.batch_size, config.batch_size,
                                    np.asarray(rows["length"][:])))
    # Random logits stand in for the teacher's cached ones: their values do not change the step's cost.
    fake_logits = np.random.default_rng(0).normal(size=(len(rows), len(LABELS))).astype(np.float32)
    rows = pipeline.with_teacher_logits(rows, fake_logits)
    student = build(student_architecture)

    def one_pass(name: str, max_steps: int | None = None) -> float:
        return our_epoch(our_trainer(config, student, rows, workspace.tokenizer, KD_SPEC, Path(folder) / name,
                                     max_steps=max_steps, grouped=False))

    one_pass("gpu-warmup", max_steps=sizes.warmup_steps)
    seconds = statistics.median([one_pass(f"gpu-{repeat}") for repeat in range(sizes.repeats)])
    real_tokens = int(np.sum(rows["length"]))
    peak = matmul_peak_tflops(matmul_size)
    # ≈ 6 × non-embedding parameters (forward 2, backward 4); attention scores add ~1-2% at AG News lengths.
    flops_per_token = 6.0 * non_embedding_parameters(student)
    achieved = flops_per_token * real_tokens / seconds / 1e12
    # Teacher and student evaluation passes: the real prediction path at the eval batch size.
    eval_rows = sample(workspace.tokenized["test"], 8 * config.eval_batch_size, seed=3)
    collator = collator_for(workspace.tokenizer)
    eval_rate = {}
    for name, architecture in (("teacher", teacher_architecture), ("student", student_architecture)):
        model = build(architecture)

        def predict(model=model):
            evaluate.predict_logits(model, eval_rows, collator, config.eval_batch_size, config.precision)

        predict()  # warm-up
        eval_rate[name] = len(eval_rows) / per_call_seconds(predict, 0.5)
    lm_rate = warmup_lm_rate(config, lm_architecture)
    throughput = Throughput(device=hardware.gpu_name() or "cpu", student_train_rows_per_second=len(rows) / seconds,
                            online_teacher_step_ratio=online_teacher_step_ratio,
                            student_eval_rows_per_second=eval_rate["student"],
                            teacher_eval_rows_per_second=eval_rate["teacher"], lm_train_rows_per_second=lm_rate,
                            source="benchmark: real AG News rows, our Trainer step, random weights")
    return {
        "device": hardware.gpu_name() or "cpu", "precision": hardware.resolve_precision(config.precision),
        "batch_size": config.batch_size, "rows": len(rows), "student": describe(student), "train_seconds": seconds,
        "tokens_per_second": real_tokens / seconds, "flops_per_token": flops_per_token,
        "achieved_tflops": achieved, "matmul_peak_tflops": peak, "share_of_matmul_peak": achieved / peak,
        "throughput": asdict(throughput),
    }


def warmup_lm_rate(config: Config, lm_architecture: PretrainedConfig | None = None, seconds: float = 2.0) -> float:
    """Rows per second of the decoder student's training step (random weights, rows of ``config.lm_max_length``)."""
    device = hardware.device()
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(lm_architecture or smollm2_architecture()).to(device)
    batch = _synthetic_batch(config.lm_batch_size, config.lm_max_length, lm.config.vocab_size, device)
    step = _train_step(lm, batch, config.precision, batch["input_ids"])
    return config.lm_batch_size / per_call_seconds(step, seconds)
