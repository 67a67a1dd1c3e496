"""The decoder-only student: prompt, answer-token masking, verbalizer scoring, the verbalizer KD loss, and a tiny
end-to-end fine-tuning run on the synthetic rows (thresholds, never exact floats)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import lm_student, pipeline
from helpers.config import get_config
from helpers.data import load_synthetic_dataset

IGNORE = lm_student.IGNORE_INDEX


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small gain nothing from intra-op threads, and on a busy machine their spin-waits cost up to 5x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic():
    return load_synthetic_dataset(train_rows=256, test_rows=80, seed=0)


@pytest.fixture(scope="module")
def tiny_lm(synthetic, tmp_path_factory):
    """The offline/smoke LM: a random tiny LlamaForCausalLM and a BPE trained here, reloaded through Auto*."""
    folder = lm_student.build_local_lm(tmp_path_factory.mktemp("lm-init"), synthetic["train"]["text"], seed=0)
    model, tokenizer = lm_student.load_lm(folder)
    return model.eval(), tokenizer


# ----------------------------------------------------------------------------------------------------- prompts
def test_prompt_has_instruction_article_and_answer_cue():
    prompt = lm_student.build_prompt("  Stocks fall on oil fears.  ")
    assert prompt.startswith(lm_student.INSTRUCTION)
    assert "\nArticle: Stocks fall on oil fears.\n" in prompt
    assert prompt.endswith("Topic:")


def test_encoded_prompt_equals_the_whole_prompt_and_truncates_only_the_article(tiny_lm):
    _, tokenizer = tiny_lm
    article = "Shares of the bank rose after quarterly earnings"
    whole = tokenizer(lm_student.build_prompt(article), add_special_tokens=False)["input_ids"]
    assert lm_student.encode_prompts(tokenizer, [article], 500) == [whole]

    cue = tokenizer(lm_student.ANSWER_CUE, add_special_tokens=False)["input_ids"]
    head = tokenizer(lm_student.INSTRUCTION + lm_student.ARTICLE_CUE, add_special_tokens=False)["input_ids"]
    budget = len(head) + len(cue) + 10
    [cut] = lm_student.encode_prompts(tokenizer, [article * 20], budget)
    assert len(cut) == budget
    assert cut[: len(head)] == head and cut[-len(cue):] == cue  # the cue survives truncation
    with pytest.raises(ValueError, match="raise lm_max_length"):
        lm_student.encode_prompts(tokenizer, [article], len(head) + len(cue) + 2)


def test_verbalizers_are_distinct_non_empty_token_sequences(tiny_lm):
    _, tokenizer = tiny_lm
    ids = lm_student.verbalizer_token_ids(tokenizer)
    assert len(ids) == 4 and all(ids) and len({tuple(v) for v in ids}) == 4
    with pytest.raises(ValueError, match="its own"):
        lm_student.verbalizer_token_ids(tokenizer, (" World", " World", " Business", " Science"))


# ----------------------------------------------------------------------------------------------------- masking
def test_masking_left_pads_and_labels_only_the_answer():
    batch = lm_student.join_prompts_and_answers([[1, 2, 3], [4]], [[7, 8], [9]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 7, 8], [0, 0, 0, 4, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 1, 1]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, IGNORE, 7, 8], [IGNORE, IGNORE, IGNORE, IGNORE, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 0, 1]]


def test_candidate_rows_pair_every_prompt_with_every_verbalizer():
    prompts, answers = lm_student.candidate_rows([[1], [2]], [[10], [11, 12]])
    assert prompts == [[1], [1], [2], [2]]
    assert answers == [[10], [11, 12], [10], [11, 12]]


# ----------------------------------------------------------------------------------------------------- scoring
def test_answer_log_probs_by_hand():
    # V = 3; the logits at position t predict token t + 1. Row 0: answer [1, 2] at positions 2, 3; row 1: answer [0].
    logits = torch.zeros(2, 4, 3)
    logits[0, 1] = torch.log(torch.tensor([1.0, 2.0, 1.0]))  # p(token 1) = 1/2
    logits[0, 2] = torch.log(torch.tensor([1.0, 1.0, 2.0]))  # p(token 2) = 1/2
    logits[1, 2] = torch.log(torch.tensor([3.0, 1.0, 0.0]) + 1e-12)  # p(token 0) = 3/4
    labels = torch.tensor([[IGNORE, IGNORE, 1, 2], [IGNORE, IGNORE, IGNORE, 0]])
    expected = [2 * math.log(0.5), math.log(0.75)]
    assert lm_student.sum_answer_log_probs(logits, labels).tolist() == pytest.approx(expected, abs=1e-5)
    # Only the last K = longest answer + 1 positions are needed.
    assert lm_student.sum_answer_log_probs(logits[:, -3:], labels).tolist() == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="outside"):
        lm_student.sum_answer_log_probs(logits[:, -2:], labels)


def _manual_log_prob(model, prompt: list[int], answer: list[int]) -> float:
    """log p(answer | prompt) from one unpadded forward over the whole sequence."""
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([prompt + answer])).logits[0], dim=-1)
    return sum(float(log_probs[len(prompt) - 1 + j, token]) for j, token in enumerate(answer))


def test_batched_scores_equal_a_manual_forward_with_padding_and_multi_token_verbalizers(tiny_lm, synthetic):
    model, tokenizer = tiny_lm
    prompts = lm_student.encode_prompts(tokenizer, synthetic["test"]["text"][:3], 60)
    prompts[1] = prompts[1][:-7] + prompts[1][-3:]  # rows of different lengths, so the batch pads
    verbalizers = [[5], [6, 7], [8, 9, 10], [11]]  # one, two and three tokens
    scores = lm_student.verbalizer_scores(model, prompts, verbalizers, tokenizer.pad_token_id)
    assert scores.shape == (3, 4)
    expected = [[_manual_log_prob(model, p, v) for v in verbalizers] for p in prompts]
    np.testing.assert_allclose(scores.detach().numpy(), expected, atol=1e-4)


def test_answer_cross_entropy_is_the_causal_lm_loss_on_answer_tokens(tiny_lm):
    model, tokenizer = tiny_lm
    prompts, verbalizers, gold = [[20, 21, 22, 23], [24, 25]], [[5], [6, 7], [8, 9, 10], [11]], torch.tensor([2, 1])
    scores = lm_student.verbalizer_scores(model, prompts, verbalizers, tokenizer.pad_token_id)
    ours = lm_student.answer_cross_entropy(scores, gold, torch.tensor([len(v) for v in verbalizers]))
    # The library's own loss on the gold rows, labels -100 on prompt and padding: a mean over answer tokens.
    batch = lm_student.join_prompts_and_answers(prompts, [verbalizers[g] for g in gold], tokenizer.pad_token_id)
    with torch.no_grad():
        reference = model(**batch).loss
    assert float(ours.detach()) == pytest.approx(float(reference), abs=1e-4)


# ----------------------------------------------------------------------------------------------------- KD loss
def test_verbalizer_kd_loss_by_hand_and_invariants():
    teacher = torch.zeros(1, 4)  # uniform
    scores = torch.log(torch.tensor([[0.4, 0.2, 0.2, 0.2]]))
    expected = 0.25 * (math.log(0.25 / 0.4) + 3 * math.log(0.25 / 0.2))  # KL(u ‖ q) at T = 1
    assert float(lm_student.verbalizer_kd_loss(scores, teacher, 1.0)) == pytest.approx(expected, abs=1e-6)
    # Log-probabilities that sum below 1 (the LM's mass outside the verbalizers) change nothing: softmax renormalises.
    assert float(lm_student.verbalizer_kd_loss(scores - 3.0, teacher, 1.0)) == pytest.approx(expected, abs=1e-6)
    assert float(lm_student.verbalizer_kd_loss(teacher + 1.7, teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)
    # T² scaling: at a high temperature the loss approaches (1/(2C)) Σ_k (s̄_k − z̄_k)² (centred), independent of T.
    tempered = [float(lm_student.verbalizer_kd_loss(scores, teacher, t)) for t in (50.0, 100.0)]
    assert tempered[0] == pytest.approx(tempered[1], rel=0.02)
    scores, teacher = scores.clone().requires_grad_(), teacher.clone().requires_grad_()
    lm_student.verbalizer_kd_loss(scores, teacher, 2.0).backward()
    assert scores.grad.abs().sum() > 0 and teacher.grad is None  # the teacher is a fixed target


# ----------------------------------------------------------------------------------------------------- generation
def test_batched_generation_matches_one_prompt_at_a_time(tiny_lm, synthetic):
    model, tokenizer = tiny_lm
    config = get_config("smoke")
    articles = [synthetic["test"]["text"][0], synthetic["test"]["text"][1] + " and more words after that"]
    together = lm_student.generate_answers(model, tokenizer, articles, config, max_new_tokens=3)
    alone = [lm_student.generate_answers(model, tokenizer, [a], config, max_new_tokens=3)[0] for a in articles]
    assert together == alone


def test_fixed_examples_take_the_classes_in_turn(synthetic):
    examples = lm_student.fixed_examples(synthetic["test"], count=10)
    assert examples["label"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert examples.equals(lm_student.fixed_examples(synthetic["test"], count=10))


def test_cost_table_prices_the_measured_time():
    table = lm_student.cost_table(1800.0, "Tesla T4", prices=(("Colab", "T4", 0.2), ("Runpod", "A100 80GB", 2.0)))
    assert table["cost of that time (USD)"].tolist() == pytest.approx([0.1, 1.0])
    assert table["same hardware"].tolist() == [True, False]


# ------------------------------------------------------------------------------------------------------ end to end
def test_finetuning_lowers_the_loss_and_beats_chance_then_loads_from_cache(synthetic, tmp_path, monkeypatch):
    config = get_config("smoke", cache_dir=str(tmp_path), lm_train_rows=256, lm_epochs=3, lm_eval_rows=None)
    train = synthetic["train"]
    teacher_logits = np.eye(4, dtype=np.float32)[train["label"]] * 3.0  # a confident, correct teacher
    teacher_logits[:, 0] += np.linspace(-1, 1, len(train))  # distinct rows, so misalignment would show
    monkeypatch.setattr(pipeline, "load_or_compute_teacher_logits", lambda workspace, split: (teacher_logits, {}))
    workspace = SimpleNamespace(config=config, student_train=train, splits=synthetic)

    rows = lm_student.lm_training_rows(workspace)
    assert len(rows) == 256
    assert len(set(train["text"])) == len(train)  # so a text identifies its row
    by_text = {text: logits for text, logits in zip(train["text"], teacher_logits.tolist(), strict=True)}
    assert all(np.allclose(by_text[t], z) for t, z in zip(rows["text"], rows["teacher_logits"], strict=True))

    outcome = lm_student.load_or_finetune_lm(workspace)
    losses = [entry["loss"] for entry in outcome.history if "loss" in entry]
    assert not outcome.cached and losses[-1] < 0.7 * losses[0]
    assert {"loss_answer_ce", "loss_verbalizer_kd"} <= set(outcome.history[0])
    after = lm_student.evaluate_lm(outcome.model, outcome.tokenizer, lm_student.evaluation_rows(workspace), config)
    assert after["accuracy"] > 0.45  # chance is 0.25

    again = lm_student.load_or_finetune_lm(workspace)
    assert again.cached and again.train_seconds == pytest.approx(outcome.train_seconds)
