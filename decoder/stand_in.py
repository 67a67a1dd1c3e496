"""The decoder student's offline stand-in for SmolLM2-135M (the ``cpu`` and ``smoke`` profiles, ``lm_hub_id =
None``): a byte-level BPE and a tiny ``LlamaForCausalLM`` of the same family, pretrained here as a plain causal LM
on the train split's texts, cached by everything that made it. ``full`` loads SmolLM2 from the hub instead."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from decoder.student import PROMPT_PARTS, VERBALIZERS, build_prompt, verbalizer_token_ids
from helpers import cache, hardware
from helpers.config import Config

# The stand-in: the SmolLM2 family (LlamaForCausalLM) at a size that pretrains in CPU minutes. SmolLM2-135M itself is
# 576 wide, 30 layers, 9 query / 3 key-value heads, tied embeddings and a 49,152-token byte-level BPE.
LOCAL_LM_ARCHITECTURE = {"hidden_size": 96, "intermediate_size": 256, "num_hidden_layers": 3,
                         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
                         "tie_word_embeddings": True}
LOCAL_VOCAB_SIZE = 4_096
END_OF_TEXT = "<|endoftext|>"  # SmolLM2's bos and eos; like SmolLM2, the stand-in has no pad token
PRETRAIN_BATCH_SIZE = 16  # blocks of lm_max_length tokens per step
PRETRAIN_LEARNING_RATE = 3e-3  # tiny models take large steps; warm-up then linear decay to zero
HELDOUT_TEXTS = 256  # train rows kept out of pretraining, to measure the LM loss it reaches on unseen text
STAND_IN_VERSION = 1  # bump when the stand-in's recipe changes: it is part of the cache key


def train_tokenizer(texts: list[str]):
    """A byte-level BPE (GPT-2 style, as SmolLM2's) trained on ``texts``; eos = bos = ``<|endoftext|>``, no pad.
    The prompt and the verbalizers join the corpus, so each verbalizer is merged into one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=LOCAL_VOCAB_SIZE, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(texts) + [build_prompt("") + verbalizer for verbalizer in VERBALIZERS] * 200, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT)
    verbalizer_token_ids(tokenizer)  # raises if a verbalizer were split
    return tokenizer


def new_tiny_llama(tokenizer, seed: int) -> PreTrainedModel:
    """A randomly initialised ``LlamaForCausalLM`` of ``LOCAL_LM_ARCHITECTURE`` over ``tokenizer``'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=end, eos_token_id=end,
                                        **LOCAL_LM_ARCHITECTURE))


def pack_blocks(tokenizer, texts: list[str], block_size: int) -> torch.Tensor:
    """(N, block_size) token ids: the texts, each followed by eos, concatenated and cut into equal blocks."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    stream = np.fromiter((t for row in ids for t in [*row, tokenizer.eos_token_id]), dtype=np.int64)
    if len(stream) < block_size:
        raise ValueError(f"{len(stream)} tokens make no block of {block_size}: pass more text.")
    blocks = len(stream) // block_size
    return torch.from_numpy(stream[: blocks * block_size].reshape(blocks, block_size))


