"""One training routine for teacher, baseline and distilled students: a ``Trainer`` subclass whose loss mixes
cross-entropy with the distillation losses of ``helpers.distill``; checkpoints per epoch, resume, loss history."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    PreTrainedModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    get_linear_schedule_with_warmup,
)
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.utils import logging as hf_logging

from helpers import cache, data, distill, feature_terms, hardware
from helpers.config import Config, show_progress
from helpers.distill import BASELINE, DistillSpec


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
        if "target_logits" in features[0]:
            batch["target_logits"] = torch.tensor([f["target_logits"] for f in features], dtype=torch.float32)
        return batch


def collator_for(tokenizer) -> Collator:
    # Multiples of 8 let tensor cores work on GPU; on CPU they only add padding.
    return Collator(tokenizer.pad_token_id, pad_to_multiple_of=8 if torch.cuda.is_available() else None)


# Every run's optimizer step, stated once (Hugging Face's defaults, written out): AdamW with these betas and epsilon;
# no weight decay on biases and LayerNorm weights (they set scale and offset, not features); the learning rate warmed
# up linearly over ``warmup_ratio`` of the steps, then decayed linearly to 0; gradients clipped to a global norm of
# MAX_GRAD_NORM. DistillationTrainer and notebook 04 (one step on a real batch) both build it from the functions below.
ADAM_BETAS, ADAM_EPSILON, MAX_GRAD_NORM = (0.9, 0.999), 1e-8, 1.0
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weight decay on weight matrices and embeddings, none on biases and LayerNorm weights."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    decayed = [p for name, p in named if not name.endswith(NO_DECAY)]
    plain = [p for name, p in named if name.endswith(NO_DECAY)]
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over ``parameter_groups``, with the fused kernel (CPU and GPU; the Trainer's own default since torch
    2.8): the per-parameter loop costs a 22M-parameter model most of a small batch's step on CPU."""
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=learning_rate, betas=ADAM_BETAS,
                             eps=ADAM_EPSILON, fused=True)


def make_schedule(optimizer: torch.optim.Optimizer, warmup: float, total_steps: int):
    """Linear warm-up over ``warmup`` (<1: a share of ``total_steps``, rounded up; else steps), then decay to 0."""
    steps = int(warmup) if warmup >= 1 else int(np.ceil(warmup * total_steps))
    return get_linear_schedule_with_warmup(optimizer, steps, total_steps)


def optimizer_and_schedule(model: torch.nn.Module, config: Config, total_steps: int):
    """The optimizer and schedule of a student run with ``config``'s settings over ``total_steps``."""
    optimizer = make_optimizer(model, config.learning_rate, config.weight_decay)
    return optimizer, make_schedule(optimizer, config.warmup_ratio, total_steps)


