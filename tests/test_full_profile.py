"""The `full` profile's code path, unmodified, against a local stand-in of the Hugging Face hub.

Notebooks 01 -> 06 are executed in order, each in a fresh kernel, with only the environment a user has: KD_PROFILE=full,
the KD_* caps below, and HF_ENDPOINT pointing at ``localhub`` (tiny stand-ins under the real repo ids, served on
127.0.0.1; every other host refused by a proxy). Caches, results and figures go to a temporary folder, so nothing under
results/full or figures/full is written. The run passes only if every model, tokenizer and the dataset reached the
notebooks through the hub server by its real id: a fallback to a local folder fails it.

What it cannot prove: the real checkpoints' numbers, GPU precision paths (CPU here: fp32), memory and time at the real
sizes, and the real hub's behaviour beyond the endpoints this stand-in answers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import localhub  # tests/localhub: pytest puts tests/ on sys.path
import nbformat
import pytest

from helpers.config import PROJECT_ROOT, get_config

pytestmark = pytest.mark.localhub

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("0*.ipynb"))
STANDINS_ROOT = Path(os.environ.get("LOCALHUB_DIR") or PROJECT_ROOT / "cache" / "localhub")
# Capped sizes, through the knobs a user has: 96 training rows at batch 8 (12 steps a student: at batch 16 the first of
# 3 selection steps, still in warm-up, left the grid near chance), the selection grid on 48 of them, 48 validation
# rows, 2 seeds; the LM on 64 rows. The LM is evaluated on all of the stand-in's 100 test rows, as `full` evaluates
# all of AG News' test split (lm_eval_rows None).
CAPS = {"KD_MAX_TRAIN_ROWS": "96", "KD_SELECTION_MAX_TRAIN_ROWS": "48", "KD_SELECTION_EPOCHS": "1",
        "KD_VALIDATION_ROWS": "48", "KD_EPOCHS": "1", "KD_SEEDS": "1,2", "KD_BATCH_SIZE": "8",
        "KD_LM_TRAIN_ROWS": "64"}
EXPECTED = {"max_train_rows": 96, "selection_max_train_rows": 48, "selection_epochs": 1, "validation_rows": 48,
            "epochs": 1, "seeds": (1, 2), "batch_size": 8, "lm_train_rows": 64, "lm_eval_rows": None}
CELL_TIMEOUT_S = 900


def _repository_outputs() -> dict[str, float]:
    """Every file the full profile would write inside the repository, with its modification time."""
    folders = [PROJECT_ROOT / "results" / "full", PROJECT_ROOT / "figures" / "full", PROJECT_ROOT / "cache" / "full"]
    return {str(p): p.stat().st_mtime for folder in folders if folder.exists() for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Executes every notebook under `full` against the local hub; yields what happened."""
    root = tmp_path_factory.mktemp("full-profile")
    knobs = {"KD_PROFILE": "full", **CAPS, "KD_CACHE_DIR": str(root / "cache"),
             "KD_RESULTS_DIR": str(root / "results"), "KD_FIGURES_DIR": str(root / "figures")}
    config = _config_under(knobs)
    start = time.perf_counter()
    standins = localhub.build_standins(STANDINS_ROOT)
    build_seconds = time.perf_counter() - start
    before = _repository_outputs()
    outcomes, seconds = {}, {}
    with localhub.serve(standins, root / "huggingface") as (hub, proxy, env):
        env = {name: value for name, value in env.items() if not name.startswith("KD_")} | knobs
        env["MPLBACKEND"] = "Agg"
        for notebook in NOTEBOOKS:
            start = time.perf_counter()
            document = nbformat.read(notebook, as_version=4)
            outcomes[notebook.name] = localhub.execute_notebook(document, notebook.parent, env, CELL_TIMEOUT_S)
            seconds[notebook.name] = round(time.perf_counter() - start, 1)
            if outcomes[notebook.name] is not None:
                break  # later notebooks read what this one writes
    run = {"config": config, "hub": hub, "proxy": proxy, "outcomes": outcomes, "seconds": seconds,
           "build_seconds": round(build_seconds, 1), "root": root, "hf_home": root / "huggingface",
           "standins": standins, "written_in_repository": sorted(set(_repository_outputs().items()) -
                                                                  set(before.items()))}
    print(f"\nlocal hub: stand-ins {build_seconds:.0f} s; notebooks {seconds}; {len(hub.requests)} hub requests; "
          f"refused by the proxy: {sorted(set(proxy.attempts))}")
    (root / "hub-requests.txt").write_text(hub.summary())
    yield run
    # ~2 GB of student checkpoints and the downloaded stand-ins; pytest keeps its last three temporary folders.
    for folder in (root / "cache", root / "huggingface"):
        shutil.rmtree(folder, ignore_errors=True)


