"""Speed and memory of the training and inference paths, with ratios: ours vs naive, student vs teacher, KD vs baseline.

Usage: python scripts/benchmark.py [--profile offline|smoke|full] [--quick] [--student-runs N] [--threads N]
Writes results/benchmark/<hardware>.json (smoke: results/smoke/benchmark/) and prints its tables.
"""

import argparse
import os

import pandas as pd

from helpers import benchmark
from helpers.config import get_config
from helpers.notebook import quiet_libraries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["offline", "smoke", "full"], default=None,
                        help="default: $KD_PROFILE, else full on a GPU, else offline")
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats (about a minute on CPU)")
    parser.add_argument("--student-runs", type=int, default=None,
                        help="student runs in the full report, for the GPU projection (default: 2 per seed)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: every core; fewer where other jobs share the machine)")
    parser.add_argument("--output-dir", default=None, help="default: results/benchmark")
    args = parser.parse_args()

    quiet_libraries()
    config = get_config(args.profile)
    busy = os.getloadavg()[0]
    if args.threads is None and busy >= os.cpu_count():
        # Measured on 2 shared cores: with other jobs running, 2 threads ran a step 3x slower than 1 and twice as
        # noisily (OpenMP threads wait for a descheduled sibling at every operator).
        print(f"warning: 1-min load average {busy:.1f} on {os.cpu_count()} cores before starting; where other jobs "
              "share the machine, --threads 1 measures faster and steadier.")
    document = benchmark.run_benchmark(config, benchmark.sizes_for(config, quick=args.quick), args.output_dir,
                                       student_runs=args.student_runs, threads=args.threads)
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 200):
        print()
        print(benchmark.summary_table(document).to_string(index=False))
        print(f"\npeak memory per phase: {document['memory_method']}")
        print(benchmark.memory_table(document).to_string(index=False))
        gpu = benchmark.gpu_table(document)
        if gpu is not None:
            print()
            print(gpu.to_string(index=False))
    print(f"\n{document['provenance']['profile']} profile, {document['threads']} threads, "
          f"1-min load average {document['load_average_1min']['before']:.1f} -> "
          f"{document['load_average_1min']['after']:.1f}, {document['seconds']:.0f} s; wrote {document['path']}")


if __name__ == "__main__":
    main()
