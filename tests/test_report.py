"""The README's numbers must be the results files' numbers, and its sentences must follow from them."""

import json

import pytest

from helpers import report, report_prose, results
from helpers.config import get_config


def test_readme_matches_the_committed_results():
    config = get_config(report.report_profile())
    text = report.README.read_text()
    assert report.render(text, config) == text, "README is stale: run `python -m helpers.report`"


def interval(difference):
    return {"difference": difference, "ci_low": difference - 0.004, "ci_high": difference + 0.004, "p_value": 0.01}


def fake_report(tmp_path, chosen: str, gain: float):
    """A complete, consistent set of results documents with made-up numbers, written like the notebooks do."""
    config = get_config("smoke", results_dir=str(tmp_path / "results"), figures_dir=str(tmp_path / "figures"))
    names = {}
    for name in ("baseline", chosen, "label-smoothing-0.1"):
        names[name] = []
        for seed in (0, 1):
            run = f"students/{name}-seed{seed}-abcdef12"
            accuracy = 0.80 + (gain if name == chosen else 0.0)
            results.save_result(config, run, {"test": {"accuracy": accuracy, "macro_f1": accuracy},
                                              "validation": {"accuracy": accuracy}, "budget": "selection",
                                              "parameters": 1e6, "train_seconds": 1.0, "spec": {"name": name}},
                                seed=seed, data_fingerprint="data")
            names[name].append(run)
    results.save_result(config, "teacher", {
        "test": {"accuracy": 0.79, "macro_f1": 0.79, "rows": 200}, "parameters": 2e6,
        "logit_passes": [{"split": "student_train", "rows": 640, "first_pass_seconds": 2.0}],
        "seen_vs_unseen": [{"rows": "student_train", "seen_in_training": True, "count": 640, "accuracy": 0.95},
                           {"rows": "test", "seen_in_training": False, "count": 200, "accuracy": 0.79}]},
        data_fingerprint="data")
    results.save_result(config, "baseline", {"runs": names["baseline"]}, data_fingerprint="data")
    results.save_result(config, "data", {"tokens": {"mean": 50.0}, "split_sizes": {"train": 600, "validation": 64}},
                        data_fingerprint="data")
    comparisons = {"chosen": chosen, "best_control": "label-smoothing-0.1",
                   "versus_baseline": {chosen: {"across_seeds": interval(gain)},
                                       "label-smoothing-0.1": {"across_seeds": interval(0.0)}},
                   "chosen_vs_best_control": {"across_seeds": interval(gain)}}
    grid = [{"student": name, "bert_teacher": name == chosen, "validation_accuracy": 0.8, "verdict": "reference"}
            for name in names]
    results.save_result(config, "distillation", {
        "chosen": chosen, "seeds": [0, 1], "runs": names, "comparisons": comparisons, "grid": grid, "headline": [],
        "choice": {"chosen": chosen, "label_smoothing": "label-smoothing-0.1"}}, data_fingerprint="data")
    return config


@pytest.mark.parametrize("chosen, gain, words", [("augmented", 0.02, "is better than the baseline"),
                                                 ("committee", 0.0, "is not detectably different from the baseline")])
def test_the_headline_follows_the_chosen_student_and_its_interval(tmp_path, chosen, gain, words):
    config = fake_report(tmp_path, chosen, gain)
    assert report.complete(config)
    headline = report.headline_block(config)
    assert f"`{chosen}`" in headline and words in headline and "weaker" in headline


@pytest.mark.parametrize("chosen, gain, words", [("augmented", 0.02, "is better than plain fine-tuning"),
                                                 ("committee", 0.0, "is not detectably different from plain")])
def test_the_summary_and_the_answers_follow_the_chosen_student(tmp_path, chosen, gain, words):
    config = fake_report(tmp_path, chosen, gain)
    summary, answers = report.summary_block(config), report.interview_block(config)
    assert summary.count("\n\n") <= 2 and f"`{chosen}`" in summary and words in summary
    assert "not the brief's models" in summary  # smoke is a stand-in: the caveat says so
    assert ("teacher added something" in summary) == (gain > 0) and ("not detectable here" in summary) == (gain == 0)
    assert "estimate" in summary and "T4" in summary  # no GPU benchmark file: the cost is an estimate, said so
    for question in ("Training strategy", "Implementation details", "Model tuning", "Results interpretation",
                     "Pipeline and code quality", "Conceptual alternatives"):
        assert f"**{question}.**" in answers
    assert "partly repeat labels it memorised" in answers  # 95% on seen rows against 79% on test


