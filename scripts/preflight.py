"""Before `make report` trains anything: the pass's plan and cost from the one planner (helpers.plan), its budget
warnings, and for cpu the committed pass's measured duration beside the planner's figure.

Where the report cannot run (no GPU, no AG News within reach, a bad setting) it prints why and the ways on, and exits
with status 2 before any notebook starts.
"""

from __future__ import annotations

import argparse
import sys

from helpers import plan
from helpers.config import PROJECT_ROOT, get_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default=None, help="default: $KD_PROFILE, else full on a GPU, else cpu")
    try:
        config = get_config(parser.parse_args(argv).profile)
    except (RuntimeError, ValueError) as error:  # no data within reach, or a setting out of range
        print(f"make report cannot start: {error}", file=sys.stderr)
        return 2
    priced = plan.priced(config)
    steps = sum(run["steps"] for run in priced["runs"])
    students = sum(len(run["seeds"]) for run in priced["runs"] if run["model"] == "student")
    print(f"make report, profile {config.profile}, plan {config.plan} (python -m helpers.plan --profile "
          f"{config.profile} prints every run): {students} student runs, {steps:,} optimizer steps, priced for "
          f"'{priced['chosen']}'; {priced['drive_gb']:.1f} GB written to the cache.")
    for device, (name, price) in plan.prices().items():
        low, high = priced["hours"][device]
        print(f"  {device:<5} {low:.1f}-{high:.1f} h, ${low * price:.2f}-{high * price:.2f} at {name}")
    print(f"  central T4 estimate: {priced['central_T4_hours']:.1f} h (a plan from public rates, not a measurement)")
    if config.profile == "cpu":
        results_dir = PROJECT_ROOT / "results" / "cpu"
        if (results_dir / "distillation.json").exists():
            measured = plan.committed_minutes("cpu")
            planned = plan.cpu_minutes(plan.build(config, device="cpu"), results_dir)
            print(f"  on this CPU: about {planned:.0f} min at the committed cpu pass's measured rates; that pass "
                  f"took {measured:.0f} min (its first to last results file).")
    for warning in plan.check(priced):
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
