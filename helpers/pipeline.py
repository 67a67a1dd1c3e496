"""Load-or-compute steps the notebooks call: data, teacher, cached teacher logits, students.

Every expensive artefact is cached under ``config.cache_dir`` with a key of what produced it, so re-running a
notebook is cheap and the analysis never retrains.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset, DatasetDict, Value, concatenate_datasets, load_from_disk

from helpers import data, evaluate, models, results
from helpers.config import LABELS, PROJECT_ROOT, Config
from helpers.train import BASELINE, DistillSpec, collator_for, train_classifier


@dataclass
class Workspace:
    """The data every notebook starts from: raw splits, the tokenizer and the tokenized splits."""

    config: Config
    splits: DatasetDict  # raw text: train (all), validation, test
    student_train: Dataset  # raw text: the rows the students train on
    transfer: Dataset  # raw text: rows nobody trained on, used without labels (may be empty)
    tokenizer: object
    tokenized: dict[str, Dataset]  # student_train, transfer, validation, test

    def raw(self, split: str) -> Dataset:
        named = {"student_train": self.student_train, "transfer": self.transfer}
        return named[split] if split in named else self.splits[split]

    @property
    def test_labels(self) -> np.ndarray:
        return np.asarray(self.splits["test"]["label"])


def _load_or_tokenize(config: Config, dataset: Dataset, tokenizer, name: str) -> Dataset:
    key = f"{name}-{data.fingerprint(dataset)}-{config.max_length}"
    folder = Path(config.cache_dir) / "tokenized" / key
    if folder.exists():
        return load_from_disk(str(folder))
    tokenized = data.tokenize(dataset, tokenizer, config.max_length)
    tokenized.save_to_disk(str(folder))
    return tokenized


def prepare(config: Config) -> Workspace:
    """Load, validate, split and tokenize (tokenized splits are cached on disk)."""
    torch.manual_seed(config.seed)
    splits = data.load_splits(config)
    student_train = data.student_train_split(splits, config)
    transfer = data.transfer_split(splits, config)
    tokenizer = models.load_tokenizer(config)
    tokenized = {name: _load_or_tokenize(config, dataset, tokenizer, name)
                 for name, dataset in (("student_train", student_train), ("transfer", transfer),
                                       ("validation", splits["validation"]), ("test", splits["test"]))}
    return Workspace(config, splits, student_train, transfer, tokenizer, tokenized)


# -------------------------------------------------------------------------------------------------- teacher
def load_or_train_teacher(workspace: Workspace, quiet: bool = True) -> str:
    """The teacher's path: the hub id (full), or a MiniLM/tiny BERT fine-tuned here once and cached."""
    config = workspace.config
    if config.teacher_source == "hub":
        return config.teacher_name
    folder = models.fine_tuned_teacher_path(config)
    if (folder / "config.json").exists():
        return str(folder)
    rows = data.teacher_train_split(workspace.splits, config)
    train_rows = _load_or_tokenize(config, rows, workspace.tokenizer, "teacher_train")
    base = models.load_classifier(models.base_teacher_path(config), num_labels=len(LABELS))
    outcome = train_classifier(config, base, train_rows, workspace.tokenized["validation"], workspace.tokenizer,
                               Path(config.cache_dir) / "runs" / "teacher", seed=config.seed,
                               epochs=config.teacher_epochs, learning_rate=config.teacher_learning_rate, quiet=quiet)
    outcome.model.save_pretrained(folder)
    workspace.tokenizer.save_pretrained(folder)
    results.save_result(config, "teacher_training", {"train_rows": len(rows), "epochs": config.teacher_epochs,
                                                     "train_seconds": outcome.train_seconds,
                                                     "history": outcome.history})
    return str(folder)


