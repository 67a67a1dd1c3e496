"""A Colab reset costs at most the run in progress (issue 28 item 3), end to end against the local stand-in hub.

Notebooks 02 and 03 run under `full` (test_full_profile's caps) with Drive-like cache and results folders outside the
clone and the epoch checkpoints on a "local disk". Then a reset: a fresh `git clone` of HEAD, a new empty results
folder, a new checkpoint folder and a new Hugging Face home; only the cache (Drive) is kept. Notebooks 02 and 03 run
again from the clone's own notebooks/ with the clone's code on PYTHONPATH. The second pass must train zero steps and
give the same results.

Zero steps is counted inside each kernel: a cell put before the notebook's first registers torch's global optimizer
step hook, a cell after its last prints the count (with the imported helpers' path and the code hash). The first pass's
count equals the steps its students recorded, so the probe is shown to count training; the second pass's is 0.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import localhub  # tests/localhub: pytest puts tests/ on sys.path
import nbformat
import pytest
from test_full_profile import CAPS, CELL_TIMEOUT_S, STANDINS_ROOT, _config_under

from helpers import results
from helpers.config import PROJECT_ROOT

pytestmark = pytest.mark.localhub

NOTEBOOKS = ("02_teacher_evaluation.ipynb", "03_baseline_student.ipynb")
PROBE = "KD-RESET-PROBE "
PROBE_FIRST = """\
import torch.optim.optimizer as _probe_optimizer
_probe_steps = []
_probe_hook = _probe_optimizer.register_optimizer_step_post_hook(lambda optimizer, args, kwargs: _probe_steps.append(1))
"""
PROBE_LAST = f"""\
import json as _probe_json
import helpers as _probe_helpers
from helpers import results as _probe_results
print({PROBE!r} + _probe_json.dumps({{"optimizer_steps": len(_probe_steps), "helpers": _probe_helpers.__file__,
                                    "code_hash": _probe_results.code_hash()}}))
"""


def _clone(target: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(target)], check=True)
    return target


def _execute_probed(notebook: Path, env: dict[str, str]) -> tuple[str | None, dict | None]:
    """Runs the notebook in a fresh kernel with ``env``, between the probe's two cells; (error or None, probe)."""
    document = nbformat.read(notebook, as_version=4)
    document.cells.insert(0, nbformat.v4.new_code_cell(PROBE_FIRST))
    document.cells.append(nbformat.v4.new_code_cell(PROBE_LAST))
    error = localhub.execute_notebook(document, notebook.parent, env, CELL_TIMEOUT_S)
    if error:
        return error, None
    text = "".join(output.get("text", "") for output in document.cells[-1].outputs if output.output_type == "stream")
    line = next(line for line in text.splitlines() if line.startswith(PROBE))
    return None, json.loads(line[len(PROBE):])


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


def _documents(folder: Path) -> dict[str, dict]:
    return {p.relative_to(folder).with_suffix("").as_posix(): json.loads(p.read_text()) for p in folder.rglob("*.json")}


