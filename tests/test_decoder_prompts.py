"""The decoder-only student's prompt, answer masking, one-pass verbalizer scoring (checked against the four-pass
scoring it replaced and against unpadded forwards), and its two losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import decoder.stand_in
import decoder.student

IGNORE = decoder.student.IGNORE_INDEX


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run on one thread


@pytest.fixture(scope="module")
def tiny_lm(synthetic):
    """A random tiny LlamaForCausalLM of the stand-in's architecture over a BPE trained on the synthetic texts."""
    tokenizer = decoder.stand_in.train_tokenizer(synthetic["train"]["text"])
    tokenizer.pad_token = tokenizer.eos_token
    return decoder.stand_in.new_tiny_llama(tokenizer, seed=0).eval(), tokenizer


# ----------------------------------------------------------------------------------------------------- prompts
def test_the_prompt_offers_the_answers_the_verbalizers_score_in_the_labels_order():
    from helpers.config import LABELS

    words = [verbalizer.strip() for verbalizer in decoder.student.VERBALIZERS]
    # Each verbalizer names its class (Science for Sci/Tech), and the instruction lists them in that order.
    assert [label[:3] for label in LABELS] == [word[:3] for word in words]
    positions = [decoder.student.INSTRUCTION.find(word) for word in words]
    assert -1 not in positions and positions == sorted(positions)
    prompt = decoder.student.build_prompt("  Stocks fall on oil fears.  ")
    assert prompt.count("Stocks fall on oil fears.") == 1 and "  Stocks" not in prompt  # the article once, stripped
    assert prompt.index("Stocks") < prompt.rindex(decoder.student.ANSWER_CUE.strip())  # the cue after the article


def test_a_verbalizer_follows_the_prompt_as_the_one_token_it_is_scored_as(tiny_lm):
    """One-pass scoring reads the logit of each verbalizer's token right after the prompt: the prompt and its
    answer must tokenize as the prompt's tokens plus that one token (no merge across the cue)."""
    _, tokenizer = tiny_lm
    ids = decoder.student.verbalizer_token_ids(tokenizer)
    for article in ("Shares of the bank rose after quarterly earnings", "Team wins the cup"):
        prompt = tokenizer(decoder.student.build_prompt(article), add_special_tokens=False)["input_ids"]
        for verbalizer, token in zip(decoder.student.VERBALIZERS, ids, strict=True):
            whole = tokenizer(decoder.student.build_prompt(article) + verbalizer, add_special_tokens=False)
            assert whole["input_ids"] == prompt + [token], verbalizer


def test_encoded_prompt_equals_the_whole_prompt_and_truncates_only_the_article(tiny_lm):
    _, tokenizer = tiny_lm
    article = "Shares of the bank rose after quarterly earnings"
    whole = tokenizer(decoder.student.build_prompt(article), add_special_tokens=False)["input_ids"]
    assert decoder.student.encode_prompts(tokenizer, [article], 500) == [whole]

    cue = tokenizer(decoder.student.ANSWER_CUE, add_special_tokens=False)["input_ids"]
    head = tokenizer(decoder.student.INSTRUCTION + decoder.student.ARTICLE_CUE, add_special_tokens=False)["input_ids"]
    budget = len(head) + len(cue) + 10
    [cut] = decoder.student.encode_prompts(tokenizer, [article * 20], budget)
    assert len(cut) == budget
    assert cut[: len(head)] == head and cut[-len(cue):] == cue  # the cue survives truncation
    with pytest.raises(ValueError, match="raise lm_max_length"):
        decoder.student.encode_prompts(tokenizer, [article], len(head) + len(cue) + 2)


def test_verbalizers_are_single_distinct_tokens(tiny_lm):
    _, tokenizer = tiny_lm
    ids = decoder.student.verbalizer_token_ids(tokenizer)
    assert len(ids) == 4 and len(set(ids)) == 4 and tokenizer.eos_token_id not in ids
    # One id per class, in the order given (LABELS order), not sorted or deduplicated into another order.
    assert decoder.student.verbalizer_token_ids(tokenizer, decoder.student.VERBALIZERS[::-1]) == ids[::-1]
    with pytest.raises(ValueError, match="each class needs its own"):
        decoder.student.verbalizer_token_ids(tokenizer, (" World", " World", " Business", " Science"))
    with pytest.raises(ValueError, match="one token each"):
        decoder.student.verbalizer_token_ids(tokenizer, (" World", " Sports", " Business", " Sci/Tech zyx"))


# ----------------------------------------------------------------------------------------------------- masking
def test_masking_left_pads_and_labels_only_the_answer():
    batch = decoder.student.join_prompts_and_answers([[1, 2, 3], [4]], [[7, 8], [9, 8]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 7, 8], [0, 0, 4, 9, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, IGNORE, 7, 8], [IGNORE, IGNORE, IGNORE, 9, 8]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]


def test_answers_are_the_gold_verbalizer_then_the_end_token():
    assert decoder.student.answer_ids([2, 0], verbalizer_ids=[10, 11, 12, 13], end_token_id=0) == [[12, 0], [10, 0]]


