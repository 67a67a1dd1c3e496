"""Shared fixtures: the smoke profile with its caches in a temporary folder, its teacher trained once."""

import pytest

from helpers import pipeline
from helpers.config import get_config
from helpers.notebook import quiet_libraries

quiet_libraries()


@pytest.fixture(scope="session")
def smoke_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    return get_config("smoke", cache_dir=str(root / "cache"), results_dir=str(root / "results"),
                      figures_dir=str(root / "figures"))


@pytest.fixture(scope="session")
def smoke_workspace(smoke_config):
    workspace = pipeline.prepare(smoke_config)
    pipeline.load_or_train_teacher(workspace)
    return workspace
