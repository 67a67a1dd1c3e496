"""The optimizer step, stated once in helpers/train.py: AdamW's two groups, the warm-up-then-decay schedule, the
trainer building both from them; and the online teacher's forward in the student's precision (issue 28 item 4),
reading the same fresh view as the student under function matching."""

import contextlib
import math

import pytest
import torch

from helpers import experiments, hardware, models, train
from helpers.distill import DistillSpec
from helpers.train import Collator, DistillationTrainer, training_arguments


def no_decay_by_module(model: torch.nn.Module) -> set[int]:
    """The parameters that must not decay, found from the modules (not the names): every bias, every norm's weight."""
    plain = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if name == "bias" or "norm" in type(module).__name__.lower():
                plain.add(id(parameter))
    return plain


@pytest.fixture(scope="module")
def student(smoke_config):
    return models.load_student(smoke_config, seed=0)


@pytest.fixture(scope="module")
def teacher(smoke_workspace):
    return models.load_teacher(smoke_workspace.config, attn_implementation="eager")


def test_biases_and_norm_weights_are_undecayed_and_every_parameter_is_in_one_group(smoke_config, student):
    teacher = models.load_classifier(models.base_teacher_path(smoke_config))  # trainable: the teacher's own step
    for model in (student, teacher):
        decayed, plain = train.parameter_groups(model, weight_decay=0.01)
        assert (decayed["weight_decay"], plain["weight_decay"]) == (0.01, 0.0)
        decayed_ids, plain_ids = {id(p) for p in decayed["params"]}, {id(p) for p in plain["params"]}
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert len(decayed_ids) == len(decayed["params"]) and len(plain_ids) == len(plain["params"])
        assert not decayed_ids & plain_ids and decayed_ids | plain_ids == trainable
        assert plain_ids == no_decay_by_module(model) & trainable
        assert all(p.dim() >= 2 for p in decayed["params"])  # weight matrices and embeddings
    frozen = models.load_student(smoke_config, seed=0)
    embeddings = frozen.distilbert.embeddings.word_embeddings.weight.requires_grad_(False)
    grouped = [id(p) for group in train.parameter_groups(frozen, 0.01) for p in group["params"]]
    assert id(embeddings) not in grouped and len(grouped) == sum(p.requires_grad for p in frozen.parameters())


@pytest.mark.parametrize("warmup, total, warm_steps", [(0.1, 25, 3), (0.06, 100, 6), (0.0, 10, 0), (4, 20, 4)])
def test_the_schedule_warms_up_over_the_rounded_up_share_then_decays_to_zero(warmup, total, warm_steps):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    schedule = train.make_schedule(optimizer, warmup, total)
    rates = []
    for _ in range(total + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert warm_steps == (math.ceil(warmup * total) if warmup < 1 else warmup)
    for step, rate in enumerate(rates):
        expected = step / warm_steps if step < warm_steps else (total - step) / (total - warm_steps)
        assert rate == pytest.approx(expected, abs=1e-9), step
    assert max(rates) == pytest.approx(1.0) and rates[-1] == 0.0


def test_the_trainer_builds_its_optimizer_and_schedule_from_the_one_statement(smoke_workspace, student, teacher,
                                                                               tmp_path):
    config = smoke_workspace.config
    arguments = training_arguments(config, tmp_path, seed=0, quiet=True, eval_strategy="no")
    assert arguments.max_grad_norm == train.MAX_GRAD_NORM == 1.0
    spec = DistillSpec(name="feature", feature_weight=1.0)  # a wider teacher: a learned projection to train too
    trainer = DistillationTrainer(model=student, args=arguments, spec=spec, teacher=teacher,
                                  tokenizer=smoke_workspace.tokenizer)
    trainer.create_optimizer_and_scheduler(num_training_steps=40)
    optimizer = trainer.optimizer
    expected = train.parameter_groups(student, config.weight_decay)
    assert len(optimizer.param_groups) == 3
    for group, wanted in zip(optimizer.param_groups[:2], expected, strict=True):
        assert [id(p) for p in group["params"]] == [id(p) for p in wanted["params"]]
        assert group["weight_decay"] == wanted["weight_decay"]
    projection = optimizer.param_groups[2]
    assert {id(p) for p in projection["params"]} == {id(p) for p in trainer.projections.parameters()}
    assert projection["weight_decay"] == 0.0
    assert all(group["betas"] == train.ADAM_BETAS and group["eps"] == train.ADAM_EPSILON
               for group in optimizer.param_groups)
    assert isinstance(optimizer, torch.optim.AdamW)
    # The schedule: warm-up over ceil(warmup_ratio * steps) (0 in smoke), then linear decay to 0 at the last step.
    smoke_warm = math.ceil(config.warmup_ratio * 40)
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(
        config.learning_rate * (0.0 if smoke_warm else 1.0))
    for _ in range(40):
        optimizer.step()
        trainer.lr_scheduler.step()
    assert trainer.lr_scheduler.get_last_lr()[0] == 0.0
    # Asked again (the Trainer does), the same optimizer: the projection group is not added twice.
    assert trainer.create_optimizer() is optimizer and len(optimizer.param_groups) == 3


def test_the_trainers_precision_follows_its_mixed_precision_flags():
    from types import SimpleNamespace

    def precision(bf16, fp16):
        return DistillationTrainer.precision.fget(SimpleNamespace(args=SimpleNamespace(bf16=bf16, fp16=fp16)))

    assert (precision(True, False), precision(False, True), precision(False, False)) == ("bf16", "fp16", "fp32")


def cpu_autocast(requested: str = "auto"):
    """hardware.autocast as it acts on a GPU, on CPU: autocast to the named half precision, nothing for fp32."""
    if requested in ("auto", "fp32"):  # "auto" is fp32 on CPU
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[requested])


