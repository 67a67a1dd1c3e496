"""The README's numbers must be the results files' numbers, and its sentences must follow from them."""

import json

import pytest

from helpers import results
from helpers.config import PROJECT_ROOT, get_config
from report import data as report_data
from report import prose as report_prose
from report import readme


def test_readme_matches_the_committed_results():
    config = get_config(report_data.report_profile())
    text = report_data.README.read_text()
    assert readme.render(text, config) == text, "README is stale: run `python -m report`"


def comparison(difference: float, seeds=(1, 2, 3), half_width: float = 0.004, equivalent: bool = False) -> dict:
    """A stored comparison (experiments.compare's shape) with a made-up seed-level interval."""
    t = {"difference": difference, "ci_low": difference - half_width, "ci_high": difference + half_width,
         "p_value": 0.01, "seeds": len(seeds), "std": 0.001, "method": "paired t over seeds"}
    return {"split": "test", "seeds": list(seeds), "paired_t": t, "per_seed": [],
            "across_seeds": {**t, "p_value": 0.02},
            "equivalence": {"margin": 0.005, "p_value": 0.01 if equivalent else 0.4, "equivalent": equivalent}}


def fake_report(tmp_path, chosen: str, share: float, equivalent: bool = False, seen_top: float = 0.99):
    """A complete, consistent set of results documents with made-up numbers, written like the notebooks do: the
    chosen strategy gains ``share`` over its twin and over the baseline."""
    config = get_config("smoke", results_dir=str(tmp_path / "results"), figures_dir=str(tmp_path / "figures"))
    twin = f"{chosen}-without-teacher"
    accuracy = {"baseline": 0.80, chosen: 0.80 + share, twin: 0.80, "matched-compute": 0.80}
    names = {}
    for name in accuracy:
        names[name] = []
        for seed in (1, 2, 3):
            run = f"students/{name}-seed{seed}-abcdef12"
            results.save_result(config, run, {
                "test": {"accuracy": accuracy[name], "macro_f1": accuracy[name]}, "spec": {"name": name},
                "validation": {"accuracy": accuracy[name]}, "budget": "final", "parameters": 1e6,
                "train_seconds": 1.0, "optimizer_steps": 200 if name == "matched-compute" else 100,
                "bert_teacher": name == chosen}, seed=seed, data_fingerprint="data")
            names[name].append(run)
    results.save_result(config, "teacher", {
        "test": {"accuracy": 0.79, "macro_f1": 0.79, "rows": 200}, "parameters": 2e6,
        "recipe": {"max_length": 24}, "recipes_tried": [], "rule_takes": None,
        "logit_passes": [{"split": "student_train", "rows": 640, "first_pass_seconds": 2.0}],
        "memorisation": [{"rows": "student_train", "seen_in_training": True, "count": 640, "accuracy": 0.99,
                          "mean_top_probability": seen_top, "mean_entropy": 0.02},
                         {"rows": "test", "seen_in_training": False, "count": 200, "accuracy": 0.79,
                          "mean_top_probability": 0.9, "mean_entropy": 0.3}]}, data_fingerprint="data")
    results.save_result(config, "baseline", {"runs": names["baseline"]}, data_fingerprint="data")
    results.save_result(config, "data", {"tokens": {"mean": 50.0}, "split_sizes": {"train": 600, "validation": 64}},
                        data_fingerprint="data")
    rows = {f"{chosen} − baseline": comparison(share), f"{chosen} − {twin}": comparison(share, equivalent=equivalent),
            f"{chosen} − matched-compute (best control)": comparison(share),
            f"{twin} − baseline": comparison(0.0), "matched-compute − baseline": comparison(0.0)}
    comparisons = {"chosen": chosen, "best_control": "matched-compute", "teacher_using": [chosen],
                   "share": f"{chosen} − {twin}", "rows": rows, "plateau_validation": comparison(0.001)}
    grid = [{"student": name, "bert_teacher": name == chosen, "validation_accuracy": 0.8, "screening": "reference",
             "gain_points": 0.0, "ci_low_points": 0.0, "ci_high_points": 0.0, "steps_vs_baseline": 1.0}
            for name in ("baseline", chosen)]
    headline = [{"comparison": label, "seeds": 3, "difference_points": c["paired_t"]["difference"] * 100,
                 "ci_low_points": c["paired_t"]["ci_low"] * 100, "ci_high_points": c["paired_t"]["ci_high"] * 100,
                 "p_value": 0.01, "bootstrap_ci_points": "[+0.00, +0.00]", "bootstrap_p": 0.02,
                 "verdict": "better"} for label, c in rows.items()]
    results.save_result(config, "distillation", {
        "chosen": chosen, "seeds": [1, 2, 3], "runs": names, "comparisons": comparisons, "grid": grid,
        "headline": headline, "choice": {"chosen": chosen, "label_smoothing": "label-smoothing-0.1"}},
        data_fingerprint="data")
    return config


@pytest.mark.parametrize("chosen, share, equivalent, words", [
    ("augmented", 0.02, False, "the teacher added accuracy"),
    ("committee", 0.0, False, "the teacher added nothing detectable; with 3 seeds"),
    ("response", 0.0, True, "equivalent within ±0.5 points")])
