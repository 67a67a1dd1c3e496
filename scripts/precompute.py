"""Run the expensive steps of notebooks 02-04 ahead of the notebooks (they load the cached results).

Usage: KD_PROFILE=offline python scripts/precompute.py [baseline|distillation]
"""

import sys
import time

from helpers import experiments, pipeline
from helpers.config import get_config


def main(stage: str) -> None:
    config = get_config()
    workspace = pipeline.prepare(config)
    start = time.perf_counter()
    print("teacher", pipeline.load_or_train_teacher(workspace), f"{time.perf_counter() - start:.0f}s", flush=True)
    for split in ("student_train", "validation", "test"):
        print("teacher logits", split, pipeline.load_or_compute_teacher_logits(workspace, split)[1], flush=True)
    for seed in config.seeds:
        result = pipeline.load_or_train_student(workspace, seed=seed)
        print("baseline seed", seed, result["test"]["accuracy"], f"{time.perf_counter() - start:.0f}s", flush=True)
    if stage == "distillation":
        runs = experiments.run_ablation(workspace)
        for name, run in runs.items():
            print(name, run["validation"]["accuracy"], run["test"]["accuracy"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "baseline")
