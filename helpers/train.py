"""One training routine for teacher, baseline and distilled students: a ``Trainer`` subclass whose loss mixes
cross-entropy with the distillation losses of ``helpers.distill``; checkpoints per epoch, resume, loss history."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from sklearn.metrics import accuracy_score, f1_score
from transformers import PreTrainedModel, PrinterCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.utils import logging as hf_logging

from helpers import cache, distill, precision
from helpers.config import Config, show_progress


# ------------------------------------------------------------------------------------------- distillation spec
@dataclass(frozen=True)
class DistillSpec:
    """Which losses a student trains with, and their weights. All zero but ``hard_label_weight``: the baseline.

    loss = hard_label_weight · CE_ε(y, s) + kd_loss_weight · T² KL(p_t^T ‖ p_s^T)
           + teacher_label_weight · CE(argmax t, s) + feature_weight · L_hidden
           + attention_weight · L_attention + relation_weight · L_relation

    CE_ε is cross-entropy with label smoothing ε (``label_smoothing``). p_t comes from ``soft_targets``: the frozen
    teacher, a baseline student of the same seed (self-distillation, no BERT), or a committee of the two.
    """

    name: str = "baseline"
    hard_label_weight: float = 1.0
    label_smoothing: float = 0.0
    kd_loss_weight: float = 0.0
    temperature: float = 2.0
    soft_targets: str = "teacher"  # "teacher", "self" (born-again) or "committee" (teacher + cross-fitted students)
    confidence_weighted: bool = False  # weight each row's KD term by the teacher's probability of the gold label
    teacher_label_weight: float = 0.0
    teacher_label_mode: str = "all"  # "all" or "agree" (only rows where the teacher is right)
    feature_weight: float = 0.0
    attention_weight: float = 0.0
    relation_weight: float = 0.0
    # Also distil on rows without labels (soft targets only): the unlabelled transfer split ("transfer"), or perturbed
    # copies of the labelled rows that the teacher labels softly ("augmented": needs no new text, so full runs it).
    unlabelled: str = ""
    epochs_scale: float = 1.0  # a compute control: the baseline trained for as many steps as a longer variant

    @property
    def uses_cached_logits(self) -> bool:
        return self.kd_loss_weight > 0 or self.teacher_label_weight > 0

    @property
    def uses_online_teacher(self) -> bool:
        """Feature and similarity losses need the teacher's internals, so the teacher runs at every step."""
        return self.feature_weight > 0 or self.attention_weight > 0 or self.relation_weight > 0

    @property
    def uses_bert_teacher(self) -> bool:
        """Whether the frozen BERT teacher informs this student at all (controls say no)."""
        return self.uses_online_teacher or (self.uses_cached_logits and self.soft_targets != "self")

    def settings(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        if self.unlabelled not in ("", "transfer", "augmented"):
            raise ValueError(f"{self.name}: unlabelled must be '', 'transfer' or 'augmented', not {self.unlabelled!r}.")
        if self.soft_targets not in ("teacher", "self", "committee"):
            raise ValueError(f"{self.name}: soft_targets must be teacher, self or committee.")
        if self.unlabelled and (self.kd_loss_weight <= 0 or self.confidence_weighted):
            raise ValueError(f"{self.name}: unlabelled rows can only be learned from plain soft targets "
                             "(kd_loss_weight > 0, confidence_weighted=False): they have no gold label.")
        if not 0 <= self.label_smoothing < 1 or self.epochs_scale <= 0:
            raise ValueError(f"{self.name}: label_smoothing must be in [0, 1) and epochs_scale > 0.")


BASELINE = DistillSpec()


# -------------------------------------------------------------------------------------------------- collation
@dataclass
class Collator:
    """Pads each batch to its longest row (dynamic padding), stacks labels and any cached teacher logits."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            ids = feature["input_ids"]
            input_ids[row, : len(ids)] = torch.as_tensor(ids)
            attention_mask[row, : len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "labels": torch.tensor([f["labels"] for f in features], dtype=torch.long)}
        if "teacher_logits" in features[0]:
            batch["teacher_logits"] = torch.tensor([f["teacher_logits"] for f in features], dtype=torch.float32)
        return batch


def collator_for(tokenizer) -> Collator:
    # Multiples of 8 let tensor cores work on GPU; on CPU they only add padding.
    return Collator(tokenizer.pad_token_id, pad_to_multiple_of=8 if torch.cuda.is_available() else None)


# ---------------------------------------------------------------------------------------------------- trainer
class DistillationTrainer(Trainer):
    """``Trainer`` whose loss is ``DistillSpec``'s mix; logs each component next to the total loss."""

    def __init__(self, *args, spec: DistillSpec = BASELINE, teacher: PreTrainedModel | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.teacher = teacher
        self.projections = None
        self._component_sums: dict[str, torch.Tensor] = {}
        self._component_steps = 0
        if spec.uses_online_teacher:
            if teacher is None:
                raise ValueError(f"{spec.name}: feature/attention/relation losses need the teacher model.")
            self.teacher = teacher.to(self.args.device).eval()
            student_layers, teacher_layers = _layer_count(self.model), _layer_count(teacher)
            self.layer_mapping = distill.layer_map(student_layers, teacher_layers)
            student_width, teacher_width = _width(self.model), _width(teacher)
            if spec.feature_weight > 0 and student_width != teacher_width:
                # A learned map from the student's width to the teacher's, trained with the student.
                self.projections = torch.nn.ModuleList(
                    torch.nn.Linear(student_width, teacher_width) for _ in self.layer_mapping).to(self.args.device)

    def _get_train_sampler(self, train_dataset: Dataset | None = None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not isinstance(dataset, Dataset):
            return super()._get_train_sampler(train_dataset)
        # transformers hands LengthGroupedSampler dataset["length"], a lazy datasets Column whose every lengths[i]
        # is an Arrow lookup (~0.2 ms): ~20 s at the start of each epoch over 114k rows, the GPU idle. [:] reads
        # the column once into a list; the batches are the same.
        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                    lengths=dataset[self.args.length_column_name][:])

    def create_optimizer(self, *args, **kwargs):
        optimizer = super().create_optimizer(*args, **kwargs)
        if self.projections is not None and not getattr(self, "_projections_added", False):
            optimizer.add_param_group({"params": list(self.projections.parameters()), "weight_decay": 0.0})
            self._projections_added = True
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        teacher_logits = inputs.pop("teacher_logits", None)
        spec = self.spec
        online = model.training and spec.uses_online_teacher
        outputs = model(**inputs, output_hidden_states=online and (spec.feature_weight > 0 or spec.relation_weight > 0),
                        output_attentions=online and spec.attention_weight > 0)
        logits = outputs.logits.float()
        # Rows of the unlabelled transfer split carry label -100: no cross-entropy, soft targets only. Mean over the
        # labelled rows, and a (differentiable) zero when a batch has none.
        labelled = (labels != -100).sum().clamp(min=1)
        smoothing = spec.label_smoothing if model.training else 0.0
        components = {"hard_label": F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum",
                                                    label_smoothing=smoothing) / labelled}
        if model.training:
            components.update(self._distillation_components(outputs, logits, labels, teacher_logits, inputs))
            weights = {"hard_label": spec.hard_label_weight, "soft_target": spec.kd_loss_weight,
                       "teacher_label": spec.teacher_label_weight, "feature": spec.feature_weight,
                       "attention": spec.attention_weight, "relation": spec.relation_weight}
            loss = distill.combine_losses(components, {name: weights[name] for name in components})
            for name, value in components.items():
                # Summed on the device: float() here would make the CPU wait for the GPU at every step.
                total = self._component_sums.get(name)
                self._component_sums[name] = value.detach() if total is None else total + value.detach()
            self._component_steps += 1
        else:
            loss = components["hard_label"]  # validation loss: plain cross-entropy for every student
        return (loss, outputs) if return_outputs else loss

    def _distillation_components(self, outputs, logits, labels, teacher_logits, inputs) -> dict[str, torch.Tensor]:
        spec, components = self.spec, {}
        if spec.uses_cached_logits and teacher_logits is None:
            raise ValueError(f"{spec.name}: the training rows carry no cached teacher_logits column.")
        if spec.kd_loss_weight > 0:
            if spec.confidence_weighted:
                weights = distill.confidence_weights(teacher_logits, labels)
                components["soft_target"] = distill.weighted_soft_target_loss(
                    logits, teacher_logits, spec.temperature, weights)
            else:
                components["soft_target"] = distill.soft_target_loss(logits, teacher_logits, spec.temperature)
        if spec.teacher_label_weight > 0:
            components["teacher_label"] = distill.teacher_label_loss(
                logits, teacher_logits, labels, mode=spec.teacher_label_mode)
        if spec.uses_online_teacher:
            mask = inputs["attention_mask"]
            with torch.no_grad():
                teacher_out = self.teacher(**inputs, output_hidden_states=True,
                                           output_attentions=spec.attention_weight > 0)
            if spec.feature_weight > 0:
                components["feature"] = distill.feature_loss(outputs.hidden_states, teacher_out.hidden_states, mask,
                                                             self.layer_mapping, self.projections)
            if spec.attention_weight > 0:
                components["attention"] = distill.attention_loss(outputs.attentions, teacher_out.attentions, mask,
                                                                 self.layer_mapping)
            if spec.relation_weight > 0:
                components["relation"] = distill.relation_loss(
                    distill.mean_pool(outputs.hidden_states[-1], mask),
                    distill.mean_pool(teacher_out.hidden_states[-1], mask))
        return components

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._component_steps:
            for name, total in self._component_sums.items():
                logs[f"loss_{name}"] = round(float(total) / self._component_steps, 6)
            self._component_sums.clear()
            self._component_steps = 0
        super().log(logs, *args, **kwargs)


def _layer_count(model: PreTrainedModel) -> int:
    config = model.config
    return getattr(config, "num_hidden_layers", None) or config.n_layers


def _width(model: PreTrainedModel) -> int:
    config = model.config
    return getattr(config, "hidden_size", None) or config.dim


def classification_metrics_for_trainer(prediction) -> dict[str, float]:
    predicted = np.argmax(prediction.predictions, axis=-1)
    return {"accuracy": accuracy_score(prediction.label_ids, predicted),
            "macro_f1": f1_score(prediction.label_ids, predicted, average="macro")}


# -------------------------------------------------------------------------------------------------- routine
class StepCounter(TrainerCallback):
    """Counts the optimizer steps this process ran (after a resume: only the ones left), and writes the training
    seconds so far into each checkpoint so that a resumed run still reports its whole training time."""

    def __init__(self, seconds_before: float = 0.0):
        self.steps = 0
        self.seconds_before = seconds_before
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.exists():
            (folder / "train_seconds.json").write_text(json.dumps({"seconds": self.elapsed()}))


def _seconds_in(checkpoint: Path | None) -> float:
    record = checkpoint / "train_seconds.json" if checkpoint else None
    return json.loads(record.read_text())["seconds"] if record and record.exists() else 0.0


@dataclass
class TrainOutcome:
    model: PreTrainedModel
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    resumed: bool = False
    steps_run: int = 0


def training_arguments(config: Config, output_dir: str | Path, *, seed: int, epochs: float | None = None,
                       learning_rate: float | None = None, quiet: bool | None = None,
                       **overrides) -> TrainingArguments:
    """The TrainingArguments of every run; ``overrides`` replace any of them (scripts/benchmark.py measures steps
    with evaluation and checkpoints off)."""
    values = dict(
        output_dir=str(output_dir),
        num_train_epochs=epochs if epochs is not None else config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=learning_rate if learning_rate is not None else config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type="linear",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="group_by_length",  # batches of similar length: less padding
        length_column_name="length",
        remove_unused_columns=False,  # the collator picks the columns (teacher_logits is not a forward argument)
        dataloader_num_workers=config.num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=not show_progress() if quiet is None else quiet,
        **precision.trainer_flags(config.precision),
    )
    return TrainingArguments(**{**values, **overrides})


def train_classifier(config: Config, model: PreTrainedModel, train_dataset: Dataset, eval_dataset: Dataset,
                     tokenizer, output_dir: str | Path, *, seed: int, spec: DistillSpec = BASELINE,
                     teacher: PreTrainedModel | None = None, epochs: float | None = None,
                     learning_rate: float | None = None, quiet: bool | None = None) -> TrainOutcome:
    """Fine-tune ``model``; checkpoint each epoch into ``output_dir`` and resume from the newest complete checkpoint
    there (an interrupted one is removed).

    The final model is written atomically to ``output_dir/final`` with the log history beside it
    (``history.json``); the epoch checkpoints (weights and optimizer state, ~3× the model) are then deleted.
    """
    output_dir = Path(output_dir)
    quiet = not show_progress() if quiet is None else quiet
    if quiet:
        hf_logging.set_verbosity_error()
    args = training_arguments(config, output_dir, seed=seed, epochs=epochs, learning_rate=learning_rate, quiet=quiet)
    trainer = DistillationTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                                  data_collator=collator_for(tokenizer), spec=spec, teacher=teacher,
                                  compute_metrics=classification_metrics_for_trainer)
    checkpoints = cache.complete_checkpoints(output_dir)
    resume = checkpoints[-1] if checkpoints else None
    counter = StepCounter(seconds_before=_seconds_in(resume))
    trainer.add_callback(counter)
    trainer.remove_callback(PrinterCallback)  # the history is returned and plotted instead of printed
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = counter.elapsed()  # includes the time before an interruption, where a checkpoint recorded it
    history = trainer.state.log_history
    with cache.atomic_folder(output_dir / "final") as folder:
        trainer.save_model(str(folder))
        (folder / "history.json").write_text(json.dumps({"history": history, "train_seconds": seconds}))
    for checkpoint in output_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    return TrainOutcome(model=trainer.model, history=history, train_seconds=seconds, resumed=resume is not None,
                        steps_run=counter.steps)
