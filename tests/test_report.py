"""The README's numbers must be the results files' numbers."""

import json

import pytest

from helpers import report, results
from helpers.config import get_config


def test_readme_matches_the_committed_results():
    config = get_config(report.report_profile())
    if not results.has_result(config, "teacher"):
        pytest.fail(f"No results under {config.results_dir}: the README's numbers have no source.")
    text = report.README.read_text()
    assert report.render(text, config) == text, "README is stale: run `python -m helpers.report`"


def test_a_changed_result_changes_the_rendered_readme(smoke_workspace):
    from helpers import pipeline

    config = smoke_workspace.config
    pipeline.load_or_train_student(smoke_workspace, seed=0)
    teacher = {"test": {"accuracy": 0.9, "macro_f1": 0.89, "rows": 200}, "parameters": 1_000_000}
    results.save_result(config, "teacher", teacher)
    template = "before\n<!-- generated:results -->\nold\n<!-- /generated:results -->\nafter"
    first = report.render(template, config)
    assert "90.00" in first and "baseline" in first and first.startswith("before") and first.endswith("after")
    path = results.result_path(config, "teacher")
    document = json.loads(path.read_text())
    document["test"]["accuracy"] = 0.8
    path.write_text(json.dumps(document))
    assert "80.00" in report.render(template, config)
