"""Inference speed at batch 1 and 32 on real test rows; the chosen student's CPU deployment (fp32 teacher, fp32 and
int8 student) with accuracy and size; notebook 05's speed table. ONNX Runtime: scripts/benchmark.py --onnx only."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import PretrainedConfig

from benchmark import common
from benchmark.common import BenchmarkSizes, build, describe, forward_pass, inference_batches, quantize_int8, sample
from helpers import evaluate, hardware, models
from helpers.train import collator_for

TARGETS = {"int8_student_speedup_over_teacher_batch32": (">=", 3.0),  # name -> (comparison, threshold)
           "int8_accuracy_delta_points": (">=", -0.3)}  # negative = the int8 student loses accuracy
ONNX_DECISION = (
    "ONNX Runtime (torch.onnx export, graph optimisations on, its own dynamic int8 quantization) is measured beside "
    "the torch path by `python scripts/benchmark.py --onnx` and recorded under `onnx` where it ran. It is not part "
    "of the package whatever it measures: it needs packages that `pip install -e .` does not install (onnxruntime and "
    "onnx; onnxscript too for torch's current exporter, the TorchScript one being deprecated)."
)


def speed_of(variants: dict[str, torch.nn.Module | Callable[[dict], object]], test_rows: Dataset, tokenizer,
             sizes: BenchmarkSizes, device: torch.device | None = None, seed: int = 0) -> dict:
    """Batch-1 latency and batch-32 rows/s of every model (or ``batch -> logits`` callable) in ``variants``, interleaved
    on real test rows (int8 runs on CPU only: pass ``device=torch.device("cpu")``). Per-repeat seconds and the medians:
    ``batch1.median_ms[name]``, ``batch32.rows_per_second[name]``."""
    device = device or hardware.device()
    collator = collator_for(tokenizer)
    single, _ = inference_batches(sample(test_rows, sizes.latency_rows, seed), collator, 1)
    batched_rows = sample(test_rows, sizes.inference_rows, seed + 1)
    batched, _ = inference_batches(batched_rows, collator, sizes.inference_batch_size)
    passes = {name: forward_pass(model, device) if isinstance(model, torch.nn.Module) else model
              for name, model in variants.items()}
    for run in passes.values():  # warm-up: kernels, allocator, oneDNN's first-call setup
        for batch in single[: sizes.warmup_steps] + batched[:1]:
            run(batch)
    latency = common.interleaved_seconds(passes, single, sizes.repeats)
    throughput = {name: [len(batched_rows) / sum(repeat) for repeat in repeats]
                  for name, repeats in common.interleaved_seconds(passes, batched, sizes.repeats).items()}
    flat = {name: [s for repeat in repeats for s in repeat] for name, repeats in latency.items()}
    return {
        "device": device.type, "threads": torch.get_num_threads(),
        "batch1": {"rows": len(single), "seconds": flat,
                   "median_ms": {name: 1000 * statistics.median(values) for name, values in flat.items()}},
        f"batch{sizes.inference_batch_size}": {
            "rows": len(batched_rows), "mean_padded_length": float(np.mean([b["input_ids"].shape[1] for b in batched])),
            "rows_per_second_per_repeat": throughput,
            "rows_per_second": {name: statistics.median(values) for name, values in throughput.items()}},
    }


def measure_inference(test_rows: Dataset, tokenizer, architectures: tuple[PretrainedConfig, PretrainedConfig],
                      sizes: BenchmarkSizes, seed: int = 0) -> tuple[dict, dict[str, Callable[[], object]]]:
    """Teacher and student (random weights: speed is the same) side by side on real test rows, on CPU the student's
    int8 copy too; the measurements and, per model and batch size, a memory phase."""
    named = dict(zip(("teacher", "student"), architectures, strict=True))
    built = {name: build(architecture) for name, architecture in named.items()}
    if hardware.device().type == "cpu":
        built["student_int8"] = quantize_int8(built["student"])
    measured = speed_of(built, test_rows, tokenizer, sizes, seed=seed)
    measured["models"] = {name: describe(model) for name, model in built.items()}
    measured["precision"] = hardware.resolve_precision()
    collator = collator_for(tokenizer)
    memory = {}
    for name, architecture in named.items():
        for batch_size in (1, sizes.inference_batch_size):
            batch = inference_batches(sample(test_rows, batch_size, seed), collator, batch_size)[0][0]
            memory[f"inference_{name}_batch{batch_size}"] = lambda a=architecture, b=batch: forward_pass(
                build(a), hardware.device())(b)
    return measured, memory


def size_on_disk_mb(model: torch.nn.Module) -> float:
    """MB of ``torch.save(model.state_dict())``: one format for fp32 and int8 (packed int8 has no safetensors)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pt"
        torch.save(model.state_dict(), path)
        return path.stat().st_size / 2**20


