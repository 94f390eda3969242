"""Helpers for headless AppTest tests of the dashboard (test_pages, test_state, test_sidebar)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

HOME = str(Path(__file__).resolve().parents[1] / "dashboard" / "Home.py")
PAGES = [
    "app_pages/overview.py",
    "app_pages/browse.py",
    "app_pages/errors.py",
    "app_pages/data_map.py",
    "app_pages/labels.py",
    "app_pages/influence.py",
    "app_pages/feature_maps.py",
    "app_pages/units.py",
    "app_pages/attributions.py",
    "app_pages/trust.py",
    "app_pages/your_digit.py",
    "app_pages/probe.py",
]


def open_app(page: str | None = None, /, **query: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=120)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def finish_training(root: Path) -> None:
    """Wait for every background training job of the app's trainer for ``root``."""
    from dashboard import cache

    jobs = cache._training_jobs(str(root))
    for status in jobs.all():
        assert jobs.wait(status.key, timeout=120).state == "done", status


def finish_background(prefix: str, timeout_s: float = 60.0) -> None:
    """Wait for the server's background computations whose task names start with ``prefix``
    (``units:`` for the unit index, ``map:`` for the data map)."""
    import time

    from dashboard import cache

    start = time.monotonic()
    while time.monotonic() < start + timeout_s:
        tasks = [t for t in list(cache.heavy_work()._tasks) if t.startswith(prefix)]
        if tasks and all(cache.heavy_work().status(t).state in ("done", "failed") for t in tasks):
            return
        if not tasks and time.monotonic() > start + 2:
            return  # none was started: the work was on disk already (e.g. from the browser test's server)
        time.sleep(0.1)


def progress_texts(at: AppTest) -> list[str]:
    """The text of every progress bar on the page."""
    return [p.proto.text for p in at.get("progress")]


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def texts(at: AppTest) -> str:
    return "\n".join(
        [m.value for m in at.markdown]
        + [c.value for c in at.caption]
        + [i.value for i in at.info]
        + [w.value for w in at.warning]
        + [e.value for e in at.error]
    )


def array(value) -> np.ndarray:
    """A Plotly figure array from JSON: a plain list, or Plotly's typed-array form {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return flat.reshape([int(d) for d in str(shape).split(",")]) if shape else flat
    return np.array(value, dtype=float)


@pytest.fixture
def server_env(monkeypatch):
    """Set the server's settings through its environment for one test (they are read once per server)."""
    from dashboard import cache

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        cache.settings.clear()

    yield apply
    cache.settings.clear()
