"""Who may do what on a shared dashboard: auth modes, users, the operator list.

The one place that decides roles, so every button, callback and command that
launches work asks the same question. A viewer browses and exports; an operator
may also launch and cancel eval jobs and start syncs. The dashboard
(``forgetwatch.dashboard.auth``) turns a request into a ``User`` with
``user_from_proxy`` or ``user_from_oidc`` and refuses work with
``require_operator``, so a crafted widget interaction from a viewer is refused in
the server, whatever the page drew.

Modes (``FORGETWATCH_AUTH``):

* unset: nobody signs in. Only loopback serving is allowed, and whoever reaches
  the page is its local operator (the machine's own user).
* ``proxy``: an authenticating reverse proxy (oauth2-proxy and the like) sets a
  user header. It is trusted only when the connection comes from an address on
  ``FORGETWATCH_TRUSTED_PROXIES``; anything else is nobody.
* ``oidc``: Streamlit's own ``st.login`` against the provider in
  ``.streamlit/secrets.toml``.
"""

from __future__ import annotations

import getpass
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from forgetwatch import settings
from forgetwatch.errors import ForgetwatchError

MODES = ("none", "proxy", "oidc")
OPERATOR, VIEWER = "operator", "viewer"


class PermissionDeniedError(ForgetwatchError):
    """A signed-in viewer (or nobody) asked for something only operators may do."""


@dataclass(frozen=True)
class User:
    """Someone looking at the dashboard: a name to record on jobs, and a role."""

    name: str
    role: str
    via: str  # none (loopback), proxy or oidc

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR


def mode(explicit: str | None = None) -> str:
    """The auth mode: ``FORGETWATCH_AUTH`` (or ``--auth``), ``none`` when unset."""
    raw = explicit if explicit is not None else settings.get("auth")
    return settings.choice("auth", MODES, raw.strip() or "none")


def operators() -> set[str]:
    """The operator list, compared case-insensitively (emails differ only in case)."""
    return {name.lower() for name in settings.items("operators")}


def role_of(name: str) -> str:
    return OPERATOR if name.strip().lower() in operators() else VIEWER


def local_user() -> User:
    """Loopback serving with no auth: the machine's user runs the show, as before."""
    return User(name=f"{_os_user()} (local)", role=OPERATOR, via="none")


def cli_user() -> str:
    """What a job launched from the command line records as its launcher."""
    return f"{_os_user()} (cli)"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def trusted_proxy(peer: str | None) -> bool:
    """True if ``peer`` (None means loopback) is on ``FORGETWATCH_TRUSTED_PROXIES``."""
    address = ipaddress.ip_address(peer or "127.0.0.1")
    for item in settings.items("trusted_proxies"):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise ForgetwatchError(
                f"FORGETWATCH_TRUSTED_PROXIES holds {item!r}, not an address or network",
                "List addresses or networks, comma-separated: 127.0.0.1,10.0.0.0/8",
                where="FORGETWATCH_TRUSTED_PROXIES",
            ) from exc
        if address.version == network.version and address in network:
            return True
    return False


def user_from_proxy(headers: Mapping[str, str], peer: str | None) -> User | None:
    """The proxy's user header, if the connection comes from a trusted proxy; else None.

    Header names are matched case-insensitively. A request that did not pass through
    a trusted proxy carries no identity at all, even if it sets the header itself.
    """
    if not trusted_proxy(peer):
        return None
    wanted = settings.get("auth_header").strip().lower()
    name = next((v for k, v in headers.items() if k.lower() == wanted), "").strip()
    return User(name=name, role=role_of(name), via="proxy") if name else None


def user_from_oidc(email: str | None, name: str | None) -> User | None:
    """The signed-in OIDC user (``st.user``); the email names them when the provider gives one."""
    who = (email or name or "").strip()
    return User(name=who, role=role_of(who), via="oidc") if who else None


def require_operator(user: User | None, action: str) -> User:
    """Return ``user`` if they may ``action``; else refuse with who they are and who may."""
    if user is not None and user.is_operator:
        return user
    who = f"{user.name} is a viewer" if user else "Nobody is signed in"
    raise PermissionDeniedError(
        f"Only operators may {action}: {who}",
        "Ask an operator, or have your name added to FORGETWATCH_OPERATORS where the "
        "dashboard is served.",
        where=user.name if user else "",
    )
