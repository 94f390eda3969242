"""The dashboard's entry point: ``streamlit run dashboard/Home.py``.

Page setup, the one place a run's view is resolved: which model, the data, the selected digit
(``dashboard.state.resolve``), then the navigation (its titles call the images by the data set's
noun). Each page file receives that view (``state.page_view()``) and draws it. Warnings about
the link or the model go at the top.

``streamlit run`` also imports this file once, not as a page, when the server starts: it then
only builds the ``st.App`` whose lifespan starts the server's own work (dashboard.server_start:
the imports, and the default model's training on an empty cache) before any browser connects.
"""

import streamlit as st


def main() -> None:
    """One run of the app for one session: set up, resolve the view, run the chosen page."""
    from core.data import MNIST_WORDS, DataError
    from core.thread_choice import use_threads
    from dashboard import cache, panels, sidebar, state

    st.set_page_config(page_title="MNIST CNN dashboard", page_icon="🔢", layout="wide")
    # One intra-op thread for this session's thread: a page's tensors are tiny, and many
    # sessions each asking for every core would oversubscribe a classroom server's CPUs.
    # (Set for this thread only, see use_threads; the background trainer sets its own.)
    use_threads(1)

    # The view first, so the navigation can call the data set's images by their noun ("Browse
    # digits", "Browse items"); what stops the run is said once the navigation is drawn.
    view, warnings, problem = None, [], None  # problem: (what stops this run, its icon)
    try:
        cache.settings()
    except ValueError as err:  # a wrong argument after `--`, environment variable or settings file
        cache.log_setting_error(str(err))
        problem = (
            f"This server was started with a setting it does not understand: {err}. Its host should correct it and "
            "restart the server (README: Serving a class).",
            ":material/settings_alert:",
        )
    else:
        try:
            view, warnings = state.resolve()
        except DataError as err:  # e.g. a damaged bundled file: say which, and stop cleanly
            problem = (f"The data set could not be loaded. {err}", ":material/database:")
        except state.NoModelError as err:  # training switched off and nothing usable cached
            problem = (str(err), ":material/model_training:")
    words = view.words if view is not None else MNIST_WORDS  # a run that stops: the reference's words
    navigation = st.navigation(
        {
            "Model and data": [
                st.Page("app_pages/overview.py", title="Overview", icon=":material/info:", default=True),
                st.Page("app_pages/browse.py", title=f"Browse {words.plural}", icon=":material/grid_view:"),
                st.Page("app_pages/errors.py", title="Errors", icon=":material/error:"),
                st.Page("app_pages/data_map.py", title="Data map", icon=":material/scatter_plot:"),
                st.Page("app_pages/labels.py", title="Suspicious labels", icon=":material/label_off:"),
                st.Page("app_pages/influence.py", title="Behind an answer", icon=":material/family_history:"),
            ],
            "Inside the network": [
                st.Page("app_pages/feature_maps.py", title="Feature maps", icon=":material/layers:"),
                st.Page("app_pages/units.py", title="Units", icon=":material/grain:"),
                st.Page("app_pages/attributions.py", title="Attributions", icon=":material/insights:"),
                st.Page("app_pages/trust.py", title="Which maps to trust", icon=":material/verified:"),
            ],
            "Try it": [
                st.Page("app_pages/your_digit.py", title=f"Your own {words.noun}", icon=":material/draw:"),
                st.Page("app_pages/probe.py", title="Probe the model", icon=":material/experiment:"),
            ],
        }
    )
    if problem is not None:
        st.error(problem[0], icon=problem[1])
        st.stop()
    for warning in state.link_notices(warnings, navigation.url_path):
        st.warning(warning, icon=":material/link_off:")
    if view.trained is not None and view.trained.info.provisional:
        panels.provisional_notice(view)
    sidebar.show(view)
    navigation.run()
    state.sync_url()


if __name__ == "__main__":  # a session's run: Streamlit executes this file as __main__
    main()
else:  # imported by `streamlit run` (or uvicorn) as the server's app
    from dashboard.server_start import lifespan

    app = st.App(__file__, lifespan=lifespan)
