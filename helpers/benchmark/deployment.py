"""Deployment options for the chosen student, measured side by side on CPU: the fp32 teacher, the fp32 student and
the student with post-training dynamic int8 quantization (``torch.ao.quantization.quantize_dynamic`` on its Linear
layers). Accuracy and macro-F1 on test rows with the change against fp32 and its paired bootstrap interval, latency
at batch 1, throughput at batch 32, size on disk.

ONNX Runtime is measured against this torch path by scripts/benchmark.py and left out of the package: see
``ONNX_DECISION``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from helpers import evaluate, models
from helpers.benchmark.common import BenchmarkSizes, inference_batches, sample
from helpers.benchmark.inference import forward_pass, quantize_int8, speed_of
from helpers.train import collator_for

TARGETS = {  # name -> (comparison, threshold), checked on the same run's measurements
    "int8_student_speedup_over_teacher_batch32": (">=", 3.0),
    "int8_accuracy_delta_points": (">=", -0.3),  # negative = the int8 student loses accuracy
}
ONNX_DECISION = (
    "ONNX Runtime (torch.onnx export, graph optimisations on, its own dynamic int8 quantization) is measured beside "
    "the torch path by `python scripts/benchmark.py --onnx` and recorded under `onnx` where it ran. It is not part "
    "of the package whatever it measures: it needs packages that `pip install -e .` does not install (onnxruntime and "
    "onnx; onnxscript too for torch's current exporter, the TorchScript one being deprecated)."
)


# ------------------------------------------------------------------------------------------------------ size
def size_on_disk_mb(model: torch.nn.Module) -> float:
    """Megabytes of ``torch.save(model.state_dict())``: the same serialisation for fp32 and int8 models (an int8
    model's packed Linear weights cannot be written as safetensors)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pt"
        torch.save(model.state_dict(), path)
        return path.stat().st_size / 2**20


def linear_weight_mb(model: torch.nn.Module) -> float:
    """Megabytes of the weights of every Linear layer, fp32 or dynamically quantized int8."""
    total = 0
    for module in model.modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            total += module.weight().numel() * module.weight().element_size()
        elif isinstance(module, torch.nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
    return total / 2**20


# ---------------------------------------------------------------------------------------------------- accuracy
def predict_on_cpu(model: torch.nn.Module, test: Dataset, tokenizer, batch_size: int = 64) -> np.ndarray:
    """Predicted classes (N,) of ``model`` on ``test``, in fp32 (or int8) on CPU, in the dataset's order."""
    batches, order = inference_batches(test, collator_for(tokenizer), batch_size)
    run = forward_pass(model, torch.device("cpu"))
    predictions = np.concatenate([run(batch).argmax(-1).numpy() for batch in batches])
    return predictions[np.argsort(order)]


def paired_difference_points(labels: np.ndarray, predictions: np.ndarray, reference: np.ndarray,
                             metric: str = "accuracy", resamples: int = 2000, seed: int = 0) -> dict:
    """metric(predictions) − metric(reference) of (N,) predictions in points, with the 95% paired bootstrap interval
    over test rows of ``evaluate.two_level_bootstrap`` (one seed: each resample draws the same rows for both)."""
    result = evaluate.two_level_bootstrap(labels, np.asarray(predictions)[None], np.asarray(reference)[None],
                                          metric=metric, resamples=resamples, seed=seed)
    return {"points": 100 * result["difference"], "ci_low": 100 * result["ci_low"],
            "ci_high": 100 * result["ci_high"]}


# ----------------------------------------------------------------------------------------------- the rows
def deployment_rows(student_checkpoint: str | Path, test: Dataset, tokenizer, teacher_checkpoint: str | Path,
                    sizes: BenchmarkSizes, seed: int = 0) -> dict:
    """Teacher fp32 / student fp32 / student int8 of trained checkpoints, side by side on this machine's CPU.

    ``test``: the tokenized test split (``labels`` and ``length`` columns); ``sizes.accuracy_rows`` of its rows
    (all for None) are predicted by each variant, and the speed is timed on ``sizes`` rows of it. Returns
    ``rows`` (one dict per variant) and the two target ratios; deltas are the int8 student against the fp32 one.
    """
    fp32 = {"teacher fp32": models.load_classifier(str(teacher_checkpoint)),
            "student fp32": models.load_classifier(str(student_checkpoint))}
    variants = {**fp32, "student int8": quantize_int8(fp32["student fp32"])}
    speed = speed_of(variants, test, tokenizer, sizes, device=torch.device("cpu"), seed=seed)
    rows = sample(test, sizes.accuracy_rows, seed + 2)
    labels = np.asarray(rows["labels"])
    predictions = {name: predict_on_cpu(model, rows, tokenizer) for name, model in variants.items()}
    batch = f"batch{sizes.inference_batch_size}"
    table = []
    for name, model in variants.items():
        row = {"variant": name, "checkpoint": str(teacher_checkpoint if name.startswith("teacher")
                                                  else student_checkpoint),
               "runtime": "torch int8 (dynamic, Linear)" if name.endswith("int8") else "torch fp32",
               "hardware": f"CPU ({speed['threads']} threads)",
               "parameters_m": models.parameter_count(fp32.get(name, fp32["student fp32"])) / 1e6,
               "size_on_disk_mb": size_on_disk_mb(model), "linear_weights_mb": linear_weight_mb(model),
               "latency_batch1_ms": speed["batch1"]["median_ms"][name],
               "throughput_batch32_rows_per_s": speed[batch]["rows_per_second"][name],
               "accuracy": float(np.mean(predictions[name] == labels)),
               "macro_f1": evaluate.macro_f1(labels, predictions[name]),
               "agreement_with_student_fp32": float(np.mean(predictions[name] == predictions["student fp32"]))}
        if name == "student int8":
            for metric in evaluate.METRICS:
                delta = paired_difference_points(labels, predictions[name], predictions["student fp32"], metric,
                                                 seed=seed)
                row.update({f"{metric}_delta_points": delta["points"], f"{metric}_delta_ci_low": delta["ci_low"],
                            f"{metric}_delta_ci_high": delta["ci_high"]})
        table.append(row)
    by_name = {row["variant"]: row for row in table}
    throughput = {name: row["throughput_batch32_rows_per_s"] for name, row in by_name.items()}
    return {
        "rows": table, "accuracy_rows": len(rows), "speed": speed,
        "int8_student_speedup_over_teacher_batch32": throughput["student int8"] / throughput["teacher fp32"],
        "student_speedup_over_teacher_batch32_cpu": throughput["student fp32"] / throughput["teacher fp32"],
        "int8_speedup_over_fp32_student_batch32": throughput["student int8"] / throughput["student fp32"],
        "int8_accuracy_delta_points": by_name["student int8"]["accuracy_delta_points"],
        "int8_macro_f1_delta_points": by_name["student int8"]["macro_f1_delta_points"],
    }