def linear_weight_mb(model: torch.nn.Module) -> float:
    """Megabytes of the weights of every Linear layer, fp32 or dynamically quantized int8."""
    weights = [module.weight() if isinstance(module, torch.ao.nn.quantized.dynamic.Linear) else module.weight
               for module in model.modules()
               if isinstance(module, (torch.ao.nn.quantized.dynamic.Linear, torch.nn.Linear))]
    return sum(weight.numel() * weight.element_size() for weight in weights) / 2**20


def predict_on_cpu(model: torch.nn.Module, test: Dataset, tokenizer, batch_size: int = 64) -> np.ndarray:
    """Predicted classes (N,) of ``model`` on ``test``, in fp32 (or int8) on CPU, in the dataset's order."""
    batches, order = inference_batches(test, collator_for(tokenizer), batch_size)
    run = forward_pass(model, torch.device("cpu"))
    predictions = np.concatenate([run(batch).argmax(-1).numpy() for batch in batches])
    return predictions[np.argsort(order)]


def deployment_rows(student_checkpoint: str | Path, test: Dataset, tokenizer, teacher_checkpoint: str | Path,
                    sizes: BenchmarkSizes, seed: int = 0, teacher_test: Dataset | None = None) -> dict:
    """Teacher fp32 / student fp32 / student int8 of trained checkpoints on this machine's CPU: the one place their
    speed is measured. ``test``: the tokenized test split at the students' length; ``teacher_test``: the same rows at
    the teacher's (default ``test``). Accuracy: each model on its own inputs, ``sizes.accuracy_rows`` rows (None: all);
    speed: all on the students' inputs. Returns ``rows`` (one per variant) and ratios; deltas: int8 − fp32 student."""
    fp32 = {"teacher fp32": models.load_classifier(str(teacher_checkpoint)),
            "student fp32": models.load_classifier(str(student_checkpoint))}
    variants = {**fp32, "student int8": quantize_int8(fp32["student fp32"])}
    speed = speed_of(variants, test, tokenizer, sizes, device=torch.device("cpu"), seed=seed)
    rows = sample(test, sizes.accuracy_rows, seed + 2)
    teacher_rows = sample(teacher_test if teacher_test is not None else test, sizes.accuracy_rows, seed + 2)
    labels = np.asarray(rows["labels"])
    if not np.array_equal(np.asarray(teacher_rows["labels"]), labels):
        raise ValueError("teacher_test must hold the same rows as test, in the same order (at another length).")
    predictions = {name: predict_on_cpu(model, teacher_rows if name.startswith("teacher") else rows, tokenizer)
                   for name, model in variants.items()}
    batch = f"batch{sizes.inference_batch_size}"
    table = []
    for name, model in variants.items():
        checkpoint = teacher_checkpoint if name.startswith("teacher") else student_checkpoint
        row = {"variant": name, "checkpoint": str(checkpoint),
               "runtime": "torch int8 (dynamic, Linear)" if name.endswith("int8") else "torch fp32",
               "hardware": f"CPU ({speed['threads']} threads)",
               "speed_inputs": f"the students' inputs (up to {max(test['length'])} tokens)",
               "parameters_m": models.parameter_count(fp32.get(name, fp32["student fp32"])) / 1e6,
               "size_on_disk_mb": size_on_disk_mb(model), "linear_weights_mb": linear_weight_mb(model),
               "latency_batch1_ms": speed["batch1"]["median_ms"][name],
               "throughput_batch32_rows_per_s": speed[batch]["rows_per_second"][name],
               "accuracy": float(np.mean(predictions[name] == labels)),
               "macro_f1": evaluate.macro_f1(labels, predictions[name]),
               "agreement_with_student_fp32": float(np.mean(predictions[name] == predictions["student fp32"]))}
        if name == "student int8":
            for metric in evaluate.METRICS:  # in points, with the paired bootstrap interval over test rows
                delta = evaluate.two_level_bootstrap(labels, predictions[name][None], predictions["student fp32"][None],
                                                     seed=seed, metric=metric)
                row.update({f"{metric}_delta_points": 100 * delta["difference"],
                            f"{metric}_delta_ci_low": 100 * delta["ci_low"],
                            f"{metric}_delta_ci_high": 100 * delta["ci_high"]})
        table.append(row)
    by_name = {row["variant"]: row for row in table}
    throughput = {name: row["throughput_batch32_rows_per_s"] for name, row in by_name.items()}
    return {"rows": table, "accuracy_rows": len(rows), "speed": speed,
            "int8_student_speedup_over_teacher_batch32": throughput["student int8"] / throughput["teacher fp32"],
            "student_speedup_over_teacher_batch32_cpu": throughput["student fp32"] / throughput["teacher fp32"],
            "int8_speedup_over_fp32_student_batch32": throughput["student int8"] / throughput["student fp32"],
            "int8_accuracy_delta_points": by_name["student int8"]["accuracy_delta_points"],
            "int8_macro_f1_delta_points": by_name["student int8"]["macro_f1_delta_points"]}


