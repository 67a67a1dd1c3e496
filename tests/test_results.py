"""Results are keyed by the code that computed them, not by the commit, and name no folder of the machine."""

import json
import os
import re
import shutil

from helpers import results
from helpers.config import PROJECT_ROOT, get_config


def code_copy(tmp_path, name: str):
    """A copy of the project's code (the hashed packages and the README generator) under ``tmp_path / name``."""
    for package in (*results.HASHED_PACKAGES, "report"):
        shutil.copytree(PROJECT_ROOT / package, tmp_path / name / package,
                        ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return tmp_path / name


def test_the_code_hash_ignores_where_the_code_lies(tmp_path):
    assert results.code_hash(code_copy(tmp_path, "copy")) == results.code_hash()


def test_a_documentation_only_change_keeps_the_code_hash(tmp_path):
    original = results.code_hash(code_copy(tmp_path, "original"))
    edited = code_copy(tmp_path, "edited")
    module = edited / "helpers" / "results.py"
    text = module.read_text()
    assert text.startswith('"""')
    # Its module docstring reworded, a comment and blank lines added, a call reformatted over two lines.
    text = '"""Reworded: ' + text[3:]
    text = text.replace("\nSCHEMA_VERSION =", "\n\n# A comment that changes nothing.\nSCHEMA_VERSION =", 1)
    text = text.replace("hashlib.sha256()", "hashlib.sha256(\n    )", 1)
    module.write_text(text)
    # A function's docstring removed: what runs is the same.
    cache_module = edited / "helpers" / "cache.py"
    docstring = '    """A short, stable hash of JSON-able ``parts`` and the schema version."""\n'
    assert docstring in cache_module.read_text()
    cache_module.write_text(cache_module.read_text().replace(docstring, ""))
    assert results.code_hash(edited) == original


def append_statement(path):
    """``path`` with one more statement (the file created where it does not exist)."""
    path.write_text((path.read_text() if path.exists() else "") + "\nEXTRA_STATEMENT = 1\n")


def test_code_that_computes_no_result_is_not_hashed(tmp_path):
    original = results.code_hash(code_copy(tmp_path, "original"))
    edited = code_copy(tmp_path, "edited")
    # The README generator and the cost planner (whether or not it exists yet) compute no result: even a statement
    # changed there keeps every result valid.
    for relative in ("report/prose.py", "report/readme.py", "helpers/plan.py"):
        append_statement(edited / relative)
    (edited / "report" / "extra.py").write_text("X = 1\n")
    assert results.code_hash(edited) == original


def test_a_changed_statement_in_any_hashed_package_changes_the_code_hash(tmp_path):
    original = results.code_hash(code_copy(tmp_path, "original"))
    changed = code_copy(tmp_path, "changed")
    module = changed / "helpers" / "results.py"
    text, count = re.subn(r"\nSCHEMA_VERSION = (\d+)", lambda m: f"\nSCHEMA_VERSION = {int(m[1]) + 1}",
                          module.read_text())
    assert count == 1
    module.write_text(text)
    assert results.code_hash(changed) != original
    # The decoder student and the benchmark compute results too: a statement there, or a new module, counts.
    for relative in ("decoder/student.py", "decoder/report.py", "benchmark/training.py", "benchmark/extra.py"):
        edited = code_copy(tmp_path, relative.replace("/", "-"))
        append_statement(edited / relative)
        assert results.code_hash(edited) != original, relative


def strings(value):
    """Every string in a JSON-ready document, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def test_provenance_holds_no_absolute_path(tmp_path):
    outside = tmp_path / "ag_news"
    config = get_config("cpu", data_source="local", data_dir=str(outside), cache_dir=str(tmp_path / "cache"))
    provenance = results.provenance(config)
    assert [text for text in strings(provenance) if os.path.isabs(text)] == []
    settings = provenance["config"]
    assert settings["data_dir"] == "<outside>/ag_news" and settings["cache_dir"] == "<outside>/cache"
    assert settings["results_dir"] == "results/cpu" and settings["figures_dir"] == "figures/cpu"
    assert provenance["code_hash"] == results.code_hash() and provenance["commit"]


def test_a_saved_result_stores_paths_of_this_machine_relative_to_the_project(tmp_path):
    config = get_config("smoke", results_dir=str(tmp_path / "results"))
    checkpoint = PROJECT_ROOT / "cache" / "smoke" / "runs" / "baseline" / "final"
    path = results.save_result(config, "paths", {"rows": [{"checkpoint": str(checkpoint)}], "folder": str(tmp_path),
                                                 "sentence": "/ a slash that starts a sentence"})
    stored = json.loads(path.read_text())
    assert stored["rows"][0]["checkpoint"] == "cache/smoke/runs/baseline/final"
    assert stored["folder"] == f"<outside>/{tmp_path.name}"
    assert stored["sentence"] == "/ a slash that starts a sentence"
    assert [text for text in strings(stored) if os.path.isabs(text) and text != stored["sentence"]] == []