@torch.inference_mode()
def language_model_loss(model: PreTrainedModel, blocks: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` on ``blocks`` (N, T)."""
    model = model.to(hardware.device()).eval()
    total = sum(model(input_ids=(b := blocks[i : i + batch_size].to(model.device)), labels=b).loss * len(b)
                for i in range(0, len(blocks), batch_size))
    return float(total) / len(blocks)


def pretrain_causal_lm(model: PreTrainedModel, blocks: torch.Tensor, steps: int, seed: int,
                       log_every: int = 25) -> list[dict]:
    """``steps`` AdamW steps (warm-up, linear decay) of next-token prediction on ``blocks`` (N, T); the loss history.
    A plain loop, fp32: too small a model for mixed precision to pay."""
    model = model.to(hardware.device()).train()
    if steps <= 0:
        return []
    generator = torch.Generator().manual_seed(seed)
    epochs = -(-steps * PRETRAIN_BATCH_SIZE // len(blocks))
    order = torch.cat([torch.randperm(len(blocks), generator=generator) for _ in range(epochs)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LEARNING_RATE, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
    history, running = [], torch.zeros((), device=model.device)
    for step in range(steps):
        batch = blocks[order[step * PRETRAIN_BATCH_SIZE : (step + 1) * PRETRAIN_BATCH_SIZE]].to(model.device)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.detach()  # read once per log: float() every step would wait for the device
        if (step + 1) % log_every == 0 or step + 1 == steps:
            history.append({"step": step + 1, "loss": round(float(running) / ((step % log_every) + 1), 4)})
            running.zero_()
    return history


@dataclass
class StandIn:
    """The pretrained stand-in's folder and the record of how it was made (texts, steps, losses, seconds)."""

    path: str
    record: dict


def pretraining_texts(train_texts: list[str], seed: int) -> tuple[list[str], list[str]]:
    """(pretraining, held-out texts): the train split shuffled, ``HELDOUT_TEXTS`` kept out. Validation and test are
    never read (no model is evaluated on a row the stand-in saw), nor are labels."""
    order = np.random.default_rng(seed).permutation(len(train_texts))
    held = min(HELDOUT_TEXTS, len(train_texts) // 10)
    texts = [train_texts[i] for i in order]
    return texts[held:], texts[:held]


def load_or_pretrain_stand_in(config: Config, train_texts: list[str]) -> StandIn:
    """The stand-in from ``<cache_dir>/lm-stand-in/<key>/``, else built and pretrained there (atomically); the key holds
    the architecture, the recipe, ``lm_pretrain_steps``, the prompt and the texts."""
    steps = config.lm_pretrain_steps
    texts, heldout = pretraining_texts(train_texts, config.seed)
    key = cache.key_of({"architecture": LOCAL_LM_ARCHITECTURE, "vocab_size": LOCAL_VOCAB_SIZE, "steps": steps,
                        "batch_size": PRETRAIN_BATCH_SIZE, "learning_rate": PRETRAIN_LEARNING_RATE,
                        "block_size": config.lm_max_length, "heldout": HELDOUT_TEXTS, "seed": config.seed,
                        "version": STAND_IN_VERSION, "prompt": PROMPT_PARTS}, texts)
    folder = Path(config.cache_dir) / "lm-stand-in" / key
    if (folder / "stand_in.json").exists() and cache.complete_model_folder(folder):
        return StandIn(str(folder), {**json.loads((folder / "stand_in.json").read_text()), "cached": True})
    start = time.perf_counter()
    tokenizer = train_tokenizer(texts)
    model = new_tiny_llama(tokenizer, config.seed)
    blocks, heldout_blocks = (pack_blocks(tokenizer, t, config.lm_max_length) for t in (texts, heldout))
    loss_before = language_model_loss(model, heldout_blocks)
    history = pretrain_causal_lm(model, blocks, steps, config.seed)
    record = {"texts": len(texts), "tokens": int(blocks.numel()), "steps": steps,
              "tokens_seen": steps * PRETRAIN_BATCH_SIZE * config.lm_max_length, "block_size": config.lm_max_length,
              "heldout_texts": len(heldout), "heldout_loss_before": loss_before,
              "heldout_loss_after": language_model_loss(model, heldout_blocks), "history": history,
              "seconds": time.perf_counter() - start, "hardware": hardware.label(),
              "parameters": sum(p.numel() for p in model.parameters()), "architecture": LOCAL_LM_ARCHITECTURE,
              "vocab_size": len(tokenizer)}
    with cache.atomic_folder(folder) as temporary:
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        (temporary / "stand_in.json").write_text(json.dumps(record))
    return StandIn(str(folder), {**record, "cached": False})


def lm_init(config: Config, train_texts: list[str]) -> tuple[str, dict | None]:
    """(path, stand-in record): the hub id where there is one (``lm_hub_id``), else the pretrained stand-in's folder."""
    if config.lm_hub_id:
        return config.lm_hub_id, None
    stand_in = load_or_pretrain_stand_in(config, train_texts)
    return stand_in.path, stand_in.record


def describe_stand_in(record: dict) -> str:
    """One plain sentence: what the stand-in is and how it was made."""
    return (f"A stand-in, not SmolLM2: a {LOCAL_LM_ARCHITECTURE['num_hidden_layers']}-layer, "
            f"{LOCAL_LM_ARCHITECTURE['hidden_size']}-wide LlamaForCausalLM ({record['parameters'] / 1e6:.2f}M "
            f"parameters, a {record['vocab_size']:,}-token byte-level BPE trained here), pretrained here as a plain "
            f"causal LM on {record['texts']:,} AG News train texts (no labels, no prompt; {record['steps']:,} steps, "
            f"{record['tokens_seen'] / 1e6:.1f}M tokens seen, {record['seconds'] / 60:.1f} min on {record['hardware']}"
            f"). Held-out LM loss {record['heldout_loss_before']:.2f} → {record['heldout_loss_after']:.2f} nats per "
            "token.")
