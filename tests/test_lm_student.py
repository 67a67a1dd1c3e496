"""The decoder-only student end to end at smoke size: the pretrained stand-in, generation that stops at the end token,
the two-level interval, and fine-tuning with and without the teacher into a results document (thresholds, never
exact floats)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from helpers import lm_evaluation, lm_models, lm_student, lm_training, pipeline, results
from helpers.config import get_config

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models run on one thread


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    return get_config("smoke", cache_dir=str(root / "cache"), results_dir=str(root / "results"),
                      figures_dir=str(root / "figures"), lm_train_rows=256, lm_epochs=3)


@pytest.fixture(scope="module")
def stand_in(config, synthetic):
    """The smoke stand-in: pretrained on the synthetic train texts (seconds)."""
    return lm_models.load_or_pretrain_stand_in(config, synthetic["train"]["text"])


# ------------------------------------------------------------------------------------------------- the stand-in
def test_pretraining_lowers_the_held_out_lm_loss_and_is_cached(config, synthetic, stand_in):
    record = stand_in.record
    assert not record["cached"] and record["steps"] == lm_models.pretrain_steps(config)
    assert record["heldout_loss_after"] < 0.75 * record["heldout_loss_before"]  # random init: ≈ log |V|
    losses = [entry["loss"] for entry in record["history"]]
    assert losses[-1] < losses[0]
    again = lm_models.load_or_pretrain_stand_in(config, synthetic["train"]["text"])
    assert again.path == stand_in.path and again.record["cached"]
    assert "stand-in, not SmolLM2" in lm_models.describe_stand_in(record)


def test_pretraining_texts_hold_out_rows_and_blocks_separate_texts_with_eos(stand_in):
    texts, heldout = lm_models.pretraining_texts([f"text {i}" for i in range(100)], seed=0)
    assert len(heldout) == 10 and not set(texts) & set(heldout) and len(texts) + len(heldout) == 100
    _, tokenizer = lm_models.load_lm(stand_in.path)
    blocks = lm_models.pack_blocks(tokenizer, ["one two", "three"], block_size=2)
    assert blocks.shape[1] == 2 and (blocks == tokenizer.eos_token_id).sum() >= 1


def test_the_stand_in_loads_like_smollm2_with_eos_as_pad(stand_in):
    model, tokenizer = lm_models.load_lm(stand_in.path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.generation_config.eos_token_id


# -------------------------------------------------------------------------------------------------- generation
def test_generation_stops_at_the_end_token(stand_in, synthetic, config):
    model, tokenizer = lm_models.load_lm(stand_in.path)
    articles = synthetic["test"]["text"][:3]
    free = lm_evaluation.generate_answers(model, tokenizer, articles, config, max_new_tokens=5)
    assert free["tokens"].max() <= 5
    # A head that scores every token 0 makes greedy decoding pick id 0, the end token: every answer ends at once.
    ending = copy.deepcopy(model)
    ending.config.tie_word_embeddings = False
    ending.lm_head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
    torch.nn.init.zeros_(ending.lm_head.weight)
    assert tokenizer.eos_token_id == 0
    ended = lm_evaluation.generate_answers(ending, tokenizer, articles, config, max_new_tokens=5)
    assert ended["ended"].all() and (ended["tokens"] == 0).all() and (ended["generation"] == "").all()


def test_batched_generation_matches_one_prompt_at_a_time(stand_in, synthetic, config):
    model, tokenizer = lm_models.load_lm(stand_in.path)
    articles = [synthetic["test"]["text"][0], synthetic["test"]["text"][1] + " and more words after that"]
    together = lm_evaluation.generate_answers(model, tokenizer, articles, config, max_new_tokens=4)
    alone = [lm_evaluation.generate_answers(model, tokenizer, [a], config, max_new_tokens=4).iloc[0]
             for a in articles]
    assert together["generation"].tolist() == [row["generation"] for row in alone]


def test_fixed_examples_take_the_classes_in_turn(synthetic):
    examples = lm_evaluation.fixed_examples(synthetic["test"], count=10)
    assert examples["label"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert examples.equals(lm_evaluation.fixed_examples(synthetic["test"], count=10))


# --------------------------------------------------------------------------------------------------- intervals
def test_two_level_bootstrap_on_known_predictions():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 4
    perfect = np.tile(labels, (3, 1))
    noisy = np.where(rng.random((3, 400)) < 0.5, labels, (labels + 1) % 4)
    summary = lm_evaluation.seed_and_row_bootstrap(labels, {"a": perfect, "b": noisy}, resamples=300)
    assert summary["arms"]["a"]["accuracy"] == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    expected_f1 = np.mean([f1_score(labels, p, average="macro") for p in noisy])
    assert summary["arms"]["b"]["macro_f1"]["mean"] == pytest.approx(expected_f1)
    difference = summary["difference"]["accuracy"]
    assert 0 < difference["ci_low"] < difference["mean"] < difference["ci_high"]
    assert difference["p_value"] < 0.01
    same = lm_evaluation.seed_and_row_bootstrap(labels, {"a": noisy, "b": noisy}, resamples=100)
    assert same["difference"]["accuracy"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    assert "no detectable difference" in lm_student.conclusion(same, test_rows=400)
    assert "the teacher helps" in lm_student.conclusion(summary, test_rows=400)
    assert "Only 400 of the 7,600" in lm_student.conclusion(summary, test_rows=7_600)


def test_gpu_cost_is_labelled_and_takes_the_price_as_an_argument():
    assert lm_student.gpu_cost(1800.0, 0.5, measured=True) == pytest.approx(
        {"usd": 0.25, "gpu_seconds": 1800.0, "usd_per_hour": 0.5, "basis": "measured GPU time"})
    assert lm_student.gpu_cost(1800.0, 0.5, measured=False)["basis"].startswith("projection")


# ------------------------------------------------------------------------------------------------------ end to end
def _teacher_logits(train) -> np.ndarray:
    logits = np.eye(4, dtype=np.float32)[train["label"]] * 3.0  # a confident, correct teacher
    logits[:, 0] += np.linspace(-1, 1, len(train))  # distinct rows, so misalignment would show
    return logits


def _workspace(config, synthetic, teacher_logits):
    return SimpleNamespace(config=config, student_train=synthetic["train"],
                           splits={"test": synthetic["test"], "train": synthetic["train"]})


def test_the_teachers_signal_reaches_the_right_rows_and_classes(synthetic, tmp_path, monkeypatch):
    """From random weights (no pretraining: on the synthetic word lists it teaches the LM to ignore the article), the
    teacher term alone makes the LM beat chance within seconds; misaligned rows or classes would not."""
    config = get_config("smoke", cache_dir=str(tmp_path), lm_train_rows=256, lm_epochs=3)
    teacher_logits = _teacher_logits(synthetic["train"])
    monkeypatch.setattr(pipeline, "load_or_compute_teacher_logits", lambda workspace, split: (teacher_logits, {}))
    monkeypatch.setattr(lm_models, "pretrain_steps", lambda config: 0)
    workspace = _workspace(config, synthetic, teacher_logits)
    random_init = lm_models.load_or_pretrain_stand_in(config, synthetic["train"]["text"])
    eval_rows = lm_evaluation.evaluation_rows(workspace)
    run = lm_student.load_or_run(config, random_init.path, lm_training.lm_training_rows(workspace), eval_rows,
                                 kd_weight=0.5, seed=0)
    assert (run.predictions == np.asarray(eval_rows["label"])).mean() > 0.45  # chance is 0.25


def test_with_and_without_the_teacher_both_learn_to_answer_and_stop(config, synthetic, stand_in, monkeypatch):
    train = synthetic["train"]
    teacher_logits = _teacher_logits(train)
    monkeypatch.setattr(pipeline, "load_or_compute_teacher_logits", lambda workspace, split: (teacher_logits, {}))
    monkeypatch.setattr(lm_student, "lm_seeds", lambda config: (0, 1))  # two seeds keep the test in seconds
    workspace = _workspace(config, synthetic, teacher_logits)
    rows = lm_training.lm_training_rows(workspace)
    assert len(rows) == 256
    by_text = dict(zip(train["text"], teacher_logits.tolist(), strict=True))
    assert all(np.allclose(by_text[t], z) for t, z in zip(rows["text"], rows["teacher_logits"], strict=True))

    eval_rows = lm_evaluation.evaluation_rows(workspace)
    labels = np.asarray(eval_rows["label"])
    model, tokenizer = lm_models.load_lm(stand_in.path)
    before = lm_evaluation.evaluate_lm(model, tokenizer, eval_rows, config)
    runs = lm_student.teacher_effect_runs(config, stand_in.path, rows, eval_rows)
    assert [(r.kd_weight > 0, r.seed) for r in runs] == [(True, 0), (True, 1), (False, 0), (False, 1)]
    for run in runs:  # both arms learn the answer's form: one of the four words, then the end token
        losses = [entry["loss_answer_ce"] for entry in run.history if "loss" in entry]
        assert losses[-1] < 0.5 * losses[0]
    kd = [entry["loss_verbalizer_kd"] for entry in runs[0].history if "loss" in entry]
    assert kd[-1] < kd[0]
    assert "loss_verbalizer_kd" not in runs[-1].history[0]

    examples = lm_evaluation.fixed_examples(synthetic["test"], count=8)
    after_model, after_tokenizer = lm_models.load_lm(runs[0].model_path)
    after = lm_evaluation.example_answers(after_model, after_tokenizer, examples, config)
    assert after["ended"].mean() >= 0.75 and (after["tokens"] <= 1).mean() >= 0.75  # a word, then the end
    assert set(after["generation"][after["ended"]]) <= {w for w in (" World", " Sports", " Business", " Science")}

    summary = lm_student.teacher_effect(runs, labels, resamples=200)
    times = lm_student.time_table(stand_in.record, runs, before["seconds"])
    document = lm_student.payload(config, model_name=config.lm_name, stand_in=stand_in.record, examples=examples,
                                  before_examples=lm_evaluation.example_answers(model, tokenizer, examples, config),
                                  after_examples=after, before=before, runs=runs, labels=labels, summary=summary,
                                  times=times, test_rows=len(synthetic["test"]))
    saved = results.load_result(lm_student.save(config, document))
    assert {"provenance", "model", "stand_in", "before", "after", "examples", "runs", "teacher_effect", "conclusion",
            "history", "time", "wall_seconds"} <= set(saved)
    assert set(saved["teacher_effect"]["arms"]) == {"with teacher (λ=0.5)", "without teacher (λ=0)"}
    assert len(saved["runs"]) == 4 and len(saved["examples"]) == 8
    markdown = lm_student.decoder_markdown(saved)
    assert "with teacher (λ=0.5)" in markdown and "difference (points)" in markdown and "⏹" in markdown

    again = lm_student.teacher_effect_runs(config, stand_in.path, rows, eval_rows)
    assert all(run.cached for run in again)
    np.testing.assert_array_equal(again[0].scores, runs[0].scores)
