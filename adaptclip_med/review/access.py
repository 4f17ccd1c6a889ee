"""Who is acting, and what they may do: the identity behind every review action.

Why a separate module: a sign-off is a clinical statement, so the person behind it must come from
an authenticated source (the hospital's OpenID Connect provider, the OS account in local mode, or
an authenticating reverse proxy) and the permission check must happen where the action happens
(the review layer), not only in the page that hides a button.  The pages build an
:class:`Identity` once per request; every action that changes something calls :func:`require`.

Permissions:

* ``sign_off``: record or amend a decision (and send it to the PACS);
* ``manage``: build, rename or delete reference banks and start scoring;
* ``read``: everything else (every authenticated user has it).
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from adaptclip_med.errors import InputError

READ, SIGN_OFF, MANAGE = "read", "sign_off", "manage"
PERMISSION_WORDS = {READ: "read studies", SIGN_OFF: "sign off", MANAGE: "build or delete reference banks and start scoring"}

#: How the person was established.
OIDC, LOCAL, TRUSTED_HEADER = "oidc", "local", "trusted-header"
LOCAL_ISSUER = "local"


class AccessDenied(InputError):
    """The acting person lacks the permission an action needs (or nobody is logged in)."""


@dataclass(frozen=True)
class Identity:
    """An authenticated person: issuer + subject identify them; name and e-mail are for people."""

    issuer: str
    subject: str
    name: str = ""
    email: str = ""
    permissions: frozenset[str] = field(default_factory=lambda: frozenset({READ}))
    mode: str = OIDC

    @property
    def key(self) -> str:
        """Stable identifier recorded with every action: ``issuer#subject``."""
        return f"{self.issuer}#{self.subject}"

    @property
    def display(self) -> str:
        """What people read: ``Name <e-mail>`` (falling back to the subject)."""
        label = self.name or self.subject
        return f"{label} <{self.email}>" if self.email and self.email != label else label

    def may(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class RoleMap:
    """Which values of which ID-token claim grant ``sign_off`` and ``manage`` (configurable, e.g.
    Entra ID app roles in ``roles`` or Keycloak groups in ``groups``)."""

    claim: str = "groups"
    sign_off_role: str = "radiologist"
    manage_role: str = "ai-admin"

    def permissions(self, claims: Mapping[str, Any]) -> frozenset[str]:
        values = _claim_values(claims.get(self.claim))
        granted = {READ}
        if self.sign_off_role in values:
            granted.add(SIGN_OFF)
        if self.manage_role in values:
            granted.add(MANAGE)
        return frozenset(granted)


def _claim_values(raw: Any) -> set[str]:
    """A claim as a set of strings: a list, or one string (space- or comma-separated)."""
    if raw is None:
        return set()
    if isinstance(raw, str):
        return {part for part in raw.replace(",", " ").split() if part}
    if isinstance(raw, Iterable):
        return {str(part) for part in raw}
    return {str(raw)}


def identity_from_claims(claims: Mapping[str, Any], roles: RoleMap) -> Identity | None:
    """The person in an ID token's claims (``st.user``); None without issuer and subject."""
    issuer, subject = str(claims.get("iss") or ""), str(claims.get("sub") or "")
    if not issuer or not subject:
        return None
    name = str(claims.get("name") or claims.get("preferred_username") or "")
    return Identity(issuer, subject, name, str(claims.get("email") or ""), roles.permissions(claims), OIDC)


def local_identity() -> Identity:
    """Single-user local mode: the OS account running the dashboard may do everything."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Identity(f"{LOCAL_ISSUER}:{socket.gethostname()}", user, user, "", frozenset({READ, SIGN_OFF, MANAGE}), LOCAL)


def identity_from_header(value: str | None, groups: str | None, roles: RoleMap, proxy: str) -> Identity | None:
    """The person an authenticating reverse proxy names in a request header (trusted-header mode)."""
    user = (value or "").strip()
    if not user or any(ord(ch) < 32 for ch in user):
        return None
    return Identity(f"proxy:{proxy}", user, user, user if "@" in user else "",
                    roles.permissions({roles.claim: groups or ""}), TRUSTED_HEADER)


def require(who: Identity | None, permission: str) -> Identity:
    """``who`` if they hold ``permission``; otherwise :class:`AccessDenied` in one line."""
    if who is None:
        raise AccessDenied(f"not logged in: log in to {PERMISSION_WORDS[permission]}")
    if not who.may(permission):
        raise AccessDenied(f"{who.display} may not {PERMISSION_WORDS[permission]} (missing role; ask the administrator)")
    return who