def _teacher_identity(config: Config) -> str:
    path = models.teacher_path(config)
    weights = sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin")) if Path(path).exists() else []
    return path + "".join(f"|{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights)


def load_or_compute_teacher_logits(workspace: Workspace, split: str, teacher=None) -> tuple[np.ndarray, dict]:
    """The teacher's logits (N, 4) on a tokenized split, computed once (batched, no gradients) and cached.

    The cache key holds the teacher's identity, the split's content and max_length.
    """
    config = workspace.config
    dataset = workspace.tokenized[split]
    raw = workspace.raw(split)
    key = hashlib.sha256(f"{_teacher_identity(config)}|{data.fingerprint(raw)}|{config.max_length}".encode())
    path = Path(config.cache_dir) / "teacher_logits" / f"{split}-{key.hexdigest()[:16]}.npy"
    timing = path.with_suffix(".json")  # how long the first pass took, reported again when the cache serves it
    if path.exists():
        start = time.perf_counter()
        logits = np.load(path)
        first = json.loads(timing.read_text())["seconds"] if timing.exists() else float("nan")
        return logits, {"cached": True, "seconds": time.perf_counter() - start, "first_pass_seconds": first,
                        "path": str(path)}
    teacher = teacher if teacher is not None else models.load_teacher(config)
    start = time.perf_counter()
    logits = evaluate.predict_logits(teacher, dataset, collator_for(workspace.tokenizer), config.eval_batch_size)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, logits)
    timing.write_text(json.dumps({"seconds": seconds, "rows": len(logits)}))
    return logits, {"cached": False, "seconds": seconds, "first_pass_seconds": seconds, "path": str(path)}


def with_teacher_logits(dataset: Dataset, logits: np.ndarray) -> Dataset:
    if len(dataset) != len(logits):
        raise ValueError(f"{len(logits)} teacher logits for {len(dataset)} rows: the cache is stale; delete it.")
    return dataset.add_column("teacher_logits", logits.tolist())


def with_transfer_rows(workspace: Workspace, train_rows: Dataset) -> Dataset:
    """The labelled rows plus the transfer split with its labels hidden (-100) and its cached teacher logits."""
    if len(workspace.tokenized["transfer"]) == 0:
        raise ValueError(f"The {workspace.config.profile} profile has no unlabelled transfer rows (transfer_rows=0): "
                         "supply unlabelled in-domain text, or drop unlabelled_transfer from the spec.")
    logits, _ = load_or_compute_teacher_logits(workspace, "transfer")
    transfer = with_teacher_logits(workspace.tokenized["transfer"], logits).cast_column("labels", Value("int64"))
    transfer = transfer.map(lambda batch: {"labels": [-100] * len(batch["labels"])}, batched=True)
    return concatenate_datasets([train_rows.cast_column("labels", Value("int64")), transfer])


# ------------------------------------------------------------------------------------------------- students
def spec_of(run: dict) -> DistillSpec:
    """The DistillSpec a student's results document was trained with."""
    return DistillSpec(**run["spec"])


def student_checkpoint(config: Config, run: dict) -> str:
    """The final model folder of a student's results document, on this machine."""
    return str(student_run_dir(config, spec_of(run), run["seed"]) / "final")