def test_the_first_screen_says_what_the_teachers_share_supports(tmp_path, chosen, share, equivalent, words):
    config = fake_report(tmp_path, chosen, share, equivalent)
    assert report_data.complete(config)
    summary = report_prose.summary_block(config)
    assert f"`{chosen}`" in summary and words in summary
    assert "not the brief's models" in summary  # smoke is a stand-in: the caveat says so
    assert "estimated" in summary and "T4" in summary  # no GPU benchmark file: the cost is an estimate, said so
    assert ("is better than the baseline" in summary) == (share > 0)


def test_the_regime_sentence_follows_the_measured_memorisation(tmp_path):
    assert "nearly the gold label's one-hot" in report_prose.summary_block(fake_report(tmp_path / "a", "response", 0.0))
    summary = report_prose.summary_block(fake_report(tmp_path / "b", "response", 0.0, seen_top=0.6))
    assert "short of memorised" in summary and "one-hot" not in summary


def test_the_six_answers_each_have_a_paragraph_with_numbers(tmp_path):
    answers = report_prose.interview_block(fake_report(tmp_path, "augmented", 0.02))
    paragraphs = answers.split("\n\n")
    assert len(paragraphs) == 6
    assert all(any(ch.isdigit() for ch in paragraph.split(".**", 1)[1]) for paragraph in paragraphs)


def test_one_seed_comparisons_are_not_decided(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    document = results.load_result(config, "distillation")
    document["headline"][0]["seeds"] = 1
    results.save_result(config, "distillation", {k: v for k, v in document.items() if k != "provenance"},
                        data_fingerprint="data")
    assert "one seed: not decided" in readme.distillation_block(config)


def test_figure_links_name_the_report_profile_only(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    assert report_prose.figures_block(config) is None  # no figure saved yet: no links
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "per_class_f1.png").write_bytes(b"png")
    assert f"{folder.as_posix()}/per_class_f1.png" in report_prose.more_figures_block(config)
    assert "per_class_f1" not in report_prose.figures_block(config)  # linked under Details, not shown inline
    mixed = "![a](figures/cpu/per_class_f1.png) ![b](figures/full/efficiency.png)"
    assert readme.foreign_figure_links(mixed, "cpu") == ["figures/full/efficiency.png"]
    assert readme.foreign_figure_links(mixed.replace("full", "cpu"), "cpu") == []


def test_the_readme_shows_one_profiles_figures():
    profile = report_data.report_profile()
    assert readme.foreign_figure_links(report_data.README.read_text(), profile) == []


def edit_provenance(config, name: str, **changes) -> None:
    """Rewrite one stored result's provenance with ``changes`` (a key set to None is removed)."""
    path = results.result_path(config, name)
    document = results.load_result(path)
    document["provenance"].update(changes)
    document["provenance"] = {key: value for key, value in document["provenance"].items() if value is not None}
    path.write_text(json.dumps(document))


HEADLINE = "<!-- generated:results -->\nold\n<!-- /generated:results -->"


def test_results_of_other_code_are_refused_naming_the_file(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "students/augmented-seed1-abcdef12", code_hash="another")
    with pytest.raises(results.MixedResultsError, match="code_hash.*augmented-seed1"):
        readme.render(HEADLINE, config)


def test_results_of_the_same_code_at_another_commit_belong_together(tmp_path):
    """A commit that changes no computing code (documentation, the README generator) keeps every result valid."""
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "students/augmented-seed1-abcdef12", commit="0000000another")
    assert report_data.complete(config, strict=True)
    assert "No complete" not in readme.render(HEADLINE, config)


def test_results_without_a_code_hash_are_refused_saying_to_rerun_the_report(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "baseline", code_hash=None)
    with pytest.raises(results.MixedResultsError, match=r"baseline.*make report"):
        readme.render(HEADLINE, config)


def test_the_provenance_line_shows_the_code_hash_and_the_commit(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    edit_provenance(config, "teacher", code_hash="0123456789abcdef", commit="9eb4b85" + "0" * 33)
    line = report_data.provenance_line(results.load_result(config, "teacher"))
    assert "code `01234567` (commit `9eb4b85`)" in line


def test_an_incomplete_profile_renders_pending_blocks(tmp_path):
    config = get_config("full", results_dir=str(tmp_path / "full"))
    rendered = readme.render("<!-- generated:results -->\nold\n<!-- /generated:results -->", config)
    assert "No complete `full` results" in rendered and "old" not in rendered


def test_every_figure_a_notebook_saves_has_a_caption():
    import re

    from helpers.config import PROJECT_ROOT
    from report.prose import FIGURES

    saved = {name for path in (PROJECT_ROOT / "notebooks").glob("*.ipynb")
             for name in re.findall(r'save\([^\n]*?config, \\"(\w+)\\"\)', path.read_text())}
    assert saved and saved <= set(FIGURES), sorted(saved - set(FIGURES))


def test_every_readme_link_and_image_points_at_a_file():
    """Links inside the repository resolve (anchors and web addresses aside): a moved notebook or a figure the
    report no longer saves fails here."""
    import re

    from helpers.config import PROJECT_ROOT

    text = report_data.README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]
    assert local, "no local link found: the pattern is wrong"
    missing = [t for t in local if not (PROJECT_ROOT / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
    assert "../" not in "".join(local), "README links must stay inside the repository"


def test_the_repository_url_is_set_in_one_place():
    url = readme.repository_url()
    for path in [report_data.README, *sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))]:
        text = path.read_text()
        assert readme.with_repository_links(text, url) == text, f"{path.name} names another repository: make readme"
        assert "colab.research.google.com/github/" not in text or url.removeprefix("https://github.com/") in text
    moved = readme.with_repository_links(
        '[![b](https://colab.research.google.com/github/a/b/blob/main/n.ipynb)] repository = "https://github.com/a/b" '
        "`https://github.com/a/b`", "https://github.com/me/fork")
    assert moved == ('[![b](https://colab.research.google.com/github/me/fork/blob/main/n.ipynb)] '
                     'repository = "https://github.com/me/fork" `https://github.com/me/fork`')