def test_selection_stability_compares_the_two_budgets_where_they_differ(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    documents = report.report_documents(config)
    assert "needs no check" in report_prose.selection_stability(documents)
    documents["distillation"]["provenance"]["config"].update(selection_max_train_rows=100, max_train_rows=None)
    final = {"baseline": 0.85, "augmented": 0.84, "label-smoothing-0.1": 0.83}  # the grid had augmented on top
    for name, runs in documents["distillation"]["runs"].items():
        documents[runs[0]].update(budget="final", validation={"accuracy": final[name]})
    for row, accuracy in zip(documents["distillation"]["grid"], (0.80, 0.82, 0.79), strict=True):
        row["validation_accuracy"] = accuracy  # baseline, augmented, label smoothing
    sentence = report_prose.selection_stability(documents)
    assert "different top (`augmented` at the selection budget, `baseline` at the final one)" in sentence
    assert "2 of 3 pairs keep their order" in sentence


def test_figure_links_name_the_report_profile_only(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    assert report.figures_block(config) is None  # no figure saved yet: no links
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "per_class_f1.png").write_bytes(b"png")
    assert f"{folder.as_posix()}/per_class_f1.png" in report.figures_block(config)
    mixed = "![a](figures/cpu/per_class_f1.png) ![b](figures/full/efficiency.png)"
    assert report.foreign_figure_links(mixed, "cpu") == ["figures/full/efficiency.png"]
    assert report.foreign_figure_links(mixed.replace("full", "cpu"), "cpu") == []


def test_the_readme_shows_one_profiles_figures():
    profile = report.report_profile()
    assert report.foreign_figure_links(report.README.read_text(), profile) == []


def edit_provenance(config, name: str, **changes) -> None:
    """Rewrite one stored result's provenance with ``changes`` (a key set to None is removed)."""
    path = results.result_path(config, name)
    document = results.load_result(path)
    document["provenance"].update(changes)
    document["provenance"] = {key: value for key, value in document["provenance"].items() if value is not None}
    path.write_text(json.dumps(document))


HEADLINE = "<!-- generated:headline -->\nold\n<!-- /generated:headline -->"


def test_results_of_other_code_are_refused_naming_the_file(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "students/augmented-seed1-abcdef12", code_hash="another")
    with pytest.raises(results.MixedResultsError, match="code_hash.*augmented-seed1"):
        report.render(HEADLINE, config)


def test_results_of_the_same_code_at_another_commit_belong_together(tmp_path):
    """A commit that changes no computing code (documentation, the README generator) keeps every result valid."""
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "students/augmented-seed1-abcdef12", commit="0000000another")
    assert report.complete(config, strict=True)
    assert "No complete" not in report.render(HEADLINE, config)


def test_results_without_a_code_hash_are_refused_saying_to_rerun_the_report(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "baseline", code_hash=None)
    with pytest.raises(results.MixedResultsError, match=r"baseline.*make report"):
        report.render(HEADLINE, config)


def test_the_provenance_line_shows_the_code_hash_and_the_commit(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "teacher", code_hash="0123456789abcdef", commit="9eb4b85" + "0" * 33)
    line = report.provenance_line(results.load_result(config, "teacher"))
    assert "code `01234567` (commit `9eb4b85`)" in line


def test_an_incomplete_profile_renders_pending_blocks(tmp_path):
    config = get_config("full", results_dir=str(tmp_path / "full"))
    rendered = report.render("<!-- generated:results -->\nold\n<!-- /generated:results -->", config)
    assert "No complete `full` results" in rendered and "old" not in rendered


def test_every_figure_a_notebook_saves_has_a_caption():
    import re

    from helpers.config import PROJECT_ROOT
    from helpers.report_prose import FIGURES

    saved = {name for path in (PROJECT_ROOT / "notebooks").glob("*.ipynb")
             for name in re.findall(r'save\([^\n]*?config, \\"(\w+)\\"\)', path.read_text())}
    assert saved and saved <= set(FIGURES), sorted(saved - set(FIGURES))
