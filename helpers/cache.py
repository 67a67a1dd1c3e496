"""Cache keys and safe storage: content keys, atomic folders, checksummed arrays, complete-or-absent model folders.
Each artefact is written under a temporary name and renamed into place, so an interrupted run leaves nothing or a
complete artefact; a damaged one is reported with its path and recomputed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from helpers.results import SCHEMA_VERSION, atomic_write_text


def key_of(*parts) -> str:
    """A short, stable hash of JSON-able ``parts`` and the schema version."""
    text = json.dumps([SCHEMA_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``folder`` (on an exception it is removed)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(temporary, folder)


def discard(path: str | Path, reason: str) -> None:
    """Remove a damaged artefact, saying which and why (it is recomputed next)."""
    warnings.warn(f"{path}: {reason}; removing it and recomputing.", stacklevel=2)
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def save_array(path: str | Path, array: np.ndarray, **metadata) -> None:
    """``np.save`` atomically, with a sidecar JSON holding the file's sha256 and ``metadata``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(temporary, array)
    record = {"sha256": file_digest(temporary), "shape": list(array.shape), **metadata}
    os.replace(temporary, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(record))


def load_array(path: str | Path) -> tuple[np.ndarray, dict] | None:
    """The array and its sidecar, or None (after removing both) if either is missing, damaged or altered."""
    path, sidecar = Path(path), Path(path).with_suffix(".json")
    if not path.exists():
        return None
    try:
        record = json.loads(sidecar.read_text())
        if file_digest(path) != record["sha256"]:
            raise ValueError("its contents differ from the checksum recorded when it was written")
        array = np.load(path)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        discard(path, f"damaged cache ({error})")
        sidecar.unlink(missing_ok=True)
        return None
    return array, record


def complete_model_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a loadable model: a parseable config.json and weight files whose headers read."""
    folder = Path(folder)
    try:
        json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    weights = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    if not weights:
        return False
    return all(_weights_complete(file) for file in weights)


def _weights_complete(file: Path) -> bool:
    """A safetensors file is complete when its size is what its header promises; a .bin when it is a full zip."""
    try:
        size = file.stat().st_size
        if file.suffix == ".safetensors":
            with open(file, "rb") as handle:
                header_length = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(header_length))
            end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
            return size == 8 + header_length + end
        with zipfile.ZipFile(file) as archive:  # torch.save's format: a truncated file has no central directory
            return bool(archive.namelist())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """The Trainer's checkpoint folders that a resume can use, oldest first; incomplete ones are removed."""
    found = []
    for folder in Path(output_dir).glob("checkpoint-*"):
        try:
            step = int(folder.name.split("-")[-1])
            state = json.loads((folder / "trainer_state.json").read_text())
            ok = state.get("global_step") == step and complete_model_folder(folder) and any(
                folder.glob("optimizer.*")) and (folder / "train_seconds.json").exists()
        except (OSError, ValueError):
            ok = False
        if ok:
            found.append((step, folder))
        else:
            discard(folder, "incomplete checkpoint (the run was interrupted while writing it)")
    return [folder for _, folder in sorted(found)]
