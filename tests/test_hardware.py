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


@pytest.mark.parametrize("gpu, expected", [(True, {"dataloader_num_workers": 2, "dataloader_pin_memory": True}),
                                           (False, {"dataloader_num_workers": 0, "dataloader_pin_memory": False})])
def test_loader_workers_only_on_a_gpu(monkeypatch, gpu, expected):
    """`full` asks for 2 workers; on CPU they would share its cores, and one forked in a Jupyter kernel can hang."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert hardware.loader_flags(2) == expected


def test_the_training_arguments_take_the_loader_flags_on_cpu(tmp_path):
    from helpers.config import get_config
    from helpers.train import training_arguments

    config = get_config("full")
    assert config.num_workers > 0
    args = training_arguments(config, tmp_path, seed=0)
    assert args.dataloader_num_workers == (config.num_workers if torch.cuda.is_available() else 0)
