"""Results as JSON files with provenance (profile, seed, hardware, library versions, code hash, git commit, data
fingerprint, schema version, date), written atomically, and the check that a set of results belongs together."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from helpers.config import PROJECT_ROOT, Config

# The meaning of a results document and of every cache key. Bump it when code changes what a stored number means:
# results of another version are retrained (caches) or refused (the report), never mixed. 3: provenance records
# code_hash and paths relative to the project root.
SCHEMA_VERSION = 3

# The packages whose code computes results, hashed into every result and cache key. The README generator (report/)
# formats results and computes none of them, so it is not hashed: editing it must not invalidate a single result.
HASHED_PACKAGES = ("helpers", "decoder", "benchmark")
# Modules in those packages that compute no result (relative to the project root; a missing one is simply not hashed):
UNHASHED_MODULES = frozenset({
    "helpers/plan.py",  # the cost planner: what a run would take and cost, never what it computed
})
# Stands for a folder outside the project in stored paths: where it lies says nothing about what was computed.
OUTSIDE = "<outside>"
# The settings that name folders of the machine that ran (stored relative to the project root).
PATH_SETTINGS = ("cache_dir", "results_dir", "figures_dir", "data_dir")


def _hardware() -> dict:
    from helpers import hardware  # imports torch: only when a result is saved

    return hardware.describe()


def library_versions() -> dict:
    import datasets
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "scikit-learn": sklearn.__version__}


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` where the tracked code (``HASHED_PACKAGES``, scripts/) differs from it
    ("unknown" outside git). Notebooks are left out: executing them rewrites their outputs in place."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *HASHED_PACKAGES, "scripts")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with the docstring (first statement, a string constant) of its module, classes and functions removed."""
    for node in list(ast.walk(tree)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                node.body = node.body[1:]
    return tree


@functools.cache
def code_hash(root: Path | None = None) -> str:
    """A short sha256 of the code that computes results: every ``*.py`` in ``HASHED_PACKAGES`` under ``root`` (default:
    the project root) but ``UNHASHED_MODULES``, each as its relative path and the ``ast.dump`` of its parse tree without
    docstrings (no comments, formatting or line numbers), in sorted path order. Another Python version may parse the
    same code differently, which refuses a mix, never allows one. Cached per process and ``root``: a kernel keeps
    running the code it imported, whatever is edited on disk later."""
    root = PROJECT_ROOT if root is None else Path(root)
    files = sorted((path.relative_to(root).as_posix(), path)
                   for package in HASHED_PACKAGES for path in (root / package).rglob("*.py"))
    digest = hashlib.sha256()
    for relative, path in files:
        # Hidden folders hold editor copies (.ipynb_checkpoints), never imported code.
        if relative in UNHASHED_MODULES or any(part.startswith(".") for part in relative.split("/")):
            continue
        tree = _without_docstrings(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        digest.update(f"{relative}\0{ast.dump(tree)}\0".encode())
    return digest.hexdigest()[:16]


def portable_path(path: str | Path) -> str:
    """``path`` relative to the project root where it lies under it, else ``<outside>/`` and its last component: a
    results file names no folder of the machine that wrote it. A relative path is returned as it is."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return candidate.as_posix()
    for form in (candidate, candidate.resolve()):  # as given, then through symlinks (PROJECT_ROOT is resolved)
        if form.is_relative_to(PROJECT_ROOT):
            return form.relative_to(PROJECT_ROOT).as_posix()
    return f"{OUTSIDE}/{candidate.name}"


def _is_machine_path(text: str) -> bool:
    """Whether ``text`` is an absolute path under the project or existing here (not a sentence starting with /)."""
    if not os.path.isabs(text) or "\n" in text:  # string tests first: most strings of a payload are words
        return False
    path = Path(text)
    try:
        return path.is_relative_to(PROJECT_ROOT) or path.exists()
    except (OSError, ValueError):  # a name too long or with a NUL byte is no path of this machine
        return False


def portable(value):
    """``value`` (a JSON-ready document) with every absolute path of this machine replaced by ``portable_path``'s
    form, so that payloads recorded by any caller (checkpoint folders, cached logits) are as portable as provenance."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item) for item in value]
    if isinstance(value, str) and _is_machine_path(value):
        return portable_path(value)
    return value


def provenance(config: Config, seed: int | None = None, data_fingerprint: str | None = None) -> dict:
    """Where a result comes from: profile, seed, schema, code (hash and commit), data, hardware, versions, date, and
    the settings, whose folders are stored relative to the project root (see ``portable_path``)."""
    settings = _plain(dataclasses.asdict(config))
    settings.update({name: portable_path(settings[name]) for name in PATH_SETTINGS if settings.get(name)})
    return {"profile": config.profile, "seed": config.seed if seed is None else seed, "schema": SCHEMA_VERSION,
            "code_hash": code_hash(), "commit": git_commit(), "data_fingerprint": data_fingerprint,
            "hardware": _hardware(), "versions": library_versions(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "config": settings}


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
    """Write ``payload`` and its provenance to ``results/<profile>/<name>.json`` (machine paths made ``portable``)."""
    path = result_path(config, name)
    document = {"provenance": provenance(config, seed, data_fingerprint), **portable(_plain(payload))}
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
    """Figures quoted from outside the project, each with its source and date, from their one file: external.json."""
    return json.loads((PROJECT_ROOT / "results" / "external.json").read_text())


class MixedResultsError(ValueError):
    """Results that do not belong together: another profile, settings, data or code version."""


def check_consistent(documents: dict[str, dict], fields: tuple[str, ...] = ("profile", "schema", "code_hash",
                                                                            "data_fingerprint")) -> None:
    """Raise ``MixedResultsError`` naming the odd file out unless every document shares each of ``fields`` of its
    provenance with the first. Code is compared by ``code_hash``, not by commit, so a commit that changes no computing
    code (documentation, the README generator) keeps every result valid; a document without one is refused."""
    if not documents:
        return
    if "code_hash" in fields:
        unhashed = [name for name, document in documents.items() if not document["provenance"].get("code_hash")]
        if unhashed:
            more = f" and {len(unhashed) - 3} more" if len(unhashed) > 3 else ""
            raise MixedResultsError(
                f"Results without a code hash ({', '.join(unhashed[:3])}{more}): they were written by an older "
                "version that recorded only the commit, so nothing says which code computed them. Re-run "
                "`make report` to regenerate them.")
    (first_name, first), *rest = documents.items()
    for field in fields:
        expected = first["provenance"].get(field)
        odd = [name for name, document in rest if document["provenance"].get(field) != expected]
        if odd:
            values = {name: documents[name]["provenance"].get(field) for name in [first_name, *odd[:3]]}
            raise MixedResultsError(
                f"Results that do not belong together: {field} differs ({values}). Regenerate them in one pass "
                "(make report) or remove the odd file out.")