def deployment_table(document: dict) -> pd.DataFrame | None:
    """Per variant: accuracy, macro-F1, the int8 change with its interval, latency, throughput, size (``document``: a
    benchmark document, or ``deployment_rows``' own)."""
    deployed = document.get("deployment", document)
    if not deployed or "rows" not in deployed:
        return None
    frame = pd.DataFrame(deployed["rows"]).set_index("variant")
    keep = ["runtime", "hardware", "speed_inputs", "accuracy", "macro_f1", "accuracy_delta_points",
            "accuracy_delta_ci_low", "accuracy_delta_ci_high", "macro_f1_delta_points", "latency_batch1_ms",
            "throughput_batch32_rows_per_s", "size_on_disk_mb", "parameters_m"]
    return frame[[column for column in keep if column in frame]]


def speed_frame(deployment: dict, entries: list) -> pd.DataFrame:
    """The analysis table's speed columns from ``deployment_rows``: the teacher's row, the fp32 student's for each
    student (the baseline has its architecture, so its speed), the int8 copy's. ``entries``: analysis.ModelRuns,
    teacher first."""
    by_variant = {row["variant"]: row for row in deployment["rows"]}
    names = {entries[0].name: "teacher fp32", **{entry.name: "student fp32" for entry in entries[1:]},
             f"{entries[1].name} int8": "student int8"}
    teacher, throughput = by_variant["teacher fp32"], "throughput_batch32_rows_per_s"
    return pd.DataFrame([{
        "model": name, "runtime": row["runtime"], "device": row["hardware"],
        **{key: row[key] for key in ("latency_batch1_ms", throughput, "parameters_m", "size_on_disk_mb")},
        "speedup_vs_teacher_batch32": row[throughput] / teacher[throughput],
        "latency_speedup_vs_teacher": teacher["latency_batch1_ms"] / row["latency_batch1_ms"],
        "size_ratio_vs_teacher": row["size_on_disk_mb"] / teacher["size_on_disk_mb"],
    } for name, row in ((name, by_variant[variant]) for name, variant in names.items())]).set_index("model")