@pytest.fixture(scope="module")
def reset_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("colab-reset")
    drive = root / "drive"
    # The second pass runs a fresh clone of HEAD. The first runs this working tree, unless its hashed code differs
    # from HEAD's (uncommitted edits: its students' keys would differ) -- then a first clone of HEAD.
    after_code = _clone(root / "clone-after-reset")
    before_code = PROJECT_ROOT if results.code_hash(PROJECT_ROOT) == results.code_hash(after_code) else _clone(
        root / "clone-before")
    passes = {
        "before": {"code": before_code, "checkpoints": root / "content-before" / "checkpoints",
                   "hf_home": root / "content-before" / "huggingface",
                   "knobs": {"KD_RESULTS_DIR": str(drive / "results-before"),
                             "KD_FIGURES_DIR": str(drive / "figures-before")}},
        "after": {"code": after_code, "checkpoints": root / "content-after" / "checkpoints",
                  "hf_home": root / "content-after" / "huggingface",
                  "knobs": {"KD_RESULTS_DIR": str(drive / "results-after"),  # new and empty: the reset wiped it
                            "KD_FIGURES_DIR": str(drive / "figures-after")}},
    }
    standins = localhub.build_standins(STANDINS_ROOT)
    run = {"root": root, "cache": drive / "cache" / "full", "code_hashes": {
        "working tree": results.code_hash(PROJECT_ROOT), "clone": results.code_hash(after_code)}}
    with localhub.serve(standins, root / "unused-huggingface") as (hub, proxy, _):
        for name, setting in passes.items():
            knobs = {"KD_PROFILE": "full", **CAPS, "KD_CACHE_DIR": str(drive / "cache"), **setting["knobs"],
                     "KD_CHECKPOINT_DIR": str(setting["checkpoints"])}
            config = _config_under(knobs)
            env = localhub.hub_environment(hub.endpoint, proxy.url, setting["hf_home"])
            env = {k: v for k, v in env.items() if not k.startswith("KD_")} | knobs
            env |= {"MPLBACKEND": "Agg", "PYTHONPATH": str(setting["code"])}
            outcomes, probes, seconds = {}, {}, {}
            for notebook in NOTEBOOKS:
                start = time.perf_counter()
                outcomes[notebook], probes[notebook] = _execute_probed(setting["code"] / "notebooks" / notebook, env)
                seconds[notebook] = round(time.perf_counter() - start, 1)
                if outcomes[notebook] is not None:
                    break
            run[name] = {**setting, "config": config, "outcomes": outcomes, "probes": probes, "seconds": seconds,
                         "results": Path(config.results_dir)}
            if name == "before":
                run["cache_runs_before"] = _files(run["cache"] / "runs")
    run["cache_runs_after"] = _files(run["cache"] / "runs")
    print(f"\ncolab reset: code at {before_code} then {after_code}; seconds {run['before']['seconds']} then "
          f"{run['after']['seconds']}; probes {run['before']['probes']} then {run['after']['probes']}")
    yield run
    # ~450 MB of stand-ins downloaded twice and the students' final models; pytest keeps its last three folders.
    for folder in (drive / "cache", root / "content-before", root / "content-after"):
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------- tests
def test_both_passes_ran(reset_run):
    for name in ("before", "after"):
        failed = {notebook: error for notebook, error in reset_run[name]["outcomes"].items() if error is not None}
        assert not failed, "\n\n".join(f"{name}: {notebook} failed:\n{error[-4000:]}"
                                       for notebook, error in failed.items())
        assert list(reset_run[name]["outcomes"]) == list(NOTEBOOKS)


def test_the_clone_ran_its_own_code_with_the_same_hash(reset_run):
    """A fresh clone at HEAD hashes as the code that trained the students (the hash keys them), and its kernels
    imported the clone's helpers, not this checkout's."""
    hashes = reset_run["code_hashes"]
    assert hashes["working tree"] == hashes["clone"] or reset_run["before"]["code"] != PROJECT_ROOT
    for name in ("before", "after"):
        code = Path(reset_run[name]["code"]).resolve()
        for notebook, probe in reset_run[name]["probes"].items():
            assert Path(probe["helpers"]).resolve().is_relative_to(code), (name, notebook, probe)
    hashes = {probe["code_hash"] for name in ("before", "after") for probe in reset_run[name]["probes"].values()}
    assert hashes == {reset_run["code_hashes"]["clone"]}


def test_the_first_pass_trained_and_the_probe_counted_it(reset_run):
    students = {name: doc for name, doc in _documents(reset_run["before"]["results"]).items()
                if name.startswith("students/baseline-seed")}
    assert len(students) == len(reset_run["before"]["config"].seeds), sorted(students)
    recorded = sum(doc["optimizer_steps"] for doc in students.values())
    counted = sum(probe["optimizer_steps"] for probe in reset_run["before"]["probes"].values())
    assert recorded > 0 and counted == recorded, (counted, recorded)


def test_after_the_reset_no_step_was_trained(reset_run):
    after = reset_run["after"]
    assert {notebook: probe["optimizer_steps"] for notebook, probe in after["probes"].items()} == dict.fromkeys(
        NOTEBOOKS, 0)
    assert not after["checkpoints"].exists() or not any(after["checkpoints"].rglob("*")), \
        sorted(after["checkpoints"].rglob("*"))[:10]
    # The final models, their histories and results copies in the cache (Drive) were not written again.
    assert reset_run["cache_runs_before"] and reset_run["cache_runs_after"] == reset_run["cache_runs_before"]


def test_the_results_are_the_same(reset_run):
    before, after = _documents(reset_run["before"]["results"]), _documents(reset_run["after"]["results"])
    students = sorted(name for name in before if name.startswith("students/"))
    assert students and students == sorted(name for name in after if name.startswith("students/"))
    for name in students:
        for field in ("key", "train_seconds", "optimizer_steps", "test_predictions", "test", "validation"):
            assert after[name][field] == before[name][field], (name, field)
        assert after[name] == before[name], name  # the restored copy, provenance and all
    assert before["baseline"]["runs"] == after["baseline"]["runs"] == students
    for field in ("seeds", "per_seed", "sizes", "before_after"):
        assert after["baseline"][field] == before["baseline"][field], field
    assert after["teacher"]["test"] == before["teacher"]["test"]
