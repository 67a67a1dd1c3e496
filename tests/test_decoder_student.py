"""The decoder-only student end to end at smoke size: the pretrained stand-in, generation that stops at the end token,
answer codes, the teacher effect through evaluate's two-level interval, and fine-tuning with and without the teacher
into a results document and a loss figure (thresholds, never exact floats)."""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

import decoder.report
import decoder.stand_in
import decoder.student
from helpers import pipeline, plots, results
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
    return decoder.stand_in.load_or_pretrain_stand_in(config, synthetic["train"]["text"])


# ------------------------------------------------------------------------------------------------- the stand-in
def test_pretraining_lowers_the_held_out_lm_loss_and_is_cached(config, synthetic, stand_in):
    record = stand_in.record
    assert not record["cached"] and record["steps"] == config.lm_pretrain_steps
    assert record["heldout_loss_after"] < 0.75 * record["heldout_loss_before"]  # random init: ≈ log |V|
    losses = [entry["loss"] for entry in record["history"]]
    assert losses[-1] < losses[0]
    again = decoder.stand_in.load_or_pretrain_stand_in(config, synthetic["train"]["text"])
    assert again.path == stand_in.path and again.record["cached"]
    assert "stand-in, not SmolLM2" in decoder.stand_in.describe_stand_in(record)


def test_pretraining_texts_hold_out_rows_and_blocks_separate_texts_with_eos(stand_in):
    texts, heldout = decoder.stand_in.pretraining_texts([f"text {i}" for i in range(100)], seed=0)
    assert len(heldout) == 10 and not set(texts) & set(heldout) and len(texts) + len(heldout) == 100
    _, tokenizer = decoder.student.load_lm(stand_in.path)
    blocks = decoder.stand_in.pack_blocks(tokenizer, ["one two", "three"], block_size=2)
    assert blocks.shape[1] == 2 and (blocks == tokenizer.eos_token_id).sum() >= 1


def test_the_stand_in_loads_like_smollm2_with_eos_as_pad(stand_in):
    model, tokenizer = decoder.student.load_lm(stand_in.path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == model.generation_config.eos_token_id


# -------------------------------------------------------------------------------------------------- generation
def _always_ends(model):
    """A copy whose head scores every token 0: greedy decoding picks id 0, the end token, at once."""
    ending = copy.deepcopy(model)
    ending.config.tie_word_embeddings = False
    ending.lm_head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
    torch.nn.init.zeros_(ending.lm_head.weight)
    return ending


def test_generation_stops_at_the_end_token(stand_in, synthetic, config):
    model, tokenizer = decoder.student.load_lm(stand_in.path)
    articles = synthetic["test"]["text"][:3]
    free = decoder.report.generate_answers(model, tokenizer, articles, config, max_new_tokens=5)
    assert free["tokens"].max() <= 5
    assert tokenizer.eos_token_id == 0
    ended = decoder.report.generate_answers(_always_ends(model), tokenizer, articles, config, max_new_tokens=5)
    assert ended["ended"].all() and (ended["tokens"] == 0).all() and (ended["generation"] == "").all()


class _Scripted(torch.nn.Module):
    """A stand-in LM that writes ``first`` after any prompt, then ``then`` after ``first``: a known greedy answer."""

    def __init__(self, vocabulary: int, first: int, then: int):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))
        self.vocabulary, self.first, self.then = vocabulary, first, then

    def forward(self, input_ids, logits_to_keep=1, **_):
        logits = torch.zeros(len(input_ids), logits_to_keep, self.vocabulary)
        wrote_first = input_ids[:, -1] == self.first
        logits[wrote_first, -1, self.then] = 5.0
        logits[~wrote_first, -1, self.first] = 5.0
        return SimpleNamespace(logits=logits)


def test_answer_codes_name_the_class_only_for_one_label_word_then_the_end(stand_in, synthetic, config):
    _, tokenizer = decoder.student.load_lm(stand_in.path)
    articles, vocabulary = synthetic["test"]["text"][:5], len(tokenizer)
    sports, end = decoder.student.verbalizer_token_ids(tokenizer)[1], tokenizer.eos_token_id
    not_a_label = decoder.student.NOT_A_LABEL
    cases = {(sports, end): 1, (sports, sports + 1): not_a_label, (end, end): not_a_label}
    for (first, then), expected in cases.items():
        scores, answers = decoder.student.predict(_Scripted(vocabulary, first, then), tokenizer, articles, config)
        assert scores.shape == (5, 4) and (answers == expected).all(), (first, then)


def test_batched_generation_matches_one_prompt_at_a_time(stand_in, synthetic, config):
    model, tokenizer = decoder.student.load_lm(stand_in.path)
    articles = [synthetic["test"]["text"][0], synthetic["test"]["text"][1] + " and more words after that"]
    together = decoder.report.generate_answers(model, tokenizer, articles, config, max_new_tokens=4)
    alone = [decoder.report.generate_answers(model, tokenizer, [a], config, max_new_tokens=4).iloc[0]
             for a in articles]
    assert together["generation"].tolist() == [row["generation"] for row in alone]


