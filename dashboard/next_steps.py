"""Empty states that name the next step: the review layer decides, this draws it.

The same ``review.next_step`` answer as ``forgetwatch suite``/``check``/``export``
give, with the starter suite file offered as a download where that is the step.
"""

from __future__ import annotations

import streamlit as st

from forgetwatch.dashboard import components
from forgetwatch.review.next_step import NextStep


def show(step: NextStep | None, *, key: str) -> bool:
    """Draw ``step`` (an info box, plus the suite download); False when there is none."""
    if step is None:
        return False
    components.empty_state(step.title, step.detail)
    if step.suite_yaml:
        st.download_button(
            "Download a starter suite file",
            data=step.suite_yaml,
            file_name="my-suite.yaml",
            mime="application/x-yaml",
            icon=":material/download:",
            key=f"{key}-suite",
            on_click="ignore",
        )
    return True
