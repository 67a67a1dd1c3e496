"""Tests for benchmark.gpu's parts (the whole section runs tiny on CPU in test_benchmark): the timing loop, the
padded-token count the planner compares with, the parameter count behind the FLOPs, the decoder's step rate."""

import time

import numpy as np
import pytest
from transformers import LlamaConfig

from benchmark import common, gpu, training


def test_per_call_seconds_divides_each_block_by_its_calls():
    # 2 ms calls: blocks of 10 calls (20 ms) are timed, and each reports its seconds per call.
    assert 0.0015 < gpu.per_call_seconds(lambda: time.sleep(0.002), min_run_time=0.1) < 0.01


@pytest.mark.parametrize("multiple, expected", [(None, 2 * 7 + 2 * 3 + 1 * 4), (8, 2 * 8 + 2 * 8 + 1 * 8)])
def test_padded_tokens_pad_each_batch_to_its_longest_row(multiple, expected):
    lengths = np.array([5, 7, 3, 2, 4])
    assert training.padded_tokens(lengths, [[0, 1], [2, 3], [4]], multiple) == expected


def test_non_embedding_parameters_leave_out_embeddings_and_the_head():
    # distilbert-base: 6 layers × (4 + 8) × 768² weights, plus biases, layer norms and the 4-class head.
    student = gpu.non_embedding_parameters(common.build(common.full_size_architectures()[1]))
    assert 6 * 12 * 768**2 < student < 6 * 12 * 768**2 * 1.02


def test_the_decoder_step_rate_is_measured(smoke_config):
    tiny_lm = LlamaConfig(vocab_size=256, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1)
    rate = gpu.lm_train_rate(smoke_config, tiny_lm, seconds=0.05)
    assert np.isfinite(rate) and rate > 0
