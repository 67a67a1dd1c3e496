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
    return {"split": "test", "rows": 200, "seeds": list(seeds), "paired_t": t, "per_seed": [],
            "across_seeds": {**t, "p_value": 0.02},
            "equivalence": {"margin": 0.005, "p_value": 0.01 if equivalent else 0.4, "equivalent": equivalent}}


def headline_row(label: str, c: dict, p_holm, verdict: str) -> dict:
    t = c["paired_t"]
    return {"comparison": label, "seeds": len(c["seeds"]), "difference_points": t["difference"] * 100,
            "ci_low_points": t["ci_low"] * 100, "ci_high_points": t["ci_high"] * 100, "p_value": t["p_value"],
            "p_holm": p_holm, "bootstrap_ci_points": "[+0.00, +0.00]", "verdict": verdict}


def fake_report(tmp_path, chosen: str, share: float, verdict: str = "better", seen_top: float = 0.99):
    """A complete, consistent set of results documents with made-up numbers, written like the notebooks do: the
    chosen strategy gains ``share`` over its twin and over the baseline."""
    config = get_config("smoke", results_dir=str(tmp_path / "results"), figures_dir=str(tmp_path / "figures"))
    twin = "baseline" if chosen == "teacher-labels" else f"{chosen}-without-teacher"
    accuracy = {"baseline": 0.80, chosen: 0.80 + share, twin: 0.80, "matched-compute": 0.80}
    names = {}
    for name in accuracy:
        names[name] = []
        for seed in (1, 2, 3):
            run = f"students/{name}-seed{seed}-abcdef12"
            results.save_result(config, run, {
                "test": {"accuracy": accuracy[name], "macro_f1": accuracy[name] - 0.01}, "spec": {"name": name},
                "validation": {"accuracy": accuracy[name]}, "budget": "final", "parameters": 1e6,
                "train_seconds": 1.0, "optimizer_steps": 200 if name == "matched-compute" else 100,
                "bert_teacher": name == chosen}, seed=seed, data_fingerprint="data")
            names[name].append(run)
    rule = {"max_length": 24, "memorised": True, "weaker_in_window": True, "gap_points": 1.2}
    results.save_result(config, "teacher", {
        "test": {"accuracy": 0.79, "macro_f1": 0.78, "rows": 200}, "parameters": 2e6,
        "recipe": {"max_length": 24}, "recipes_tried": [{"max_length": 32}, {"max_length": 24}], "rule": rule,
        "rule_takes": 24, "logit_passes": [{"split": "student_train", "rows": 640, "first_pass_seconds": 2.0}],
        "memorisation": [{"rows": "student_train", "seen_in_training": True, "count": 640, "accuracy": 0.99,
                          "mean_top_probability": seen_top, "mean_entropy": 0.02},
                         {"rows": "test", "seen_in_training": False, "count": 200, "accuracy": 0.79,
                          "mean_top_probability": 0.9, "mean_entropy": 0.3}]}, data_fingerprint="data")
    results.save_result(config, "baseline", {"runs": names["baseline"]}, data_fingerprint="data")
    results.save_result(config, "data", {"tokens": {"mean": 50.0}, "split_sizes": {"train": 600, "validation": 64}},
                        data_fingerprint="data")
    primary = f"{chosen} − baseline"
    rows = {primary: comparison(share), f"{chosen} − {twin}": comparison(share),
            "matched-compute − baseline": comparison(0.0)}
    holm = {primary: None, f"{chosen} − {twin}": 0.03, "matched-compute − baseline": 0.5}
    verdicts = {primary: verdict, f"{chosen} − {twin}": verdict,
                "matched-compute − baseline": "no detectable difference"}
    plateau = {**comparison(0.001, half_width=0.0005), "split": "unseen+unseen_more", "rows": 800,
               "gain_limit": 0.002, "at_plateau": True}
    comparisons = {"chosen": chosen, "primary": primary, "best_control": "matched-compute", "teacher_using": [chosen],
                   "share": f"{chosen} − {twin}", "twin": twin, "rows": rows, "plateau": plateau,
                   "multiplicity": "Holm over the 2 comparisons beside the primary one"}
    grid = [{"student": name, "bert_teacher": name in (chosen, "consistent"), "accuracy": 0.8, "gain_points": gain,
             "ci_low_points": gain - 0.5, "ci_high_points": gain + 0.5, "validation_gain_points": gain + 0.3,
             "steps_vs_baseline": 2.0 if name in ("consistent", "views-baseline") else 1.0,
             "teacher_every_step": name == "consistent", "screening": "reference" if name == "baseline" else "screen"}
            for name, gain in (("baseline", 0.0), (chosen, 0.2), ("consistent", 0.4), ("views-baseline", 0.1))]
    results.save_result(config, "distillation", {
        "chosen": chosen, "seeds": [1, 2, 3], "runs": names, "comparisons": comparisons, "grid": grid,
        "selection_rows": "unseen", "selection_bias": {"bias_points": 0.3, "teacher_using_points": 0.3,
                                                       "no_teacher_points": 0.0},
        "headline": [headline_row(label, c, holm[label], verdicts[label]) for label, c in rows.items()],
        "choice": {"chosen": chosen, "label_smoothing": "label-smoothing-0.1"}}, data_fingerprint="data")
    return config


