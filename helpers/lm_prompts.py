"""The decoder-only student's question and answer: the prompt, the four one-token label words (verbalizers), the
answer that ends, the class scores read from one forward pass, and the two losses.

Symbols, the same in notebook 06:
  x          the prompt (instruction, article, ``Topic:``) in the LM's own tokens
  v_k        the verbalizer of class k, one token each: " World", " Sports", " Business", " Science"
  e          the end-of-sequence token; the answer to x is v_y followed by e, so a trained LM stops after the word
  s_k        = log p_θ(v_k | x): all four read from the logits at x's last position (one forward pass + a gather);
             the prediction is argmax_k s_k
  z_t        the teacher's logits for the same article, computed through the teacher's own tokenizer (cached)
  CE_answer  = −(1 / 2B) Σ_b [log p_θ(v_y_b | x_b) + log p_θ(e | x_b, v_y_b)]: the causal-LM loss with every prompt and
             padding position set to −100, so only the answer word and its end are learned
  L          = CE_answer + λ · T² · KL(softmax(z_t / T) ‖ softmax(s / T)),  λ = lm_kd_weight, T = lm_temperature

softmax(s) renormalises the LM's probabilities of the four verbalizers, so the KL compares two distributions over the
same four classes although the two models never share a token id.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from helpers import distill
from helpers.config import LABELS

IGNORE_INDEX = -100  # the label the causal-LM loss skips (prompt and padding positions)
INSTRUCTION = "What is the topic of this news article: World, Sports, Business or Science?"
ARTICLE_CUE = "\nArticle:"
ANSWER_CUE = "\nTopic:"
VERBALIZERS: tuple[str, ...] = (" World", " Sports", " Business", " Science")  # in LABELS order; leading space
ANSWER_TOKENS = 2  # the verbalizer and the end-of-sequence token


# ------------------------------------------------------------------------------------------------------- prompts
def build_prompt(article: str) -> str:
    """The one prompt template: instruction, article, answer cue. The answer follows ``Topic:`` (a verbalizer)."""
    return f"{INSTRUCTION}{ARTICLE_CUE} {article.strip()}{ANSWER_CUE}"


def prompt_budget(max_length: int) -> int:
    """``lm_max_length`` holds prompt + answer: the prompt gets what the verbalizer and the end token leave."""
    return max_length - ANSWER_TOKENS


def encode_prompts(tokenizer, articles: list[str], max_prompt_tokens: int) -> list[list[int]]:
    """Token ids of ``build_prompt(article)`` for each article, the article cut so the prompt fits the budget.

    The instruction, the article and the cue are tokenized apart and joined, so truncation never cuts the cue; a
    byte-level BPE splits at those boundaries anyway, so the ids equal those of the whole prompt string.
    """
    head = tokenizer(INSTRUCTION + ARTICLE_CUE, add_special_tokens=False)["input_ids"]
    tail = tokenizer(ANSWER_CUE, add_special_tokens=False)["input_ids"]
    budget = max_prompt_tokens - len(head) - len(tail)
    if budget < 8:
        raise ValueError(f"A prompt budget of {max_prompt_tokens} tokens leaves {budget} for the article (the "
                         f"instruction and cue take {len(head) + len(tail)}): raise lm_max_length.")
    bodies = tokenizer([" " + article.strip() for article in articles], add_special_tokens=False)["input_ids"]
    return [head + body[:budget] + tail for body in bodies]


def verbalizer_token_ids(tokenizer, verbalizers: tuple[str, ...] = VERBALIZERS) -> list[int]:
    """The token id of each verbalizer, in LABELS order.

    Raises where a verbalizer is not exactly one token (one-pass scoring reads one logit per class) or two coincide.
    """
    if len(verbalizers) != len(LABELS):
        raise ValueError(f"{len(verbalizers)} verbalizers for {len(LABELS)} classes {LABELS}.")
    ids = tokenizer(list(verbalizers), add_special_tokens=False)["input_ids"]
    split = {word: tokenizer.convert_ids_to_tokens(token_ids) for word, token_ids in zip(verbalizers, ids, strict=True)
             if len(token_ids) != 1}
    if split:
        raise ValueError(f"Verbalizers must be one token each in {type(tokenizer).__name__} (vocabulary "
                         f"{len(tokenizer):,}), but {split} are not: pick label words this tokenizer keeps whole.")
    flat = [token_ids[0] for token_ids in ids]
    if len(set(flat)) != len(flat):
        raise ValueError(f"Verbalizers {verbalizers} tokenize to {flat}: each class needs its own token.")
    return flat


def answer_ids(labels: list[int], verbalizer_ids: list[int], end_token_id: int) -> list[list[int]]:
    """The answer each row is trained on: its gold verbalizer, then the end-of-sequence token."""
    return [[verbalizer_ids[label], end_token_id] for label in labels]


# ------------------------------------------------------------------------------------------------------ batches
def join_prompts_and_answers(prompt_ids: list[list[int]], answer_ids: list[list[int]],
                             pad_token_id: int) -> dict[str, torch.Tensor]:
    """A left-padded batch of rows prompt + answer whose labels are the answer ids, IGNORE_INDEX elsewhere.

    Left padding ends every row at the same position, so each row's answer is its last tokens and the model need only
    compute logits at the last (longest answer + 1) positions; position_ids restart at 0 on each row's first real
    token. An empty answer gives a prompt-only row (for scoring and generation).
    Returns input_ids, attention_mask, position_ids, labels: each (N, L) with L the longest prompt + answer.
    """
    if len(prompt_ids) != len(answer_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(answer_ids)} answers.")
    length = max(len(p) + len(a) for p, a in zip(prompt_ids, answer_ids, strict=True))
    rows = len(prompt_ids)
    input_ids = torch.full((rows, length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((rows, length), dtype=torch.long)
    labels = torch.full((rows, length), IGNORE_INDEX, dtype=torch.long)
    for row, (prompt, answer) in enumerate(zip(prompt_ids, answer_ids, strict=True)):
        start = length - len(prompt) - len(answer)
        input_ids[row, start:] = torch.as_tensor(list(prompt) + list(answer), dtype=torch.long)
        attention_mask[row, start:] = 1
        if answer:
            labels[row, length - len(answer):] = torch.as_tensor(answer, dtype=torch.long)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids, "labels": labels}


# ------------------------------------------------------------------------------------------------------ scoring
def score_batch(model: PreTrainedModel, batch: dict[str, torch.Tensor], verbalizer_ids: list[int],
                answer_length: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass over left-padded rows that each end with an answer of exactly ``answer_length`` tokens.

    Returns s (B, C), the log-probability of each verbalizer at the prompt's last position, and (B,) the total
    log-probability of each row's answer tokens (zeros for ``answer_length`` 0). Logits are computed at the last
    ``answer_length`` + 1 positions only: the vocabulary projection is the costliest matrix product of a small LM.
    The answer's length is an argument, not read from the labels, so that no step waits on the device.
    """
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], logits_to_keep=answer_length + 1, use_cache=False)
    # Position t predicts token t + 1: the kept positions but the last predict the answer's tokens.
    log_probs = torch.log_softmax(outputs.logits[:, : max(answer_length, 1)].float(), dim=-1)  # (B, max(A, 1), V)
    scores = log_probs[:, 0, torch.as_tensor(verbalizer_ids, device=log_probs.device)]  # (B, C)
    if answer_length == 0:
        return scores, torch.zeros(len(scores), device=scores.device)
    answer = batch["input_ids"][:, -answer_length:]  # (B, A)
    return scores, log_probs.gather(-1, answer.unsqueeze(-1)).squeeze(-1).sum(-1)