class DistillationTrainer(Trainer):
    """``Trainer`` whose loss is ``distill.distillation_loss``; logs each of its terms next to the total loss."""

    def __init__(self, *args, spec: DistillSpec = BASELINE, teacher: PreTrainedModel | None = None,
                 teacher_max_length: int | None = None, tokenizer=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.teacher = teacher
        self.teacher_max_length = teacher_max_length
        self.cls_token_id, self.sep_token_id, self.pad_token_id, self.mask_token_id = (
            (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id)
            if tokenizer is not None else (None, None, 0, None))
        self.projections = None
        self.layer_mapping = None
        self._component_sums: dict[str, torch.Tensor] = {}
        self._component_steps = 0
        if spec.uses_online_teacher:
            if teacher is None:
                raise ValueError(f"{spec.name}: feature and attention losses need the teacher model.")
            self.teacher = teacher.to(self.args.device).eval()
            student_layers, teacher_layers = _layer_count(self.model), _layer_count(teacher)
            self.layer_mapping = feature_terms.layer_map(student_layers, teacher_layers)
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

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """``make_optimizer`` (the one statement of the step), plus any learned projection, undecayed."""
        if self.optimizer is None:
            self.optimizer = make_optimizer(model or self.model, self.args.learning_rate, self.args.weight_decay)
            if self.projections is not None:
                self.optimizer.add_param_group({"params": list(self.projections.parameters()), "weight_decay": 0.0})
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """``make_schedule``: ``warmup_steps`` holds a fraction of the steps (training_arguments)."""
        if self.lr_scheduler is None:
            self.lr_scheduler = make_schedule(optimizer or self.optimizer, self.args.warmup_steps, num_training_steps)
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        target_logits = inputs.pop("target_logits", None)
        if not model.training:  # validation loss: plain cross-entropy for every student
            outputs = model(**inputs)
            loss = torch.nn.functional.cross_entropy(outputs.logits.float(), labels)
            return (loss, outputs) if return_outputs else loss
        spec = self.spec
        if spec.views == "fresh":  # function matching: student and teacher both read this step's new view
            inputs["input_ids"], inputs["attention_mask"] = self.fresh_view(inputs["input_ids"],
                                                                            inputs["attention_mask"])
        internals = spec.feature_weight > 0
        outputs = model(**inputs, output_hidden_states=internals, output_attentions=spec.attention_weight > 0)
        teacher_outputs = None
        if spec.uses_online_teacher:
            # In the student's precision: the Trainer's autocast wraps the student's forward only.
            with torch.no_grad(), hardware.autocast(self.precision):
                teacher_outputs = self.teacher(**self.teacher_window(inputs), output_hidden_states=internals,
                                               output_attentions=spec.attention_weight > 0)
        loss, components = distill.distillation_loss(
            spec, outputs, labels, inputs["attention_mask"], target_logits=target_logits,
            teacher_outputs=teacher_outputs, layer_mapping=self.layer_mapping, projections=self.projections)
        for name, value in components.items():
            # Summed on the device: float() here would make the CPU wait for the GPU at every step.
            total = self._component_sums.get(name)
            self._component_sums[name] = value.detach() if total is None else total + value.detach()
        self._component_steps += 1
        return (loss, outputs) if return_outputs else loss

    @property
    def precision(self) -> str:
        return "bf16" if self.args.bf16 else "fp16" if self.args.fp16 else "fp32"

    def fresh_view(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        special = torch.tensor([self.cls_token_id, self.sep_token_id, self.pad_token_id], device=input_ids.device)
        return data.fresh_view(input_ids, attention_mask, special, self.mask_token_id, self.pad_token_id)

    def teacher_window(self, inputs: dict) -> dict:
        """The teacher's own inputs: the first ``teacher_max_length`` tokens, ending in [SEP] as its tokenizer
        would cut them (a teacher that reads a shorter window than the student, as in the cpu profile)."""
        length = self.teacher_max_length
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        if length is None or ids.shape[1] <= length:
            return {"input_ids": ids, "attention_mask": mask}
        ids, cut = ids[:, :length].clone(), mask[:, length:].any(dim=1)  # rows longer than the window
        ids[cut, length - 1] = self.sep_token_id
        return {"input_ids": ids, "attention_mask": mask[:, :length]}

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        # Every DataLoader draws its base seed from the global RNG: without this, a run scored after each epoch (a
        # curve) would train on other dropout masks from epoch 2 on than the same run without.
        with torch.random.fork_rng(devices=[]):
            return super().evaluate(*args, **kwargs)

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
                       quiet: bool | None = None, **overrides) -> TrainingArguments:
    """The TrainingArguments of every run; ``overrides`` replace any (scripts/benchmark.py: no eval, no saving)."""
    values = dict(
        output_dir=str(output_dir), num_train_epochs=epochs if epochs is not None else config.epochs,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a fraction of the steps (optimizer_and_schedule)
        lr_scheduler_type="linear", max_grad_norm=MAX_GRAD_NORM,
        logging_steps=config.logging_steps, logging_first_step=True,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, seed=seed, data_seed=seed,
        train_sampling_strategy="group_by_length", length_column_name="length",  # similar lengths batched: less padding
        remove_unused_columns=False,  # the collator picks the columns (target_logits is not a forward argument)
        report_to="none", disable_tqdm=not show_progress() if quiet is None else quiet,
        **hardware.loader_flags(config.num_workers), **hardware.trainer_flags(config.precision))
    return TrainingArguments(**{**values, **overrides})


def train_classifier(config: Config, model: PreTrainedModel, train_dataset: Dataset, eval_dataset: Dataset | None,
                     tokenizer, output_dir: str | Path, *, seed: int, spec: DistillSpec = BASELINE,
                     teacher: PreTrainedModel | None = None, teacher_max_length: int | None = None,
                     epochs: float | None = None, quiet: bool | None = None, **arguments) -> TrainOutcome:
    """Fine-tune ``model``, checkpointing each epoch into ``output_dir`` (or ``config.checkpoint_dir``/its name) and
    resuming from the newest complete checkpoint there. ``arguments`` override the TrainingArguments (the teacher's
    recipe); ``eval_dataset`` None skips the per-epoch validation. The final model and its log history
    (``history.json``) are written atomically to ``output_dir/final``; the epoch checkpoints are then deleted."""
    output_dir = Path(output_dir)
    # Epoch checkpoints where the config puts them (a local disk on Colab), the final model in output_dir (the cache).
    checkpoint_dir = Path(config.checkpoint_dir) / output_dir.name if config.checkpoint_dir else output_dir
    quiet = not show_progress() if quiet is None else quiet
    if quiet:
        hf_logging.set_verbosity_error()
    if eval_dataset is None:
        arguments["eval_strategy"] = "no"
    args = training_arguments(config, checkpoint_dir, seed=seed, epochs=epochs, quiet=quiet, **arguments)
    trainer = DistillationTrainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                                  data_collator=collator_for(tokenizer), spec=spec, teacher=teacher,
                                  teacher_max_length=teacher_max_length, tokenizer=tokenizer,
                                  compute_metrics=classification_metrics_for_trainer)
    checkpoints = cache.complete_checkpoints(checkpoint_dir)
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
    for checkpoint in checkpoint_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    return TrainOutcome(model=trainer.model, history=history, train_seconds=seconds, resumed=resume is not None,
                        steps_run=counter.steps)
