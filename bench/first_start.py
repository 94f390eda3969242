"""First start on an empty cache: how soon the first page shows real content, and how soon
the trained default model is in use, from opening the page in a real browser.

Goals on a quiet 2-core machine (issue 20): real content (the architecture table) within 5 s
of opening the page, a trained model in use (the model card's metrics drawn, with the
weights saved after the first epoch) within 10 s, the final default model in use (the
provisional notice gone, the card drawn again) within 20 s. The browser shares the cores
with the server and its training.

The same run then times the bare training as a baseline, how fast this machine is today:
``python -m core.train`` on another empty cache, from its launch to its first epoch's file and
to its last. The app's times from ``streamlit run`` are printed as ratios to those.

    python bench/first_start.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classroom import CHROMIUM, CHROMIUM_ARGS, start_server
from playwright.sync_api import sync_playwright

CONTENT_GOAL_S, MODEL_GOAL_S, FINAL_GOAL_S = 5.0, 10.0, 20.0
ROOT = Path(__file__).resolve().parents[1]


def bare_training() -> tuple[float, float]:
    """Seconds from launching ``python -m core.train`` on an empty cache to its first epoch's
    weights on disk, and to its finished model."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MNIST_CNN_CACHE": tmp}
        launched = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.train"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        first = None
        while proc.poll() is None:
            if first is None and any(Path(tmp, "models").glob("*/epoch_01.safetensors")):
                first = time.perf_counter() - launched
            time.sleep(0.02)
        done = time.perf_counter() - launched
        if proc.returncode != 0 or first is None:
            raise SystemExit(f"python -m core.train failed ({proc.returncode})")
    return first, done


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        launched = time.perf_counter()
        proc, url = start_server(str(Path(tmp) / "cache"), Path(tmp) / "server.log")
        answered = time.perf_counter() - launched
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                start = time.perf_counter()
                before = start - launched  # the server's start and the browser's own
                page.goto(url)
                page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)  # the architecture table
                content = time.perf_counter() - start
                page.wait_for_selector('[data-testid="stMetric"]', timeout=300_000)  # a trained model's card
                model = time.perf_counter() - start
                provisional = page.locator("text=Provisional weights").count() > 0
                page.wait_for_selector("text=Provisional weights", state="detached", timeout=300_000)
                page.wait_for_selector('[data-testid="stMetric"]', timeout=300_000)  # the final model's card
                final = time.perf_counter() - start
                browser.close()
            meta = json.loads(next(Path(tmp, "cache", "models").glob("*/meta.json")).read_text())
            training = meta["train_seconds"]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    alone_first, alone_done = bare_training()
    print(
        f"from `streamlit run`: the server answered after {answered:.1f} s and the page was opened after "
        f"{before:.1f} s (the browser's own start); the times below count from opening the page "
        f"(add {before:.1f} s for the times from `streamlit run`)"
    )
    print(
        f"real content after {content:.1f} s (goal {CONTENT_GOAL_S} s) {'ok' if content <= CONTENT_GOAL_S else 'OVER'}"
    )
    which = "the first epoch's weights, provisional" if provisional else "the final weights"
    print(
        f"a trained model in use after {model:.1f} s ({which}; goal {MODEL_GOAL_S} s) "
        f"{'ok' if model <= MODEL_GOAL_S else 'OVER'}"
    )
    print(
        f"the final default model in use after {final:.1f} s (goal {FINAL_GOAL_S} s) "
        f"{'ok' if final <= FINAL_GOAL_S else 'OVER'}; training itself took {training:.1f} s of it"
    )
    print(
        f"baseline, the bare training (python -m core.train) from its launch: first epoch saved after "
        f"{alone_first:.1f} s, done after {alone_done:.1f} s; the app from `streamlit run`: the first epoch's "
        f"weights drawn after {before + model:.1f} s ({(before + model) / alone_first:.2f}x), the final ones after "
        f"{before + final:.1f} s ({(before + final) / alone_done:.2f}x)"
    )


if __name__ == "__main__":
    main()
