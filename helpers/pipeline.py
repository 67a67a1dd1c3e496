"""Load-or-compute steps the notebooks call: data, teacher, cached teacher logits, soft-target sources, students.

Artefacts are cached in ``config.cache_dir`` keyed by what made them (settings, rows, teacher), checked on read."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, load_from_disk

from helpers import cache, data, evaluate, hardware, models, results
from helpers.config import LABELS, Config
from helpers.distill import BASELINE, DistillSpec
from helpers.train import collator_for, train_classifier

# Budgets: "final" (also on test), "selection" (the grid's cheaper screen), "fold" (cross-fitting: as final, no test).
TRAINING_ROWS = {"final": "student_train", "selection": "selection_train"}  # a budget's rows, unless others are given
SCORED = ("validation", "unseen", "unseen_more", "test")  # every split a student may be scored on


@dataclass
class Workspace:
    """The data every notebook starts from: raw splits, the tokenizer and the tokenized splits."""
    config: Config
    splits: DatasetDict  # raw text: train (all), validation, test
    named: dict[str, Dataset]  # raw text: student_train, selection_train, unseen, unseen_more (and more)
    tokenizer: object
    tokenized: dict[str, Dataset]  # every split above, tokenized
    fingerprints: dict[str, str]  # content hash of every raw split

    def raw(self, split: str) -> Dataset:
        return self.named[split] if split in self.named else self.splits[split]

    @property
    def student_train(self) -> Dataset:
        return self.named["student_train"]

    @property
    def test_labels(self) -> np.ndarray:
        return np.asarray(self.splits["test"]["label"])

    @property
    def data_fingerprint(self) -> str:
        """One hash of the rows the report trains, selects and evaluates on (recorded in every result)."""
        return cache.key_of(*(self.fingerprints[name] for name in ("student_train", "validation", "test")))


def _load_or_tokenize(config: Config, dataset: Dataset, tokenizer, name: str, fingerprint: str) -> Dataset:
    if len(dataset) == 0:  # datasets cannot load an empty split back from disk: nothing to cache anyway
        return data.tokenize(dataset, tokenizer, config.max_length)
    key = cache.key_of(name, fingerprint, tokenizer.name_or_path, len(tokenizer), config.max_length)
    folder = Path(config.cache_dir) / "tokenized" / f"{name}-{key}"
    if folder.exists():
        try:
            tokenized = load_from_disk(str(folder))
            if len(tokenized) == len(dataset):
                return tokenized
            cache.discard(folder, f"{len(tokenized)} rows cached for {len(dataset)}")
        except Exception as error:  # noqa: BLE001 - any unreadable cache is recomputed
            cache.discard(folder, f"unreadable tokenized split ({type(error).__name__}: {error})")
    tokenized = data.tokenize(dataset, tokenizer, config.max_length)
    with cache.atomic_folder(folder) as temporary:
        tokenized.save_to_disk(str(temporary))
    return load_from_disk(str(folder))


def prepare(config: Config) -> Workspace:
    """Load, validate, split and tokenize (cached on disk); the config takes the teacher length notebook 02 chose."""
    torch.manual_seed(config.data_seed)
    splits = data.load_splits(config)
    unseen, unseen_more = data.unseen_splits(splits, config)
    named = {"student_train": data.student_train_split(splits, config),
             "selection_train": data.selection_train_split(splits, config),
             "unseen": unseen, "unseen_more": unseen_more}
    tokenizer = models.load_tokenizer(config)
    everything = {**named, **{name: splits[name] for name in ("validation", "test")}}
    fingerprints = {name: data.fingerprint(dataset) for name, dataset in everything.items()}
    tokenized = {name: _load_or_tokenize(config, dataset, tokenizer, name, fingerprints[name])
                 for name, dataset in everything.items()}
    workspace = Workspace(config, splits, named, tokenizer, tokenized, fingerprints)
    if config.teacher_lengths_tried and config.teacher_max_length is None and results.has_result(config, "teacher"):
        workspace = with_teacher_length(workspace, results.load_result(config, "teacher").get("rule_takes"))
    return workspace


def with_teacher_length(workspace: Workspace, length: int | None) -> Workspace:
    """The workspace with the teacher that reads ``length`` tokens (the rule's choice) as the report's teacher."""
    if length is None:
        return workspace
    if workspace.config.teacher_lengths_tried and length not in workspace.config.teacher_lengths_tried:
        raise ValueError(f"teacher.json records max_length={length}, not one of the lengths tried "
                         f"{workspace.config.teacher_lengths_tried}: re-run notebook 02.")
    return dataclasses.replace(workspace, config=dataclasses.replace(workspace.config, teacher_max_length=length))


def selection_split(workspace: Workspace) -> str:
    """Where choices are made: the unseen rows, else validation (full; its teacher saw it: notebook 04 has the bias)."""
    return "unseen" if len(workspace.raw("unseen")) else "validation"


def tokenized(workspace: Workspace, split: str, max_length: int | None = None) -> Dataset:
    """A tokenized split (at the students' max_length, or another one: the teacher's), tokenized and cached lazily."""
    config = workspace.config
    max_length = max_length or config.max_length
    name = split if max_length == config.max_length else f"{split}-{max_length}"
    if name not in workspace.tokenized:
        workspace.tokenized[name] = _load_or_tokenize(dataclasses.replace(config, max_length=max_length),
                                                      workspace.raw(split), workspace.tokenizer, split,
                                                      workspace.fingerprints[split])
    return workspace.tokenized[name]


def teacher_tokenized(workspace: Workspace, split: str, config: Config | None = None) -> Dataset:
    """A split as the teacher reads it: cut at ``teacher_max_length``."""
    return tokenized(workspace, split, (config or workspace.config).teacher_length)


def load_or_train_teacher(workspace: Workspace, config: Config | None = None, quiet: bool | None = None) -> str:
    """The teacher: the hub id (full), or a stand-in fine-tuned once (cached; ``config``'s ``teacher_*`` recipe)."""
    config = config or workspace.config
    if config.teacher_hub_id:
        return config.teacher_hub_id
    folder = models.fine_tuned_teacher_path(config)
    if cache.complete_model_folder(folder):
        return str(folder)
    if folder.exists():
        cache.discard(folder, "incomplete teacher folder (interrupted while saving)")
    rows = data.teacher_train_split(workspace.splits, config)
    _add_split(workspace, "teacher_train", rows)
    # Its curve is measured on rows it never sees; validation is among its training rows.
    unseen = teacher_tokenized(workspace, "unseen", config) if len(workspace.raw("unseen")) else None
    base = models.load_classifier(models.base_teacher_path(config), num_labels=len(LABELS))
    outcome = train_classifier(config, base, teacher_tokenized(workspace, "teacher_train", config), unseen,
                               workspace.tokenizer, folder.with_name(folder.name + "-run"), seed=config.data_seed,
                               epochs=config.teacher_epochs, quiet=quiet, **teacher_arguments(config))
    with cache.atomic_folder(folder) as temporary:
        outcome.model.save_pretrained(temporary)
        workspace.tokenizer.save_pretrained(temporary)
    results.save_result(config, f"teachers/teacher-{folder.name.removeprefix('teacher-')[:8]}", {
        "train_rows": len(rows), "rows": "the students' training rows and the validation rows",
        "recipe": teacher_recipe(config), "curve_rows": "unseen" if unseen is not None else None,
        "train_seconds": outcome.train_seconds, "history": outcome.history},
        data_fingerprint=workspace.data_fingerprint)
    return str(folder)


def teacher_recipe(config: Config) -> dict:
    """The teacher's fine-tuning recipe, as its settings name it."""
    return {"epochs": config.teacher_epochs, "batch_size": config.teacher_batch_size,
            "learning_rate": config.teacher_learning_rate, "warmup_ratio": config.teacher_warmup_ratio,
            "max_length": config.teacher_length}


def teacher_arguments(config: Config) -> dict:
    """The TrainingArguments that differ for the teacher (its card's recipe) from the students'."""
    return {"per_device_train_batch_size": config.teacher_batch_size, "learning_rate": config.teacher_learning_rate,
            "warmup_steps": config.teacher_warmup_ratio, "logging_steps": max(config.logging_steps, 50)}


def teacher_identity(config: Config) -> str:
    """What names the teacher in cache keys: its hub id, or its keyed local folder."""
    return config.teacher_hub_id or models.fine_tuned_teacher_path(config).name


def load_or_compute_teacher_logits(workspace: Workspace, split: str, teacher=None, config: Config | None = None,
                                   check_labels: bool = True) -> tuple[np.ndarray, dict]:
    """The teacher's logits (N, 4) on a split, computed once (batched, no gradients), checked and cached. The teacher's
    config names its classes only LABEL_0..3, so the logits must show the data's label order before they are cached;
    only a benchmark's random-weight teacher skips that check (``check_labels=False``)."""
    config = config or workspace.config
    dataset = teacher_tokenized(workspace, split, config)
    key = cache.key_of(teacher_identity(config), workspace.fingerprints[split], workspace.tokenizer.name_or_path,
                       config.teacher_length)
    path = Path(config.cache_dir) / "teacher_logits" / f"{split}-{key}.npy"
    start = time.perf_counter()
    cached = cache.load_array(path)
    if cached is not None and len(cached[0]) == len(dataset):
        return cached[0], {"cached": True, "seconds": time.perf_counter() - start,
                           "first_pass_seconds": cached[1]["seconds"], "path": str(path)}
    teacher = teacher if teacher is not None else models.load_teacher(config)
    start = time.perf_counter()
    logits = evaluate.predict_logits(teacher, dataset, collator_for(workspace.tokenizer), config.eval_batch_size,
                                     config.precision)
    seconds = time.perf_counter() - start
    if check_labels:
        evaluate.check_label_order(np.asarray(workspace.raw(split)["label"]), logits.argmax(-1),
                                  config.model_description("teacher"))
    cache.save_array(path, logits, seconds=seconds, rows=len(logits))
    return logits, {"cached": False, "seconds": seconds, "first_pass_seconds": seconds, "path": str(path)}


def with_target_logits(dataset: Dataset, logits: np.ndarray) -> Dataset:
    if len(dataset) != len(logits):
        raise ValueError(f"{len(logits)} teacher logits for {len(dataset)} rows: the logits belong to other rows.")
    return dataset.add_column("target_logits", logits.tolist())


def soft_targets(workspace: Workspace, spec: DistillSpec, seed: int, budget: str, split: str | None = None
                 ) -> np.ndarray:
    """Logits (N, 4) from ``spec.soft_targets``'s source for the soft-target and teacher-label terms on ``split``."""
    split = split or TRAINING_ROWS[budget]
    if spec.soft_targets == "teacher":
        return load_or_compute_teacher_logits(workspace, split)[0]
    if spec.soft_targets == "gold-smoothed":
        return smoothed_gold_logits(load_or_compute_teacher_logits(workspace, split)[0],
                                    np.asarray(workspace.raw(split)["label"]))
    if spec.soft_targets == "peer":
        return student_logits(workspace, peer_student(workspace, seed, budget), split)
    if split != TRAINING_ROWS[budget]:
        raise ValueError(f"{spec.name}: cross-fitted soft targets exist for the training rows only, not {split!r}.")
    crossfit = cross_fitted_logits(workspace, budget)
    if spec.soft_targets == "crossfit":
        return crossfit
    teacher = evaluate.softmax(load_or_compute_teacher_logits(workspace, split)[0])
    return np.log((teacher + evaluate.softmax(crossfit)) / 2)


def smoothed_gold_logits(teacher_logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The twin's soft targets: as sure as the teacher on each row, but never of another class. (N, C) logits, (N,)
    labels -> (N, C) log-probabilities with p(gold) = the teacher's top probability, the rest spread evenly."""
    top = np.clip(evaluate.softmax(teacher_logits).max(axis=-1), 1.0 / len(LABELS), 1 - 1e-6)  # (N,)
    probabilities = np.repeat(((1 - top) / (len(LABELS) - 1))[:, None], len(LABELS), axis=1)
    probabilities[np.arange(len(labels)), labels] = top
    return np.log(probabilities).astype(np.float32)


def peer_seed(config: Config, seed: int) -> int:
    """The seed of a student's peer: the next final seed (cyclically), so no student learns from its own copy."""
    seeds = list(config.seeds)
    if seed not in seeds or len(seeds) < 2:
        raise ValueError(f"Soft targets from a peer need seed {seed} among at least two final seeds {seeds}.")
    return seeds[(seeds.index(seed) + 1) % len(seeds)]


def peer_student(workspace: Workspace, seed: int, budget: str) -> dict:
    """The baseline student of the peer seed, trained on the same rows: the no-teacher stand-in for the teacher."""
    return load_or_train_student(workspace, BASELINE, peer_seed(workspace.config, seed), budget)


def cross_fitted_logits(workspace: Workspace, budget: str) -> np.ndarray:
    """Baseline students' logits on the training rows, each row scored by a student that never trained on it
    (a student scoring rows it memorised would give nearly one-hot targets)."""
    config = workspace.config
    rows = workspace.raw(TRAINING_ROWS[budget])
    half = np.zeros(len(rows), dtype=bool)
    half[data.stratified_subset(rows.add_column("row", list(range(len(rows)))), len(rows) // 2,
                                config.data_seed)["row"]] = True
    logits = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    for fold, train_mask in (("a", half), ("b", ~half)):
        fold_rows = f"{TRAINING_ROWS[budget]}-fold-{fold}"
        _add_split(workspace, fold_rows, rows.select(np.flatnonzero(train_mask).tolist()))
        run = load_or_train_student(workspace, dataclasses.replace(BASELINE, name=f"crossfit-{fold}"),
                                    config.data_seed, "fold", rows=fold_rows)
        scored = np.flatnonzero(~train_mask)
        held_out = f"{TRAINING_ROWS[budget]}-held-out-{fold}"
        _add_split(workspace, held_out, rows.select(scored.tolist()))
        logits[scored] = student_logits(workspace, run, held_out)
    return logits


def _add_split(workspace: Workspace, name: str, rows: Dataset) -> None:
    workspace.named[name] = rows
    workspace.fingerprints[name] = data.fingerprint(rows)


def student_logits(workspace: Workspace, run: dict, split: str) -> np.ndarray:
    """A trained student's logits on a split, cached by its run key and the split's content."""
    config = workspace.config
    key = cache.key_of(run["key"], workspace.fingerprints[split])
    path = Path(config.cache_dir) / "student_logits" / f"{split}-{key}.npy"
    cached = cache.load_array(path)
    if cached is not None and len(cached[0]) == len(workspace.raw(split)):
        return cached[0]
    model = models.load_classifier(student_checkpoint(config, run))
    logits = evaluate.predict_logits(model, tokenized(workspace, split), collator_for(workspace.tokenizer),
                                     config.eval_batch_size, config.precision)
    cache.save_array(path, logits, seconds=0.0, rows=len(logits))
    return logits


def spec_of(run: dict) -> DistillSpec:
    """The DistillSpec a student's results document was trained with."""
    return DistillSpec(**run["spec"])


def student_checkpoint(config: Config, run: dict) -> str:
    """The final model folder of a student's results document, on this machine."""
    return str(Path(config.cache_dir) / "runs" / run["run"] / "final")


def training_settings(config: Config, spec: DistillSpec, budget: str) -> dict:
    """The settings that change what a student learns (besides its rows, teacher and spec)."""
    epochs = config.selection_epochs if budget == "selection" and config.selection_epochs else config.epochs
    return {"epochs": epochs * spec.epochs_scale, "batch_size": config.batch_size,
            "learning_rate": config.learning_rate, "weight_decay": config.weight_decay,
            "warmup_ratio": config.warmup_ratio, "max_length": config.max_length,
            "student": config.model_description("student"), "student_layers": config.student_layers,
            "tokenizer": config.model_description("tokenizer"),
            "precision": hardware.resolve_precision(config.precision)}


def student_key(workspace: Workspace, spec: DistillSpec, seed: int, budget: str, rows: str | None = None) -> str:
    """Everything that produced a student: spec, settings, seed, the content of its rows, the source of its soft
    targets, and the code that trained it (``results.code_hash``: comments and docstrings do not count)."""
    config = workspace.config
    rows = rows or TRAINING_ROWS[budget]
    reads_teacher = spec.uses_bert_teacher or (spec.soft_targets == "gold-smoothed" and spec.uses_cached_logits)
    teacher = teacher_identity(config) if reads_teacher else None
    peer = peer_seed(config, seed) if spec.soft_targets == "peer" and (
        spec.uses_cached_logits or spec.uses_online_teacher) else None
    return cache.key_of(spec.settings(), training_settings(config, spec, budget), seed, workspace.fingerprints[rows],
                        *(workspace.fingerprints[split] for split in SCORED), teacher, peer, results.code_hash())


def student_result_name(spec: DistillSpec, seed: int, key: str) -> str:
    return f"students/{spec.name}-seed{seed}-{key[:8]}"


def load_or_train_student(workspace: Workspace, spec: DistillSpec = BASELINE, seed: int | None = None,
                          budget: str = "final", curve: bool = False, quiet: bool | None = None,
                          rows: str | None = None) -> dict:
    """``train_student``, cached; returns the results document, reused only when its key (``student_key``) matches, its
    final model is complete and it holds a curve if ``curve`` asks for one. ``rows``: default ``TRAINING_ROWS[budget]``.
    A copy beside the final model restores a lost results folder (a Colab reset wipes /content, not Drive's cache)."""
    config = workspace.config
    seed = config.seed if seed is None else seed
    key = student_key(workspace, spec, seed, budget, rows)
    name = student_result_name(spec, seed, key)
    run_dir = Path(config.cache_dir) / "runs" / f"{spec.name}-seed{seed}-{key}"
    copy = run_dir / "result.json"
    if not results.has_result(config, name) and copy.exists() and cache.complete_model_folder(run_dir / "final"):
        results.atomic_write_text(results.result_path(config, name), copy.read_text())
    if results.has_result(config, name) and cache.complete_model_folder(run_dir / "final"):
        stored = results.load_result(config, name)
        # A curve run also answers a request without one: scoring each epoch leaves the training untouched.
        if stored.get("key") == key and (stored.get("curve") or not curve):
            return stored
    payload = train_student(workspace, spec, seed, budget, run_dir, curve=curve, quiet=quiet, rows=rows)
    saved = results.save_result(config, name, {"key": key, "run": run_dir.name, **payload}, seed=seed,
                                data_fingerprint=workspace.data_fingerprint)
    results.atomic_write_text(copy, saved.read_text())
    return results.load_result(config, name)


def train_student(workspace: Workspace, spec: DistillSpec, seed: int, budget: str, run_dir: Path,
                  curve: bool = False, quiet: bool | None = None, rows: str | None = None) -> dict:
    """Train one student with ``spec``'s loss on the budget's rows and score it; returns its results (no key). Scored:
    validation and unseen rows always (choices read unseen; validation prices a teacher-seen choice), test at the final
    budget only, the plateau check's extra unseen rows for gold-only final students; ``curve``: validation per epoch."""
    config = workspace.config
    rows = rows or TRAINING_ROWS[budget]
    train_rows = tokenized(workspace, rows)
    if spec.uses_cached_logits:
        train_rows = with_target_logits(train_rows, soft_targets(workspace, spec, seed, budget, split=rows))
    attention = "eager" if spec.attention_weight > 0 else None  # sdpa returns no attention weights
    teacher, window = None, None
    if spec.uses_online_teacher and spec.soft_targets == "peer":
        teacher = models.load_classifier(student_checkpoint(config, peer_student(workspace, seed, budget)),
                                         attn_implementation=attention)
    elif spec.uses_online_teacher:  # internal terms, or function matching's logits on each view
        teacher, window = models.load_teacher(config, attn_implementation=attention), config.teacher_length
    student = models.load_student(config, seed, attn_implementation=attention)
    if teacher is not None:
        models.check_vocabularies(workspace.tokenizer, teacher, student)
    settings = training_settings(config, spec, budget)
    outcome = train_classifier(config, student, train_rows, workspace.tokenized["validation"] if curve else None,
                               workspace.tokenizer, run_dir, seed=seed, spec=spec, teacher=teacher,
                               teacher_max_length=window, epochs=settings["epochs"], quiet=quiet)
    scored = ["validation", "unseen"]
    if budget == "final":
        scored += ["unseen_more", "test"] if spec.gold_only else ["test"]
    scores = {split: score(workspace, outcome.model, split) for split in scored if len(workspace.raw(split))}
    return {"spec": spec.settings(), "seed": seed, "budget": budget, "rows": rows, "training": settings,
            "train_rows": len(train_rows), "curve": curve, "bert_teacher": spec.uses_bert_teacher,
            "optimizer_steps": outcome.history[-1].get("step") if outcome.history else None,
            "train_seconds": outcome.train_seconds, "resumed": outcome.resumed,
            "parameters": models.parameter_count(outcome.model), "history": outcome.history,
            **{name: metrics for name, (metrics, _) in scores.items()},
            **{f"{name}_predictions": predictions for name, (_, predictions) in scores.items()}}


def score(workspace: Workspace, model, split: str) -> tuple[dict, np.ndarray]:
    """A model's metrics on a labelled split, and its predicted classes there."""
    config = workspace.config
    logits = evaluate.predict_logits(model, tokenized(workspace, split), collator_for(workspace.tokenizer),
                                     config.eval_batch_size, config.precision)
    return evaluate.classification_metrics(np.asarray(workspace.raw(split)["label"]), logits), logits.argmax(-1)


def example_batch(workspace: Workspace, rows: int = 8) -> dict[str, torch.Tensor]:
    """A real training batch: the first ``rows`` of the students' rows, collated with the teacher's cached logits."""
    dataset = with_target_logits(tokenized(workspace, "student_train"),
                                 load_or_compute_teacher_logits(workspace, "student_train")[0]).select(range(rows))
    return collator_for(workspace.tokenizer)([dataset[i] for i in range(rows)])
