"""The dashboard's shared caches (dashboard.cache), called directly: what each is keyed by.

Outside a script run Streamlit logs harmless "No runtime found" warnings.
"""

from __future__ import annotations

import sys

import pytest

from core import checkpoints
from core.checkpoints import ModelRef
from core.config import CACHE_ENV, MAX_MODELS_ENV, PINNED_ENV, TRAINING_ENV, ServerSettings
from core.train import load_or_train
from core.workers import Gate
from dashboard import cache
from tests.conftest import tiny_config


@pytest.fixture
def fresh_settings(monkeypatch):
    """The server's settings read anew for one test, from an environment without the app's variables."""
    for name in (TRAINING_ENV, PINNED_ENV, MAX_MODELS_ENV):
        monkeypatch.delenv(name, raising=False)
    cache.settings.clear()
    yield
    cache.settings.clear()


def test_the_same_model_key_in_two_cache_folders_is_two_models(tmp_path, monkeypatch):
    """The cache folder is part of every key: tests and servers on different folders never share."""
    first, second = tmp_path / "a", tmp_path / "b"
    key = load_or_train(tiny_config(seed=5), root=first).info.key
    assert load_or_train(tiny_config(seed=5), root=second).info.key == key
    monkeypatch.setenv(CACHE_ENV, str(first))
    in_first = cache.model(ModelRef(key))
    assert cache.model(ModelRef(key)) is in_first  # loaded once
    monkeypatch.setenv(CACHE_ENV, str(second))
    in_second = cache.model(ModelRef(key))
    assert in_second is not in_first
    assert in_first.info.folder.parent.parent == first
    assert in_second.info.folder.parent.parent == second
    monkeypatch.setenv(CACHE_ENV, str(first))
    assert cache.model(ModelRef(key)) is in_first


def test_training_jobs_one_per_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a"))
    jobs = cache.training_jobs()
    assert cache.training_jobs() is jobs
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "b"))
    other = cache.training_jobs()
    assert other is not jobs
    assert (jobs._root, other._root) == (tmp_path / "a", tmp_path / "b")


def test_settings_are_read_once_from_the_environment(monkeypatch, fresh_settings):
    assert cache.settings() == ServerSettings()
    monkeypatch.setenv(TRAINING_ENV, "off")
    monkeypatch.setenv(PINNED_ENV, "BBBB, aaaa")
    monkeypatch.setenv(MAX_MODELS_ENV, "3")
    assert cache.settings() == ServerSettings()  # once per server: the environment is not read again
    cache.settings.clear()
    assert cache.settings() == ServerSettings(training=False, pinned=("bbbb", "aaaa"), max_models=3)
    assert cache.settings() is cache.settings()


def test_settings_take_the_apps_own_arguments(monkeypatch, fresh_settings):
    """``streamlit run dashboard/Home.py -- --no-training --model KEY`` puts them in sys.argv."""
    monkeypatch.setattr(sys, "argv", ["dashboard/Home.py", "--no-training", "--model", "cccc"])
    assert cache.settings() == ServerSettings(training=False, pinned=("cccc",))
    cache.settings.clear()
    monkeypatch.setattr(sys, "argv", ["pytest", "--no-training"])  # another program's arguments are not the app's
    assert cache.settings() == ServerSettings()


def test_cached_models_honour_the_pinned_ones_and_their_order(tmp_path, monkeypatch, fresh_settings):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    keys = [load_or_train(tiny_config(seed=70 + i), root=tmp_path).info.key for i in range(3)]
    newest_first = [info.key for info in checkpoints.list_checkpoints(tmp_path)]
    assert sorted(newest_first) == sorted(keys)
    assert [info.key for info in cache.cached_models()] == newest_first
    monkeypatch.setenv(PINNED_ENV, f"{keys[2]},{'f' * 16},{keys[0].upper()}")  # one not cached: skipped
    cache.settings.clear()
    assert [info.key for info in cache.cached_models()] == [keys[2], keys[0]]


def test_heavy_gate_is_one_gate_for_every_session():
    gate = cache.heavy_gate()
    assert isinstance(gate, Gate)
    assert cache.heavy_gate() is gate
