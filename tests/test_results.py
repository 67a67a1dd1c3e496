"""Results are keyed by the code that computed them, not by the commit, and name no folder of the machine."""

import json
import os
import re
import shutil

from helpers import results
from helpers.config import PROJECT_ROOT, get_config


def package_copy(tmp_path, name: str):
    """A copy of the helpers package (its code only) under ``tmp_path / name``."""
    return shutil.copytree(results.PACKAGE_ROOT, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))


def test_the_code_hash_ignores_where_the_package_lies(tmp_path):
    assert results.code_hash(package_copy(tmp_path, "copy")) == results.code_hash()


def test_a_documentation_only_change_keeps_the_code_hash(tmp_path):
    original = results.code_hash(package_copy(tmp_path, "original"))
    edited = package_copy(tmp_path, "edited")
    module = edited / "results.py"
    text = module.read_text()
    assert text.startswith('"""')
    # Its module docstring reworded, a comment and blank lines added, a call reformatted over two lines.
    text = '"""Reworded: ' + text[3:]
    text = text.replace("\nSCHEMA_VERSION =", "\n\n# A comment that changes nothing.\nSCHEMA_VERSION =", 1)
    text = text.replace("hashlib.sha256()", "hashlib.sha256(\n    )", 1)
    module.write_text(text)
    # A function's docstring removed: what runs is the same.
    cache_module = edited / "cache.py"
    docstring = '    """A short, stable hash of JSON-able ``parts`` and the schema version."""\n'
    assert docstring in cache_module.read_text()
    cache_module.write_text(cache_module.read_text().replace(docstring, ""))
    # The README generator computes no result: even a statement changed there keeps every result valid.
    (edited / "report_prose.py").write_text((edited / "report_prose.py").read_text() + "\nEXTRA = 1\n")
    assert results.code_hash(edited) == original


def test_a_changed_statement_changes_the_code_hash(tmp_path):
    original = results.code_hash(package_copy(tmp_path, "original"))
    changed = package_copy(tmp_path, "changed")
    module = changed / "results.py"
    text, count = re.subn(r"\nSCHEMA_VERSION = (\d+)", lambda m: f"\nSCHEMA_VERSION = {int(m[1]) + 1}",
                          module.read_text())
    assert count == 1
    module.write_text(text)
    assert results.code_hash(changed) != original
    added = package_copy(tmp_path, "added")
    (added / "benchmark" / "extra.py").write_text('"""A docstring alone would not count; a statement does."""\nX = 1\n')
    assert results.code_hash(added) != original


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