@pytest.mark.parametrize("chosen, share, verdict", [
    ("response", 0.02, "better"), ("committee", 0.0, "no detectable difference"),
    ("teacher-labels", -0.01, "worse")])
def test_the_first_screen_gives_the_answer_then_the_teachers_share(tmp_path, chosen, share, verdict):
    config = fake_report(tmp_path, chosen, share, verdict)
    assert report_data.complete(config)
    summary = report_prose.summary_block(config)
    answer = summary.split("\n\n")[0]
    assert answer.startswith(f"**Answer: {verdict}.** `{chosen}`") and f"{share * 100:+.2f} [" in answer
    assert len(answer.split(f"`{chosen}`:")[0].split()) <= 40  # the direct answer, before the strategy's description
    # teacher-labels' twin is the baseline: the share is the answer itself, said so; otherwise its own interval.
    assert ("trains exactly as the baseline" in summary) == (chosen == "teacher-labels")
    assert "Holm-adjusted p = 0.03" in summary or chosen == "teacher-labels"
    assert "Function matching** (`consistent`, not chosen)" in summary and "+0.40 [-0.10, +0.90]" in summary
    assert "+0.30 against the same views without the teacher" in summary
    assert "not the brief's models" in summary  # smoke is a stand-in: the caveat says so
    assert "planned, not measured" in summary and "Colab T4" in summary  # the planner's cost, said so
    assert "| teacher | — | 79.00 | 78.00 |" in summary  # accuracy and macro-F1 in the small table


def test_the_answer_picture_is_drawn_from_the_results_and_linked_once_it_exists(tmp_path):
    config = fake_report(tmp_path, "response", 0.02)
    assert "answer.png" not in report_prose.summary_block(config)
    path = readme.answer_figure(config)
    assert path.exists() and path.stat().st_size > 1000
    assert "answer.png)" in report_prose.summary_block(config)


def test_the_six_answers_each_have_a_paragraph_with_numbers(tmp_path):
    answers = report_prose.interview_block(fake_report(tmp_path, "response", 0.02))
    paragraphs = answers.split("\n\n")
    assert len(paragraphs) == 6
    assert all(any(ch.isdigit() for ch in paragraph.split(".**", 1)[1]) for paragraph in paragraphs)
    assert "favoured teacher-using students by +0.30 points" in paragraphs[2]
    assert "Primary (declared before the pass): `response` − baseline +2.00 [+1.60, +2.40] points, better" in (
        paragraphs[3])
    assert "matched-compute − baseline: 0.5)" in paragraphs[3]  # the others' Holm-adjusted p, not their rows again


def test_the_screen_reads_the_selection_rows_and_states_the_validation_bias(tmp_path):
    block = readme.screening_block(fake_report(tmp_path, "response", 0.02))
    assert "Screening on the unseen rows" in block and "unseen acc. (%)" in block
    assert "favour the teacher-using runs by +0.30 points" in block
    assert "| consistent | yes | 80.00 | +0.40 [-0.10, +0.90] | +0.70 |" in block


def test_the_comparison_table_marks_the_primary_row_and_holm_for_the_rest(tmp_path):
    block = readme.distillation_block(fake_report(tmp_path, "response", 0.02))
    lines = [line for line in block.splitlines() if line.startswith("| response") or line.startswith("| matched")]
    assert "| primary |" in lines[0] and "| 0.03 |" in lines[1] and "| 0.5 |" in lines[2]
    assert "Holm over the 2 comparisons" in block


def test_one_seed_comparisons_are_not_decided(tmp_path):
    config = fake_report(tmp_path, "response", 0.02)
    document = results.load_result(config, "distillation")
    document["headline"][0]["seeds"] = 1
    results.save_result(config, "distillation", {k: v for k, v in document.items() if k != "provenance"},
                        data_fingerprint="data")
    assert "one seed: not decided" in readme.distillation_block(config)


def test_figure_links_name_the_report_profile_only(tmp_path):
    config = fake_report(tmp_path, "response", 0.02)
    assert report_prose.figures_block(config) is None  # no figure saved yet: no links
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "per_class_f1.png").write_bytes(b"png")
    assert f"{folder.as_posix()}/per_class_f1.png" in report_prose.figures_block(config, more=True)
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
    config = fake_report(tmp_path, "response", 0.02)
    edit_provenance(config, "students/response-seed1-abcdef12", code_hash="another")
    with pytest.raises(results.MixedResultsError, match="code_hash.*response-seed1"):
        readme.render(HEADLINE, config)


def test_results_of_the_same_code_at_another_commit_belong_together(tmp_path):
    """A commit that changes no computing code (documentation, the README generator) keeps every result valid."""
    config = fake_report(tmp_path, "response", 0.02)
    edit_provenance(config, "students/response-seed1-abcdef12", commit="0000000another")
    assert report_data.complete(config, strict=True)
    assert "No complete" not in readme.render(HEADLINE, config)


