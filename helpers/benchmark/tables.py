"""The benchmark's tables, read from its JSON document (the README and the script print them), and the analysis
notebook's speed table of trained checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from datasets import Dataset

from helpers import models
from helpers.benchmark.common import BenchmarkSizes
from helpers.benchmark.deployment import size_on_disk_mb
from helpers.benchmark.inference import quantize_int8, speed_of
from helpers.config import Config


def summary_table(document: dict) -> pd.DataFrame:
    """One row per comparison: ours/student, reference/teacher, their ratio, the target and whether it is met."""
    from helpers.benchmark.run import check_targets

    training, inference, logits = document["training"], document["inference"], document["teacher_logits"]
    batch = document["sizes"]["inference_batch_size"]
    targets = check_targets(document)  # from the stored measurements, so a target added later is checked too

    def row(what, ours, reference, unit, ratio_name):
        target = targets.get(ratio_name, {})
        return {"measurement": what, "ours / student": ours, "reference / teacher": reference, "unit": unit,
                "ratio": document.get(ratio_name), "target": target.get("target", ""),
                "met": {True: "yes", False: "NO"}.get(target.get("met"), "")}

    per_second, tokens, seconds = (training["samples_per_second"], training["tokens_per_second"],
                                   training["median_seconds"])
    latency, batched = inference["batch1"]["median_ms"], inference[f"batch{batch}"]["rows_per_second"]
    models_named = "full-size, random weights" if document["sizes"].get("full_size_inference") else "profile's models"
    rows = [
        row("train: ours (KD, cached logits) vs naive KD", per_second["kd_cached"], per_second["naive_kd"],
            "samples/s", "train_speedup_over_naive"),
        row("train: ours vs naive, real tokens", tokens["kd_cached"], tokens["naive_kd"], "tokens/s",
            "train_tokens_speedup_over_naive"),
        row("train: KD step (cached logits) vs baseline step", seconds["kd_cached"], seconds["baseline"],
            "s/pass", "kd_step_over_baseline_step"),
        row("train: KD step (online teacher) vs baseline step", seconds["kd_online"], seconds["baseline"],
            "s/pass", "kd_online_step_over_baseline_step"),
        row(f"inference batch 1: student vs teacher latency ({models_named})", latency["student"],
            latency["teacher"], "ms (ratio: speed-up)", "student_speedup_over_teacher_batch1"),
        row(f"inference batch {batch}: student vs teacher ({models_named})", batched["student"], batched["teacher"],
            "rows/s", f"student_speedup_over_teacher_batch{batch}"),
    ]
    if "student_int8" in batched:
        rows.append(row(f"inference batch {batch}: int8 student vs fp32 teacher ({models_named})",
                        batched["student_int8"], batched["teacher"], "rows/s",
                        f"full_size_int8_speedup_over_teacher_batch{batch}"))
    deployed = {r["variant"]: r for r in (document.get("deployment") or {}).get("rows", [])}
    if deployed:
        rows += [
            row(f"trained checkpoints, CPU batch {batch}: int8 student vs fp32 teacher",
                deployed["student int8"]["throughput_batch32_rows_per_s"],
                deployed["teacher fp32"]["throughput_batch32_rows_per_s"], "rows/s",
                "int8_student_speedup_over_teacher_batch32"),
            row("trained checkpoints: int8 student vs fp32 student accuracy", deployed["student int8"]["accuracy"],
                deployed["student fp32"]["accuracy"], "accuracy (ratio: change in points)",
                "int8_accuracy_delta_points"),
        ]
    rows.append(row("teacher logits: first pass vs cached", logits["first_median_seconds"],
                    logits["cached_median_seconds"], "s (ratio: first/cached)", "teacher_logits_first_over_cached"))
    return pd.DataFrame(rows)


def deployment_table(document: dict) -> pd.DataFrame | None:
    """Teacher fp32 / student fp32 / student int8: accuracy, macro-F1, the int8 change with its interval, latency,
    throughput and size (``document``: a benchmark document, or ``deployment_rows``' own)."""
    deployed = document.get("deployment", document)
    if not deployed or "rows" not in deployed:
        return None
    frame = pd.DataFrame(deployed["rows"]).set_index("variant")
    keep = ["runtime", "hardware", "accuracy", "macro_f1", "accuracy_delta_points", "accuracy_delta_ci_low",
            "accuracy_delta_ci_high", "macro_f1_delta_points", "latency_batch1_ms", "throughput_batch32_rows_per_s",
            "size_on_disk_mb", "parameters_m"]
    return frame[[column for column in keep if column in frame]]


def memory_table(document: dict) -> pd.DataFrame:
    return pd.DataFrame({"phase": list(document["peak_memory_mb"]),
                         "peak MB": list(document["peak_memory_mb"].values())})


def gpu_table(document: dict) -> pd.DataFrame | None:
    """The GPU section: measured rates, the share of the matmul peak and, where runs were planned, the projection."""
    gpu = document.get("gpu")
    if not gpu:
        return None
    rates = gpu["throughput"]
    rows = [
        {"measurement": f"full-size student training ({gpu['precision']}, batch {gpu['batch_size']})",
         "value": rates["student_train_rows_per_second"], "unit": "rows/s"},
        {"measurement": "online-teacher step over cached-logit step", "value": rates["online_teacher_step_ratio"],
         "unit": "×"},
        {"measurement": "student / teacher evaluation", "unit": "rows/s",
         "value": f"{rates['student_eval_rows_per_second']:,.0f} / {rates['teacher_eval_rows_per_second']:,.0f}"},
        {"measurement": "decoder student training", "value": rates["lm_train_rows_per_second"], "unit": "rows/s"},
        {"measurement": "achieved training throughput", "value": gpu["achieved_tflops"], "unit": "TFLOP/s"},
        {"measurement": "measured bf16 matmul peak", "value": gpu["matmul_peak_tflops"], "unit": "TFLOP/s"},
        {"measurement": "share of matmul peak", "value": gpu["share_of_matmul_peak"], "unit": ""},
    ]
    projection = gpu.get("projection")
    if projection:
        rows.append({"measurement": f"projected report ({projection['runs']} runs)",
                     "value": projection["total_hours"], "unit": "h"})
        if projection["cost"] is not None:
            rows.append({"measurement": f"at ${projection['price_per_hour']:.2f}/h", "value": projection["cost"],
                         "unit": "USD"})
    return pd.DataFrame(rows)


def speed_table(config: Config, entries: list, texts: list[str], tokenizer, repeats: int = 3) -> pd.DataFrame:
    """Latency at batch 1 and throughput at batch 32 of each checkpoint (``entries``: analysis.ModelRuns, teacher
    first, the chosen student second) and of the chosen student's int8 copy, side by side on real test texts on
    CPU (where int8 runs)."""
    encoded = [tokenizer(t, truncation=True, max_length=config.max_length, return_token_type_ids=False)
               for t in texts]
    rows = Dataset.from_dict({"input_ids": [e["input_ids"] for e in encoded],
                              "length": [len(e["input_ids"]) for e in encoded]})
    variants = {entry.name: models.load_classifier(entry.checkpoint) for entry in entries}
    int8_name = f"{entries[1].name} int8"
    variants[int8_name] = quantize_int8(variants[entries[1].name])
    sizes = BenchmarkSizes(train_rows=0, naive_rows=0, repeats=repeats, warmup_steps=2, logits_rows=0,
                           inference_rows=len(rows), latency_rows=min(32, len(rows)), memory_steps=0,
                           full_size_inference=False, gpu_train_rows=0)
    speed = speed_of(variants, rows, tokenizer, sizes, device=torch.device("cpu"))
    table = []
    for name, model in variants.items():
        fp32 = variants[entries[1].name] if name == int8_name else model  # int8 weights are not nn.Parameters
        table.append({"model": name, "runtime": "torch int8 (dynamic, Linear)" if name == int8_name else "torch fp32",
                      "latency_batch1_ms": speed["batch1"]["median_ms"][name],
                      "throughput_batch32_rows_per_s": speed["batch32"]["rows_per_second"][name],
                      "device": f"cpu ({speed['threads']} threads)", "parameters_m": models.parameter_count(fp32) / 1e6,
                      # One serialisation for every row: a hub id is not a folder, and int8 weights no safetensors.
                      "size_on_disk_mb": size_on_disk_mb(model)})
    frame = pd.DataFrame(table).set_index("model")
    teacher = frame.iloc[0]
    frame["speedup_vs_teacher_batch32"] = frame["throughput_batch32_rows_per_s"] / teacher[
        "throughput_batch32_rows_per_s"]
    frame["latency_speedup_vs_teacher"] = teacher["latency_batch1_ms"] / frame["latency_batch1_ms"]
    frame["size_ratio_vs_teacher"] = frame["size_on_disk_mb"] / teacher["size_on_disk_mb"]
    return frame.replace([np.inf], np.nan)
