"""What the server does once, when it starts, before any browser connects.

``streamlit run dashboard/Home.py`` finds the ``st.App`` that Home.py builds when it is imported
rather than run as a page (``streamlit run`` finds an ``st.App`` assignment by reading the
script's source, serves the app with uvicorn and enters its lifespan when the server starts;
pyproject asks for Streamlit 1.67, where this was checked). The lifespan starts
:func:`warm_start` on a thread and returns at once, so the server answers while it runs:

- the imports every first page run needs (torch, the core library, the dashboard's modules:
  about 3 s on two cores) are done before a browser asks for them;
- on an empty cache the default model's training is requested from the shared background
  trainer, exactly as the first page would have, so the first epoch (and its provisional
  weights, Home.py's notice) is seconds nearer when the first page opens;
- the server's data set is loaded into the shared cache, and the host's own networks (--net)
  are opened into the model cache (each checked; one refused is logged and left out).

(Loading and evaluating the cached model here too, on a later start, was tried: the first page
drew its card no sooner, 4.4 s against 3.4-3.9 s after opening it, so it is not done.)

Nothing here is needed for correctness: if it fails, or runs under AppTest (which runs Home.py
as a page and never imports it), the first page does the same work itself.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

log = logging.getLogger("dashboard")
THREAD = "server-start"


class _NotFromThisThread(logging.Filter):
    """Drops Streamlit's "missing ScriptRunContext" warning for this thread's cache calls: it
    runs outside any session on purpose, and the shared caches it fills need none."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD


def warm_start() -> str | None:
    """Import the dashboard, load the server's data set, and on an empty cache ask the
    background trainer for the default model. Returns the key requested, else None."""
    try:
        import pandas  # noqa: F401  (st.dataframe's first use imports it: 0.2-0.4 s of the first page)

        from dashboard import cache, panels, sidebar, state  # noqa: F401  (the first page's imports)

        server = cache.settings()
        requested = None
        if server.nets:  # opened (and checked) once, before a page asks: the first page shows the first
            cache.host_networks()
        cached = cache.cached_models()
        # The page asks for the default model only when no model is cached (state.resolve); beside
        # the host's own networks the reference stays in the list, so it is trained here.
        if server.training and (not cached or server.nets):
            default = server.default_config()
            if cache.training_jobs().key(default) not in {info.key for info in cached}:
                requested = cache.training_jobs().request(default)
        cache.dataset(server.data)
        return requested
    except Exception:  # a bad setting or damaged data: the first page says what is wrong
        log.exception("the server's start-up work failed; the first page will do it")
        return None


@asynccontextmanager
async def lifespan(_app):
    """The server's start and stop (``st.App(lifespan=...)``): starts :func:`warm_start`."""
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_NotFromThisThread())
    threading.Thread(target=warm_start, name=THREAD, daemon=True).start()
    yield None