def test_fixed_examples_take_the_classes_in_turn(synthetic):
    examples = decoder.report.fixed_examples(synthetic["test"], count=10)
    assert examples["label"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert examples.equals(decoder.report.fixed_examples(synthetic["test"], count=10))


# --------------------------------------------------------------------------------------------------- intervals
def _runs(kd_weight: float, predictions: np.ndarray) -> list[decoder.student.LMRun]:
    """Runs (one per seed) whose scores pick ``predictions`` (S, N)."""
    return [decoder.student.LMRun(kd_weight, seed, np.eye(4)[row], np.full(len(row), decoder.student.NOT_A_LABEL))
            for seed, row in enumerate(predictions)]


def test_teacher_effect_on_known_predictions_uses_evaluates_interval_and_verdict():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 4
    perfect = np.tile(labels, (3, 1))
    noisy = np.where(rng.random((3, 400)) < 0.5, labels, (labels + 1) % 4)
    summary = decoder.report.teacher_effect(_runs(0.5, perfect) + _runs(0.0, noisy), labels, resamples=300)
    assert list(summary["arms"]) == ["with teacher (λ=0.5)", "without teacher (λ=0)"]
    assert summary["arms"]["with teacher (λ=0.5)"]["accuracy"] == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    expected_f1 = np.mean([f1_score(labels, p, average="macro") for p in noisy])
    assert summary["arms"]["without teacher (λ=0)"]["macro_f1"]["mean"] == pytest.approx(expected_f1)
    difference = summary["difference"]["accuracy"]
    assert 0 < difference["ci_low"] < difference["mean"] < difference["ci_high"]
    assert difference["p_value"] < 0.01 and summary["seeds"] == 3 and summary["rows"] == 400
    same = decoder.report.teacher_effect(_runs(0.5, noisy) + _runs(0.0, noisy), labels, resamples=100)
    assert same["difference"]["accuracy"] == {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    assert "no detectable difference" in decoder.report.conclusion(same, test_rows=400)
    assert "the teacher helps" in decoder.report.conclusion(summary, test_rows=400)
    assert "Only 400 of the 7,600" in decoder.report.conclusion(summary, test_rows=7_600)
    with pytest.raises(ValueError, match="Two arms"):
        decoder.report.teacher_effect(_runs(0.5, noisy), labels)


def test_format_compliance_counts_every_scored_answer_per_run_and_arm():
    labels = np.arange(8) % 4
    before = {"answers": np.array([-1] * 6 + [0, 1]), "scores": np.eye(4)[np.zeros(8, dtype=int)]}
    runs = _runs(0.5, np.tile(labels, (2, 1))) + _runs(0.0, np.tile(labels, (2, 1)))
    runs[0].answers = labels.copy()  # all well formed
    runs[1].answers = np.where(labels == 3, -1, labels)  # 6 of 8
    compliance = decoder.report.format_compliance(before, runs)
    assert compliance["before"] == 0.25 and compliance["rows"] == 8
    assert [r["share"] for r in compliance["runs"]] == [1.0, 0.75, 0.0, 0.0]
    assert compliance["arms"] == {"with teacher (λ=0.5)": 0.875, "without teacher (λ=0)": 0.0}
    shares = compliance["label_shares"]
    assert shares["before"]["scored"]["World"] == 1.0 and shares["before"]["answered"]["other"] == 0.75
    assert shares["with teacher (λ=0.5)"]["answered"]["Sci/Tech"] == pytest.approx(0.125)
    assert decoder.report.format_table(compliance)["one label word + end (%)"].tolist() == [25.0, 100.0, 75.0, 0.0, 0.0]
    assert decoder.report.label_share_table(compliance).shape == (5, 6)


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
    config = get_config("smoke", cache_dir=str(tmp_path), lm_train_rows=256, lm_epochs=3, lm_pretrain_steps=0)
    teacher_logits = _teacher_logits(synthetic["train"])
    monkeypatch.setattr(pipeline, "load_or_compute_teacher_logits", lambda workspace, split: (teacher_logits, {}))
    workspace = _workspace(config, synthetic, teacher_logits)
    random_init = decoder.stand_in.load_or_pretrain_stand_in(config, synthetic["train"]["text"])
    eval_rows = decoder.report.evaluation_rows(workspace)
    rows = decoder.student.training_rows(workspace)
    run = decoder.student.load_or_run(config, random_init.path, rows, eval_rows, kd_weight=0.5, seed=0)
    assert (run.predictions == np.asarray(eval_rows["label"])).mean() > 0.45  # chance is 0.25


def test_with_and_without_the_teacher_both_learn_to_answer_and_stop(config, synthetic, stand_in, monkeypatch):
    train = synthetic["train"]
    teacher_logits = _teacher_logits(train)
    monkeypatch.setattr(pipeline, "load_or_compute_teacher_logits", lambda workspace, split: (teacher_logits, {}))
    config = dataclasses.replace(config, lm_seeds=(0, 1))  # two seeds keep the test in seconds
    workspace = _workspace(config, synthetic, teacher_logits)
    rows = decoder.student.training_rows(workspace)
    assert len(rows) == 256
    by_text = dict(zip(train["text"], teacher_logits.tolist(), strict=True))
    assert all(np.allclose(by_text[t], z) for t, z in zip(rows["text"], rows["teacher_logits"], strict=True))

    eval_rows = decoder.report.evaluation_rows(workspace)
    labels = np.asarray(eval_rows["label"])
    model, tokenizer = decoder.student.load_lm(stand_in.path)
    before = decoder.report.evaluate_lm(model, tokenizer, eval_rows, config)
    runs = decoder.student.teacher_effect_runs(config, stand_in.path, rows, eval_rows)
    assert [(r.kd_weight > 0, r.seed) for r in runs] == [(True, 0), (True, 1), (False, 0), (False, 1)]
    for run in runs:  # both arms learn the answer's form: one of the four words, then the end token
        losses = [entry["loss_answer_ce"] for entry in run.history if "loss" in entry]
        assert losses[-1] < 0.5 * losses[0]
    kd = [entry["loss_verbalizer_kd"] for entry in runs[0].history if "loss" in entry]
    assert kd[-1] < kd[0]
    assert "loss_verbalizer_kd" not in runs[-1].history[0]

    examples = decoder.report.fixed_examples(synthetic["test"], count=8)
    after_model, after_tokenizer = decoder.student.load_lm(runs[0].model_path)
    after = decoder.report.example_answers(after_model, after_tokenizer, examples, config)
    assert after["ended"].mean() >= 0.75 and (after["tokens"] <= 1).mean() >= 0.75  # a word, then the end
    assert set(after["generation"][after["ended"]]) <= {w for w in (" World", " Sports", " Business", " Science")}

    for run in runs:  # a well-formed greedy answer names the argmax verbalizer: its word is the likeliest token
        named = run.answers != decoder.student.NOT_A_LABEL
        assert named.mean() >= 0.75 and (run.answers[named] == run.predictions[named]).all()
    codes = decoder.student.predict(after_model, after_tokenizer, examples["text"].tolist(), config)[1]
    words = [decoder.student.VERBALIZERS[code] if code >= 0 else None for code in codes]
    assert words == [g if e and t == 1 else None for g, e, t in zip(after["generation"], after["ended"],
                                                                     after["tokens"], strict=True)]

    summary = decoder.report.teacher_effect(runs, labels, resamples=200)
    times = decoder.report.time_table(stand_in.record, runs, before["seconds"])
    document = decoder.report.payload(
        config, model_name=config.model_description("lm"), stand_in=stand_in.record, examples=examples,
        before_examples=decoder.report.example_answers(model, tokenizer, examples, config), after_examples=after,
        before=before, runs=runs, labels=labels, summary=summary, times=times, test_rows=len(synthetic["test"]))
    saved = results.load_result(decoder.report.save(config, document))
    assert {"provenance", "model", "stand_in", "before", "after", "examples", "runs", "teacher_effect", "conclusion",
            "history", "time", "wall_seconds", "format_compliance"} <= set(saved)
    assert set(saved["teacher_effect"]["arms"]) == {"with teacher (λ=0.5)", "without teacher (λ=0)"}
    assert len(saved["runs"]) == 4 and len(saved["examples"]) == 8
    # The pre-registered "after" run: the teacher's arm at the first seed, whatever its accuracy.
    first = next(run for run in runs if run.kd_weight > 0 and run.seed == config.lm_seeds[0])
    assert (saved["after"]["arm"], saved["after"]["seed"]) == (decoder.report.arm_name(first.kd_weight), first.seed)
    assert saved["after"]["accuracy"] == pytest.approx((first.predictions == labels).mean())
    compliance = saved["format_compliance"]
    assert compliance["rows"] == len(eval_rows) and len(compliance["runs"]) == 4
    assert min(compliance["arms"].values()) > compliance["before"]
    markdown = decoder.report.decoder_markdown(saved)
    assert "with teacher (λ=0.5)" in markdown and "difference (points)" in markdown and "⏹" in markdown

    figure = plots.decoder_loss(decoder.report.loss_frame(runs))
    ce_axis, kd_axis = figure.axes
    # Both arms' answer cross-entropy on one axis, the distillation term apart; one legend entry per arm.
    assert [line.get_label() for line in ce_axis.get_lines()] == ["with teacher (λ=0.5)", "without teacher (λ=0)"]
    assert [line.get_label() for line in kd_axis.get_lines()] == ["with teacher (λ=0.5)"]
    assert len(ce_axis.get_legend().get_texts()) <= 5 and kd_axis.get_legend() is None
    frame = decoder.report.loss_frame(runs)
    teacher_ce = frame[frame["arm"] == "with teacher (λ=0.5)"].groupby("step")["answer_ce"].mean()
    np.testing.assert_allclose(ce_axis.get_lines()[0].get_ydata(), teacher_ce.to_numpy())

    again = decoder.student.teacher_effect_runs(config, stand_in.path, rows, eval_rows)
    assert all(run.cached for run in again)
    np.testing.assert_array_equal(again[0].scores, runs[0].scores)
    np.testing.assert_array_equal(again[0].answers, runs[0].answers)
