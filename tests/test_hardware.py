"""Precision is decided once, from the GPU's compute capability: never from is_bf16_supported (True on a T4)."""

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