def _spec_key(spec: DistillSpec, config: Config) -> str:
    settings = {"spec": spec.settings(), "training": training_settings(config, spec)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


# The settings that change what a student learns: a stored result trained with others is retrained, not reused.
TRAINING_FIELDS = ("data_source", "max_train_rows", "validation_rows", "tokenizer_name", "teacher_name",
                   "student_name", "student_layers", "teacher_train_rows", "teacher_epochs", "max_length", "epochs",
                   "batch_size", "learning_rate", "weight_decay", "warmup_ratio")


def training_fields(spec: DistillSpec) -> tuple[str, ...]:
    # The transfer split's size matters only to the students that read it.
    return TRAINING_FIELDS + (("transfer_rows",) if spec.unlabelled_transfer else ())


def training_settings(config: Config, spec: DistillSpec) -> dict:
    return {name: getattr(config, name) for name in training_fields(spec)}


def student_result_name(spec: DistillSpec, seed: int) -> str:
    return f"students/{spec.name}-seed{seed}"


def student_run_dir(config: Config, spec: DistillSpec, seed: int) -> Path:
    """Where a student's checkpoints and final model live: keyed by the spec, the training settings and the seed."""
    return Path(config.cache_dir) / "runs" / f"{spec.name}-{_spec_key(spec, config)}-seed{seed}"


def load_or_train_student(workspace: Workspace, spec: DistillSpec = BASELINE, seed: int | None = None,
                          quiet: bool = True) -> dict:
    """Train (or load the results of) one student; returns its results document.

    Results are keyed by the spec's name and seed; a stored result whose spec or training settings differ, or whose
    final model is missing from the cache (a fresh clone), is retrained.
    """
    config = workspace.config
    seed = config.seed if seed is None else seed
    name = student_result_name(spec, seed)
    if results.has_result(config, name):
        stored = results.load_result(config, name)
        same_training = {k: stored["provenance"]["config"].get(k) for k in training_fields(spec)} == json.loads(
            json.dumps(training_settings(config, spec)))
        has_model = (student_run_dir(config, spec, seed) / "final" / "config.json").exists()
        if stored.get("spec") == json.loads(json.dumps(spec.settings())) and same_training and has_model:
            return stored
    train_rows = workspace.tokenized["student_train"]
    if spec.uses_cached_logits:
        logits, _ = load_or_compute_teacher_logits(workspace, "student_train")
        train_rows = with_teacher_logits(train_rows, logits)
    if spec.unlabelled_transfer:
        train_rows = with_transfer_rows(workspace, train_rows)
    attention = "eager" if spec.attention_weight > 0 else None  # sdpa returns no attention weights
    teacher = models.load_teacher(config, attn_implementation=attention) if spec.uses_online_teacher else None
    student = models.load_student(config, seed, attn_implementation=attention)
    if teacher is not None:
        models.check_vocabularies(workspace.tokenizer, teacher, student)
    run_dir = student_run_dir(config, spec, seed)
    outcome = train_classifier(config, student, train_rows, workspace.tokenized["validation"], workspace.tokenizer,
                               run_dir, seed=seed, spec=spec, teacher=teacher, quiet=quiet)
    collator = collator_for(workspace.tokenizer)
    test_logits = evaluate.predict_logits(outcome.model, workspace.tokenized["test"], collator, config.eval_batch_size)
    validation_logits = evaluate.predict_logits(outcome.model, workspace.tokenized["validation"], collator,
                                                config.eval_batch_size)
    validation = evaluate.classification_metrics(np.asarray(workspace.splits["validation"]["label"]), validation_logits)
    payload = {
        "spec": spec.settings(), "seed": seed, "train_rows": len(train_rows), "epochs": config.epochs,
        "unlabelled_rows": int(sum(label == -100 for label in train_rows["labels"])),
        "train_seconds": outcome.train_seconds, "resumed": outcome.resumed,
        "checkpoint": str((run_dir / "final").relative_to(PROJECT_ROOT))
        if run_dir.is_relative_to(PROJECT_ROOT) else str(run_dir / "final"),
        "parameters": models.parameter_count(outcome.model), "history": outcome.history,
        "validation": {"accuracy": validation["accuracy"], "macro_f1": validation["macro_f1"]},
        "test": evaluate.classification_metrics(workspace.test_labels, test_logits),
        "test_predictions": test_logits.argmax(-1), "test_confidence": evaluate.softmax(test_logits).max(-1).round(4),
    }
    results.save_result(config, name, payload, seed=seed)
    return results.load_result(config, name)


# ---------------------------------------------------------------------------------------------- examples
def example_rows(dataset: Dataset, per_class: int = 2) -> pd.DataFrame:
    """The first ``per_class`` rows of each class: a fixed set of headlines to show before/after training."""
    frame = dataset.to_pandas()
    picked = frame.groupby("label", sort=True).head(per_class).sort_values("label", kind="stable")
    return picked.reset_index(names="row")


@torch.inference_mode()
def predict_texts(model, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    """Class probabilities (N, 4) for raw texts."""
    device = next(model.parameters()).device
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt",
                        return_token_type_ids=False).to(device)
    return torch.softmax(model.eval()(**encoded).logits.float(), dim=-1).cpu().numpy()


def before_after_table(examples: pd.DataFrame, before: np.ndarray, after: np.ndarray) -> pd.DataFrame:
    """Predicted class and its probability before and after fine-tuning, beside the gold label."""
    return pd.DataFrame({
        "headline": examples["text"].str.slice(0, 90),
        "gold": [LABELS[i] for i in examples["label"]],
        "before": [f"{LABELS[p.argmax()]} ({p.max():.2f})" for p in before],
        "after": [f"{LABELS[p.argmax()]} ({p.max():.2f})" for p in after],
    })
