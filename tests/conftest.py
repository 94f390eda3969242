"""Shared fixtures: a real model trained once per test session into a temporary cache."""

from __future__ import annotations

import pytest
import torch

from core.config import CACHE_ENV, recipe
from core.train import TrainedModel, load_or_train


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> object:
    """A cache folder holding the reference recipe, trained once (~5 s), set as the app's cache."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="session")
def reference_model(model_cache) -> TrainedModel:
    """The reference recipe (Adam 1e-3, batch 100, one epoch) on the real data."""
    return load_or_train(recipe("reference"), root=model_cache)


def tiny_config(**overrides):
    """A config that trains in well under a second: 2,000 images, one epoch."""
    return recipe("reference", train_limit=2000, **overrides)


@pytest.fixture
def one_torch_thread():
    """Run as the dashboard does (dashboard/Home.py): one torch thread, which on a busy machine
    is many times faster than two. Per test, so the session's reference model trains as always."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