def teacher_dtype_seen(smoke_workspace, student, teacher, tmp_path, monkeypatch, precision: str, spec: DistillSpec,
                       window: int | None = None) -> tuple[torch.dtype, dict]:
    """compute_loss once with the trainer's precision forced to ``precision``: the dtype of the teacher's logits
    and the inputs student and teacher read."""
    monkeypatch.setattr(hardware, "autocast", cpu_autocast)
    monkeypatch.setattr(DistillationTrainer, "precision", property(lambda self: precision))
    arguments = training_arguments(smoke_workspace.config, tmp_path, seed=0, quiet=True, eval_strategy="no")
    trainer = DistillationTrainer(model=student.train(), args=arguments, spec=spec, teacher=teacher,
                                  teacher_max_length=window, tokenizer=smoke_workspace.tokenizer)
    seen = {}
    hooks = [teacher.register_forward_hook(lambda module, args, output: seen.__setitem__("dtype", output.logits.dtype)),
             teacher.register_forward_pre_hook(
                 lambda module, args, kwargs: seen.__setitem__("teacher", kwargs["input_ids"]), with_kwargs=True),
             student.register_forward_pre_hook(
                 lambda module, args, kwargs: seen.__setitem__("student", kwargs["input_ids"]), with_kwargs=True)]
    rows = smoke_workspace.tokenized["student_train"]
    batch = Collator(smoke_workspace.tokenizer.pad_token_id)([rows[i] for i in range(16)])
    seen["batch"] = batch["input_ids"]
    try:
        torch.manual_seed(0)
        loss = trainer.compute_loss(student, batch)
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.isfinite(loss)
    return seen["dtype"], seen


@pytest.mark.parametrize("spec", [experiments.STRATEGIES["consistent"][0], experiments.STRATEGIES["feature"][0]],
                         ids=["function-matching", "feature"])
def test_the_online_teacher_runs_in_the_students_precision(smoke_workspace, student, teacher, tmp_path, monkeypatch,
                                                           spec):
    assert spec.uses_online_teacher
    assert teacher_dtype_seen(smoke_workspace, student, teacher, tmp_path, monkeypatch, "bf16", spec)[0] == (
        torch.bfloat16)
    assert teacher_dtype_seen(smoke_workspace, student, teacher, tmp_path, monkeypatch, "fp32", spec)[0] == (
        torch.float32)


def test_under_function_matching_the_teacher_reads_the_students_fresh_view(smoke_workspace, student, teacher,
                                                                           tmp_path, monkeypatch):
    spec = experiments.STRATEGIES["consistent"][0]
    window = smoke_workspace.config.teacher_length  # 24: longer than every smoke row, so the window cuts nothing
    _, seen = teacher_dtype_seen(smoke_workspace, student, teacher, tmp_path, monkeypatch, "fp32", spec, window)
    assert seen["student"].shape[1] <= window
    assert torch.equal(seen["teacher"], seen["student"])  # the same view, not the batch
    assert not (seen["student"].shape == seen["batch"].shape and torch.equal(seen["student"], seen["batch"]))
    assert (seen["student"] == smoke_workspace.tokenizer.mask_token_id).any()  # a view: some tokens masked
