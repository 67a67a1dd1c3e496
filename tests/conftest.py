"""Shared fixtures: the smoke profile with its teacher trained once.

The fixture uses the smoke profile's own cache and results folders (cache/smoke, results/smoke, both ignored by git),
the ones the notebooks use under nbval: every run is keyed by what produced it, so the notebooks reuse the students
the tests trained instead of training them again.
"""

import pytest

from helpers import pipeline
from helpers.config import get_config
from helpers.notebook import quiet_libraries

quiet_libraries()


@pytest.fixture(scope="session")
def smoke_config():
    return get_config("smoke")


@pytest.fixture(scope="session")
def smoke_workspace(smoke_config):
    workspace = pipeline.prepare(smoke_config)
    pipeline.load_or_train_teacher(workspace)
    return workspace
