"""The one place that decides where and in what precision this process computes, and how that hardware is named:
bf16 from compute capability 8.0 (A100, H100), fp16 on older GPUs (T4, V100), fp32 on CPU. Not by
``torch.cuda.is_bf16_supported()``: it counts emulation, so it says True on a T4, where bf16 is several times slower."""

from __future__ import annotations

import contextlib
import os
import platform
import re

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BF16_MIN_CAPABILITY = (8, 0)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gpu_name() -> str | None:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def describe() -> dict:
    """The machine, as every results file's provenance records it."""
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu_name()}


def label() -> str:
    """Where this process computes, in words: the GPU's name, else the CPU's core count and torch threads."""
    return gpu_name() or f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def slug() -> str:
    """``nvidia-h100-80gb-hbm3`` on a GPU, ``cpu-2cores`` on CPU: one benchmark file per hardware."""
    name = gpu_name()
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") if name else f"cpu-{os.cpu_count()}cores"


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_precision(requested: str = "auto") -> str:
    """``"auto"`` → bf16 on sm80+, fp16 on older GPUs, fp32 on CPU; an explicit choice is checked and returned."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}.")
    if requested != "auto":
        if requested != "fp32" and not torch.cuda.is_available():
            raise ValueError(f"precision {requested!r} needs a CUDA GPU; use 'auto' or 'fp32' on CPU.")
        return requested
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.get_device_capability() >= BF16_MIN_CAPABILITY else "fp16"


def trainer_flags(requested: str = "auto") -> dict[str, bool]:
    """``TrainingArguments``' mixed-precision flags for the resolved precision."""
    precision = resolve_precision(requested)
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def loader_flags(workers: int) -> dict:
    """``TrainingArguments``' DataLoader flags: worker processes and pinned memory on a CUDA GPU only. On CPU a
    worker would take a core from the model's own threads, and one forked from a Jupyter kernel beside a live
    background thread can hang (the likely cause of a `full` notebook that stalled mid-grid under CI)."""
    gpu = torch.cuda.is_available()
    return {"dataloader_num_workers": workers if gpu else 0, "dataloader_pin_memory": gpu}


def torch_dtype(requested: str = "auto") -> torch.dtype:
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[resolve_precision(requested)]


def autocast(requested: str = "auto"):
    """The context of every forward pass outside the Trainer: autocast to the resolved dtype on CUDA, none on CPU."""
    precision = resolve_precision(requested)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch_dtype(precision))
