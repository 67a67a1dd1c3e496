"""Results as JSON files with provenance (profile, seed, hardware, library versions, date)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np

from helpers.config import Config


def hardware() -> dict:
    import torch

    info = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": __import__("os").cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return info


def library_versions() -> dict:
    import datasets
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "datasets": datasets.__version__, "scikit-learn": sklearn.__version__}


def provenance(config: Config, seed: int | None = None) -> dict:
    return {"profile": config.profile, "seed": config.seed if seed is None else seed, "hardware": hardware(),
            "versions": library_versions(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "config": dataclasses.asdict(config)}


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


def result_path(config: Config, name: str) -> Path:
    return Path(config.results_dir) / f"{name}.json"


def save_result(config: Config, name: str, payload: dict, seed: int | None = None) -> Path:
    """Write ``payload`` with its provenance to ``results/<profile>/<name>.json``; returns the path."""
    path = result_path(config, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"provenance": provenance(config, seed), **_plain(payload)}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=1))
    temporary.replace(path)  # atomic: an interrupted write never leaves half a file
    return path


def load_result(config: Config | str | Path, name: str | None = None) -> dict:
    """A result written by ``save_result`` (by config and name, or by path)."""
    path = result_path(config, name) if isinstance(config, Config) else Path(config)
    if not path.exists():
        raise FileNotFoundError(f"No result at {path}: run the notebook that produces it first.")
    return json.loads(path.read_text())


def has_result(config: Config, name: str) -> bool:
    return result_path(config, name).exists()