@pytest.mark.parametrize("difference, half_width, words", [
    (-0.0025, 0.004, "at its plateau"),  # flat: the interval holds 0 and the gain is under 0.2 points
    (-0.0080, 0.004, "past its plateau"),  # the whole interval below 0: more steps hurt
    (+0.0030, 0.004, "**not** at the plateau"),  # twice the steps add 0.3 points
])
def test_the_plateau_sentence_follows_the_doubling_interval(difference, half_width, words):
    plateau = comparison(difference, half_width=half_width)["paired_t"]
    assert words in report_prose._plateau({"plateau": plateau, "compute": None})


def test_the_decoder_behaviour_is_read_from_every_scored_answer():
    run = {"arm": "with teacher", "seed": 0, "accuracy": 0.6}
    labels = ["World", "Sports"]
    document = {
        "runs": [run, {"arm": "without teacher", "seed": 0, "accuracy": 0.5}],
        "after": {"arm": "with teacher", "seed": 0, "rule": "the first run"},
        "before": {"per_class": dict.fromkeys(labels)},
        "format_compliance": {
            "definition": "one label word, then the end", "rows": 7600, "before": 0.0,
            "arms": {"with teacher": 0.97, "without teacher": 0.95},
            "label_shares": {"before": {"scored": {"World": 1.0, "Sports": 0.0}},
                             "with teacher": {"scored": {"World": 0.4, "Sports": 0.6}}}}}
    text = readme.decoder_behaviour(document)
    assert "7,600 scored test answers" in text and "0% before" in text and "with teacher 97%" in text
    assert "World 100% → 40%" in text and "run 2 of 2" in text


def test_the_best_control_row_is_shown_once_where_it_is_the_twin(tmp_path):
    config = fake_report(tmp_path, "augmented", 0.02)
    document = results.load_result(config, "distillation")
    assert "(best control)" in readme.distillation_block(config)  # matched-compute: a row of its own
    for row in document["headline"]:
        row["comparison"] = row["comparison"].replace("matched-compute (best control)",
                                                      "augmented-without-teacher (best control)")
    results.save_result(config, "distillation", {k: v for k, v in document.items() if k != "provenance"},
                        data_fingerprint="data")
    block = readme.distillation_block(config)
    assert "(best control)" not in block and "| augmented − augmented-without-teacher |" in block


@pytest.mark.parametrize("ece_gap, nll_gap, words", [
    (0.001, 0.001, "no difference is claimed"),  # means without an interval: a small gap names no direction
    (0.05, 0.10, "the distilled student is the worse calibrated"),
    (-0.05, -0.10, "the distilled student is the better calibrated"),
    (0.05, -0.05, "mixed"),
])
def test_calibration_is_called_better_or_worse_only_past_its_gap(tmp_path, ece_gap, nll_gap, words):
    config = fake_report(tmp_path, "augmented", 0.02)
    base = {"model": "baseline", "ece": 0.03, "nll": 0.36}
    chosen = {"model": "distilled (augmented)", "ece": 0.03 + ece_gap, "nll": 0.36 + nll_gap}
    results.save_result(config, "analysis", {"comparison": [base, chosen]}, data_fingerprint="data")
    assert words in report_prose.interview_block(config).split("**6 · ")[1]


def test_a_share_named_worse_says_where_the_bootstrap_and_the_equivalence_test_disagree():
    """The verdict reads the seed-level interval; the sentence must not hide a bootstrap interval that holds 0."""
    firm = comparison(-0.01)  # seed-level and two-level intervals both below 0
    assert report_prose.share_meaning(firm) == "a peer student of the same rows was the better teacher"
    loose = comparison(-0.0012, half_width=0.001, equivalent=True)
    loose["across_seeds"] = {**loose["across_seeds"], "ci_low": -0.0034, "ci_high": 0.0009}
    text = report_prose.share_meaning(loose)
    assert "seed-level interval only" in text and "-0.34 to +0.09" in text
    assert "within ±0.5 points" in text
