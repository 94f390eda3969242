"""A classroom on one server: N browser sessions walk the dashboard at the same time.

Starts the real Streamlit server, warms it with one session (training the default model
first if the cache is empty), then for each N opens N browser contexts (separate cookies,
so separate Streamlit sessions) in ONE headless Chromium and has them all, concurrently,
walk: open /errors -> click a confusion cell -> click a digit tile -> "Its feature maps"
-> "Why: its attributions" (or, where the page has no such link, the sidebar's
"Attributions"). Each step is a phase: all sessions do it, then all the next one.
Sessions vary the cell (every off-diagonal cell with digits, but the one shown first, most
frequent first) and the tile, so that sessions rarely share per-digit caches.

A step's time runs from the click (or goto) until the page is drawn: no status widget,
no stale element, the expected text present and every Plotly chart laid out. A timeout,
a Streamlit exception or a console/page error counts as an error (later steps skipped).
Per phase it reports p50/p95/max seconds, errors, the server's CPU seconds per session
(utime+stime from /proc) and the server's RSS after warm-up versus after N sessions.

The browsers run on the same machine and share its (2) cores with the server: their CPU
seconds per phase are printed too, and the step times here are pessimistic. RSS grows
with caches too (per-digit results, allocator), so MB per extra session is an upper bound.

    python bench/classroom.py --sessions 1 8 --cache /tmp/cache --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEPS = ["open errors", "click cell", "click tile", "feature maps", "attributions"]
TICK = os.sysconf("SC_CLK_TCK")
# Drawn: the script run is over, nothing stale, the expectations met, every chart laid out.
# An exception ends the wait at once (the step is then an error).
DRAWN_JS = """([text, h1, trace]) => {
  const main = document.querySelector('[data-testid=stMain]');
  if (main && main.querySelector('[data-testid=stException]')) return true;
  if (!main || document.querySelector('[data-testid=stStatusWidget], [data-stale=true]')) return false;
  if (text && !main.innerText.includes(text)) return false;
  if (h1 && ![...main.querySelectorAll('h1')].some(e => e.innerText.toLowerCase().includes(h1))) return false;
  const plots = [...main.querySelectorAll('.js-plotly-plot')];
  if (!plots.length || plots.some(g => !g._fullLayout || !g.calcdata)) return false;
  return !trace || plots.some(g => g._fullData.some(t => t.name === trace));
}"""
# Pixel offset, within its chart, of point i of the trace named `name`; with the trace's customdata.
POINT_JS = """([name, i]) => {
  const gd = [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')]
    .find(g => g._fullData && g._fullData.some(t => t.name === name));
  const t = gd._fullData.find(t => t.name === name), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const k = i % t.x.length, plots = [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')];
  return {chart: plots.indexOf(gd), x: xa._offset + xa.d2p(t.x[k]), y: ya._offset + ya.d2p(t.y[k]),
          custom: Array.from(t.customdata[k]), all: t.customdata.map(c => Array.from(c))};
}"""


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass  # exited
    return total / TICK


def tree(root: int, name: str = "") -> list[int]:
    """``root`` and its descendants (those whose comm starts with ``name``, if given)."""
    parent, comm = {}, {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                comm[int(d.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                pass
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [p for p, pp in parent.items() if pp == pid]
    return [p for p in found if comm.get(p, "").startswith(name)]


def rss_mb(pids: list[int]) -> float:
    lines = [line for pid in pids for line in Path(f"/proc/{pid}/status").read_text().splitlines()]
    return sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:")) / 1024


def start_server(cache: str | None, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **({"MNIST_CNN_CACHE": cache} if cache else {})}
    args = ["run", "dashboard/Home.py", "--server.port", str(port), "--server.address", "127.0.0.1"]
    args += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    args += ["--server.fileWatcherType", "none"]  # an edit mid-run would put "Rerun?" in the status widget
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", *args], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"streamlit did not start:\n{log.read_text()[-2000:]}")


class Session:
    """One browser context walking the pages; ``cell`` (true, predicted), ``tile`` its pick."""

    def __init__(self, page, url: str, cell: tuple[int, int], tile: int, timeout_s: float):
        self.page, self.url, self.cell, self.tile, self.timeout = page, url, cell, tile, timeout_s * 1000
        self.errors: list[str] = []
        self.failed = ""  # why a step failed: later steps are skipped
        self.sample = ""  # "test #1,234" once a tile is clicked
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" and not _is_404(m.text) else None)

    async def click_point(self, trace: str, i: int) -> list:
        p = await self.page.evaluate(POINT_JS, [trace, i])
        chart = self.page.locator("[data-testid=stMain] .js-plotly-plot").nth(p["chart"])
        await chart.click(position={"x": p["x"], "y": p["y"]}, timeout=self.timeout)
        return p["custom"]

    async def act(self, step: str) -> None:
        page, (t, p) = self.page, self.cell
        if step == "open errors":
            await page.goto(f"{self.url}/errors", timeout=self.timeout)
            expect = [None, None, "cells"]
        elif step == "click cell":
            await self.click_point("cells", t * 10 + p)
            expect = [f"true {t}, predicted {p}", None, "tiles"]
        elif step == "click tile":
            index = int((await self.click_point("tiles", self.tile))[0])
            self.sample = f"test #{index:,}"
            expect = [f"{self.sample}: the network reads", None, None]
        else:
            link = "Its feature maps" if step == "feature maps" else "Why: its attributions"
            target = page.locator("[data-testid=stPageLink] a", has_text=link)
            if step == "attributions" and not await target.count():  # Feature maps has no such link:
                target = page.locator("[data-testid=stSidebarNavLink]", has_text="Attributions")  # the sidebar's
            await target.click(timeout=self.timeout)
            expect = [self.sample, "feature maps" if step == "feature maps" else "attributions", None]
        await page.wait_for_function(DRAWN_JS, arg=expect, timeout=self.timeout, polling=100)

    async def step(self, step: str) -> float | None:
        """Seconds until the step's page is drawn, or None (an error, kept in ``failed``)."""
        if self.failed:
            return None
        start, before = time.monotonic(), len(self.errors)
        try:
            await self.act(step)
            exc = self.page.locator("[data-testid=stException]")
            if await exc.count():
                self.failed = f"exception: {(await exc.first.inner_text())[:300]}"
        except Exception as err:  # a timeout above all
            self.failed = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
        seconds = time.monotonic() - start
        if not self.failed and len(self.errors) > before:
            self.failed = f"console: {self.errors[before][:300]}"
        return None if self.failed else seconds


async def request_trainings(browser, url: str, n: int, first_seed: int, timeout_s: float) -> list[int]:
    """``n`` sessions each ask for a training run with its own seed through the sidebar's
    form, then close their tab (a closed tab must neither restart nor cancel its job)."""
    seeds = []
    for i in range(n):
        ctx = await browser.new_context(viewport={"width": 1500, "height": 1100})
        page = await ctx.new_page()
        await page.goto(url, timeout=timeout_s * 1000)
        await page.get_by_text("Train a new model").click(timeout=timeout_s * 1000)
        await page.get_by_label("Seed").fill(str(first_seed + i))
        await page.get_by_role("button", name="Train", exact=True).click()
        await page.wait_for_selector("text=Training your model in the background", timeout=timeout_s * 1000)
        seeds.append(first_seed + i)
        await ctx.close()
    return seeds


def _is_404(text: str) -> bool:  # the frontend probing <page>/_stcore/* before the root: expected
    return text.startswith("Failed to load resource: the server responded with a status of 404")


async def walk(browser, url, server: int, specs: list, timeout_s: float) -> dict:
    """All sessions do each step together; per step: times, errors, CPU seconds."""
    contexts = [await browser.new_context(viewport={"width": 1500, "height": 1100}) for _ in specs]
    sessions = [
        Session(await c.new_page(), url, cell, tile, timeout_s) for c, (cell, tile) in zip(contexts, specs, strict=True)
    ]
    result: dict = {"steps": {}, "contexts": contexts}
    for step in STEPS:
        srv = tree(server)
        cpu0 = cpu_seconds(srv)
        # Per browser process, so one that exits mid-step (a replaced renderer) is left out
        # instead of making the sum negative.
        chrome0 = {pid: cpu_seconds([pid]) for pid in tree(os.getpid(), "chrom")}
        times = await asyncio.gather(*(s.step(step) for s in sessions))
        srv = tree(server)
        chrome1 = {pid: cpu_seconds([pid]) for pid in tree(os.getpid(), "chrom")}
        ok = [t for t in times if t is not None]
        print(f"  {len(sessions)} session(s) {step}: {len(ok)} ok, slowest {max(ok, default=0):.1f} s", flush=True)
        result["steps"][step] = {
            "p50": float(np.percentile(ok, 50)) if ok else None,
            "p95": float(np.percentile(ok, 95)) if ok else None,
            "max": max(ok) if ok else None,
            "errors": len(times) - len(ok),
            "server_cpu_per_session": (cpu_seconds(srv) - cpu0) / len(sessions),
            "browser_cpu": sum(cpu - chrome0.get(pid, 0.0) for pid, cpu in chrome1.items()),
        }
    result["failures"] = sorted({s.failed for s in sessions if s.failed})
    return result


async def main(args) -> dict:
    log = Path(tempfile.mkdtemp(prefix="classroom-")) / "server.log"
    proc, url = start_server(args.cache or os.environ.get("MNIST_CNN_CACHE"), log)
    print(f"server pid {proc.pid} at {url}, log {log}", flush=True)
    results: dict = {"rounds": {}}
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                # Warm-up: the first page may train the default model; read the confusions.
                ctx = await browser.new_context(viewport={"width": 1500, "height": 1100})
                page = await ctx.new_page()
                await page.goto(f"{url}/errors")
                await page.wait_for_function(DRAWN_JS, arg=[None, None, "cells"], timeout=args.warmup * 1000)
                if await page.locator("[data-testid=stException]").count():
                    raise SystemExit(f"the Errors page raised:\n{log.read_text()[-3000:]}")
                cells = (await page.evaluate(POINT_JS, ["cells", 0]))["all"]
                await ctx.close()
                ranked = sorted((c for c in cells if c[0] != c[1] and c[2] > 0), key=lambda c: -c[2])
                pool = [(int(c[0]), int(c[1])) for c in ranked[1:]]  # the first is shown already
                print(f"{len(pool)} cells in turn, (true, predicted): {pool[:8]}…", flush=True)
                # Session g: a cell in turn, then the cell's next tile (modulo its count).
                picks = ((pool[g % len(pool)], g // len(pool)) for g in itertools.count())
                warm = await walk(browser, url, proc.pid, [next(picks)], max(args.timeout, 300))
                if warm["failures"]:
                    raise SystemExit(f"warm-up walk failed: {warm['failures']}")
                results["rss_warm_mb"] = rss_mb(tree(proc.pid))
                for c in warm["contexts"]:
                    await c.close()
                for n in args.sessions:
                    if args.trainers:  # a burst of training requests first, then the walk while they run
                        start = time.monotonic()
                        seeds = await request_trainings(browser, url, args.trainers, 5000 + n * 100, args.timeout)
                        print(f"  {len(seeds)} trainings requested in {time.monotonic() - start:.0f} s", flush=True)
                    r = await walk(browser, url, proc.pid, [next(picks) for _ in range(n)], args.timeout)
                    rss = rss_mb(tree(proc.pid))
                    for c in r.pop("contexts"):
                        await c.close()
                    r["rss_mb"] = rss
                    if args.trainers and args.cache:
                        sys.path.insert(0, str(ROOT))
                        from core.checkpoints import list_checkpoints

                        infos = sorted(list_checkpoints(Path(args.cache) / ""), key=lambda i: i.created)
                        done = [i.config.seed for i in infos if i.config.seed in seeds]
                        print(
                            f"  after the walk: {len(done)} of the {len(seeds)} requested trainings finished, in the "
                            f"order asked: {done == sorted(done)}; {len(infos)} models cached",
                            flush=True,
                        )
                    r["mb_per_extra_session"] = (rss - results["rss_warm_mb"]) / (n - 1) if n > 1 else None
                    results["rounds"][n] = r
                    report(n, r, results["rss_warm_mb"])
            finally:
                await browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def report(n: int, r: dict, rss_warm: float) -> None:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"\nN={n} sessions (the browsers share the machine's cores with the server)")
    row = "{:<14} {:>6} {:>6} {:>6} {:>6} {:>18} {:>14}"
    print(row.format("step", "p50 s", "p95 s", "max s", "errors", "server cpu s/sess", "browser cpu s"))
    for step, s in r["steps"].items():
        cpu = f"{s['server_cpu_per_session']:.2f}", f"{s['browser_cpu']:.2f}"
        print(row.format(step, f(s["p50"]), f(s["p95"]), f(s["max"]), s["errors"], *cpu))
    extra = r["mb_per_extra_session"]
    print(
        f"server RSS: {rss_warm:.0f} MB after warm-up (1 session), {r['rss_mb']:.0f} MB with {n}"
        + (f" -> {extra:+.1f} MB per extra session" if extra is not None else "")
    )
    for failure in r["failures"]:
        print("  failure:", failure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 16, 30], help="N per round")
    parser.add_argument("--cache", help="the model cache (MNIST_CNN_CACHE); default: the environment's")
    parser.add_argument("--timeout", type=float, default=120, help="seconds a step may take before it is an error")
    parser.add_argument("--warmup", type=float, default=1800, help="seconds the first page may take (training)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--trainers", type=int, default=0, help="sessions that each ask for a training before a round")
    args = parser.parse_args()
    out = asyncio.run(main(args))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
