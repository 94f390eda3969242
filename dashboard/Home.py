"""The dashboard's entry point: ``streamlit run dashboard/Home.py``. Page setup and navigation only."""

import streamlit as st

from core.data import DataError
from dashboard import sidebar, state

st.set_page_config(page_title="MNIST CNN dashboard", page_icon="🔢", layout="wide")

navigation = st.navigation(
    {
        "Model and data": [
            st.Page("app_pages/overview.py", title="Overview", icon=":material/info:", default=True),
            st.Page("app_pages/browse.py", title="Browse digits", icon=":material/grid_view:"),
            st.Page("app_pages/errors.py", title="Errors", icon=":material/error:"),
        ],
        "Inside the network": [
            st.Page("app_pages/feature_maps.py", title="Feature maps", icon=":material/layers:"),
            st.Page("app_pages/attributions.py", title="Attributions", icon=":material/insights:"),
        ],
        "Try it": [
            st.Page("app_pages/your_digit.py", title="Your own digit", icon=":material/draw:"),
        ],
    }
)
try:
    state.ensure_model()  # trains the default model once, with a progress bar, when none is cached
except DataError as err:  # e.g. a damaged bundled file: say which, and stop cleanly
    st.error(f"The MNIST data could not be loaded. {err}", icon=":material/database:")
    st.stop()
sidebar.show()
navigation.run()
state.sync_url()