def verbalizer_scores(model: PreTrainedModel, prompt_ids: list[list[int]], verbalizer_ids: list[int],
                      pad_token_id: int) -> torch.Tensor:
    """s: (B, C) log-probability of each verbalizer after each prompt, from one forward pass over the B prompts."""
    device = next(model.parameters()).device
    batch = join_prompts_and_answers(prompt_ids, [[] for _ in prompt_ids], pad_token_id)
    scores, _ = score_batch(model, {name: tensor.to(device) for name, tensor in batch.items()}, verbalizer_ids)
    return scores


# ------------------------------------------------------------------------------------------------------- losses
def answer_cross_entropy(answer_log_probs: torch.Tensor, answer_tokens: int = ANSWER_TOKENS) -> torch.Tensor:
    """CE_answer = −Σ_b log p(answer_b | x_b) / (B · answer_tokens): the mean over answer tokens, as the HF causal-LM
    loss with −100 on every prompt and padding position. answer_log_probs (B,) -> scalar."""
    return -answer_log_probs.sum() / (answer_log_probs.numel() * answer_tokens)


def verbalizer_kd_loss(scores: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(z_t / T) ‖ softmax(s / T)): the teacher's classes onto the LM's four verbalizers.

    scores (B, C) verbalizer log-probabilities of the LM, teacher_logits (B, C) -> scalar. softmax(s / T) is the LM's
    verbalizer distribution renormalised over the four classes and tempered, exactly as softmax(z / T) for a classifier.
    """
    return distill.soft_target_loss(scores, teacher_logits, temperature)
