"""Before `make report` trains anything: the runs it will make, and on a GPU their predicted wall time and cost.

The rates come from this GPU's benchmark file (results/benchmark/<gpu>.json) where one exists, else from a short timed
warm-up; the hourly price from the cited prices in results/external.json. On a CPU it lists the plan only.
"""

from __future__ import annotations

import argparse
from collections import Counter

from benchmark import projection
from helpers import experiments, results
from helpers.config import get_config

# AG News' sizes in full (the hub's train split less the validation carve, and the test split); the cpu and smoke
# profiles cap theirs, so their rows are read from the config instead.
FULL_TRAIN_ROWS, FULL_TEST_ROWS = 120_000, 7_600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=None)
    config = get_config(parser.parse_args().profile)
    train_rows = config.max_train_rows or FULL_TRAIN_ROWS - config.validation_rows
    plan = experiments.planned_runs(config, train_rows, config.validation_rows, FULL_TEST_ROWS)
    kinds = Counter(run["kind"] for run in plan)
    listing = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    print(f"make report, profile {config.profile}: {len(plan)} runs ({listing})")
    import torch

    if not torch.cuda.is_available():
        print(f"No GPU. {committed_duration(config)}")
        return
    throughput = projection.load_throughput() or projection.warmup_throughput(config)
    price = projection.price_for_device(results.external_facts()["gpu_hourly_usd"], throughput.device)
    projected = projection.project_runtime(plan, throughput, price[1] if price else None)
    cost = (f", about ${projected['cost']:.2f} at the quoted {price[0]} price of ${price[1]:.2f}/h "
            "(results/external.json)") if price else " (no quoted price for this GPU)"
    print(f"Projected on {throughput.device} ({throughput.source}): {projected['total_hours']:.2f} h{cost}. "
          "A projection from measured rates, not a measurement; per-run overheads are not counted.")


def committed_duration(config) -> str:
    """How long the committed report of this profile took, from its results files (training and teacher passes)."""
    from report import data as report_data

    if not report_data.complete(config):
        return f"No complete committed results of profile {config.profile} to say how long a pass takes here."
    seconds = sum(seconds for _, seconds, _ in report_data.compute_seconds(config))
    teacher = results.load_result(config, "teacher")
    return (f"The committed {config.profile} report spent {seconds / 60:.0f} min training and in teacher passes on "
            f"{report_data.hardware(teacher)} (its results files); evaluation and loading add to that.")


if __name__ == "__main__":
    main()
