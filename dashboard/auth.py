"""Who is looking at this page, and the one guard every launching widget goes through.

Roles are decided in ``forgetwatch.access``; this module only reads the request
(``st.context.headers`` and the connection's address for ``proxy``, ``st.user``
for ``oidc``). Pages draw Run, Cancel, Evaluate and Sync only when
``can_operate()``; and the code those widgets run calls ``require_operator`` (or
is wrapped by ``operator_callback``) itself, so a widget interaction a viewer
crafts by hand is refused in the server even though the page never drew it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from forgetwatch import access
from forgetwatch.access import PermissionDeniedError, User
from forgetwatch.dashboard import components
from forgetwatch.exports.escaping import escape_markdown

REFUSED_KEY = "auth-refused"


def current_user() -> User | None:
    """The user of this session, or None when nobody (trusted) is signed in."""
    mode = access.mode()
    if mode == "none":
        return access.local_user()
    if mode == "proxy":
        headers = {key: st.context.headers.get(key, "") for key in st.context.headers}
        return access.user_from_proxy(headers, st.context.ip_address)
    if not st.user.is_logged_in:
        return None
    return access.user_from_oidc(st.user.get("email"), st.user.get("name"))


def can_operate() -> bool:
    user = current_user()
    return user is not None and user.is_operator


def require_operator(action: str) -> User:
    """The signed-in operator; a viewer (or nobody) gets ``PermissionDeniedError``."""
    return access.require_operator(current_user(), action)


def launcher() -> str:
    """The name a job launched from this session records (an operator's, by then)."""
    user = current_user()
    return user.name if user else "unknown"


def operator_callback(action: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a widget callback that first checks the role; a refusal is shown by ``gate``."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            require_operator(action)
        except PermissionDeniedError as exc:
            st.session_state[REFUSED_KEY] = exc
            return None
        return fn(*args, **kwargs)

    return guarded


def viewer_note(action: str) -> None:
    """Say why the launch controls are missing, instead of leaving a hole in the page."""
    user = current_user()
    name = escape_markdown(user.name) if user else ""
    who = f"You are signed in as **{name}**, a viewer" if user else "Nobody is signed in"
    st.info(
        f"{who}: only operators can {action}. Ask to be added to FORGETWATCH_OPERATORS.",
        icon=":material/lock:",
    )


def gate() -> None:
    """Run by ``app.py`` before any page: stop the render when nobody trusted is signed in.

    With ``proxy``, a connection that did not come through a trusted proxy (or came
    without the user header) sees only how to sign in; with ``oidc``, a log-in button.
    Signed-in users see who they are and their role in the sidebar.
    """
    mode = access.mode()
    refused = st.session_state.pop(REFUSED_KEY, None)
    if refused is not None:
        components.show_error(refused)
    if mode == "none":
        return
    user = current_user()
    if user is None:
        if mode == "oidc":
            st.title("forgetwatch")
            st.button("Log in", icon=":material/login:", on_click=st.login, key="login")
        else:
            components.show_error(
                PermissionDeniedError(
                    "Not signed in: this dashboard is served behind an authenticating proxy",
                    "Open it through the proxy's address, which signs you in.",
                )
            )
        st.stop()
        return  # not reached: st.stop() raises
    role = "operator" if user.is_operator else "viewer"
    st.sidebar.caption(f"Signed in as {escape_markdown(user.name)} ({role})")
    if mode == "oidc":
        st.sidebar.button("Log out", on_click=st.logout, key="logout")
