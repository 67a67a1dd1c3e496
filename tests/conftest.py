"""Shared fixtures: the smoke profile with its teacher trained once.

The fixture uses the smoke profile's own cache and results folders (cache/smoke, results/smoke, both ignored by git),
the ones the notebooks use under nbval: every run is keyed by what produced it, so the notebooks reuse the students
the tests trained instead of training them again.
"""

import pytest
import torch

from helpers import pipeline
from helpers.config import get_config
from helpers.data import load_synthetic_dataset
from helpers.notebook import quiet_libraries

quiet_libraries()


@pytest.fixture(scope="session")
def smoke_config():
    return get_config("smoke")


@pytest.fixture(scope="session")
def smoke_workspace(smoke_config):
    """The smoke workspace with its 24-token teacher (shorter than the students' 32: the window path), as if
    notebook 02's rule had chosen it."""
    workspace = pipeline.with_teacher_length(pipeline.prepare(smoke_config), 24)
    pipeline.load_or_train_teacher(workspace)
    return workspace


@pytest.fixture(scope="module")
def one_thread():
    """Models this small gain nothing from intra-op threads, and on a busy machine their spin-waits cost up to 5x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic():
    """256 train and 80 test rows of the synthetic, learnable AG News stand-in."""
    return load_synthetic_dataset(train_rows=256, test_rows=80, seed=0)