# ----------------------------------------------------------------------------------------------------- scoring
def four_pass_scores(model, prompts: list[list[int]], verbalizer_ids: list[int], pad_token_id: int) -> np.ndarray:
    """The scoring one pass replaced: for each class, a forward over prompt + verbalizer (left-padded, full logits),
    summing the log-probability of the answer tokens wherever the labels mark them."""
    columns = []
    for verbalizer in verbalizer_ids:
        batch = decoder.student.join_prompts_and_answers(prompts, [[verbalizer]] * len(prompts), pad_token_id)
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"]).logits
        log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = batch["labels"][:, 1:]
        token = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        columns.append(torch.where(targets != IGNORE, token, torch.zeros_like(token)).sum(-1))
    return torch.stack(columns, dim=1).numpy()


def unpadded_log_prob(model, prompt: list[int], answer: list[int]) -> float:
    """log p(answer | prompt) from one forward over the whole unpadded sequence."""
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([prompt + answer])).logits[0], dim=-1)
    return sum(float(log_probs[len(prompt) - 1 + j, token]) for j, token in enumerate(answer))


def test_one_pass_scores_equal_the_four_pass_scores_and_unpadded_forwards(tiny_lm, synthetic):
    model, tokenizer = tiny_lm
    prompts = decoder.student.encode_prompts(tokenizer, synthetic["test"]["text"][:3], 60)
    prompts[1] = prompts[1][:-7] + prompts[1][-3:]  # rows of different lengths, so the batch pads
    verbalizer_ids = decoder.student.verbalizer_token_ids(tokenizer)
    with torch.no_grad():
        log_probs = decoder.student.next_token_log_probs(model, prompts, tokenizer.pad_token_id)
        one_pass = log_probs[:, verbalizer_ids].numpy()
    assert one_pass.shape == (3, 4)
    np.testing.assert_allclose(one_pass, four_pass_scores(model, prompts, verbalizer_ids, tokenizer.pad_token_id),
                               atol=1e-4)
    expected = [[unpadded_log_prob(model, p, [v]) for v in verbalizer_ids] for p in prompts]
    np.testing.assert_allclose(one_pass, expected, atol=1e-4)


def test_answer_cross_entropy_is_the_causal_lm_loss_on_the_answer_and_its_end(tiny_lm, synthetic):
    model, tokenizer = tiny_lm
    prompts = decoder.student.encode_prompts(tokenizer, synthetic["test"]["text"][:2], 60)
    prompts[0] = prompts[0][:-5] + prompts[0][-3:]
    verbalizer_ids = decoder.student.verbalizer_token_ids(tokenizer)
    answers = decoder.student.answer_ids([2, 1], verbalizer_ids, tokenizer.eos_token_id)
    batch = decoder.student.join_prompts_and_answers(prompts, answers, tokenizer.pad_token_id)
    with torch.no_grad():
        scores, answer_log_probs = decoder.student.score_batch(model, batch, verbalizer_ids,
                                                               decoder.student.ANSWER_TOKENS)
        reference = model(**batch).loss  # the library's loss, labels -100 on prompt and padding
        alone = decoder.student.next_token_log_probs(model, prompts, tokenizer.pad_token_id)[:, verbalizer_ids]
    assert float(decoder.student.answer_cross_entropy(answer_log_probs)) == pytest.approx(float(reference), abs=1e-4)
    np.testing.assert_allclose(scores.numpy(), alone.numpy(), atol=1e-4)  # s read in the same pass as the answer
    expected = [unpadded_log_prob(model, p, a) for p, a in zip(prompts, answers, strict=True)]
    np.testing.assert_allclose(answer_log_probs.numpy(), expected, atol=1e-4)


# ----------------------------------------------------------------------------------------------------- KD loss
def test_verbalizer_kd_loss_by_hand_and_invariants():
    teacher = torch.zeros(1, 4)  # uniform
    scores = torch.log(torch.tensor([[0.4, 0.2, 0.2, 0.2]]))
    expected = 0.25 * (math.log(0.25 / 0.4) + 3 * math.log(0.25 / 0.2))  # KL(u ‖ q) at T = 1
    assert float(decoder.student.verbalizer_kd_loss(scores, teacher, 1.0)) == pytest.approx(expected, abs=1e-6)
    # Log-probabilities that sum below 1 (the LM's mass outside the verbalizers) change nothing: softmax renormalises.
    assert float(decoder.student.verbalizer_kd_loss(scores - 3.0, teacher, 1.0)) == pytest.approx(expected, abs=1e-6)
    assert float(decoder.student.verbalizer_kd_loss(teacher + 1.7, teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)
    # T² scaling: at a high temperature the loss approaches (1/(2C)) Σ_k (s̄_k − z̄_k)² (centred), independent of T.
    tempered = [float(decoder.student.verbalizer_kd_loss(scores, teacher, t)) for t in (50.0, 100.0)]
    assert tempered[0] == pytest.approx(tempered[1], rel=0.02)
    scores, teacher = scores.clone().requires_grad_(), teacher.clone().requires_grad_()
    decoder.student.verbalizer_kd_loss(scores, teacher, 2.0).backward()
    assert scores.grad.abs().sum() > 0 and teacher.grad is None  # the teacher is a fixed target
