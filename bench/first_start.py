"""First start on an empty cache: how soon the first page shows real content, and how soon
the trained default model is in use, from opening the page in a real browser.

Goals on a quiet 2-core machine (issues 20 and 29): real content (the architecture table)
within 5 s of opening the page, a trained model in use (the model card's metrics drawn, with
the first saved weights: epoch 0.5, the default recipe saving twice an epoch) within 10 s,
the final default model in use (the provisional notice gone, the card drawn again) within 20 s.
The browser shares the cores with the server and its training.

The same run then times the bare training as a baseline, how fast this machine is today:
``python -m core.train`` on another empty cache, from its launch to its first saved point's file
and to its last. The app's times from ``streamlit run`` are printed as ratios to those.

    python bench/first_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def one_run() -> dict[str, float | bool]:
    """One first start on an empty cache, in a real browser, then the bare training as its baseline."""
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
                half = "epoch 0.5 of" in page.inner_text('[data-testid="stMain"]')
                page.wait_for_selector("text=Provisional weights", state="detached", timeout=300_000)
                page.wait_for_selector('[data-testid="stMetric"]', timeout=300_000)  # the final model's card
                final = time.perf_counter() - start
                browser.close()
            meta = json.loads(next(Path(tmp, "cache", "models").glob("*/meta.json")).read_text())
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    alone_first, alone_done = bare_training()
    return dict(
        answered=answered,
        before=before,
        content=content,
        model=model,
        provisional=provisional,
        half=half,
        final=final,
        training=meta["train_seconds"],
        alone_first=alone_first,
        alone_done=alone_done,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    results = []
    for n in range(1, runs + 1):
        r = one_run()
        results.append(r)
        which = "epoch 0.5, provisional" if r["half"] else "provisional" if r["provisional"] else "final"
        print(
            f"run {n}: server answered {r['answered']:.1f} s, page opened {r['before']:.1f} s after `streamlit run`; "
            f"from opening it: content {r['content']:.1f} s, a model in use {r['model']:.1f} s ({which}), "
            f"the final model {r['final']:.1f} s (training {r['training']:.1f} s); bare training: first point "
            f"{r['alone_first']:.1f} s, done {r['alone_done']:.1f} s; from `streamlit run`, first weights drawn "
            f"{(r['before'] + r['model']) / r['alone_first']:.2f}x the bare first point, final "
            f"{(r['before'] + r['final']) / r['alone_done']:.2f}x the bare training",
            flush=True,
        )

    def summary(name: str, goal: float) -> None:
        values = [r[name] for r in results]
        met = sum(v <= goal for v in values)
        print(
            f"{name}: median {statistics.median(values):.1f} s, {min(values):.1f}-{max(values):.1f} s; "
            f"within the {goal:.0f} s goal in {met} of {len(values)} runs"
        )

    summary("content", CONTENT_GOAL_S)
    summary("model", MODEL_GOAL_S)
    summary("final", FINAL_GOAL_S)


if __name__ == "__main__":
    main()