def test_results_without_a_code_hash_are_refused_saying_to_rerun_the_report(tmp_path):
    config = fake_report(tmp_path, "response", 0.02)
    edit_provenance(config, "baseline", code_hash=None)
    with pytest.raises(results.MixedResultsError, match=r"baseline.*make report"):
        readme.render(HEADLINE, config)


def test_the_provenance_line_shows_the_code_hash_and_the_commit(tmp_path):
    config = fake_report(tmp_path, "response", 0.02)
    edit_provenance(config, "teacher", code_hash="0123456789abcdef", commit="9eb4b85" + "0" * 33)
    line = report_data.provenance_line(results.load_result(config, "teacher"))
    assert "code `01234567` (commit `9eb4b85`)" in line


def test_an_incomplete_profile_renders_pending_blocks(tmp_path):
    config = get_config("full", results_dir=str(tmp_path / "full"))
    rendered = readme.render("<!-- generated:summary -->\nold\n<!-- /generated:summary -->", config)
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
    import importlib.util

    spec = importlib.util.spec_from_file_location("repository_links", PROJECT_ROOT / "scripts/repository_links.py")
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    url = links.repository_url()
    for path in [report_data.README, *sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))]:
        text = path.read_text()
        assert links.with_repository_links(text, url) == text, f"{path.name} names another repository: make readme"
        assert "colab.research.google.com/github/" not in text or url.removeprefix("https://github.com/") in text
    moved = links.with_repository_links(
        '[![b](https://colab.research.google.com/github/a/b/blob/main/n.ipynb)] repository = "https://github.com/a/b" '
        "`https://github.com/a/b`", "https://github.com/me/fork")
    assert moved == ('[![b](https://colab.research.google.com/github/me/fork/blob/main/n.ipynb)] '
                     'repository = "https://github.com/me/fork" `https://github.com/me/fork`')


@pytest.mark.parametrize("difference, half_width, at, words", [
    (-0.0025, 0.001, True, "at its plateau by the declared rule"),
    (-0.0080, 0.004, False, "past its plateau"),  # the whole interval below 0: more steps hurt
    (+0.0010, 0.004, False, "**not** shown at its plateau"),  # the upper end reaches past 0.2 points
])
def test_the_plateau_sentence_follows_the_declared_rule(difference, half_width, at, words):
    plateau = {**comparison(difference, half_width=half_width), "rows": 20_000, "gain_limit": 0.002, "at_plateau": at}
    assert words in report_prose._plateau(plateau) and "20,000 unseen rows" in report_prose._plateau(plateau)


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


@pytest.mark.parametrize("ece_gap, nll_gap, words", [
    (0.001, 0.001, "no difference is claimed"),  # means without an interval: a small gap names no direction
    (0.05, 0.10, "the distilled student is the worse calibrated"),
    (-0.05, -0.10, "the distilled student is the better calibrated"),
    (0.05, -0.05, "mixed"),
])
def test_calibration_is_called_better_or_worse_only_past_its_gap(tmp_path, ece_gap, nll_gap, words):
    config = fake_report(tmp_path, "response", 0.02)
    base = {"model": "baseline", "ece": 0.03, "nll": 0.36}
    chosen = {"model": "distilled (augmented)", "ece": 0.03 + ece_gap, "nll": 0.36 + nll_gap}
    results.save_result(config, "analysis", {"comparison": [base, chosen]}, data_fingerprint="data")
    assert words in report_prose.interview_block(config).split("**6 · ")[1]


def test_the_cost_table_is_the_planners(monkeypatch):
    from helpers import plan

    block = report_prose.cost_block(get_config("cpu"))
    default = plan.priced(get_config("full"))
    low, high = default["hours"]["T4"]
    assert f"| {low:.1f}–{high:.1f} |" in block.splitlines()[2]  # the T4 row, default plan
    assert f"{sum(r['steps'] for r in default['runs']):,} optimizer steps" in block
    # A plan that changed would show here: one source, no second estimate.
    monkeypatch.setattr(plan, "hours", lambda p: {d: [9.0, 10.0] for d in ("T4", "A100", "H100")})
    assert "| 9.0–10.0 |" in report_prose.cost_block(get_config("cpu"))


def test_notebook_05s_teacher_is_the_reports_teacher():
    """Every accuracy notebook 05 shows for the teacher (its comparison and its deployment table) is teacher.json's:
    the same model on its own inputs."""
    config = get_config(report_data.report_profile())
    if not results.has_result(config, "analysis"):
        pytest.skip(f"no committed {config.profile} analysis")
    teacher = results.load_result(config, "teacher")["test"]["accuracy"]
    analysis = results.load_result(config, "analysis")
    [compared] = [row["accuracy_mean"] for row in analysis["comparison"] if row["model"] == "teacher"]
    [deployed] = [row["accuracy"] for row in analysis["deployment"]["rows"] if row["variant"].startswith("teacher")]
    assert compared == pytest.approx(teacher, abs=1e-9) and deployed == pytest.approx(teacher, abs=1e-9)
