"""Results as JSON files with provenance (profile, seed, hardware, library versions, git commit, data fingerprint,
schema version, date), written atomically, and the check that a set of results belongs together."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from helpers.config import PROJECT_ROOT, Config

# The meaning of a results document and of every cache key. Bump it when code changes what a stored number means:
# results of another version are retrained (caches) or refused (the report), never mixed.
SCHEMA_VERSION = 2


def hardware() -> dict:
    import torch

    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def library_versions() -> dict:
    import datasets
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "scikit-learn": sklearn.__version__}


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` where the tracked code in helpers/ or scripts/ differs from it
    ("unknown" outside git). Notebooks are left out: executing them rewrites their outputs in place."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "helpers", "scripts")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def provenance(config: Config, seed: int | None = None, data_fingerprint: str | None = None) -> dict:
    return {"profile": config.profile, "seed": config.seed if seed is None else seed, "schema": SCHEMA_VERSION,
            "commit": git_commit(), "data_fingerprint": data_fingerprint, "hardware": hardware(),
            "versions": library_versions(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "config": _plain(dataclasses.asdict(config))}


def _plain(value):
    """JSON-ready: numpy scalars and arrays to Python, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary name in the same folder, then rename: an interrupted write never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def result_path(config: Config, name: str) -> Path:
    return Path(config.results_dir) / f"{name}.json"


def save_result(config: Config, name: str, payload: dict, seed: int | None = None,
                data_fingerprint: str | None = None) -> Path:
    """Write ``payload`` with its provenance to ``results/<profile>/<name>.json``; returns the path."""
    path = result_path(config, name)
    document = {"provenance": provenance(config, seed, data_fingerprint), **_plain(payload)}
    atomic_write_text(path, json.dumps(document, indent=1))
    return path


def load_result(config: Config | str | Path, name: str | None = None) -> dict:
    """A result written by ``save_result`` (by config and name, or by path); a corrupt file is named."""
    path = result_path(config, name) if isinstance(config, Config) else Path(config)
    if not path.exists():
        raise FileNotFoundError(f"No result at {path}: run the notebook that produces it first.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable results file ({error}): it was cut off or edited. Delete it; "
                         "the notebook that writes it recomputes it (cached models are reused).") from error


def has_result(config: Config, name: str) -> bool:
    return result_path(config, name).exists()


def external_facts() -> dict:
    """Figures quoted from outside the project (model cards, public runs, prices), each with its source and date:
    results/external.json, the one file the report and notebooks read them from."""
    return json.loads((PROJECT_ROOT / "results" / "external.json").read_text())


# ------------------------------------------------------------------------------------------------- consistency
class MixedResultsError(ValueError):
    """Results that do not belong together: another profile, settings, data or code version."""


def check_consistent(documents: dict[str, dict], fields: tuple[str, ...] = ("profile", "schema", "commit",
                                                                            "data_fingerprint")) -> None:
    """Raise ``MixedResultsError`` naming the odd file out unless every document shares each of ``fields`` of its
    provenance (the first document sets the reference)."""
    if not documents:
        return
    (first_name, first), *rest = documents.items()
    for field in fields:
        expected = first["provenance"].get(field)
        odd = [name for name, document in rest if document["provenance"].get(field) != expected]
        if odd:
            values = {name: documents[name]["provenance"].get(field) for name in [first_name, *odd[:3]]}
            raise MixedResultsError(
                f"Results that do not belong together: {field} differs ({values}). Regenerate them in one pass "
                "(make report) or remove the odd file out.")
