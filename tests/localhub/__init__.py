"""A local Hugging Face hub for tests of the `full` profile's client side: tiny stand-ins under the real repo ids
(``standins``), served over HTTP on 127.0.0.1 with every other host blocked (``server``).

    standins = build_standins(PROJECT_ROOT / "cache" / "localhub")
    with serve(standins, tmp_path) as (hub, proxy, env):
        subprocess.run(..., env=env)        # HF_ENDPOINT -> hub; HTTP(S)_PROXY -> proxy; a fresh HF_HOME
        hub.requests, proxy.attempts        # what the libraries asked for
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from localhub.server import BlockingProxy, HubRepo, LocalHub, Request
from localhub.standins import (
    ALIASES,
    DATASET_ID,
    LM_ID,
    STUDENT_ID,
    TEACHER_ID,
    TOKENIZER_ID,
    build_standins,
    repo_folders,
)

__all__ = ["ALIASES", "DATASET_ID", "LM_ID", "STUDENT_ID", "TEACHER_ID", "TOKENIZER_ID", "BlockingProxy", "HubRepo",
           "LocalHub", "Request", "build_standins", "execute_notebook", "hub_environment", "repo_folders", "serve"]

# Set by CI (and by users) to keep libraries off the network: they would stop the clients from asking the hub.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN",
                     "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HOME", "HF_ENDPOINT",
                     "TRANSFORMERS_CACHE", "HF_XET_CACHE")


def hub_environment(endpoint: str, proxy_url: str, home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the hub at ``endpoint``, every other host sent to the
    refusing proxy, and the Hugging Face caches in ``home`` (empty: each run downloads through the hub)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in OFFLINE_VARIABLES}
    env.update({
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "ALL_PROXY": proxy_url,
        "http_proxy": proxy_url, "https_proxy": proxy_url, "all_proxy": proxy_url,
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
    })
    return env


@contextlib.contextmanager
def serve(standins: Path, home: Path):
    """Serve ``standins`` (from ``build_standins``) until exit; yields (hub, proxy, environment for subprocesses)."""
    repos = [HubRepo(kind, repo_id, folder) for (kind, repo_id), folder in repo_folders(standins).items()]
    with LocalHub(repos, ALIASES) as hub, BlockingProxy() as proxy:
        yield hub, proxy, hub_environment(hub.endpoint, proxy.url, Path(home))


def execute_notebook(document, folder: Path, env: dict[str, str], timeout: int) -> str | None:
    """Runs a notebook (an nbformat document, executed in place) in a fresh kernel with ``env`` and ``folder`` as its
    working directory; None, or the failing cell's error."""
    import nbclient

    client = nbclient.NotebookClient(document, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    try:
        client.execute(env=env)
    except (nbclient.exceptions.CellExecutionError, nbclient.exceptions.CellTimeoutError,
            nbclient.exceptions.DeadKernelError) as error:
        return f"{type(error).__name__}: {error}"
    return None
