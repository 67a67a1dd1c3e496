"""Precision and DataLoader workers are decided once: precision from the GPU's compute capability, never from
is_bf16_supported (True on a T4); workers only on a GPU."""

import pytest
import torch

from helpers import hardware


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                  ((9, 0), "bf16")])
def test_gpu_precision_follows_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 answers
    assert hardware.resolve_precision("auto") == expected
    assert hardware.trainer_flags("auto") == {"bf16": expected == "bf16", "fp16": expected == "fp16"}


def test_cpu_is_fp32_and_bad_names_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.resolve_precision("auto") == "fp32"
    assert hardware.trainer_flags("auto") == {"bf16": False, "fp16": False}
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        hardware.resolve_precision("fp16")
    with pytest.raises(ValueError, match="precision"):
        hardware.resolve_precision("int4")


@pytest.mark.parametrize("workers", [0, 3])
def test_loader_workers_and_pinned_memory_only_on_a_gpu(monkeypatch, workers):
    """`full` asks for workers; on CPU they would share its cores, and one forked in a Jupyter kernel can hang."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert hardware.loader_flags(workers) == {"dataloader_num_workers": workers, "dataloader_pin_memory": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.loader_flags(workers) == {"dataloader_num_workers": 0, "dataloader_pin_memory": False}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU side: no worker processes")
def test_a_cpu_run_loads_its_batches_without_workers_whatever_the_config_asks(smoke_workspace, tmp_path):
    """The DataLoader a real training run gets, built by the trainer from training_arguments."""
    import dataclasses

    from helpers import models
    from helpers.train import DistillationTrainer, collator_for, training_arguments

    config = dataclasses.replace(smoke_workspace.config, num_workers=2)
    trainer = DistillationTrainer(model=models.load_student(config, 0),
                                  args=training_arguments(config, tmp_path, seed=0, quiet=True, eval_strategy="no"),
                                  train_dataset=smoke_workspace.tokenized["student_train"],
                                  data_collator=collator_for(smoke_workspace.tokenizer),
                                  tokenizer=smoke_workspace.tokenizer)
    loader = trainer.get_train_dataloader()
    assert loader.num_workers == 0 and not loader.pin_memory
    assert next(iter(loader))["input_ids"].shape[0] == config.batch_size
