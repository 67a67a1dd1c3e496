"""The benchmark run: every measurement in one process on one data set, its headline ratios and targets, written to
``results/benchmark/<hardware>.json``; the tables the README, the script and notebook 05 show from that file."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import LlamaConfig

from benchmark import common, inference
from benchmark.common import BenchmarkSizes
from benchmark.gpu import gpu_section
from benchmark.training import measure_teacher_logits, measure_training, real_epoch, strided_batches
from helpers import hardware, models, pipeline, results
from helpers.config import PROJECT_ROOT, Config

TARGETS = {"train_speedup_over_naive": (">=", 2.0), "kd_step_over_baseline_step": ("<=", 1.05),  # (comparison, bound)
           "student_speedup_over_teacher_batch32": (">=", 1.8), **inference.TARGETS}

# The smoke profile's stand-in for the decoder student: the GPU section's code is checked, not timed.
TINY_LM = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1)


def ratios(training: dict, speed: dict, teacher_logits: dict, batch_size: int) -> dict[str, float]:
    """The headline ratios from their measured parts: > 1 means ours / the student / the cache is faster, except the
    step-cost ratios (> 1: the distillation step costs more)."""
    seconds, per_second, tokens = (training[key] for key in ("median_seconds", "samples_per_second",
                                                             "tokens_per_second"))
    batched, latency = speed[f"batch{batch_size}"]["rows_per_second"], speed["batch1"]["median_ms"]
    found = {"train_speedup_over_naive": per_second["kd_cached"] / per_second["naive_kd"],
             "train_tokens_speedup_over_naive": tokens["kd_cached"] / tokens["naive_kd"],
             "kd_step_over_baseline_step": seconds["kd_cached"] / seconds["baseline"],
             "kd_online_step_over_baseline_step": seconds["kd_online"] / seconds["baseline"],
             "student_speedup_over_teacher_batch1": latency["teacher"] / latency["student"],
             f"student_speedup_over_teacher_batch{batch_size}": batched["student"] / batched["teacher"],
             "teacher_logits_first_over_cached": teacher_logits["first_median_seconds"]
             / teacher_logits["cached_median_seconds"]}
    if "student_int8" in batched:  # CPU only: dynamic int8 has no CUDA kernels
        found[f"full_size_int8_speedup_over_teacher_batch{batch_size}"] = batched["student_int8"] / batched["teacher"]
    return found


def check_targets(document: dict) -> dict:
    """Each target with its value and whether it is met (None where the value was not measured)."""
    return {name: {"target": f"{comparison} {threshold}", "value": (value := document.get(name)),
                   "met": None if value is None else value <= threshold if comparison == "<=" else value >= threshold}
            for name, (comparison, threshold) in TARGETS.items()}


def chosen_student_checkpoint(config: Config) -> str | None:
    """The final model folder of notebook 04's chosen student's first seed, if it is on this machine."""
    if not results.has_result(config, "distillation"):
        return None
    document = results.load_result(config, "distillation")
    runs = document.get("runs", {}).get(document["chosen"], [])
    if not runs:
        return None
    folder = Path(pipeline.student_checkpoint(config, results.load_result(config, runs[0])))
    return str(folder) if (folder / "config.json").exists() else None


def _deployment(config: Config, workspace: pipeline.Workspace, sizes: BenchmarkSizes,
                student_checkpoint: str | None, teacher_checkpoint: str | None) -> dict:
    student_checkpoint = student_checkpoint or chosen_student_checkpoint(config)
    if student_checkpoint is None:
        return {"skipped": "no trained student on this machine: run notebooks 02-04 (or pass student_checkpoint)"}
    try:
        teacher_checkpoint = teacher_checkpoint or models.teacher_path(workspace.config)
        teacher_test = pipeline.teacher_tokenized(workspace, "test")  # the report's teacher reads its own inputs
    except (FileNotFoundError, RuntimeError) as error:
        return {"skipped": str(error)}
    return inference.deployment_rows(student_checkpoint, workspace.tokenized["test"], workspace.tokenizer,
                                      teacher_checkpoint, sizes, seed=config.seed, teacher_test=teacher_test)


def run_benchmark(config: Config, sizes: BenchmarkSizes | None = None, output_dir: str | Path | None = None, *,
                  student_checkpoint: str | None = None, teacher_checkpoint: str | None = None,
                  with_gpu_section: bool | None = None, threads: int | None = None,
                  log: Callable[[str], None] = print) -> dict:
    """Run every measurement, write ``<output_dir>/<hardware>.json`` and return its document. ``student_checkpoint``,
    ``teacher_checkpoint``: the deployment rows' models (default: notebook 04's chosen student, the profile's teacher;
    skipped where none is here). ``with_gpu_section`` default: where CUDA is. ``threads`` default: every usable core."""
    sizes = sizes or common.sizes_for(config)
    torch.set_num_threads(threads or hardware.available_cores())
    load_before = os.getloadavg()
    started = common.clock()
    workspace = pipeline.prepare(config)
    architectures = common.profile_architectures(config)
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
        rows = pipeline.with_target_logits(tokenized.select(range(len(train_indices))), logits[: len(train_indices)])
        log(f"training: naive vs ours, baseline vs distillation ({len(rows)} rows x {sizes.repeats} repeats)")
        training, training_memory = measure_training(config, workspace, rows, architectures, sizes, folder)
        training["real_epoch"] = epoch
        log("inference: student vs teacher at batch 1 and 32")
        inference_architectures = common.full_size_architectures() if sizes.full_size_inference else architectures
        speed, inference_memory = inference.measure_inference(workspace.tokenized["test"], workspace.tokenizer,
                                                              inference_architectures, sizes)
        log("deployment: teacher fp32, student fp32 and int8 on CPU (accuracy, latency, throughput, size)")
        deployed = _deployment(config, workspace, sizes, student_checkpoint, teacher_checkpoint)
        log("peak memory per phase")
        phases = {**training_memory, **inference_memory, **logit_memory}
        peak = {name: common.peak_memory_mb(phase) for name, phase in phases.items()}
        gpu = None
        if torch.cuda.is_available() if with_gpu_section is None else with_gpu_section:
            log("GPU: full-size mixed-precision training, matmul peak, evaluation and decoder rates")
            gpu = gpu_section(config, workspace, epoch_batches, sizes, folder, inference_architectures,
                              lm_architecture=None if sizes.full_size_inference else TINY_LM,
                              matmul_size=8192 if torch.cuda.is_available() else 256)
    document = {
        "provenance": results.provenance(config, data_fingerprint=workspace.data_fingerprint),
        "hardware_slug": hardware.slug(), "threads": torch.get_num_threads(), "device": hardware.device().type,
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "seconds": common.clock() - started, "sizes": dataclasses.asdict(sizes),
        **ratios(training, speed, teacher_logits, sizes.inference_batch_size),
        "int8_student_speedup_over_teacher_batch32": deployed.get("int8_student_speedup_over_teacher_batch32"),
        "int8_accuracy_delta_points": deployed.get("int8_accuracy_delta_points"),
        "peak_memory_mb": peak, "memory_method": common.memory_method(), "training": training, "inference": speed,
        "teacher_logits": teacher_logits, "deployment": deployed,
        "onnx": {"kept": False, "decision": inference.ONNX_DECISION}, "gpu": gpu}
    document["targets"] = check_targets(document)
    # Smoke-profile numbers only check the code: they go with the other (git-ignored) smoke results.
    default_dir = (Path(config.results_dir) if config.data_source == "synthetic" else PROJECT_ROOT / "results")
    return write(document, Path(output_dir or default_dir / "benchmark") / f"{hardware.slug()}.json")


def write(document: dict, path: Path) -> dict:
    """Write ``document`` as JSON at ``path`` (atomically), paths relative to the project root (``results.portable``);
    return it with its ``path``, its own paths as they are (a caller may load a checkpoint from them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {key: value for key, value in document.items() if key != "path"}
    stored = results.portable(json.loads(json.dumps(document, default=np.generic.item)))  # numpy scalars as Python's
    results.atomic_write_text(path, json.dumps(stored, indent=1))
    return {**document, "path": str(path)}


def summary_table(document: dict) -> pd.DataFrame:
    """Per comparison: ours/student, reference/teacher, their ratio, the target and whether it is met."""
    training, speed, logits = document["training"], document["inference"], document["teacher_logits"]
    batch = document["sizes"]["inference_batch_size"]
    targets = check_targets(document)  # from the stored measurements, so a target added later is checked too

    def row(what, values, ours, reference, unit, ratio_name):
        target = targets.get(ratio_name, {})
        return {"measurement": what, "ours / student": values[ours], "reference / teacher": values[reference],
                "unit": unit, "ratio": document.get(ratio_name), "target": target.get("target", ""),
                "met": {True: "yes", False: "NO"}.get(target.get("met"), "")}

    per_second, tokens, seconds = (training[key] for key in ("samples_per_second", "tokens_per_second",
                                                             "median_seconds"))
    latency, batched = speed["batch1"]["median_ms"], speed[f"batch{batch}"]["rows_per_second"]
    models_named = "full-size, random weights" if document["sizes"].get("full_size_inference") else "profile's models"
    rows = [row("train: ours (KD, cached logits) vs naive KD", per_second, "kd_cached", "naive_kd", "samples/s",
                "train_speedup_over_naive"),
            row("train: ours vs naive, real tokens", tokens, "kd_cached", "naive_kd", "tokens/s",
                "train_tokens_speedup_over_naive"),
            row("train: KD step (cached logits) vs baseline step", seconds, "kd_cached", "baseline", "s/pass",
                "kd_step_over_baseline_step"),
            row("train: KD step (online teacher) vs baseline step", seconds, "kd_online", "baseline", "s/pass",
                "kd_online_step_over_baseline_step"),
            row(f"inference batch 1: student vs teacher latency ({models_named})", latency, "student", "teacher",
                "ms (ratio: speed-up)", "student_speedup_over_teacher_batch1"),
            row(f"inference batch {batch}: student vs teacher ({models_named})", batched, "student", "teacher",
                "rows/s", f"student_speedup_over_teacher_batch{batch}")]
    if "student_int8" in batched:
        rows.append(row(f"inference batch {batch}: int8 student vs fp32 teacher ({models_named})", batched,
                        "student_int8", "teacher", "rows/s", f"full_size_int8_speedup_over_teacher_batch{batch}"))
    deployed = {r["variant"]: r for r in (document.get("deployment") or {}).get("rows", [])}
    if deployed:
        throughput = {name: r["throughput_batch32_rows_per_s"] for name, r in deployed.items()}
        accuracy = {name: r["accuracy"] for name, r in deployed.items()}
        rows += [row(f"trained checkpoints, CPU batch {batch}: int8 student vs fp32 teacher", throughput,
                     "student int8", "teacher fp32", "rows/s", "int8_student_speedup_over_teacher_batch32"),
                 row("trained checkpoints: int8 student vs fp32 student accuracy", accuracy, "student int8",
                     "student fp32", "accuracy (ratio: change in points)", "int8_accuracy_delta_points")]
    rows.append(row("teacher logits: first pass vs cached", logits, "first_median_seconds", "cached_median_seconds",
                    "s (ratio: first/cached)", "teacher_logits_first_over_cached"))
    return pd.DataFrame(rows)


def memory_table(document: dict) -> pd.DataFrame:
    return pd.DataFrame(list(document["peak_memory_mb"].items()), columns=["phase", "peak MB"])


def gpu_table(document: dict) -> pd.DataFrame | None:
    """The GPU section's measured rates and share of the matmul peak (hours and dollars: ``python -m helpers.plan``)."""
    gpu = document.get("gpu")
    if not gpu:
        return None
    rates = gpu["throughput"]
    return pd.DataFrame([
        (f"full-size student training ({gpu['precision']}, batch {gpu['batch_size']})",
         rates["student_train_rows_per_second"], "rows/s"),
        ("padded tokens per row of those batches / the planner's",
         f"{gpu['padded_tokens_per_row']:.1f} / {gpu['planner_padded_tokens_per_row']:.1f}", "tokens"),
        ("student / teacher evaluation",
         f"{rates['student_eval_rows_per_second']:,.0f} / {rates['teacher_eval_rows_per_second']:,.0f}", "rows/s"),
        ("decoder student training", rates["lm_train_rows_per_second"], "rows/s"),
        ("achieved training throughput", gpu["achieved_tflops"], "TFLOP/s"),
        ("measured bf16 matmul peak", gpu["matmul_peak_tflops"], "TFLOP/s"),
        ("share of matmul peak", gpu["share_of_matmul_peak"], "")], columns=["measurement", "value", "unit"])
