"""Speed, memory and deployment of the report's models, measured side by side, as ratios; what a GPU run costs.

One process, one data set, compared variants interleaved (so background load hits all alike). By concept:

- ``common``      how much work each measurement does, the models it times, how a pass is timed;
- ``training``    naive vs ours: our Trainer step against a first-draft KD loop; distillation vs baseline step;
- ``inference``   student vs teacher at batch 1 and 32; the teacher-logit pass first and cached;
- ``deployment``  teacher fp32 / student fp32 / student int8 of trained checkpoints on CPU, with accuracy;
- ``memory``      the peak memory of each phase;
- ``projection``  GPU throughput (measured, or a short warm-up) and the report's planned runs priced from it;
- ``run``         the benchmark: every measurement, its ratios and targets, ``results/benchmark/<hardware>.json``;
- ``tables``      the tables the README, the script and notebook 05 show.
"""

from helpers.benchmark.common import BenchmarkSizes, hardware_slug, sizes_for
from helpers.benchmark.deployment import ONNX_DECISION, deployment_rows, paired_difference_points, size_on_disk_mb
from helpers.benchmark.inference import quantize_int8, speed_of
from helpers.benchmark.projection import (
    ASSUMED_SHARE_OF_PEAK,
    PlannedRun,
    Throughput,
    flops_throughput,
    load_throughput,
    price_for_device,
    project_runtime,
    warmup_throughput,
)
from helpers.benchmark.run import TARGETS, check_targets, chosen_student_checkpoint, run_benchmark, write
from helpers.benchmark.tables import deployment_table, gpu_table, memory_table, speed_table, summary_table

__all__ = [
    "ASSUMED_SHARE_OF_PEAK", "BenchmarkSizes", "ONNX_DECISION", "PlannedRun", "TARGETS", "Throughput",
    "check_targets", "chosen_student_checkpoint", "deployment_rows", "deployment_table", "flops_throughput",
    "gpu_table", "hardware_slug", "load_throughput", "memory_table", "paired_difference_points", "price_for_device",
    "project_runtime", "quantize_int8", "run_benchmark", "size_on_disk_mb", "sizes_for", "speed_of", "speed_table",
    "summary_table", "warmup_throughput", "write",
]
