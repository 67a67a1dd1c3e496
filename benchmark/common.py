"""What every measurement shares: how much work it does, the models it times, the one clock, peak memory, rows."""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import gc
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from datasets import Dataset
from transformers import PretrainedConfig, PreTrainedModel

from helpers import hardware, models
from helpers.config import LABELS, Config
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
    """Sizes per profile: minutes on 2 CPU cores (cpu), seconds with --quick or smoke."""
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
                          gpu_train_rows=200 * batch, accuracy_rows=2_000 if config.teacher_hub_id else None)


def full_size_architectures() -> tuple[PretrainedConfig, PretrainedConfig]:
    """(teacher, student) configs of the brief's models: BertConfig() is bert-base, DistilBertConfig() distilbert."""
    return transformers.BertConfig(num_labels=len(LABELS)), transformers.DistilBertConfig(num_labels=len(LABELS))


def profile_architectures(config: Config) -> tuple[PretrainedConfig, PretrainedConfig]:
    """(teacher, student) configs of the profile's models, read without downloading or training anything."""
    if config.teacher_hub_id:  # the brief's models
        return full_size_architectures()
    teacher = transformers.AutoConfig.from_pretrained(models.base_teacher_path(config))  # the fine-tuned teacher's
    if config.local_base == "minilm" and not (Path(config.cache_dir) / "student-init" / "config.json").exists():
        # models.student_init_path would build it from MiniLM (and write the cache); its architecture is this.
        student = transformers.DistilBertConfig(
            vocab_size=teacher.vocab_size, max_position_embeddings=teacher.max_position_embeddings,
            dim=teacher.hidden_size, n_layers=config.student_layers, n_heads=teacher.num_attention_heads,
            hidden_dim=teacher.intermediate_size, activation=teacher.hidden_act)
    else:
        student = transformers.AutoConfig.from_pretrained(models.student_init_path(config))
    return teacher, student


def build(architecture: PretrainedConfig, seed: int = 0) -> PreTrainedModel:
    """An untrained classifier of ``architecture`` with 4 labels: weights do not change speed or memory."""
    architecture = copy.deepcopy(architecture)
    architecture.num_labels = len(LABELS)
    torch.manual_seed(seed)
    return transformers.AutoModelForSequenceClassification.from_config(architecture)


def describe(model: torch.nn.Module) -> dict:
    """Class, parameters, layers and width of a classifier (of an int8 one: its fp32 original's config); DistilBERT's
    config maps these names to its n_layers and dim."""
    return {"class": type(model).__name__, "parameters": models.parameter_count(model),
            "layers": model.config.num_hidden_layers, "hidden": model.config.hidden_size}


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with dynamic int8 Linear layers (CPU only): int8 weights, one scale per tensor, activations
    quantized per batch on the fly; embeddings and LayerNorm stay fp32."""
    fp32 = copy.deepcopy(model).to("cpu").eval()
    with warnings.catch_warnings():  # torch 2.10+ flags torch.ao.quantization for a move to torchao (still works)
        warnings.filterwarnings("ignore", message=".*(torch.ao.quantization|quantize_per_tensor).*")
        quantized = torch.ao.quantization.quantize_dynamic(fp32, {torch.nn.Linear}, dtype=torch.qint8)
    quantized.config = fp32.config
    return quantized


def forward_pass(model: torch.nn.Module, device: torch.device) -> Callable[[dict], torch.Tensor]:
    """``batch -> logits`` of ``model`` on ``device``, inference mode, at predict_logits' precision (CPU: fp32)."""
    model = model.to(device).eval()

    @torch.inference_mode()
    def run(batch: dict) -> torch.Tensor:
        with hardware.autocast() if device.type == "cuda" else contextlib.nullcontext():
            return model(**{k: v.to(device) for k, v in batch.items()}).logits

    return run


def clock() -> float:
    """The benchmark's one clock: ``time.perf_counter`` after queued GPU work is done (not merely queued)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def interleaved_seconds(passes: dict[str, Callable[[object], object]], inputs: Sequence[object], repeats: int
                        ) -> dict[str, list[list[float]]]:
    """Seconds of ``passes[name](x)``, ``[name][repeat][input]``, interleaved input by input with the order of names
    flipped every repeat, so background load (on shared cores it comes and goes within seconds) hits all alike."""
    seconds = {name: [] for name in passes}
    for repeat in range(repeats):
        order = list(passes)[:: 1 if repeat % 2 == 0 else -1]
        for name in order:
            seconds[name].append([])
        for x in inputs:
            for name in order:
                start = clock()
                passes[name](x)
                seconds[name][-1].append(clock() - start)
    return seconds


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
    return "not measured: needs a GPU or Linux's /proc/self/clear_refs"


def peak_memory_mb(phase: Callable[[], object]) -> float:
    """Extra memory (MB) ``phase()`` needs at its peak over what the process held before (nan: no GPU, no /proc)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        phase()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    if _glibc() is None:
        return float("nan")
    _glibc().malloc_trim(0)  # hand freed heap back, so the phase's allocations show up as new resident pages
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    before = _rss_mb("VmRSS")
    phase()
    return _rss_mb("VmHWM") - before


def sample(dataset: Dataset, rows: int | None, seed: int) -> Dataset:
    """``rows`` random rows of ``dataset`` in their original order (all of them for None)."""
    if rows is None or rows >= len(dataset):
        return dataset
    return dataset.select(np.sort(np.random.default_rng(seed).choice(len(dataset), rows, replace=False)))


def inference_batches(dataset: Dataset, collator: Collator, batch_size: int) -> tuple[list[dict], np.ndarray]:
    """Rows longest-first in collated batches (as evaluate.predict_logits batches them) and the row order."""
    order = np.argsort(-np.asarray(dataset["length"]), kind="stable")
    ids = dataset.select_columns(["input_ids"])
    batches = [collator([{"input_ids": row, "labels": 0} for row in ids[order[start : start + batch_size].tolist()]
                         ["input_ids"]]) for start in range(0, len(order), batch_size)]
    return [{k: batch[k] for k in ("input_ids", "attention_mask")} for batch in batches], order
