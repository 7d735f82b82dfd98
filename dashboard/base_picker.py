"""The base picker: record which model some models were fine-tuned from, for everyone.

The same writer as ``forgetwatch pair`` (``collectors.base_pairs``), so a pick made
here is stored in the database: it survives a reload, every dashboard user sees it,
and the stored tests are redone against the new base before the page rerenders.
"""

from __future__ import annotations

import streamlit as st

from forgetwatch import queries, settings
from forgetwatch.dashboard import components
from forgetwatch.errors import ForgetwatchError

OUTCOME_KEY = "base-pair-outcome"


def _save(model_ids: list[str], base: str | None) -> None:
    """Button callback: runs before the next render, so no read connection is open."""
    from forgetwatch.collectors.base_pairs import pair_models

    try:
        report = pair_models(settings.db_path(), model_ids, base)
    except ForgetwatchError as exc:
        st.session_state[OUTCOME_KEY] = exc
        return
    st.session_state[OUTCOME_KEY] = report.summary().splitlines()[0]


def show_outcome() -> None:
    """What the last save did (once), as a success line or the error with its next step."""
    outcome = st.session_state.pop(OUTCOME_KEY, None)
    if isinstance(outcome, ForgetwatchError):
        components.show_error(outcome)
    elif outcome:
        st.success(f"Saved: {outcome}.", icon=":material/link:")


def base_picker(
    data: components.PageData,
    model_ids: list[str],
    *,
    key: str,
    current: str | None = None,
    paired: bool = False,
) -> None:
    """A base choice for ``model_ids`` with Save, and Clear when a hand pairing exists.

    ``current`` is the base they have now (preselected); ``paired`` whether it was
    paired by hand (only such a pairing can be cleared: an inferred base comes back
    from the model's files at every relink).
    """
    show_outcome()
    choices = data.load(queries.base_choices)
    labels = dict(zip(choices["model_id"], choices["label"], strict=True))
    options = [m for m in labels if m not in model_ids]
    if not options:
        st.caption(
            "No other evaluated model to pair with: ingest the base model's lm-eval "
            "results (`forgetwatch ingest DIR`) first."
        )
        return
    pick_col, save_col, clear_col = st.columns([5, 1, 1], vertical_alignment="bottom")
    base = pick_col.selectbox(
        "Base model" if len(model_ids) == 1 else f"Base model of the {len(model_ids)} models",
        options,
        index=options.index(current) if current in options else None,
        format_func=labels.get,
        placeholder="Pick the model these were fine-tuned from",
        filter_mode="contains",
        key=f"{key}-base",
        help="Stored in the database (as `forgetwatch pair MODEL --base BASE`), so every "
        "user sees it. A hand pairing wins over a base inferred from the model's files.",
    )
    save_col.button(
        "Save base",
        key=f"{key}-save",
        icon=":material/link:",
        disabled=base is None or (base == current and paired),
        on_click=_save,
        args=(list(model_ids), base),
    )
    clear_col.button(
        "Clear",
        key=f"{key}-clear",
        icon=":material/link_off:",
        disabled=not paired,
        on_click=_save,
        args=(list(model_ids), None),
        help="Forget the hand pairing; an inferred base, if any, applies again.",
    )
