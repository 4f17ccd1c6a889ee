"""Who is at the keyboard: the login gate run before any page draws patient data.

Three modes (``DashboardConfig.login``, chosen by ``adaptclip-med dashboard``):

* ``oidc``: Streamlit's own OpenID Connect login (``st.login`` / ``st.user``); the identity is the
  ID token's issuer + subject, permissions come from a configurable claim;
* ``local``: one person on this machine (loopback only): the OS account, with a visible
  "local, unauthenticated" banner;
* ``trusted-header``: a reverse proxy that authenticated the user names them in a header; safe only
  when nothing but the proxy can reach Streamlit (loopback / Unix socket, enforced by the CLI).

Every run also checks the request's Host header against the configured host(s), so a page loaded
from another name (DNS rebinding) gets nothing.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from adaptclip_med.review.access import (LOCAL, MANAGE, OIDC, SIGN_OFF, TRUSTED_HEADER, Identity, identity_from_claims,
                                         identity_from_header, local_identity)
from adaptclip_med.review.config import DashboardConfig


def gate(config: DashboardConfig) -> Identity:
    """The person behind this run, or stop the script (wrong Host, or a login page instead)."""
    _check_host(config)
    if config.login == "oidc":
        who = _oidc_identity(config)
        if who is None:
            _login_page()
        return who  # type: ignore[return-value]  # _login_page stops the run
    if config.login == "trusted-header":
        headers = _headers()
        who = identity_from_header(headers.get(config.trusted_header),
                                   headers.get(config.trusted_groups_header) if config.trusted_groups_header else None,
                                   config.role_map(), config.trusted_header)
        if who is None:
            st.error(f"No authenticated user: the reverse proxy did not send the {config.trusted_header} header.")
            st.stop()
        return who  # type: ignore[return-value]
    return local_identity()


def _headers() -> Any:
    try:
        return st.context.headers
    except Exception:  # no request context (a bare script run)
        return {}


def _check_host(config: DashboardConfig) -> None:
    if not config.allowed_hosts:
        return
    host = (_headers().get("Host") or "").strip().lower()
    if host not in {h.lower() for h in config.allowed_hosts}:
        st.error("This dashboard is not served under this address (Host not allowed); use its configured address.")
        st.stop()


def _oidc_identity(config: DashboardConfig) -> Identity | None:
    """``st.user`` holds the claims of a validly signed identity cookie (anything else: not logged in)."""
    user = st.user
    if not user.is_logged_in:
        return None
    return identity_from_claims(user.to_dict(), config.role_map())


def _login_page() -> None:
    st.title("adaptclip-med review")
    st.write("Log in with your hospital account to review studies.")
    st.button("Log in", key="login", type="primary", on_click=st.login, icon=":material/login:")
    st.stop()


def top_bar_label(who: Identity) -> str:
    """Who is signed in and what they may do, for the top bar (plain text, no markup)."""
    rights = ["sign off"] if who.may(SIGN_OFF) else []
    rights += ["banks and scoring"] if who.may(MANAGE) else []
    role = ", ".join(rights) if rights else "read only"
    if who.mode == LOCAL:
        return f"{who.display} (local, unauthenticated)"
    if who.mode == TRUSTED_HEADER:
        return f"{who.display} (via reverse proxy; {role})"
    return f"{who.display} ({role})"


def log_out_button(who: Identity) -> None:
    """OIDC users can log out (Streamlit clears its identity cookie and ends the provider session)."""
    if who.mode == OIDC:
        st.button("Log out", key="logout", on_click=st.logout, icon=":material/logout:", width="stretch")
