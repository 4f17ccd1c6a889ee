"""How ``adaptclip-med dashboard`` sets up the login: mode, accepted Host names, Streamlit secrets.

Why a module of its own: the rules are what keeps an unauthenticated dashboard off the network,
so they are one function with tests, not scattered CLI checks:

* with an OpenID Connect provider (``--oidc-metadata-url``): Streamlit's ``[auth]`` secrets are
  written to a private file (mode 0600) that only the server reads; the client secret comes from a
  file or the environment, never from the command line (where ``ps`` shows it to every user);
* with a trusted reverse-proxy header: only on loopback or a Unix socket (anyone who can reach the
  port directly could forge the header);
* otherwise local, single-user mode: loopback only; any other address is refused in one line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from adaptclip_med.errors import InputError
from adaptclip_med.utils.redact import describe_path

SECRET_ENV = "ADAPTCLIP_MED_OIDC_CLIENT_SECRET"
COOKIE_SECRET_ENV = "ADAPTCLIP_MED_COOKIE_SECRET"
DEFAULT_SCOPE = "openid profile email"
#: ``prompt=login``: the provider asks for the password at every dashboard login, so a shared
#: reading-room workstation never signs in silently as the previous user's single-sign-on session.
DEFAULT_PROMPT = "login"
CALLBACK = "/oauth2callback"


@dataclass(frozen=True)
class OidcOptions:
    """The identity provider as the hospital's IT department describes it."""

    metadata_url: str
    client_id: str
    secret_file: Path | None = None
    scope: str = DEFAULT_SCOPE
    public_url: str | None = None  # the address browsers use; its /oauth2callback is the redirect URI
    prompt: str = DEFAULT_PROMPT  # OIDC prompt parameter ("" to let the provider decide)


@dataclass(frozen=True)
class LoginPlan:
    mode: str  # "oidc" | "local" | "trusted-header"
    allowed_hosts: tuple[str, ...]
    secrets_toml: str | None = None  # the [auth] section for Streamlit (oidc only)


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def is_unix_socket(address: str) -> bool:
    return address.startswith("unix://")


def plan_login(address: str, port: int, oidc: OidcOptions | None, trusted_header: str | None,
               allowed_hosts: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> LoginPlan:
    """The login set-up for these options, or :class:`InputError` naming what is unsafe or missing."""
    env = os.environ if env is None else env
    if oidc is not None and trusted_header:
        raise InputError("--oidc-metadata-url and --trusted-header exclude each other: choose one way to log in")
    local_names = _loopback_hosts(address, port) if is_loopback(address) else ()
    if oidc is not None:
        public = (oidc.public_url or (f"http://{address}:{port}" if is_loopback(address) else "")).rstrip("/")
        if not public:
            raise InputError(f"--address {address}: give --public-url (the https address browsers use) for the login redirect")
        netloc = urlparse(public).netloc
        if not netloc:
            raise InputError(f"--public-url {public}: not an absolute URL (e.g. https://ai-review.hospital.example)")
        hosts = allowed_hosts or tuple(dict.fromkeys((netloc, *local_names)))
        return LoginPlan("oidc", hosts, _secrets_toml(oidc, public, env))
    if trusted_header:
        if not (is_loopback(address) or is_unix_socket(address)):
            raise InputError(f"--address {address}: --trusted-header is refused off loopback or a Unix socket "
                             "(anyone reaching the port could forge the header); put the proxy on this machine")
        return LoginPlan("trusted-header", allowed_hosts or local_names)
    if not is_loopback(address):
        raise InputError(f"--address {address}: refused without a login: local mode is single-user and listens on "
                         "loopback only (configure --oidc-metadata-url to serve the network)")
    return LoginPlan("local", allowed_hosts or local_names)


def _loopback_hosts(address: str, port: int) -> tuple[str, ...]:
    names = ("127.0.0.1", "localhost", "[::1]", address if ":" not in address else f"[{address.strip('[]')}]")
    return tuple(dict.fromkeys(f"{name}:{port}" for name in names))


def _client_secret(oidc: OidcOptions, env: Mapping[str, str]) -> str:
    if oidc.secret_file is not None:
        try:
            secret = Path(oidc.secret_file).read_text().strip()
        except OSError as exc:
            raise InputError(f"{describe_path(oidc.secret_file)}: cannot read the client secret ({exc.strerror})") from None
        if not secret:
            raise InputError(f"{describe_path(oidc.secret_file)}: the client secret file is empty")
        return secret
    secret = (env.get(SECRET_ENV) or "").strip()
    if not secret:
        raise InputError(f"no OIDC client secret: give --oidc-client-secret-file FILE or set {SECRET_ENV}")
    return secret


def _secrets_toml(oidc: OidcOptions, public_url: str, env: Mapping[str, str]) -> str:
    """Streamlit's ``[auth]`` section (TOML basic strings are JSON strings)."""
    cookie = (env.get(COOKIE_SECRET_ENV) or "").strip() or secrets.token_hex(32)
    values = {"redirect_uri": public_url + CALLBACK, "cookie_secret": cookie, "client_id": oidc.client_id,
              "client_secret": _client_secret(oidc, env), "server_metadata_url": oidc.metadata_url}
    lines = ["[auth]", *(f"{k} = {json.dumps(v)}" for k, v in values.items()),
             "", "[auth.client_kwargs]", f"scope = {json.dumps(oidc.scope)}",
             *([f"prompt = {json.dumps(oidc.prompt)}"] if oidc.prompt else []), ""]
    return "\n".join(lines)


def write_secrets(text: str, folder: Path) -> Path:
    """The secrets file, readable by the owner only (it holds the client and cookie secrets)."""
    path = Path(folder) / "secrets.toml"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path
