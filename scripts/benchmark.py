"""Speed, memory and deployment of the report's models, as ratios: ours vs naive, student vs teacher, KD vs baseline,
int8 vs fp32.

Writes results/benchmark/<hardware>.json (smoke: results/smoke/benchmark/) and prints its tables. --onnx (needs
`pip install onnxruntime onnx`, not required by the package) adds ONNX Runtime fp32/int8 of the same student.
"""

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

# Run as a file, this folder comes first on the path and this script would hide the benchmark package.
sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmark import common, inference, run  # noqa: E402
from helpers import models, pipeline  # noqa: E402
from helpers.config import get_config  # noqa: E402
from helpers.notebook import quiet_libraries  # noqa: E402
from helpers.train import collator_for  # noqa: E402


def onnx_comparison(document: dict, config, sizes) -> dict:
    """torch fp32 / torch int8 / ONNX Runtime fp32 / ONNX Runtime int8 of the deployment rows' student (else the
    profile's student with random weights): batch-1 latency and batch-32 rows/s on CPU, interleaved; file sizes."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    deployed = document.get("deployment") or {}
    checkpoint = next((row["checkpoint"] for row in deployed.get("rows", []) if row["variant"] == "student fp32"), None)
    student = (models.load_classifier(checkpoint) if checkpoint
               else common.build(common.profile_architectures(config)[1])).eval()
    workspace = pipeline.prepare(config)
    test = workspace.tokenized["test"]
    batch = sizes.inference_batch_size
    example = common.inference_batches(test.select(range(batch)), collator_for(workspace.tokenizer), batch)[0][0]
    folder = Path(tempfile.mkdtemp())
    fp32_path, int8_path = folder / "student.onnx", folder / "student.int8.onnx"
    torch.onnx.export(student, (example["input_ids"], example["attention_mask"]), str(fp32_path), dynamo=False,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"], opset_version=17,
                      dynamic_axes={name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask")})
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL

    def ort_pass(path):
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda batch: session.run(None, {k: v.numpy() for k, v in batch.items()})[0]

    cpu = torch.device("cpu")
    passes = {"torch fp32": common.forward_pass(student, cpu),
              "torch int8": common.forward_pass(common.quantize_int8(student), cpu),
              "onnxruntime fp32": ort_pass(fp32_path), "onnxruntime int8": ort_pass(int8_path)}
    reference = np.asarray(passes["torch fp32"](example)).argmax(-1)
    agreement = {name: float(np.mean(np.asarray(forward(example)).argmax(-1) == reference))
                 for name, forward in passes.items()}
    # The deployment rows' timing on the same rows: batch 1 and 32, interleaved.
    speed = inference.speed_of(passes, test, workspace.tokenizer, sizes, device=cpu, seed=config.seed)
    return {"kept": False, "decision": inference.ONNX_DECISION, "student": checkpoint or "random weights",
            "versions": {"onnxruntime": onnxruntime.__version__}, "threads": torch.get_num_threads(),
            "batch1_median_ms": speed["batch1"]["median_ms"],
            "batch32_rows_per_second": speed[f"batch{batch}"]["rows_per_second"],
            "argmax_agreement_with_torch_fp32": agreement,
            "size_mb": {f"onnxruntime {name}": path.stat().st_size / 2**20
                        for name, path in (("fp32", fp32_path), ("int8", int8_path))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="cpu, smoke or full (default: $KD_PROFILE, else full on a GPU, else cpu)")
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats (about a minute on CPU)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: every core; fewer when shared)")
    parser.add_argument("--student", help="checkpoint of the int8 deployment rows (default: notebook 04's chosen one)")
    parser.add_argument("--teacher", help="teacher checkpoint or hub id (default: the profile's)")
    parser.add_argument("--accuracy-rows",
                        help="test rows the deployment rows predict: N or 'all' (default: per profile)")
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime (needs onnxruntime and onnx)")
    parser.add_argument("--output-dir", help="default: results/benchmark")
    args = parser.parse_args()

    quiet_libraries()
    config = get_config(args.profile)
    busy = os.getloadavg()[0]
    if args.threads is None and busy >= os.cpu_count():
        # Measured on 2 shared cores: with other jobs running, 2 threads ran a step 3x slower than 1 and twice as
        # noisily (OpenMP threads wait for a descheduled sibling at every operator).
        print(f"warning: 1-min load average {busy:.1f} on {os.cpu_count()} cores before starting; where other jobs "
              "share the machine, --threads 1 measures faster and steadier.")
    sizes = common.sizes_for(config, quick=args.quick)
    if args.accuracy_rows is not None:
        rows = None if args.accuracy_rows == "all" else int(args.accuracy_rows)
        sizes = dataclasses.replace(sizes, accuracy_rows=rows)
    document = run.run_benchmark(config, sizes, args.output_dir, student_checkpoint=args.student,
                                 teacher_checkpoint=args.teacher, threads=args.threads)
    if args.onnx:
        print("ONNX Runtime beside torch (same student, same rows, interleaved)")
        document["onnx"] = onnx_comparison(document, config, sizes)
        document = run.write(document, Path(document["path"]))
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 200):
        print("\n" + run.summary_table(document).to_string(index=False))
        deployed = inference.deployment_table(document)
        print(f"\ndeployment: {deployed.to_string()}" if deployed is not None
              else f"\ndeployment: {document['deployment']['skipped']}")
        if "batch1_median_ms" in document["onnx"]:
            onnx = document["onnx"]
            print("\n" + pd.DataFrame({"batch 1 (ms)": onnx["batch1_median_ms"],
                                       "batch 32 (rows/s)": onnx["batch32_rows_per_second"]}).to_string())
        print(f"\npeak memory per phase: {document['memory_method']}")
        print(run.memory_table(document).to_string(index=False))
        gpu = run.gpu_table(document)
        if gpu is not None:
            print("\n" + gpu.to_string(index=False))
    print(f"\n{document['provenance']['profile']} profile, {document['threads']} threads, "
          f"1-min load average {document['load_average_1min']['before']:.1f} -> "
          f"{document['load_average_1min']['after']:.1f}, {document['seconds']:.0f} s; wrote {document['path']}")


if __name__ == "__main__":
    main()
