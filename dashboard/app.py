"""Dashboard entry point: ``streamlit run dashboard/app.py``.

Only declares the pages; each page reads the database state once per render and
loads its view models through the per-state cache (``components.page_data``).
"""

from __future__ import annotations

import streamlit as st

from forgetwatch.dashboard import auth, components

st.set_page_config(page_title="forgetwatch", layout="wide")
# The product's name on every page, in the sidebar under the page list.
st.sidebar.markdown("### forgetwatch\nWhat did this fine-tune gain, and what did it forget?")
components.spare_the_collector()
auth.gate()  # shared dashboards: nobody trusted signed in, no page

st.navigation(
    [
        st.Page(
            "views/runs.py", title="Models and runs", icon=":material/table_rows:", default=True
        ),
        st.Page("views/run.py", title="Run", icon=":material/model_training:"),
        st.Page("views/compare.py", title="Compare", icon=":material/scatter_plot:"),
        st.Page("views/flips.py", title="Flips", icon=":material/swap_vert:"),
        st.Page("views/evals.py", title="Evals", icon=":material/play_circle:"),
        st.Page("views/sources.py", title="Sources", icon=":material/cloud_sync:"),
    ]
).run()
