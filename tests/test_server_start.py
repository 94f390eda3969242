"""The server's start-up work (dashboard.server_start): ``streamlit run dashboard/Home.py``
serves Home.py's ``st.App``, whose lifespan requests the default model before any browser
connects. (tests/test_browser.py checks the same through a real server.)"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from streamlit.web.server.app_discovery import discover_asgi_app

from core import checkpoints, config
from core.data import load_mnist
from core.jobs import DONE
from dashboard import server_start
from tests.apptest import server_env
from tests.conftest import tiny_config

__all__ = ["server_env"]  # a fixture: imported for pytest to find
ROOT = Path(__file__).resolve().parents[1]


def test_streamlit_run_serves_home_as_an_app_with_a_lifespan():
    """`streamlit run` looks for an st.App in the script (by its source, without running it):
    found, it runs the server through it, lifespan included."""
    found = discover_asgi_app(ROOT / "dashboard" / "Home.py")
    assert found.is_asgi_app and found.import_string == "Home:app"


def test_on_an_empty_cache_the_default_model_trains_before_any_page_runs(tmp_path, monkeypatch, server_env):
    from dashboard import cache

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    monkeypatch.setitem(config.RECIPES, "default", tiny_config(recipe="default", seed=31))
    server_env()
    key = server_start.warm_start()
    assert key == checkpoints.model_key(config.RECIPES["default"], load_mnist().fingerprint)
    status = cache.training_jobs().wait(key, 120)
    assert status.state == DONE and status.result.trained_now
    # A server started again on that cache asks for nothing: the page finds the model.
    assert server_start.warm_start() is None


def test_no_training_is_requested_where_training_is_off(tmp_path, monkeypatch, server_env):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    server_env(MNIST_CNN_TRAINING="off")
    assert server_start.warm_start() is None
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_failure_at_start_is_logged_and_left_to_the_first_page(monkeypatch, server_env, caplog):
    server_env(MNIST_CNN_MAX_MODELS="many")  # a setting the server does not understand
    with caplog.at_level("ERROR", logger="dashboard"):
        assert server_start.warm_start() is None
    assert "start-up work failed" in caplog.text


def test_the_lifespan_returns_at_once_and_starts_the_work_on_its_own_thread(monkeypatch):
    started, release = threading.Event(), threading.Event()

    def slow_start():
        started.set()
        release.wait(10)

    monkeypatch.setattr(server_start, "warm_start", slow_start)

    async def serve() -> None:
        async with server_start.lifespan(None):
            assert started.wait(10)  # running, while the server would already answer

    try:
        asyncio.run(serve())
    finally:
        release.set()
