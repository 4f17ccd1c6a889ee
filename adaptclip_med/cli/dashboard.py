"""``adaptclip-med dashboard``: start the Streamlit review dashboard with the right flags.

Streamlit owns its own command line, so the configuration (data roots, output folder, model
options) travels as a JSON file named in an environment variable.  The file watcher is turned off
(it trips over torch's lazy modules).  Without an identity provider the server is single-user and
listens on loopback only (:mod:`adaptclip_med.review.login_config` holds the rules); with one, the
login secrets go to a private Streamlit secrets file, never onto a command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adaptclip_med.cli import common, options
from adaptclip_med.errors import InputError
from adaptclip_med.review.config import CONFIG_ENV, DEFAULT_MAX_UPLOAD_MB, DEFAULT_UPLOAD_TTL_MINUTES, DashboardConfig
from adaptclip_med.review.login_config import SECRET_ENV, OidcOptions, plan_login, write_secrets
from adaptclip_med.utils.redact import describe_path
from adaptclip_med.volume.options import ScoringOptions, SlicingOptions

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec

APP = Path(__file__).resolve().parents[1] / "dashboard" / "entry.py"


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def streamlit_command(app_path: Path, port: int, address: str, max_upload_mb: int, secrets: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "streamlit", "run", str(app_path),
               "--server.headless", "true", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
               "--server.port", str(port), "--server.address", address, "--server.maxUploadSize", str(max_upload_mb),
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal", "--theme.base", "dark"]
    # Only our secrets file (never ~/.streamlit/secrets.toml of whoever runs it); none: no login section.
    return command + ["--secrets.files", str(secrets)] if secrets is not None else command


_ADAPTERS = typer.Option(None, "--adapters", help="Trained weights of the method (.safetensors or released .pth), or 'untrained'. Without them a trainable method (adaptclip, adaclip) only reviews existing results; winclip needs none.")


@common.user_errors
@common.model_options(adapters_option=_ADAPTERS, require_weights=False)
def dashboard(
    data_root: list[Path] = typer.Option([], "--data-root", help="Folder the dashboard may read studies and normal scans from; repeat for several."),
    output: Path = typer.Option(Path("review_output"), "--output", help="Where sign-offs (reviews.sqlite), scored studies and exports are written."),
    results: list[Path] = typer.Option([], "--results", help="Batch or score output folder to list in the worklist; repeat for several."),
    port: int = typer.Option(8501, "--port", help="HTTP port."),
    address: str = typer.Option("127.0.0.1", "--address", help="Listen address: loopback by default; another address only with a login (--oidc-metadata-url); unix://PATH for a reverse proxy."),
    references: str = typer.Option(None, "--references", help="Default reference bank for scoring (folder or name under the banks root)."),
    banks_root: Path = options.BanksRootOpt,
    window: str = options.WindowOpt,
    axis: str = options.AxisOpt,
    batch_size: int = options.BatchSizeOpt,
    show_patient_names: bool = typer.Option(False, "--show-patient-names", help="Show patient names from the DICOM headers in the series lists."),
    max_upload_mb: int = typer.Option(DEFAULT_MAX_UPLOAD_MB, "--max-upload-mb", help="Largest upload (MB) accepted by the page."),
    demo: bool = typer.Option(False, "--demo", help="The demo model (--adapters demo: trained on synthetic data) and synthetic phantom studies (no diagnostic value); no weights needed."),
    oidc_metadata_url: str = typer.Option(None, "--oidc-metadata-url", help="Log in through the hospital's OpenID Connect provider: its /.well-known/openid-configuration URL (Entra ID, Keycloak, ADFS). See docs/sign-in.md."),
    oidc_client_id: str = typer.Option(None, "--oidc-client-id", help="The client (application) id registered for the dashboard at the provider."),
    oidc_client_secret_file: Path = typer.Option(None, "--oidc-client-secret-file", help=f"File holding the client secret (else the environment variable {SECRET_ENV}); never on the command line."),
    oidc_scope: str = typer.Option("openid profile email", "--oidc-scope", help="Scopes to request; add the one that releases the role claim (e.g. 'groups') if the provider needs it."),
    oidc_prompt: str = typer.Option("login", "--oidc-prompt", help="OIDC prompt: 'login' (default: the password at every login, right for shared workstations), 'select_account', or '' (the provider decides)."),
    public_url: str = typer.Option(None, "--public-url", help="The address browsers use (e.g. https://ai-review.hospital.example); the provider must accept PUBLIC_URL/oauth2callback as redirect and post-logout URI. Default: http://ADDRESS:PORT."),
    role_claim: str = typer.Option("groups", "--role-claim", help="ID-token claim listing the user's roles or groups (Entra ID app roles: 'roles')."),
    sign_off_role: str = typer.Option("radiologist", "--sign-off-role", help="Value of the role claim that may sign off; every other logged-in user reads only."),
    manage_role: str = typer.Option("ai-admin", "--manage-role", help="Value of the role claim that may build, rename or delete reference banks and start scoring."),
    trusted_header: str = typer.Option(None, "--trusted-header", help="Trust this request header (set by an authenticating reverse proxy) as the user name; allowed on loopback or a Unix socket only."),
    trusted_groups_header: str = typer.Option(None, "--trusted-groups-header", help="With --trusted-header: the header listing the user's groups (mapped like --role-claim)."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="Host header (name:port) the dashboard answers to; repeat for several. Default: the --public-url host, or loopback names. Other Host values get nothing (DNS rebinding)."),
    send_to: str = typer.Option(None, "--send-to", help="PACS that receives signed decisions (reviewed SEG + SR) on request: dimse://CALLED_AE@host:port[?calling=AE] (C-STORE) or an http(s):// DICOMweb root (STOW-RS)."),
    upload_ttl_minutes: int = typer.Option(DEFAULT_UPLOAD_TTL_MINUTES, "--upload-ttl-minutes", help="Uploads are deleted when their browser session ends, and at the latest after this many minutes."),
    model: MethodSpec = None,
    adapters_given: bool = False,
) -> None:
    """Start the review dashboard (reference library, worklist, viewer, sign-off) in the browser.

    Without --oidc-metadata-url it runs in local, single-user mode: loopback only, the OS account
    signs off.  With it, every user logs in at the hospital's identity provider and the role claim
    decides who may sign off (see docs/sign-in.md)."""
    oidc = None
    if oidc_metadata_url or oidc_client_id:
        if not (oidc_metadata_url and oidc_client_id):
            raise InputError("--oidc-metadata-url and --oidc-client-id go together")
        oidc = OidcOptions(oidc_metadata_url, oidc_client_id, oidc_client_secret_file, oidc_scope, public_url, oidc_prompt)
    login = plan_login(address, port, oidc, trusted_header, tuple(allowed_host))
    require_free_port(address, port)  # before the demo builds anything: a busy port fails at once
    if send_to:
        from adaptclip_med.review.pacs_send import PacsDestination

        PacsDestination.parse(send_to)  # a malformed destination stops the start, in one line
    if not APP.is_file():
        raise InputError(f"{APP.name} is missing from the installed package: reinstall adaptclip-med")
    output = output.expanduser().resolve()
    output.mkdir(parents=True, exist_ok=True)
    roots = [p.expanduser().resolve() for p in data_root]
    for folder in [*roots, *results]:
        if not folder.is_dir():
            raise InputError(f"{describe_path(folder)}: not a folder")
    if demo:
        from adaptclip_med.demo.reading_room import set_up_demo_dashboard

        banks = banks_root or output / "banks"
        prepared = set_up_demo_dashboard(output, banks, tuple(roots), options.resolve_bank(references, banks), typer.echo)
        scoring, roots, bank = prepared.scoring, list(prepared.data_roots), prepared.bank
    else:
        banks = options.banks_root(banks_root)
        scoring = ScoringOptions(model=model, slicing=SlicingOptions(window=window, axis=axis, batch_size=batch_size))
        bank = options.resolve_bank(references, banks)
    config = DashboardConfig(data_roots=tuple(roots), output=output, banks_root=banks.expanduser().resolve(),
                             scoring=scoring.with_references(bank=str(Path(bank).resolve())) if bank else scoring, model_configured=demo or adapters_given or not _trainable(model.method),
                             results=tuple(p.expanduser().resolve() for p in results), show_patient_names=show_patient_names,
                             max_upload_mb=max_upload_mb, demo=demo, login=login.mode, allowed_hosts=login.allowed_hosts,
                             role_claim=role_claim, sign_off_role=sign_off_role, manage_role=manage_role,
                             trusted_header=trusted_header or "", trusted_groups_header=trusted_groups_header or "",
                             upload_ttl_minutes=upload_ttl_minutes, send_to=send_to or "")
    with tempfile.TemporaryDirectory(prefix="adaptclip-dashboard-") as folder:
        config_file = config.save(Path(folder) / "dashboard.json")
        secrets = write_secrets(login.secrets_toml, Path(folder)) if login.secrets_toml else None
        env = {**os.environ, CONFIG_ENV: str(config_file)}
        env.pop(SECRET_ENV, None)  # the server reads the secrets file; the child needs no copy
        where = public_url or f"http://{address}:{port}"
        mode = {"local": "local, unauthenticated, single user", "oidc": "login through the identity provider",
                "trusted-header": f"user from the {trusted_header} header of the reverse proxy"}[login.mode]
        typer.echo(f"review dashboard on {where}  ({mode}; output: {output}; Ctrl-C stops it)")
        code = _serve(streamlit_command(APP, port, address, max_upload_mb, secrets), env)
    raise typer.Exit(code)


def require_free_port(address: str, port: int) -> None:
    """Refuse, in one line, a port something already listens on (another dashboard, say): Streamlit
    would otherwise start after the demo set-up, print the other instance's URL and fail."""
    import errno
    import socket

    if address.startswith("unix://"):
        return
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free to reuse
        try:
            probe.bind((address, int(port)))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # not this check's business (an address not on this machine is Streamlit's to report)
            raise InputError(f"port {port} on {address} is already in use (another dashboard?): "
                             f"stop it or start this one with --port {_free_port_hint(address)}") from None


def _free_port_hint(address: str) -> int:
    """A port the system reports free right now (only a suggestion for the message)."""
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
            return int(probe.getsockname()[1])
        except OSError:
            return 8502


def _trainable(method: str) -> bool:
    from adaptclip_med.methods.registry import get_method

    return get_method(method).trainable


def _serve(command: list[str], env: dict[str, str]) -> int:
    """Run Streamlit until it exits; Ctrl-C or SIGTERM stop it too (never leaving it orphaned)."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    server: subprocess.Popen | None = None
    try:
        server = subprocess.Popen(command, env=env)
        return server.wait()
    except KeyboardInterrupt:
        if server is not None:
            server.terminate()
            server.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)