def _config_under(knobs: dict[str, str]):
    """The config the notebooks will resolve, checked here first: a knob that does nothing would run `full` at its
    real sizes, or write into the repository."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith("KD_")]:  # only the knobs below, none of this shell's
            del os.environ[name]
        os.environ.update(knobs)
        config = get_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    wrong = {field: getattr(config, field) for field, value in EXPECTED.items() if getattr(config, field) != value}
    root = Path(knobs["KD_CACHE_DIR"]).parent
    wrong |= {field: getattr(config, field) for field in ("cache_dir", "results_dir", "figures_dir")
              if not Path(getattr(config, field)).is_relative_to(root)}
    assert config.profile == "full" and not wrong, f"knobs without effect under KD_PROFILE=full: {wrong}"
    return config


# ------------------------------------------------------------------------------------------------------- tests
def test_every_notebook_runs_under_full(full_run):
    failed = {name: error for name, error in full_run["outcomes"].items() if error is not None}
    ran = list(full_run["outcomes"])
    assert not failed, "\n\n".join(f"{name} failed (notebooks after it not run):\n{error[-4000:]}"
                                   for name, error in failed.items())
    assert ran == [n.name for n in NOTEBOOKS]


def test_every_model_tokenizer_and_the_dataset_came_through_the_hub_by_its_real_id(full_run):
    config, hub = full_run["config"], full_run["hub"]
    named = {f"model:{config.tokenizer_hub_id}", f"model:{config.teacher_hub_id}", f"model:{config.student_hub_id}",
             f"model:{config.lm_hub_id}", f"dataset:{config.hub_dataset}"}
    assert config.tokenizer_hub_id == "bert-base-uncased" and config.student_hub_id == "distilbert-base-uncased"
    asked = hub.requested_repos(kinds=("resolve", "redirect"))
    assert named <= asked, f"never asked the hub for {sorted(named - asked)}; asked for {sorted(asked)}"
    # The files that make each one, served by the hub under its current id (the legacy ids redirect there).
    served = hub.downloaded_files()
    needed = {f"dataset:{localhub.DATASET_ID}/data/train-00000-of-00001.parquet",
              f"dataset:{localhub.DATASET_ID}/data/test-00000-of-00001.parquet",
              f"model:{localhub.TOKENIZER_ID}/tokenizer.json",
              f"model:{localhub.TEACHER_ID}/pytorch_model.bin",
              f"model:{localhub.STUDENT_ID}/model.safetensors",
              f"model:{localhub.LM_ID}/model.safetensors", f"model:{localhub.LM_ID}/tokenizer.json"}
    assert needed <= served, f"not downloaded through the hub: {sorted(needed - served)}"
    # The legacy ids were followed through the 307, not replaced by their new names in the code.
    redirected = {r.repo for r in hub.requests if r.status == 307}
    assert {f"model:{alias}" for alias in localhub.ALIASES} <= redirected
    # What the notebooks recorded: hub sources, and the teacher path is the hub id, not a folder.
    documents = list((full_run["root"] / "results").rglob("*.json"))
    assert documents, "the notebooks wrote no results"
    for document in documents:
        recorded = json.loads(document.read_text()).get("provenance", {}).get("config")
        if recorded:
            assert (recorded["teacher_hub_id"], recorded["student_hub_id"], recorded["lm_hub_id"],
                    recorded["data_source"]) == (config.teacher_hub_id, config.student_hub_id, config.lm_hub_id,
                                                 "hub"), document


def test_no_other_host_was_reached(full_run):
    hub, proxy = full_run["hub"], full_run["proxy"]
    # The proxy refuses the libraries' optional extras (e.g. the datasets server); none of them may be the hub itself,
    # which would mean HF_ENDPOINT was bypassed.
    assert not [a for a in proxy.attempts if a.split()[-1].endswith("huggingface.co")], proxy.attempts
    unknown = {r.repo for r in hub.requests if r.kind == "other" and r.repo}
    assert not unknown, f"asked the hub for repositories the full profile does not name: {unknown}"


def test_no_safetensors_conversion_was_started(full_run):
    """Loading the teacher's pytorch_model.bin must not start transformers' background conversion thread: it asks a
    Space to open a pull request on the teacher's repository, and a DataLoader worker forked beside it risks a hang
    (models.py disables it)."""
    hub, proxy = full_run["hub"], full_run["proxy"]
    assert not [r.path for r in hub.requests if r.kind == "discussions"]
    assert not [a for a in proxy.attempts if "safetensors-convert" in a], proxy.attempts


def test_nothing_was_written_under_the_repository(full_run):
    assert not full_run["written_in_repository"], full_run["written_in_repository"][:10]
    results = {p.relative_to(full_run["root"] / "results").as_posix()
               for p in (full_run["root"] / "results").rglob("*.json")}
    assert results, "no results in the temporary folder"


def test_the_stand_ins_learn_above_chance(full_run):
    """Thresholds, never exact floats: the teacher clearly above chance (0.25), the baseline students above it."""
    documents = {p.stem: json.loads(p.read_text()) for p in (full_run["root"] / "results").rglob("*.json")}
    teacher = documents.get("teacher")
    assert teacher is not None, sorted(documents)
    assert teacher["test"]["accuracy"] > 0.6
    baselines = [d for name, d in documents.items() if name.startswith("baseline-seed")
                 and d["train_rows"] == EXPECTED["max_train_rows"]]  # the final budget's, one per seed
    assert len(baselines) == len(EXPECTED["seeds"]), sorted(documents)
    assert min(d["test"]["accuracy"] for d in baselines) > 0.35


def test_the_recorded_models_are_the_hub_ones(full_run):
    """The results name the hub ids they loaded, with no local stand-in in between."""
    config, results = full_run["config"], full_run["root"] / "results"
    teacher = json.loads((results / "teacher.json").read_text())
    assert teacher["model"] == config.teacher_hub_id
    assert teacher["recipes_tried"] == [] and not (results / "teachers").exists()  # nothing fine-tuned here
    decoder = json.loads((results / "decoder_student.json").read_text())
    assert decoder["model"] == config.lm_hub_id and not decoder.get("stand_in"), decoder.get("stand_in")
    assert decoder["train_rows"] == 64


def test_size_on_disk_of_a_hub_id_reads_its_cached_snapshot(full_run, monkeypatch):
    """`full` names its teacher by hub id, not by folder: its size comes from the snapshot from_pretrained cached."""
    import huggingface_hub.constants

    from helpers import models

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(full_run["hf_home"] / "hub"))
    weights = localhub.repo_folders(full_run["standins"])[("model", localhub.TEACHER_ID)] / "pytorch_model.bin"
    size = models.size_on_disk_mb(full_run["config"].teacher_hub_id)
    assert size == pytest.approx(weights.stat().st_size / 2**20)


def test_make_reports_second_step_reads_the_full_results(full_run):
    """`make report` ends with `python -m report`: its README blocks come from these results (rendered here,
    not written: the README keeps the committed numbers)."""
    from report import data as report_data
    from report import readme

    config = full_run["config"]
    assert report_data.complete(config, strict=True)
    rendered = readme.render(report_data.README.read_text(), config)
    assert "No complete `full` results" not in rendered
    assert config.teacher_hub_id in rendered
